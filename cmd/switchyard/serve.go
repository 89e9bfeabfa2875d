package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"switchyard/classifier/policy"
	"switchyard/datasets/logroot"
	"switchyard/features"
	"switchyard/serving"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	rf := registerRouterFlags(fs)
	def := serving.DefaultConfig()
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	configFile := fs.String("config", "", "configuration file with policies and experiments (docs/experiments.md); replaces --policy-file and --model")
	logs := fs.String("logs", "logs", "the decision and outcome logs (Parquet, dt=/hour= partitions): a folder, or a bucket URL (s3://, gs://, azblob://, file://) that finished files are uploaded to from --staging")
	staging := fs.String("staging", "logs-staging", "with a bucket as --logs: the local folder of the write-ahead logs and the files not yet uploaded")
	keepPrompts := fs.Bool("log-prompts", true, "write prompt text to the decision log (false: only its SHA-256)")
	maxBody := fs.Int64("max-body-bytes", def.MaxBodyBytes, "largest request body accepted")
	maxInFlight := fs.Int("max-in-flight", def.MaxInFlight, "API requests served at once; beyond, 429 with Retry-After (0: no limit)")
	timeout := fs.Duration("request-timeout", def.RequestTimeout, "deadline of an API request")
	shedDelay := fs.Duration("shed-queue-delay", 20*time.Millisecond, "refuse routing requests with 429 at once while the Go scheduler's queueing delay (90th percentile, sampled every 10 ms) is above this (0: off)")
	keysFile := fs.String("api-keys-file", "", "file of client API keys, one per line (also $SWITCHYARD_API_KEYS, comma-separated); none: no auth")
	adminFile := fs.String("admin-key-file", "", "file holding the admin key (also $SWITCHYARD_ADMIN_KEY); none: admin endpoints are off")
	accessLog := fs.Bool("access-log", false, "log every API request with its decision id")
	maxRouting := fs.Int("max-routing", def.MaxRouting, "routing requests decided at once (default: twice the processors); the others wait in arrival order (0: no bound)")
	queueTimeout := fs.Duration("queue-timeout", def.QueueTimeout, "longest a routing request waits for its turn before it is answered 429")
	maxMessages := fs.Int("max-messages", def.MaxMessages, "chat messages in one routing request; beyond, 413 (0: no limit)")
	maxText := fs.Int("max-text-bytes", def.MaxTextBytes, "prompt and message text of one routing request, bytes; beyond, 413 (0: no limit)")
	writerID := fs.String("writer-id", "", "writer id in the names of the log files this server writes (a-z, 0-9, _; default: from the host name); one server per folder and writer id")
	debugLog := fs.Bool("debug", false, "debug logging")
	exploreSeed := fs.Uint64("explore-seed", 1, "seed of the exploration draws (a hash of it and the decision id)")
	redisURL := fs.String("redis", "", "Redis the replicas of a fleet share state through: redis://[:password@]host:port[/db], rediss:// for TLS (also $SWITCHYARD_REDIS_URL); none: this server alone")
	cpu := registerCPUProfile(fs)
	memLimit := fs.Int64("memory-limit-mb", 100, "soft limit of the Go heap in MiB (the garbage collector works harder near it; 0: none)")
	stopProfile, err := cpu.parse(fs, args)
	if err != nil {
		return err
	}
	defer stopProfile()
	if *memLimit > 0 {
		debug.SetMemoryLimit(*memLimit << 20)
	}
	log := newLogger(stderr, *debugLog)
	if *addr == "" {
		return errors.New("serve: --addr is empty: give a listen address such as 127.0.0.1:8080 (port 0: chosen by the system)")
	}
	if *redisURL == "" {
		*redisURL = os.Getenv("SWITCHYARD_REDIS_URL")
	}
	if *redisURL != "" { // the Redis client's own messages (reconnects) into the server's log
		redis.SetLogger(redisLog{log})
	}
	apiKeys, adminKey, err := readKeys(*keysFile, *adminFile)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	var load func(onFallback func()) (*serving.Routing, error)
	if *configFile != "" && rf.policyFile != "" {
		return errors.New("serve: give --config, or --policy-file, or --model and --catalogue")
	}
	if rf.policyFile != "" { // one format: a policy file is a configuration with one policy
		if rf.model != "" || rf.catalogue != "" { // as route says of the same flags
			return errors.New("serve: give --policy-file or --model and --catalogue, not both")
		}
		*configFile, rf.policyFile = rf.policyFile, ""
	}
	if *configFile != "" {
		if rf.model != "" || rf.catalogue != "" {
			return errors.New("serve: give --config, or --policy-file, or --model and --catalogue")
		}
		load = func(onFallback func()) (*serving.Routing, error) {
			return serving.ReadConfig(*configFile, policy.LoadOptions{Scorer: rf.scorer, RuntimeLib: rf.ortLib, OnFallback: onFallback})
		}
	} else {
		load = func(onFallback func()) (*serving.Routing, error) {
			r, rcat, c, err := rf.loadWith(onFallback)
			if err != nil {
				return nil, err
			}
			rt := serving.SingleRouting(r, rcat)
			rt.Own(c)
			return rt, nil
		}
	}
	opt := serving.Options{Config: def, Addr: *addr, LogDir: *logs, Writer: *writerID, Load: load,
		ShedDelay: *shedDelay, ReloadOnSIGHUP: true, Log: log, Redis: *redisURL}
	if logroot.IsBucket(*logs) {
		up, err := logroot.NewUploader(ctx, *logs, *staging, log)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		opt.Uploader, opt.LogDir = up, *staging
	}
	opt.KeepPrompts, opt.MaxBodyBytes, opt.MaxInFlight, opt.RequestTimeout = *keepPrompts, *maxBody, *maxInFlight, *timeout
	opt.ExploreSeed, opt.APIKeys, opt.AdminKey, opt.AccessLog = *exploreSeed, apiKeys, adminKey, *accessLog
	opt.MaxMessages, opt.MaxTextBytes = *maxMessages, *maxText
	opt.MaxRouting, opt.QueueTimeout = *maxRouting, *queueTimeout
	svc, err := serving.Open(ctx, opt)
	if err != nil {
		if opt.Uploader != nil {
			opt.Uploader.Close()
		}
		return err
	}
	log.Info("scorer", "scorer", rf.scorer)
	return svc.Run(ctx)
}

// readKeys reads client API keys and the admin key from files (one key per
// line, blank lines and # comments ignored) or the environment.
func readKeys(keysFile, adminFile string) ([]string, string, error) {
	var keys []string
	if keysFile != "" {
		b, err := os.ReadFile(keysFile)
		if err != nil {
			return nil, "", fmt.Errorf("api keys: %w", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				keys = append(keys, l)
			}
		}
		if len(keys) == 0 {
			return nil, "", fmt.Errorf("api keys: %s holds no key", keysFile)
		}
	} else if env := os.Getenv("SWITCHYARD_API_KEYS"); env != "" {
		keys = splitList(env)
	}
	admin := os.Getenv("SWITCHYARD_ADMIN_KEY")
	if adminFile != "" {
		b, err := os.ReadFile(adminFile)
		if err != nil {
			return nil, "", fmt.Errorf("admin key: %w", err)
		}
		admin = strings.TrimSpace(string(b))
		if admin == "" {
			return nil, "", fmt.Errorf("admin key: %s is empty", adminFile)
		}
	}
	return keys, admin, nil
}

func runRoute(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("route", stderr)
	rf := registerRouterFlags(fs)
	task := fs.String("task", "", "optional task label")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: switchyard route [flags] PROMPT...\n\nDecides one prompt (the arguments, joined by spaces) as the server would and prints the decision as JSON.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil { // the prompt is the positional arguments
		return err
	}
	prompt := strings.Join(fs.Args(), " ")
	if prompt == "" {
		return errors.New("route: give the prompt as arguments (switchyard route [flags] PROMPT)")
	}
	barSet := false // --quality-bar given: this request's bar, also over a policy file's
	fs.Visit(func(f *flag.Flag) { barSet = barSet || f.Name == "quality-bar" })
	router, _, closer, err := rf.load()
	if err != nil {
		return fmt.Errorf("route: %w", err)
	}
	defer closer.Close()
	req := policy.Request{Input: features.Input{Prompt: prompt, Task: *task}}
	if barSet {
		req.QualityBar = &rf.bar
	}
	d, err := router.Route(req)
	if err != nil {
		return fmt.Errorf("route: %w", err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(serving.DecisionResponse(d)) // the server's answer, without its ids
}

// redisLog writes the Redis client's messages to the server's log.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}
