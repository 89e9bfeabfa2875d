package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/logstore"
	"switchyard/features"
	"switchyard/serving"
)

// routerFlags are the flags serve and route share to build a router.
type routerFlags struct {
	model, catalogue, scorer, ortLib, policyName, candidates, policyFile string
	bar                                                                  float64
}

func (f *routerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.policyFile, "policy-file", "", "policy JSON (from 'switchyard calibrate'): predictor, catalogue, bar or lambda, candidates; replaces the flags below")
	fs.StringVar(&f.model, "model", "", "ONNX predictor written by 'switchyard train'")
	fs.StringVar(&f.catalogue, "catalogue", "", "model catalogue CSV (prices)")
	fs.StringVar(&f.scorer, "scorer", policy.ScorerONNX, "scorer: onnx (ONNX Runtime) or go (pure-Go forward pass)")
	fs.StringVar(&f.ortLib, "ort-lib", "", "ONNX Runtime shared library (default: $SWITCHYARD_ORT_LIB, else .ort/libonnxruntime.so.1)")
	fs.StringVar(&f.policyName, "policy", "default", "policy name recorded with every decision")
	fs.StringVar(&f.candidates, "candidates", "", "comma-separated default candidates (default: every model the predictor scores)")
	fs.Float64Var(&f.bar, "quality-bar", 0.8, "default quality bar in [0,1] when a request names none")
}

// policy returns the policy to serve: the policy file's, or the flags'.
func (f *routerFlags) policy() (*policy.File, error) {
	if f.policyFile != "" {
		if f.model != "" || f.catalogue != "" {
			return nil, errors.New("give --policy-file or --model and --catalogue, not both")
		}
		return policy.ReadFile(f.policyFile)
	}
	if f.model == "" || f.catalogue == "" {
		return nil, errors.New("--model and --catalogue (or --policy-file) are required")
	}
	return &policy.File{Config: policy.Config{Name: f.policyName, Version: "1", QualityBar: f.bar, Candidates: splitList(f.candidates)},
		Predictor: f.model, Catalogue: f.catalogue}, nil
}

func (f *routerFlags) load() (*policy.Router, *datasets.Catalogue, io.Closer, error) {
	return f.loadWith(nil)
}

// loadWith is load with a callback for every scoring that falls back to the
// pure-Go scorer.
func (f *routerFlags) loadWith(onFallback func()) (*policy.Router, *datasets.Catalogue, io.Closer, error) {
	pf, err := f.policy()
	if err != nil {
		return nil, nil, nil, err
	}
	cat, err := datasets.ReadCatalogue(pf.Catalogue)
	if err != nil {
		return nil, nil, nil, err
	}
	r, sc, err := policy.LoadRouter(policy.LoadOptions{
		ModelPath: pf.Predictor, Catalogue: cat, Scorer: f.scorer, RuntimeLib: f.ortLib, Policy: pf.Config, OnFallback: onFallback,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return r, cat, sc, nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf routerFlags
	rf.register(fs)
	def := serving.DefaultConfig()
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	configFile := fs.String("config", "", "configuration file with policies and experiments (docs/experiments.md); replaces --policy-file and --model")
	logs := fs.String("logs", "logs", "folder of the decision and outcome logs (Parquet, dt=/hour= partitions)")
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
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (pprof) of the whole run to this file")
	memLimit := fs.Int64("memory-limit-mb", 100, "soft limit of the Go heap in MiB (the garbage collector works harder near it; 0: none)")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if *memLimit > 0 {
		debug.SetMemoryLimit(*memLimit << 20)
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer stopProfile()
	log := newLogger(stderr, *debugLog)
	apiKeys, adminKey, err := readKeys(*keysFile, *adminFile)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	writer := *writerID
	if writer == "" {
		writer = logstore.DefaultWriterID()
	}
	// The folder's lock comes before anything in it is touched, and the
	// port before the logs are opened: a server that cannot run changes
	// nothing.
	lock, err := logstore.LockDir(*logs, writer)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer lock.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer ln.Close()
	var srv *serving.Server
	onFallback := func() {
		if srv != nil {
			srv.CountFallback()
		}
	}
	var reload func() (*serving.Routing, error)
	if *configFile != "" {
		if rf.model != "" || rf.policyFile != "" {
			return errors.New("serve: give --config, or --policy-file, or --model and --catalogue")
		}
		reload = func() (*serving.Routing, error) {
			return serving.ReadConfig(*configFile, policy.LoadOptions{Scorer: rf.scorer, RuntimeLib: rf.ortLib, OnFallback: onFallback})
		}
	} else {
		reload = func() (*serving.Routing, error) {
			r, rcat, c, err := rf.loadWith(onFallback)
			if err != nil {
				return nil, err
			}
			rt := serving.SingleRouting(r, rcat)
			rt.Own(c)
			return rt, nil
		}
	}
	routing, err := reload()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	router, cat := routing.Default, routing.Catalogue
	outcomes, recovered, err := logstore.Open[datasets.OutcomeRecord](logstore.Options{Dir: *logs, Prefix: datasets.OutcomeLogPrefix,
		Writer: writer, MaxBytes: 64 << 20, MaxAge: 10 * time.Minute, Log: log})
	if err != nil {
		routing.Close()
		return fmt.Errorf("serve: outcome log: %w", err)
	}
	if recovered > 0 {
		log.Info("recovered outcomes from the write-ahead log", "records", recovered)
	}
	dcfg := logstore.DefaultDecisionLogConfig(*logs)
	dcfg.Writer = writer
	dcfg.RingBytes = max(dcfg.RingBytes, 4*(*maxText)) // room for the largest decision twice over
	dlog, err := logstore.NewDecisionLog(dcfg, log)
	if err != nil {
		routing.Close()
		outcomes.Close()
		return fmt.Errorf("serve: %w", err)
	}
	pastDecisions, since, err := datasets.ReadRecentDecisions(*logs, def.MaxRemembered)
	if err != nil {
		routing.Close()
		return fmt.Errorf("serve: read earlier decisions: %w", err)
	}
	cfg := def
	cfg.KeepPrompts, cfg.MaxBodyBytes, cfg.MaxInFlight, cfg.RequestTimeout = *keepPrompts, *maxBody, *maxInFlight, *timeout
	cfg.ExploreSeed, cfg.APIKeys, cfg.AdminKey, cfg.AccessLog = *exploreSeed, apiKeys, adminKey, *accessLog
	cfg.MaxMessages, cfg.MaxTextBytes = *maxMessages, *maxText
	cfg.MaxRouting, cfg.QueueTimeout = *maxRouting, *queueTimeout
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	serving.RegisterLogMetrics(reg, "decisions", dlog)
	serving.RegisterLogMetrics(reg, "outcomes", outcomes)
	var shedder serving.Shedder
	if *shedDelay > 0 {
		d := serving.NewDelayShedder(*shedDelay)
		serving.RegisterShedMetrics(reg, d)
		shedCtx, stopShedder := context.WithCancel(context.Background())
		defer stopShedder()
		go func() {
			if err := d.Run(shedCtx); err != nil {
				log.Warn("load shedding by queueing delay is off", "err", err)
			}
		}()
		shedder = d
	}
	srv, err = serving.New(cfg, serving.Deps{Routing: routing, Catalogue: cat, Decisions: dlog, Outcomes: outcomes, Log: log,
		Registry: reg, Reload: reload, Shedder: shedder, Health: []func() error{
			func() error { return wrapHealth("decision log", dlog.Failing(time.Minute)) },
			func() error { return wrapHealth("outcome log", outcomes.Failing(time.Minute)) },
		}})
	if err != nil {
		return err
	}
	srv.RememberDecisions(pastDecisions)
	pastDecisions = nil
	err = datasets.EachOutcomeFile(*logs, func(rows []datasets.OutcomeRecord) error {
		srv.RememberOutcomes(rows, since)
		return nil
	})
	if err != nil {
		return fmt.Errorf("serve: read earlier outcomes: %w", err)
	}
	debug.FreeOSMemory() // start-up garbage (the logs read, the predictor's bytes) is not kept resident
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	meta := router.Metadata()
	log.Info("serving", "addr", ln.Addr().String(), "predictor", meta.Version, "models", strings.Join(router.Models(), ","),
		"feature_spec", meta.FeatureSpecID, "scorer", rf.scorer, "logs", *logs, "auth", len(apiKeys) > 0, "admin", adminKey != "")
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for running := true; running; {
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-hup:
			_ = srv.Reload() // logged and counted; a rejected configuration leaves the old one serving
		case <-ctx.Done():
			running = false
		}
	}
	log.Info("shutting down: finishing requests in flight and flushing the logs")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
	}
	if err := srv.Close(); err != nil {
		log.Error("close the predictors", "err", err)
	}
	if err := dlog.Close(sctx); err != nil {
		return err
	}
	if err := outcomes.Close(); err != nil {
		return fmt.Errorf("serve: close outcome log: %w", err)
	}
	written, dropped, werrs := dlog.Stats()
	log.Info("stopped", "decisions_logged", written, "decisions_dropped", dropped, "write_errors", werrs)
	return nil
}

func wrapHealth(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s failing: %w", what, err)
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
	fs := flag.NewFlagSet("route", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf routerFlags
	rf.register(fs)
	task := fs.String("task", "", "optional task label")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: switchyard route [flags] PROMPT...\n\nDecides one prompt (the arguments, joined by spaces) as the server would and prints the decision as JSON.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, true); err != nil {
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
