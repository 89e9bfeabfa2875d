// Package trainingtest trains small predictors for tests on the synthetic
// workload and keeps that workload's ground truth: the true quality and
// cost of every model on every prompt, which a test compares routing,
// experiments and estimates against. Predictors with hand-set weights are
// in classifier/classifiertest.
package trainingtest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"switchyard/classifier"
	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/synthetic"
	"switchyard/features"
	"switchyard/training"
)

// Options describe a workload and how the predictor is trained on it. Zero
// fields take the defaults named.
type Options struct {
	Seed    int64 // the workload's seed
	Prompts int   // the workload's size
	// Buckets of the default feature spec's hashed n-grams; 1<<12 when 0.
	Buckets int
	// Epochs of the network; 3 when 0.
	Epochs int
	// EmbeddingDim and Hidden size the network; 0: training's defaults.
	EmbeddingDim, Hidden int
	// Train picks the prompts the predictor learns from; nil: all of them.
	Train func(datasets.PromptRecord) bool
}

// World is a trained predictor with the workload it came from.
type World struct {
	*synthetic.Workload
	Model *classifier.Model
	// Predictor and CataloguePath are the predictor (ONNX) and the
	// catalogue (CSV) as files, in a folder of the test's.
	Predictor, CataloguePath string
	truth                    map[string]datasets.OutcomeRecord
}

// Train generates the workload opt describes and trains a predictor on it
// (10% of the prompts for validation).
func Train(t testing.TB, opt Options) *World {
	t.Helper()
	w, err := synthetic.Generate(synthetic.Config{Seed: opt.Seed, Prompts: opt.Prompts})
	require.NoError(t, err)
	world := &World{Workload: w, truth: make(map[string]datasets.OutcomeRecord, len(w.Outcomes))}
	for _, o := range w.Outcomes {
		world.truth[o.PromptID+"/"+o.Model] = o
	}
	ds := &datasets.Dataset{Catalogue: w.Catalogue, Prompts: w.Prompts, Outcomes: w.Outcomes}
	if opt.Train != nil {
		ds = &datasets.Dataset{Catalogue: w.Catalogue}
		keep := map[string]bool{}
		for _, p := range w.Prompts {
			if opt.Train(p) {
				keep[p.PromptID] = true
				ds.Prompts = append(ds.Prompts, p)
			}
		}
		for _, o := range w.Outcomes {
			if keep[o.PromptID] {
				ds.Outcomes = append(ds.Outcomes, o)
			}
		}
	}
	spec := features.DefaultSpec()
	spec.Buckets = 1 << 12
	if opt.Buckets > 0 {
		spec.Buckets = opt.Buckets
	}
	s := training.DefaultSettings()
	s.Epochs = 3
	if opt.Epochs > 0 {
		s.Epochs = opt.Epochs
	}
	if opt.EmbeddingDim > 0 {
		s.EmbeddingDim = opt.EmbeddingDim
	}
	if opt.Hidden > 0 {
		s.Hidden = opt.Hidden
	}
	world.Model, _, err = (&training.Trainer{Settings: s}).Fit(context.Background(), ds,
		training.Job{Spec: spec, ValidationShare: 0.1, SplitSalt: "validation"})
	require.NoError(t, err)
	dir := t.TempDir()
	world.Predictor = filepath.Join(dir, "predictor.onnx")
	world.CataloguePath = filepath.Join(dir, "catalogue.csv")
	require.NoError(t, classifier.WriteONNX(world.Predictor, world.Model))
	require.NoError(t, datasets.WriteCatalogue(world.CataloguePath, w.Catalogue))
	return world
}

// Truth is the true outcome of model on the prompt (its Quality and
// CostUSD); the test fails when the workload has none.
func (w *World) Truth(t testing.TB, promptID, model string) datasets.OutcomeRecord {
	t.Helper()
	o, ok := w.truth[promptID+"/"+model]
	require.True(t, ok, "no outcome of %s on prompt %s", model, promptID)
	return o
}

// Router is a router over the trained predictor and the workload's
// catalogue, scored by the pure-Go forward pass.
func (w *World) Router(t testing.TB, cfg policy.Config) *policy.Router {
	t.Helper()
	r, err := policy.ModelRouter(w.Model, w.Catalogue, cfg)
	require.NoError(t, err)
	return r
}
