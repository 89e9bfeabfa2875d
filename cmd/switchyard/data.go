package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"switchyard/datasets"
	"switchyard/datasets/synthetic"
)

func runGenerate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("generate", stderr)
	seed := fs.Int64("seed", 1, "random seed: the same seed writes the same workload")
	n := fs.Int("prompts", 6000, "number of prompts")
	out := fs.String("out", "", "dataset folder to write")
	logs := fs.String("logs", "", "instead of a dataset: write a fleet's synthetic decision and outcome logs into this folder (for scale tests)")
	decisions := fs.Int("decisions", 1_000_000, "with --logs: decisions, spread over a day")
	replicas := fs.Int("replicas", 4, "with --logs: writers, each with its own files")
	promptBytes := fs.Int("prompt-bytes", 1024, "with --logs: prompt size")
	experiment := fs.String("experiment", "", "with --logs: put every decision in an experiment of this name (arms a and b, weights 0.5, by user)")
	users := fs.Int("users", 100_000, "with --logs and --experiment: users the decisions come from")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 {
		return fmt.Errorf("generate: --prompts must be positive, got %d", *n)
	}
	if *logs != "" {
		start := time.Now()
		st, err := synthetic.WriteLogs(*logs, synthetic.LogsConfig{Seed: *seed, Decisions: *decisions, Replicas: *replicas,
			PromptBytes: *promptBytes, Prompts: *n, Experiment: *experiment, Users: *users})
		if err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %d decisions, %d outcomes (%d late), %d shadow outcomes, %d without outcome in %d files to %s in %.1fs\n",
			st.Decisions, st.Outcomes, st.Late, st.Shadow, st.Unanswered, st.Files, *logs, time.Since(start).Seconds())
		return nil
	}
	if *out == "" {
		return fmt.Errorf("generate: give --out DIR (a dataset) or --logs DIR (synthetic logs)")
	}
	w, err := synthetic.Generate(synthetic.Config{Seed: *seed, Prompts: *n})
	if err != nil {
		return err
	}
	ds := &datasets.Dataset{Catalogue: w.Catalogue, Prompts: w.Prompts, Outcomes: w.Outcomes}
	if err := datasets.WriteDataset(*out, ds); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d prompts, %d outcomes, %d models to %s\n", len(ds.Prompts), len(ds.Outcomes), len(ds.Catalogue.Models), *out)
	return nil
}

func runImport(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", stderr)
	bench := fs.String("benchmark", "", "benchmark-table folder (prompts.jsonl, quality.csv, output_tokens.csv, models.csv)")
	long := fs.String("long", "", "long-format outcome table (.csv, .jsonl or .parquet)")
	catPath := fs.String("catalogue", "", "model catalogue CSV (needed with --long)")
	out := fs.String("out", "", "dataset folder to write")
	maxProblems := fs.Int("show-problems", 20, "malformed rows to print")
	if err := parse(fs, args, "out"); err != nil {
		return err
	}
	var (
		ds  *datasets.Dataset
		rep *datasets.ImportReport
		err error
	)
	switch {
	case *bench != "" && *long != "":
		return fmt.Errorf("import: give --benchmark or --long, not both")
	case *bench != "":
		ds, rep, err = datasets.ImportBenchmark(*bench)
	case *long != "":
		if *catPath == "" {
			return fmt.Errorf("import: --long needs --catalogue (the prices of the models in the table)")
		}
		cat, cerr := datasets.ReadCatalogue(*catPath)
		if cerr != nil {
			return cerr
		}
		ds, rep, err = datasets.ImportLong(*long, cat)
	default:
		return fmt.Errorf("import: give --benchmark DIR or --long FILE")
	}
	if rep != nil {
		for i, p := range rep.Problems {
			if i >= *maxProblems {
				fmt.Fprintf(stderr, "... and %d more\n", rep.ProblemCount-i)
				break
			}
			fmt.Fprintln(stderr, p.String())
		}
	}
	if err != nil {
		return err
	}
	if err := datasets.WriteDataset(*out, ds); err != nil {
		return err
	}
	fmt.Fprintln(stdout, rep.Summary())
	fmt.Fprintf(stdout, "wrote %d prompts, %d outcomes, %d models to %s\n", len(ds.Prompts), len(ds.Outcomes), len(ds.Catalogue.Models), *out)
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
