package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"switchyard/training/eval"
)

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", stderr)
	src := registerSourceFlags(fs, "benchmark-table folder (the layout of prompts.jsonl, quality.csv, output_tokens.csv, models.csv)",
		"or: a dataset folder written by import or generate")
	pool := fs.String("models", "", poolHelp)
	out := fs.String("out", "eval-out", "folder for report.json, curves.png and calibration.png")
	decisionsOut := fs.String("decisions-out", "", "write every routing decision on the test part as CSV prompt_id,setting,model")
	testShare := fs.Float64("test-share", 0.2, "share of prompts in the test part (split by a hash of the prompt id)")
	folds := fs.Int("folds", 1, "K > 1: K-fold cross-validation, reporting mean ± std")
	lambdas := fs.Int("lambdas", 60, "number of λ settings in the cost-quality trade-off sweep")
	taskLabels := fs.String("task-labels", "use", "which prompts' task labels the routers see: use (all), train-only (the training part's; the test part has none), ignore (none)")
	ef := registerEvalFlags(fs)
	stopProfile, err := ef.cpu.parse(fs, args)
	if err != nil {
		return err
	}
	defer stopProfile()
	labels, err := eval.ParseTaskLabels(*taskLabels)
	if err != nil {
		return fmt.Errorf("eval: --%w", err)
	}
	start := time.Now()
	ds, err := src.read(stderr)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	b, spec, err := ef.learn.bench(ds, *pool)
	if err != nil {
		return err
	}
	cfg := ef.config(spec)
	cfg.TestShare, cfg.Folds, cfg.Lambdas, cfg.TaskLabels = *testShare, *folds, *lambdas, labels
	var dec *bufio.Writer
	if *decisionsOut != "" {
		f, err := os.Create(*decisionsOut)
		if err != nil {
			return fmt.Errorf("eval: %w", err)
		}
		defer f.Close()
		dec = bufio.NewWriterSize(f, 1<<20)
		cfg.Decisions = dec
	}
	rep, err := eval.Run(ctx, b, cfg)
	if err != nil {
		return err
	}
	if dec != nil {
		if err := dec.Flush(); err != nil {
			return fmt.Errorf("eval: write %s: %w", *decisionsOut, err)
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	js, err := json.MarshalIndent(rep, "", " ")
	if err != nil {
		return fmt.Errorf("eval: report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(*out, "report.json"), js, 0o644); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	title := fmt.Sprintf("%s: %d test prompts, pool of %d", filepath.Base(strings.TrimRight(src.bench+src.data, "/")), rep.Folds[0].TestPrompts, len(b.Models))
	if err := eval.PlotCurves(&rep.Folds[0], title, filepath.Join(*out, "curves.png")); err != nil {
		return err
	}
	if err := eval.PlotReliability(&rep.Folds[0], filepath.Join(*out, "calibration.png")); err != nil {
		return err
	}
	printEval(stdout, rep)
	fmt.Fprintf(stdout, "wrote %s, curves.png and calibration.png in %s", filepath.Join(*out, "report.json"), *out)
	if *decisionsOut != "" {
		fmt.Fprintf(stdout, "; decisions in %s", *decisionsOut)
	}
	fmt.Fprintf(stdout, " (%.1fs)\n", time.Since(start).Seconds())
	return nil
}

func printEval(w io.Writer, rep *eval.Report) {
	f0 := rep.Folds[0]
	split := fmt.Sprintf("%d train / %d test prompts", f0.TrainPrompts, f0.TestPrompts)
	if len(rep.Folds) > 1 {
		split = fmt.Sprintf("%d folds, mean ± std", len(rep.Folds))
	}
	fmt.Fprintf(w, "pool: %s\nprompts: %d with every pool model (%d dropped); %s\nbest single model: %s; cost range %.3g–%.3g USD/request\n\n",
		strings.Join(rep.Pool, ", "), rep.Prompts, rep.Dropped, split, f0.BestSingle, f0.CostRange[0], f0.CostRange[1])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "router\tkind\tAIQ\tquality @ best's cost\tcost for 95% (× best)\tcost for 100% (× best)\t"
	if rep.TwoModel {
		head += "APGR\tCPT(50%)\tCPT(80%)\t"
	}
	fmt.Fprintln(tw, head)
	folds := len(rep.Folds) > 1
	st := func(s *eval.Stat, prec int) string {
		if s == nil {
			return "never"
		}
		if folds {
			return fmt.Sprintf("%.*f ± %.*f", prec, s.Mean, prec, s.Std)
		}
		return fmt.Sprintf("%.*f", prec, s.Mean)
	}
	for _, s := range rep.Summaries {
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t", s.Name, s.Kind, st(s.AIQ, 4), st(s.QualityAt, 4), st(s.CostFor95, 3), st(s.CostFor100, 3))
		if rep.TwoModel {
			line += fmt.Sprintf("%s\t%s\t%s\t", st(s.APGR, 4), st(s.CPT50, 3), st(s.CPT80, 3))
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	if len(rep.Folds) > 1 {
		fmt.Fprintln(w, "\nAIQ per fold, and the learned router's paired difference (learned − router) with its 95% interval over folds:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		head := "router\t"
		for k := range rep.Folds {
			head += fmt.Sprintf("fold %d\t", k)
		}
		fmt.Fprintln(tw, head+"learned − router\t95% interval\t")
		diff := map[string]eval.Comparison{}
		for _, c := range rep.Versus {
			diff[c.Router] = c
		}
		for r, x := range rep.Folds[0].Routers {
			line := x.Name + "\t"
			for _, f := range rep.Folds {
				line += fmt.Sprintf("%.4f\t", f.Routers[r].AIQ)
			}
			if c, ok := diff[x.Name]; ok && c.Lo != nil {
				line += fmt.Sprintf("%+.4f\t[%+.4f, %+.4f]\t", c.Mean, *c.Lo, *c.Hi)
			} else {
				line += "\t\t"
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
	}
	if c := rep.BestBaseline(); c != nil {
		verdict := "ahead of"
		if c.Mean <= 0 {
			verdict = "not ahead of"
		}
		fmt.Fprintf(w, "\ntask labels: %s; the learned router is %s the best baseline, %s: %+.4f AIQ", rep.TaskLabels, verdict, c.Router, c.Mean)
		if c.Lo != nil {
			fmt.Fprintf(w, " [%+.4f, %+.4f]", *c.Lo, *c.Hi)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "\nlearned router calibration (expected calibration error, 10 bins):")
	for _, m := range rep.Pool {
		fmt.Fprintf(w, "  %-30s %.4f\n", m, f0.Calibration[m].ECE)
	}
}
