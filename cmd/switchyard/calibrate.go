package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"switchyard/classifier/policy"
	"switchyard/features"
	"switchyard/training"
	"switchyard/training/eval"
)

func runCalibrate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("calibrate", stderr)
	rf := registerRouterFlags(fs)
	src := registerSourceFlags(fs, "or: a benchmark-table folder", "dataset folder with full-information outcomes (validation data)")
	share := fs.Float64("validation-share", 0.1, "use the prompts of this validation split (by prompt-id hash, as train holds out); 1: every prompt")
	knob := fs.String("knob", "bar", "what to calibrate: bar (quality bar) or lambda (cost-quality trade-off)")
	budget := fs.Float64("budget-per-1k", 0, "target: at most this many USD per 1,000 requests")
	maxShare := fs.String("max-share", "", "target: MODEL=SHARE, at most SHARE of traffic to MODEL")
	minQ := fs.Float64("min-quality", 0, "target: at least this average quality")
	out := fs.String("policy-out", "", "write the calibrated policy here (JSON that 'serve --policy-file' reads)")
	if err := parse(fs, args); err != nil {
		return err
	}
	t := eval.Target{CostPer1K: *budget, MinQuality: *minQ}
	if *maxShare != "" {
		m, v, ok := strings.Cut(*maxShare, "=")
		f, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil || m == "" {
			return fmt.Errorf("calibrate: --max-share wants MODEL=SHARE, got %q", *maxShare)
		}
		t.ShareModel, t.MaxShare = m, f
	}
	if err := t.Validate(); err != nil {
		return err
	}
	ds, err := src.read(stderr)
	if err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	pf, err := rf.policy()
	if err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	router, _, closer, err := rf.load()
	if err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	defer closer.Close()
	ext, err := features.NewExtractor(router.Metadata().FeatureSpec)
	if err != nil {
		return err
	}
	pool := pf.Candidates
	if len(pool) == 0 {
		pool = router.Models()
	}
	b, err := eval.NewBench(ds, pool, ext)
	if err != nil {
		return err
	}
	var prompts []int
	for i, id := range b.PromptIDs {
		if *share >= 1 || training.InHoldout(id, "validation", *share) {
			prompts = append(prompts, i)
		}
	}
	tu, err := eval.MeetTarget(b, router, prompts, *knob, t)
	if err != nil {
		return err
	}
	c := tu.Chosen
	fmt.Fprintf(stdout, "target: %s, on %d validation prompts\nchosen: %s\nexpected: $%.4f per 1,000 requests, average quality %.4f\ntraffic:\n",
		t, tu.Prompts, c.Rule, c.CostPer1K, c.Quality)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, m := range c.SortedShares() {
		fmt.Fprintf(tw, "  %s\t%.1f%%\t\n", m, 100*c.Shares[m])
	}
	tw.Flush()
	if *out != "" {
		np := *pf
		np.Config.QualityBar, np.Config.Lambda = c.Rule.QualityBar, c.Rule.Lambda
		if np.Config.Lambda != nil {
			np.Config.QualityBar = pf.QualityBar // kept for the record: the trade-off does not use it
		}
		np.Config.Version = c.Rule.String()
		np.Note = fmt.Sprintf("calibrated for %s on %d validation prompts: $%.4f per 1,000 requests, quality %.4f", t, tu.Prompts, c.CostPer1K, c.Quality)
		for _, p := range []*string{&np.Predictor, &np.Catalogue} {
			if abs, err := filepath.Abs(*p); err == nil {
				*p = abs
			}
		}
		if err := policy.WriteFile(*out, &np); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (serve it with: switchyard serve --policy-file %s)\n", *out, *out)
	}
	return nil
}
