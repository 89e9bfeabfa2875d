package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/join"
	"switchyard/experiments"
	"switchyard/experiments/abtest"
	"switchyard/experiments/ope"
	"switchyard/serving"
)

func runExperiment(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "analyze" {
		return errors.New("usage: switchyard experiment analyze --logs DIR --config FILE [--experiment NAME]")
	}
	fs := newFlagSet("experiment analyze", stderr)
	lf := registerEngineLogFlags(fs)
	config := fs.String("config", "", "the server's configuration file (arms, weights, policies)")
	name := fs.String("experiment", "", "experiment to analyse (default: the configuration's first)")
	control := fs.String("control", "", "control arm (default: the experiment's first arm)")
	out := fs.String("out", "experiment-out", "folder for report.json and arms.png")
	scorer := fs.String("scorer", policy.ScorerGo, "scorer of the policies for the off-policy estimates: go or onnx")
	if err := parse(fs, args[1:], "logs", "config"); err != nil {
		return err
	}
	rt, err := serving.ReadConfig(*config, policy.LoadOptions{Scorer: *scorer})
	if err != nil {
		return err
	}
	defer rt.Close()
	if len(rt.Experiments) == 0 {
		return fmt.Errorf("experiment analyze: %s defines no experiment", *config)
	}
	exp := rt.Experiments[0].Spec
	for _, x := range rt.Experiments {
		if x.Spec.Name == *name {
			exp = x.Spec
		}
	}
	if *name != "" && exp.Name != *name {
		return fmt.Errorf("experiment analyze: no experiment %q in %s", *name, *config)
	}
	cfg := abtest.Config{Experiment: exp.Name, Control: *control, Weights: map[string]float64{}}
	for _, a := range exp.Arms {
		cfg.Weights[a.Name] = a.Weight
	}
	if cfg.Control == "" {
		cfg.Control = exp.Arms[0].Name
	}
	logs, err := lf.open(ctx, stderr)
	if err != nil {
		return fmt.Errorf("experiment analyze: %w", err)
	}
	defer logs.Close()
	rep, links, err := analyzeArms(ctx, logs, cfg)
	if err != nil {
		return err
	}
	if rep.OutcomesWithoutDecision > 0 {
		fmt.Fprintln(stderr, "warning:", links.Err())
	}
	fmt.Fprintf(stdout, "experiment %s (unit %s), control %s\n\n", exp.Name, exp.Unit, cfg.Control)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "arm\tweight\tunits\trequests\tquality [95% CI]\tlift (p)\tcost USD [95% CI]\tlift (p)\tlatency p50/p90/p99 ms\t")
	for _, a := range rep.Arms {
		show := func(l *abtest.Lift) string {
			if l == nil {
				return "-"
			}
			return fmt.Sprintf("%+.1f%% [%+.1f, %+.1f] (%.3g)", 100*l.Relative, 100*l.Lo, 100*l.Hi, l.PValue)
		}
		ql, cl := show(a.QualityLift), show(a.CostLift)
		fmt.Fprintf(tw, "%s\t%.2f\t%d\t%d\t%.4f [%.4f, %.4f]\t%s\t%.6f [%.6f, %.6f]\t%s\t%.0f/%.0f/%.0f\t\n", a.Name, a.Weight, a.Units, a.Requests,
			a.Quality.Mean, a.Quality.Lo, a.Quality.Hi, ql, a.Cost.Mean, a.Cost.Lo, a.Cost.Hi, cl, a.LatencyP50MS, a.LatencyP90MS, a.LatencyP99MS)
	}
	tw.Flush()
	verdict := "consistent with the weights"
	if rep.SRM.Skipped {
		verdict = "not checked: a staged rollout decides the split, not weights"
	} else if rep.SRM.Mismatch {
		verdict = "SAMPLE RATIO MISMATCH: the split does not follow the weights; do not trust the comparison"
	}
	fmt.Fprintf(stdout, "\nsample ratio check: chi-square %.2f, p %.3g: %s\n", rep.SRM.ChiSquare, rep.SRM.PValue, verdict)

	// each arm's policy estimated off-policy from the other arms' logs
	fmt.Fprintln(stdout, "\noff-policy estimates of each arm's policy from the other arms' logs (doubly robust):")
	opeOut := map[string]*ope.Report{}
	targets := make([]experiments.Target, len(exp.Arms))
	for i, a := range exp.Arms {
		targets[i] = experiments.ArmTarget(exp.Name, a.Name, rt.Policies[a.Policy], ope.Config{Bootstrap: 500, Seed: 1})
	}
	est, err := experiments.Evaluate(ctx, logs, targets, 0)
	if err != nil {
		return fmt.Errorf("experiment analyze: %w", err)
	}
	for i, a := range exp.Arms {
		r, st := est[i].Report, est[i].Stats
		if err := est[i].Err; err != nil {
			fmt.Fprintf(stdout, "  %s: not estimated: %v\n", a.Name, err)
			continue
		}
		opeOut[a.Name] = r
		q, c := r.Quality[ope.DR], r.Cost[ope.DR]
		fmt.Fprintf(stdout, "  %s: quality %.4f [%.4f, %.4f], cost $%.6f [%.6f, %.6f], ESS %.0f of %d", a.Name, q.Value, q.Lo, q.Hi, c.Value, c.Lo, c.Hi, r.ESS, st.Used)
		if len(r.Warnings) > 0 { // each warning names its kind ("low overlap: ...")
			fmt.Fprintf(stdout, " (%s)", strings.Join(r.Warnings, "; "))
		}
		fmt.Fprintln(stdout)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(struct {
		*abtest.Report
		OffPolicy map[string]*ope.Report `json:"off_policy"`
	}{rep, opeOut}, "", " ")
	if err != nil { // NaN where an estimator is undefined: keep the A/B report
		if b, err = json.MarshalIndent(rep, "", " "); err != nil {
			return fmt.Errorf("experiment analyze: report: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(*out, "report.json"), b, 0o644); err != nil {
		return err
	}
	if err := abtest.WritePlot(filepath.Join(*out, "arms.png"), rep); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote report.json and arms.png to %s\n", *out)
	return nil
}

// analyzeArms is the A/B analysis of the experiment cfg names, on the arms
// the engine reduces the logs to, with the logs' outcome counts.
func analyzeArms(ctx context.Context, logs *join.LogReader, cfg abtest.Config) (*abtest.Report, datasets.OutcomeLinks, error) {
	var links datasets.OutcomeLinks
	arms, err := logs.Experiment(ctx, cfg.Experiment)
	if err != nil {
		return nil, links, fmt.Errorf("experiment analyze: %w", err)
	}
	if links, err = logs.Links(ctx); err != nil {
		return nil, links, fmt.Errorf("experiment analyze: %w", err)
	}
	in := make([]abtest.ArmLogs, len(arms))
	for i, a := range arms {
		in[i] = abtest.ArmLogs(a)
	}
	rep, err := abtest.Summarize(in, links, cfg)
	return rep, links, err
}
