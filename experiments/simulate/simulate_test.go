package simulate

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/synthetic"
	"switchyard/features"
	"switchyard/training"
	"switchyard/training/eval"
)

func smallConfig(t *testing.T) Config {
	t.Helper()
	w, err := synthetic.Generate(synthetic.Config{Seed: 3, Prompts: 3000}) // a test part of ~600 prompts: one round's quality ratio is then stable to about ±0.02
	require.NoError(t, err)
	ds := &datasets.Dataset{Catalogue: w.Catalogue, Prompts: w.Prompts, Outcomes: w.Outcomes}
	spec := features.DefaultSpec()
	spec.Buckets = 1 << 14
	ext, err := features.NewExtractor(spec)
	require.NoError(t, err)
	b, err := eval.NewBench(ds, []string{"open-8b-selfhosted", "mini", "gpt-4o-class", "opus-class"}, ext)
	require.NoError(t, err)
	s := training.DefaultSettings()
	s.EmbeddingDim, s.Hidden, s.Epochs = 8, 16, 5
	return Config{Bench: b, Requests: 3000, RetrainEvery: 1000, QualityBar: 0.7, Seed: 1, Settings: s, Spec: spec,
		Clip: 20, TestShare: 0.2, WorkDir: t.TempDir()}
}

func TestExplorationLearnsWhatGreedinessDoesNotSee(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a real server under load, or many training rounds): make test runs it; -short leaves it out")
	}
	cfg := smallConfig(t)
	for _, s := range []string{"none", "epsilon-greedy:0.2"} {
		st, err := ParseStrategy(s)
		require.NoError(t, err)
		cfg.Strategies = append(cfg.Strategies, st)
	}
	res, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, res.Rounds, 6)
	last, first := map[string]Round{}, map[string]Round{}
	for _, r := range res.Rounds {
		last[r.Strategy] = r
		if r.Round == 1 {
			first[r.Strategy] = r
		}
		if r.Strategy == "none" {
			assert.Zero(t, r.ExplorationRate)
		} else {
			assert.InDelta(t, 0.2*3/4, r.ExplorationRate, 0.05, "ε spread over the other three models")
		}
	}
	assert.GreaterOrEqual(t, last["epsilon-greedy:0.2"].QualityRatio, 0.9, "exploring reaches the full-information router")
	assert.Greater(t, first["epsilon-greedy:0.2"].TestQuality, first["none"].TestQuality+0.05,
		"after the first round, greediness has seen only the model it started with")

	dir := t.TempDir()
	require.NoError(t, WriteCSV(filepath.Join(dir, "rounds.csv"), res))
	require.NoError(t, WritePlot(filepath.Join(dir, "rounds.png"), res))
	for _, f := range []string{"rounds.csv", "rounds.png"} {
		st, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		assert.Greater(t, st.Size(), int64(200))
	}
}

func TestAModelAddedMidwayGetsTrafficAndIsLearned(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a real server under load, or many training rounds): make test runs it; -short leaves it out")
	}
	cfg := smallConfig(t)
	cfg.Strategies = []Strategy{{Name: "eps", Exploration: policy.Exploration{Strategy: policy.ExploreEpsilonGreedy, Epsilon: 0.1}}}
	cfg.AddModel, cfg.AddAt = "gpt-4o-class", 1000
	cfg.NewModels = policy.NewModels{Share: 0.2, MinObservations: 100}
	res, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, res.Added, 1)
	a := res.Added[0]
	assert.Equal(t, 1000, a.AddedAt)
	assert.GreaterOrEqual(t, a.FirstServedAfter, 0)
	assert.Less(t, a.FirstServedAfter, 50, "a fifth of the traffic goes to it at once")
	assert.Equal(t, 1000, a.LearnedAfter, "the first retrain after it was added has enough outcomes")
	assert.Zero(t, res.Rounds[0].Shares["gpt-4o-class"], "not served before it exists")
	assert.Greater(t, res.Rounds[1].Shares["gpt-4o-class"], 0.1, "forced at 20% until 100 outcomes, then on its merits")
	assert.GreaterOrEqual(t, a.Observations, 100)
}

func TestParseStrategy(t *testing.T) {
	for _, bad := range []string{"greedy", "epsilon-greedy", "epsilon-greedy:x", "softmax:0", "epsilon-greedy:2"} {
		_, err := ParseStrategy(bad)
		assert.Error(t, err, bad)
	}
	st, err := ParseStrategy("softmax:0.5")
	require.NoError(t, err)
	assert.Equal(t, 0.5, st.Exploration.Temperature)
}
