package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"switchyard/experiments"
	"switchyard/experiments/ope"
)

func runOPE(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ope", stderr)
	rf := registerRouterFlags(fs)
	logs := fs.String("logs", "", "decision and outcome logs: a folder (Parquet, any sub-folders) or a bucket URL (s3://, gs://, azblob://, file://)")
	boot := fs.Int("bootstrap", ope.DefaultBootstrap, "bootstrap resamples for the confidence intervals")
	seed := fs.Int64("seed", 1, "bootstrap seed")
	clip := fs.Float64("max-weight", 0, "clip importance weights at this value (0: no clipping)")
	if err := parse(fs, args, "logs"); err != nil {
		return err
	}
	decisions, outcomes, err := readLogs(ctx, *logs)
	if err != nil {
		return err
	}
	target, _, closer, err := rf.load()
	if err != nil {
		return fmt.Errorf("ope: %w", err)
	}
	defer closer.Close()
	recs, st, err := experiments.OffPolicyRecords(decisions, outcomes, target)
	if err != nil {
		return fmt.Errorf("ope: %w", err)
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
	if len(recs) == 0 {
		return fmt.Errorf("ope: no usable logged decisions in %s", *logs)
	}
	rep, err := ope.Value(recs, ope.Config{Bootstrap: *boot, Seed: *seed, MaxWeight: *clip})
	if err != nil {
		return fmt.Errorf("ope: %w", err)
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
