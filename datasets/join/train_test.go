package join_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
	"switchyard/datasets/join"
	"switchyard/datasets/synthetic"
	"switchyard/datasets/table"
	"switchyard/features"
	"switchyard/training"
)

// Training from the training table that the embedded engine joins from a
// server's logs gives the model training from the same logs in memory
// gives, up to the order of the examples: the same examples, weights and
// validation split, and validation AUCs within 0.002.
func TestTrainingFromTheTableMatchesTrainingFromTheLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a real server under load, or many training rounds): make test runs it; -short leaves it out")
	}
	w, err := synthetic.Generate(synthetic.Config{Seed: 5, Prompts: 1500})
	require.NoError(t, err)
	truth := map[string]datasets.OutcomeRecord{}
	for _, o := range w.Outcomes {
		truth[o.PromptID+"/"+o.Model] = o
	}
	models := w.Catalogue.Names()
	// logs of a uniformly exploring policy: each decision's model drawn at 1/k
	rng := rand.New(rand.NewSource(5))
	var decisions []datasets.DecisionRecord
	var outcomes []datasets.OutcomeRecord
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i, p := range w.Prompts {
		m := models[rng.Intn(len(models))]
		id := fmt.Sprint("d-", i)
		at := t0.Add(time.Duration(i) * time.Second)
		decisions = append(decisions, datasets.DecisionRecord{DecisionID: id, Time: at, Prompt: p.Prompt, PromptSHA256: fmt.Sprintf("%064x", i),
			Task: p.Task, Chosen: m, Propensity: 1 / float64(len(models))})
		o := truth[p.PromptID+"/"+m]
		outcomes = append(outcomes, datasets.OutcomeRecord{DecisionID: id, Model: m, Quality: o.Quality, CostUSD: o.CostUSD,
			InputTokens: o.InputTokens, OutputTokens: o.OutputTokens, Source: datasets.SourceOnline, Time: at.Add(time.Minute)})
	}
	logs := t.TempDir()
	part := filepath.Join(logs, "dt=2026-12-01", "hour=00")
	require.NoError(t, os.MkdirAll(part, 0o755))
	require.NoError(t, datasets.WriteDecisions(filepath.Join(part, datasets.LogFileName("decisions", t0, "a", 1)+".parquet"), decisions))
	require.NoError(t, datasets.WriteOutcomes(filepath.Join(part, datasets.LogFileName("outcomes", t0, "a", 1)+".parquet"), outcomes))
	tbl := filepath.Join(t.TempDir(), "table.parquet")
	_, err = join.Logs(context.Background(), join.Options{Logs: []string{logs}, Threads: 2}, tbl)
	require.NoError(t, err)
	rows, err := table.Read(tbl)
	require.NoError(t, err)
	require.Len(t, rows, len(decisions))

	spec := features.DefaultSpec()
	spec.Buckets = 1 << 12
	s := training.DefaultSettings()
	s.Epochs = 3
	fit := func(job training.Job) *training.Result {
		job.Spec, job.ValidationShare, job.SplitSalt, job.Catalogue, job.Models = spec, 0.2, "validation", w.Catalogue, models
		_, res, err := (&training.Trainer{Settings: s}).Fit(context.Background(), nil, job)
		require.NoError(t, err)
		return res
	}
	fromLogs := fit(training.Job{Logs: &training.Logs{Decisions: decisions, Outcomes: outcomes, Clip: 20}})
	fromTable := fit(training.Job{Table: &training.Table{Rows: rows}})
	assert.Equal(t, fromLogs.Examples, fromTable.Examples, "the same training examples")
	for _, m := range models {
		a, b := fromLogs.Validation[m], fromTable.Validation[m]
		t.Logf("%s: val AUC %.4f in memory, %.4f from the table", m, a.AUC, b.AUC)
		assert.Equal(t, a.N, b.N, "%s: the same validation examples", m)
		assert.InDelta(t, a.AUC, b.AUC, 0.002, m)
	}
}

// Training by streaming from a training table in bounded memory gives, bit
// for bit, the model training on the same examples held in memory gives
// (TableJob.Cache: featurised once, taken in the same order), with any
// number of featurising workers; and against the in-memory training of
// the same rows that shuffles them all each epoch (Fit), the same training
// and validation examples and validation AUCs as close as the order of the
// examples alone allows at this size (about 27,000 examples, two epochs, a
// few hundred validation observations a model: 0.035 apart at most for
// a model, 0.0023 on the mean over models, in this test).
func TestStreamingTrainingMatchesTrainingInMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a real server under load, or many training rounds): make test runs it; -short leaves it out")
	}
	logs := t.TempDir()
	_, err := synthetic.WriteLogs(logs, synthetic.LogsConfig{Seed: 3, Decisions: 30_000, PromptBytes: 512})
	require.NoError(t, err)
	tbl := filepath.Join(t.TempDir(), "table.parquet")
	_, err = join.Logs(context.Background(), join.Options{Logs: []string{logs}, Threads: 2, RowGroup: 4096}, tbl)
	require.NoError(t, err)
	w, err := synthetic.Generate(synthetic.Config{Seed: 3})
	require.NoError(t, err)

	spec := features.DefaultSpec()
	s := training.DefaultSettings()
	s.Epochs, s.TuneFolds, s.Buffer = 2, 1, 4096 // the network alone, as streaming trains it
	rows, err := table.Read(tbl)
	require.NoError(t, err)
	_, shuffled, err := (&training.Trainer{Settings: s}).Fit(context.Background(), nil, training.Job{Table: &training.Table{Rows: rows},
		Spec: spec, ValidationShare: 0.1, SplitSalt: "validation", Catalogue: w.Catalogue})
	require.NoError(t, err)
	rows = nil
	fit := func(workers int, cache bool) (*training.Result, string) {
		job := &training.TableJob{Tables: []string{tbl}, Catalogue: w.Catalogue, Spec: spec, ValidationShare: 0.1,
			SplitSalt: "validation", Workers: workers, Cache: cache}
		m, res, err := (&training.Trainer{Settings: s}).FitTable(context.Background(), job)
		require.NoError(t, err)
		return res, m.Meta.Version
	}
	streamed, version := fit(4, false)
	held, heldVersion := fit(2, true)
	assert.Equal(t, version, heldVersion, "streamed and held in memory: the same weights")
	assert.Equal(t, held.Validation, streamed.Validation)
	_, again := fit(1, false)
	assert.Equal(t, version, again, "one featurising worker trains the model four do, on another run")

	for _, cache := range []bool{false, true} { // a cancelled run stops within its epoch
		ctx, cancel := context.WithCancel(context.Background())
		p := &cancelAfter{n: 3, cancel: cancel}
		job := &training.TableJob{Tables: []string{tbl}, Catalogue: w.Catalogue, Spec: spec, ValidationShare: 0.1,
			SplitSalt: "validation", Cache: cache, Progress: p}
		_, _, err := (&training.Trainer{Settings: s}).FitTable(ctx, job)
		assert.ErrorIs(t, err, context.Canceled, "cache %v", cache)
		assert.Less(t, p.last, streamed.Examples, "cache %v: stopped in the first epoch", cache)
		cancel()
	}

	assert.Equal(t, shuffled.Examples, streamed.Examples, "the same training examples")
	var meanA, meanB float64
	for _, m := range w.Catalogue.Names() {
		a, b := shuffled.Validation[m], streamed.Validation[m]
		t.Logf("%s: val AUC %.4f in memory shuffled whole, %.4f streamed (n %d)", m, a.AUC, b.AUC, b.N)
		assert.Equal(t, a.N, b.N, "%s: the same validation examples", m)
		assert.InDelta(t, a.AUC, b.AUC, 0.04, m)
		meanA += a.AUC / float64(len(w.Catalogue.Names()))
		meanB += b.AUC / float64(len(w.Catalogue.Names()))
	}
	assert.InDelta(t, meanA, meanB, 0.01, "mean validation AUC over the models")
}

// cancelAfter cancels a training run at its n-th progress report.
type cancelAfter struct {
	n, calls, last int
	cancel         func()
}

func (c *cancelAfter) Examples(done, total int) {
	c.calls++
	c.last = done
	if c.calls == c.n {
		c.cancel()
	}
}
