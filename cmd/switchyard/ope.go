package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"switchyard/experiments"
	"switchyard/experiments/ope"
)

func runOPE(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ope", stderr)
	rf := registerRouterFlags(fs)
	lf := registerEngineLogFlags(fs)
	boot := fs.Int("bootstrap", ope.DefaultBootstrap, "bootstrap resamples for the confidence intervals")
	seed := fs.Int64("seed", 1, "bootstrap seed")
	clip := fs.Float64("max-weight", 0, "clip importance weights at this value (0: no clipping)")
	if err := parse(fs, args, "logs"); err != nil {
		return err
	}
	target, _, closer, err := rf.load()
	if err != nil {
		return fmt.Errorf("ope: %w", err)
	}
	defer closer.Close()
	logs, err := lf.open(ctx, stderr)
	if err != nil {
		return fmt.Errorf("ope: %w", err)
	}
	defer logs.Close()
	est, err := experiments.Evaluate(ctx, logs, []experiments.Target{{Router: target,
		Config: ope.Config{Bootstrap: *boot, Seed: *seed, MaxWeight: *clip}}}, 0)
	if err != nil {
		return fmt.Errorf("ope: %w", err)
	}
	st, rep := est[0].Stats, est[0].Report
	var none *experiments.NoRecordsError
	if err := est[0].Err; err != nil && (!errors.As(err, &none) || st.Links().AllWithoutDecision()) {
		return fmt.Errorf("ope: %w", err) // else the counts say why, below
	}
	fmt.Fprintf(stdout, "logs: %d decisions, %d with an outcome of the chosen model, %d used", st.Decisions, st.WithOutcome, st.Used)
	if st.NoPrompt > 0 {
		fmt.Fprintf(stdout, "; %d skipped (prompt not kept: log with --log-prompts to evaluate them)", st.NoPrompt)
	}
	if st.NotCandidates > 0 {
		fmt.Fprintf(stdout, "; %d skipped (candidates the target policy does not score)", st.NotCandidates)
	}
	fmt.Fprintf(stdout, "; %d outcomes without decision\n", st.OutcomesWithoutDecision)
	if err := st.Links().Err(); err != nil {
		fmt.Fprintln(stderr, "warning:", err)
	}
	if rep == nil {
		return fmt.Errorf("ope: no usable logged decisions in %s", *lf.logs)
	}
	cfg := target.Config()
	fmt.Fprintf(stdout, "target policy %s (version %s, predictor %s); logging policy on the same decisions: quality %.4f, cost $%.6f\n",
		cfg.Name, cfg.Version, target.Metadata().Version, st.LoggedReward, st.LoggedCost)
	fmt.Fprintf(stdout, "effective sample size %.1f of %d (%.1f%%); target agrees with the logged action on %.1f%%\n\n",
		rep.ESS, rep.N, 100*rep.ESS/float64(rep.N), 100*rep.MatchRate)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "estimator\tavg quality\t95% interval\tavg cost (USD)\t95% interval\t")
	for _, k := range []string{ope.IPS, ope.SNIPS, ope.DR} {
		q, c := rep.Quality[k], rep.Cost[k]
		fmt.Fprintf(tw, "%s\t%.4f\t[%.4f, %.4f]\t%.6f\t[%.6f, %.6f]\t\n", k, q.Value, q.Lo, q.Hi, c.Value, c.Lo, c.Hi)
	}
	tw.Flush()
	for _, w := range rep.Warnings {
		fmt.Fprintln(stdout, "warning:", w)
	}
	return nil
}
