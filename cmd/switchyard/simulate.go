package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/synthetic"
	"switchyard/experiments/simulate"
)

func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("simulate", stderr)
	src := registerSourceFlags(fs, "benchmark-table folder to replay (default: the synthetic workload)", "or: a dataset folder with full-information outcomes")
	synth := fs.Int("synthetic-prompts", 6000, "prompts of the synthetic workload when neither --benchmark nor --data is given")
	pool := fs.String("models", "", poolHelp)
	strategies := fs.String("strategies", "none,epsilon-greedy:0.1", "comma-separated: none, epsilon-greedy:EPS, softmax:T")
	requests := fs.Int("requests", 50000, "requests per strategy")
	every := fs.Int("retrain-every", 5000, "retrain from the logs every this many requests")
	bar := fs.Float64("quality-bar", 0.8, "quality bar of every policy and of the full-information router")
	lf := registerLearnFlags(fs) // --seed also seeds the request stream and exploration
	clip := fs.Float64("clip", 20, "largest inverse-propensity weight")
	testShare := fs.Float64("test-share", 0.2, "held-out prompts that score each round")
	addModel := fs.String("add-model", "", "withhold this pool model until --add-at requests, then add it to the catalogue")
	addAt := fs.Int("add-at", 0, "requests after which --add-model is added")
	newShare := fs.Float64("new-model-share", 0.1, "share of traffic that explores a new model until it has --new-model-min outcomes")
	newMin := fs.Int("new-model-min", 300, "outcomes of a new model after which it is no longer forced")
	out := fs.String("out", "simulate-out", "output folder: rounds.csv, rounds.png, result.json, and the logs of every strategy")
	if err := parse(fs, args); err != nil {
		return err
	}
	var sts []simulate.Strategy
	for _, s := range splitList(*strategies) {
		st, err := simulate.ParseStrategy(s)
		if err != nil {
			return err
		}
		sts = append(sts, st)
	}
	if len(sts) == 0 {
		return fmt.Errorf("simulate: no strategies")
	}
	var ds *datasets.Dataset
	var err error
	if src.bench == "" && src.data == "" {
		var w *synthetic.Workload
		if w, err = synthetic.Generate(synthetic.Config{Seed: *lf.seed, Prompts: *synth}); err == nil {
			ds = &datasets.Dataset{Catalogue: w.Catalogue, Prompts: w.Prompts, Outcomes: w.Outcomes}
		}
	} else {
		ds, err = src.read(stderr)
	}
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	b, spec, err := lf.bench(ds, *pool)
	if err != nil {
		return err
	}
	s := lf.settings()
	start := time.Now()
	res, err := simulate.Run(ctx, simulate.Config{Bench: b, Strategies: sts, Requests: *requests, RetrainEvery: *every,
		QualityBar: *bar, Seed: s.Seed, Settings: s, Spec: spec, Clip: *clip, TestShare: *testShare,
		AddModel: *addModel, AddAt: *addAt, NewModels: policy.NewModels{Share: *newShare, MinObservations: *newMin},
		WorkDir: filepath.Join(*out, "logs"), Log: newLogger(stderr, false)})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := simulate.WriteCSV(filepath.Join(*out, "rounds.csv"), res); err != nil {
		return err
	}
	if err := simulate.WritePlot(filepath.Join(*out, "rounds.png"), res); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(res, "", " ")
	if err := os.WriteFile(filepath.Join(*out, "result.json"), js, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pool: %s; %d training prompts stream the requests, %d held out score each round\n",
		strings.Join(b.Models, ", "), res.Train, res.Test)
	fmt.Fprintf(stdout, "full-information router (bar %.2f) on held-out prompts: quality %.4f, cost $%.6f\n\n", *bar, res.Reference.Quality, res.Reference.Cost)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tround\trequests\texploration\tonline quality\tonline cost\ttest quality\ttest cost\tquality ratio\tcost ratio\t")
	for _, r := range res.Rounds {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.3f\t%.4f\t%.6f\t%.4f\t%.6f\t%.3f\t%.3f\t\n", r.Strategy, r.Round, r.Requests, r.ExplorationRate,
			r.OnlineQuality, r.OnlineCost, r.TestQuality, r.TestCost, r.QualityRatio, r.CostRatio)
	}
	tw.Flush()
	for _, a := range res.Added {
		fmt.Fprintf(stdout, "%s: %s added after %d requests; first served %d requests later; learned (a retrain with %d+ of its outcomes) %d requests later; %d outcomes\n",
			a.Strategy, a.Model, a.AddedAt, a.FirstServedAfter, *newMin, a.LearnedAfter, a.Observations)
	}
	fmt.Fprintf(stdout, "wrote rounds.csv, rounds.png and result.json to %s (%.0fs)\n", *out, time.Since(start).Seconds())
	return nil
}
