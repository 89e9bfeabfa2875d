package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"time"

	"switchyard/datasets"
	"switchyard/training/eval"
)

// qualityCase is one benchmark and pool of the routing-quality table.
type qualityCase struct {
	data, pool string
}

// qualityCases are the benchmarks and pools the learned router must lead
// on, in each task-label setting: the shared data's six-model pools and a
// strong/weak two-model pool.
var qualityCases = []qualityCase{
	{"mmlu-pro", "gpt-4o-2024-05-13,gemini-1.5-pro-002,gemini-1.5-flash-002,Meta-Llama-3_1-70B-Instruct,Meta-Llama-3_1-8B-Instruct,deepseek-chat-2024-05"},
	{"mmlu-pro", "gpt-4o-2024-05-13,Meta-Llama-3_1-8B-Instruct"},
	{"alpaca-eval", "claude-2,claude-instant-1.2,gpt-3.5-turbo-0301,Mixtral-8x7B-Instruct-v0.1_concise,OpenHermes-2.5-Mistral-7B,gemma-7b-it"},
}

// runQuality evaluates the learned router against every baseline with
// K-fold cross-validation on each benchmark and pool, in each task-label
// setting, and prints one line per run: the learned router's AIQ, the best
// baseline's, their paired difference with its 95% interval, the learned
// router's worst calibration, and whether it leads.
func runQuality(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("quality", stderr)
	root := fs.String("data-root", filepath.Join("..", "shared", "data"), "folder of the benchmark-table folders (mmlu-pro/, alpaca-eval/)")
	folds := fs.Int("folds", 5, "folds of the cross-validation")
	ef := registerEvalFlags(fs)
	stopProfile, err := ef.cpu.parse(fs, args)
	if err != nil {
		return err
	}
	defer stopProfile()
	if *folds < 2 {
		return fmt.Errorf("quality: --folds must be at least 2 (paired differences need folds)")
	}
	start := time.Now()
	fmt.Fprintf(stdout, qualityRow, "data", "pool", "labels", "learned AIQ", "best baseline", "its AIQ", "learned − baseline [95%]", "max ECE (model)", "first")
	read := map[string]*datasets.Dataset{}
	for _, c := range qualityCases {
		ds, ok := read[c.data]
		if !ok {
			var err error
			src := sourceFlags{bench: filepath.Join(*root, c.data)} // as eval --benchmark reads it
			if ds, err = src.read(stderr); err != nil {
				return fmt.Errorf("quality: %w", err)
			}
			read[c.data] = ds
		}
		b, spec, err := ef.learn.bench(ds, c.pool)
		if err != nil {
			return fmt.Errorf("quality: %s: %w", c.data, err)
		}
		for _, labels := range []eval.TaskLabels{eval.LabelsUse, eval.LabelsTrainOnly, eval.LabelsIgnore} {
			cfg := ef.config(spec)
			cfg.Folds, cfg.TaskLabels = *folds, labels
			rep, err := eval.Run(ctx, b, cfg)
			if err != nil {
				return fmt.Errorf("quality: %s %s: %w", c.data, labels, err)
			}
			fmt.Fprint(stdout, qualityLine(c.data, len(b.Models), rep)) // line by line: a run takes a minute
		}
	}
	fmt.Fprintf(stdout, "\n%d-fold cross-validation; 'learned first': the highest mean AIQ of every router but the oracle, and a positive\n"+
		"paired difference to the best baseline (within 0.001 of the per-task baseline counts while labels are given) (%.0fs)\n",
		*folds, time.Since(start).Seconds())
	return nil
}

// qualityRow lays out a line of the quality table.
const qualityRow = "%-12s %-9s %-10s %11s %-14s %7s %-28s %-42s %5s\n"

// qualityLine is one run's line of the quality table.
func qualityLine(data string, pool int, rep *eval.Report) string {
	var learned, top float64
	top = math.Inf(-1)
	for _, s := range rep.Summaries {
		switch s.Kind {
		case "learned":
			learned = s.AIQ.Mean
		case "oracle":
		default:
			top = math.Max(top, s.AIQ.Mean)
		}
	}
	best := rep.BestBaseline()
	worst, worstModel := 0.0, ""
	for _, m := range rep.Pool {
		var e float64
		for _, f := range rep.Folds {
			e += f.Calibration[m].ECE
		}
		if e /= float64(len(rep.Folds)); e > worst {
			worst, worstModel = e, m
		}
	}
	first := learned >= top && best != nil && best.Mean > 0
	if best != nil && best.Router == "per-task" && rep.TaskLabels == eval.LabelsUse && best.Mean > -0.001 && learned >= top-0.001 {
		first = true
	}
	name, base, diff := "-", math.NaN(), "-"
	if best != nil {
		name, base = best.Router, learned-best.Mean
		diff = fmt.Sprintf("%+.4f", best.Mean)
		if best.Lo != nil {
			diff += fmt.Sprintf(" [%+.4f, %+.4f]", *best.Lo, *best.Hi)
		}
	}
	verdict := "no"
	if first {
		verdict = "yes"
	}
	return fmt.Sprintf(qualityRow, data, fmt.Sprintf("%d models", pool), rep.TaskLabels, fmt.Sprintf("%.4f", learned), name,
		fmt.Sprintf("%.4f", base), diff, fmt.Sprintf("%.3f (%s)", worst, worstModel), verdict)
}
