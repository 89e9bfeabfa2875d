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
	"strings"
	"time"

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
	fs.StringVar(&f.scorer, "scorer", serving.ScorerONNX, "scorer: onnx (ONNX Runtime) or go (pure-Go forward pass)")
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
	pf, err := f.policy()
	if err != nil {
		return nil, nil, nil, err
	}
	cat, err := datasets.ReadCatalogue(pf.Catalogue)
	if err != nil {
		return nil, nil, nil, err
	}
	r, sc, err := serving.LoadRouter(serving.LoadOptions{
		ModelPath: pf.Predictor, Catalogue: cat, Scorer: f.scorer, RuntimeLib: f.ortLib, Policy: pf.Config,
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
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	logs := fs.String("logs", "logs", "folder of the decision log (Parquet)")
	keepPrompts := fs.Bool("log-prompts", true, "write prompt text to the decision log (false: only its SHA-256)")
	maxBody := fs.Int64("max-body-bytes", serving.DefaultConfig().MaxBodyBytes, "largest request body accepted")
	debug := fs.Bool("debug", false, "log every request")
	exploreSeed := fs.Uint64("explore-seed", 1, "seed of the exploration draws (a hash of it and the decision id)")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	log := newLogger(stderr, *debug)
	router, cat, closer, err := rf.load()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer closer.Close()
	outcomes, recovered, err := logstore.Open[datasets.OutcomeRecord](logstore.Options{Dir: *logs, Prefix: "outcomes",
		MaxBytes: 64 << 20, MaxAge: 10 * time.Minute, Log: log})
	if err != nil {
		return fmt.Errorf("serve: outcome log: %w", err)
	}
	if recovered > 0 {
		log.Info("recovered outcomes from the write-ahead log", "records", recovered)
	}
	pastDecisions, pastOutcomes, err := datasets.ReadLogDir(*logs)
	if err != nil {
		return fmt.Errorf("serve: read earlier logs: %w", err)
	}
	dlog, err := serving.NewDecisionLog(serving.DefaultDecisionLogConfig(*logs), log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	cfg := serving.DefaultConfig()
	cfg.KeepPrompts, cfg.MaxBodyBytes = *keepPrompts, *maxBody
	cfg.ExploreSeed = *exploreSeed
	srv, err := serving.New(cfg, router, cat, dlog, outcomes, log)
	if err != nil {
		return err
	}
	srv.RememberDecisions(pastDecisions, pastOutcomes)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	meta := router.Metadata()
	log.Info("serving", "addr", ln.Addr().String(), "predictor", meta.Version, "models", strings.Join(meta.Models, ","),
		"feature_spec", meta.FeatureSpecID, "scorer", rf.scorer, "logs", *logs)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight and flushing the decision log")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
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

func runRoute(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("route", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf routerFlags
	rf.register(fs)
	task := fs.String("task", "", "optional task label")
	bar := fs.Float64("bar", -1, "quality bar for this request (default: the policy's)")
	if err := parse(fs, args, true); err != nil {
		return err
	}
	prompt := strings.Join(fs.Args(), " ")
	if prompt == "" {
		return errors.New("route: give the prompt as arguments")
	}
	router, _, closer, err := rf.load()
	if err != nil {
		return fmt.Errorf("route: %w", err)
	}
	defer closer.Close()
	req := policy.Request{Input: features.Input{Prompt: prompt, Task: *task}}
	if *bar >= 0 {
		req.QualityBar = bar
	}
	d, err := router.Route(req)
	if err != nil {
		return fmt.Errorf("route: %w", err)
	}
	fallbacks := make([]string, len(d.Fallbacks))
	for i, k := range d.Fallbacks {
		fallbacks[i] = d.Options[k].Model
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{
		"model": d.Chosen, "cleared": d.Cleared, "quality_bar": d.QualityBar, "candidates": d.Options,
		"fallbacks": fallbacks, "input_tokens_estimate": d.InputTokens, "policy": d.Policy,
		"predictor_version": d.PredictorVersion, "feature_spec_id": d.FeatureSpecID,
	})
}
