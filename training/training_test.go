package training_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier"
	"switchyard/datasets"
	"switchyard/datasets/synthetic"
	"switchyard/features"
	"switchyard/training"
)

func smallJob() training.Job {
	spec := features.DefaultSpec()
	spec.Buckets = 1 << 14
	return training.Job{Spec: spec, ValidationShare: 0.2, SplitSalt: "test",
		Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }}
}

func smallTrainer(seed int64) *training.Trainer {
	s := training.DefaultSettings()
	s.Seed, s.EmbeddingDim, s.Hidden, s.Epochs = seed, 16, 16, 8
	return &training.Trainer{Settings: s}
}

func syntheticDataset(t testing.TB, n int) *datasets.Dataset {
	t.Helper()
	w, err := synthetic.Generate(synthetic.Config{Seed: 11, Prompts: n})
	require.NoError(t, err)
	return &datasets.Dataset{Catalogue: w.Catalogue, Prompts: w.Prompts, Outcomes: w.Outcomes}
}

func TestFitLearnsEveryModelOnSyntheticData(t *testing.T) {
	ds := syntheticDataset(t, 1200)
	m, res, err := smallTrainer(1).Fit(context.Background(), ds, smallJob())
	require.NoError(t, err)
	require.Len(t, res.Validation, len(ds.Catalogue.Models))
	for name, v := range res.Validation {
		t.Logf("%-20s AUC %.3f Brier %.3f n %d", name, v.AUC, v.Brier, v.N)
		assert.Greater(t, v.AUC, 0.7, "model %s", name)
		assert.Less(t, v.Brier, 0.25, "model %s", name)
		assert.Greater(t, v.N, 100)
	}
	assert.Equal(t, res.Validation, m.Meta.Validation)
	require.NotNil(t, res.Blend, "full-information data: the blend is tuned on the outcomes' costs")
	assert.GreaterOrEqual(t, res.Blend.Chosen(), res.Blend.AIQ[training.BlendKey(1, 0)], "never below the network alone out of fold")
	assert.Len(t, m.Meta.OutputTokens, len(ds.Catalogue.Models))
	for name, tok := range m.Meta.OutputTokens {
		assert.Greater(t, tok, 1.0, name)
	}
	assert.NotEmpty(t, m.Meta.DataFingerprint)
	assert.Equal(t, m.Fingerprint(), m.Meta.Version)
	assert.LessOrEqual(t, res.BestEpoch, res.Epochs)
}

func TestFitIsDeterministicForASeed(t *testing.T) {
	ds := syntheticDataset(t, 300)
	a, _, err := smallTrainer(5).Fit(context.Background(), ds, smallJob())
	require.NoError(t, err)
	b, _, err := smallTrainer(5).Fit(context.Background(), ds, smallJob())
	require.NoError(t, err)
	c, _, err := smallTrainer(6).Fit(context.Background(), ds, smallJob())
	require.NoError(t, err)
	assert.Equal(t, a.Meta.Version, b.Meta.Version, "same data and seed: same model")
	assert.NotEqual(t, a.Meta.Version, c.Meta.Version, "another seed: another model")
	assert.Equal(t, a.Meta.DataFingerprint, c.Meta.DataFingerprint)
}

func TestExampleWeightsDecideWhatIsLearned(t *testing.T) {
	// Two copies of the same prompts with opposite labels: the heavier copy wins.
	spec := smallJob().Spec
	ext, err := features.NewExtractor(spec)
	require.NoError(t, err)
	var ex []training.Example
	for i := 0; i < 40; i++ {
		var v features.Vector
		ext.Extract(features.Input{Prompt: "short prompt number " + string(rune('a'+i%26))}, &v)
		ex = append(ex,
			training.Example{PromptID: "p", Vec: v, Labels: []float32{1}, Weights: []float32{3}},
			training.Example{PromptID: "q", Vec: v, Labels: []float32{0}, Weights: []float32{1}})
	}
	tr := smallTrainer(1)
	tr.Settings.Epochs = 30
	m, _, err := tr.Train(context.Background(), spec, []string{"m"}, ex, nil)
	require.NoError(t, err)
	var a classifier.Activations
	m.Forward(&ex[0].Vec, &a)
	assert.InDelta(t, 0.75, a.Out[0], 0.08, "weighted BCE optimum is 3/(3+1)")
}

func TestWriteArtifactsLoadsBack(t *testing.T) {
	m, res, tr := quickFit(t)
	dir := t.TempDir()
	require.NoError(t, training.WriteArtifacts(dir, m, res, tr.Settings))
	got, err := classifier.ReadONNX(filepath.Join(dir, training.PredictorFile))
	require.NoError(t, err)
	assert.Equal(t, m.Meta.Version, got.Meta.Version)
	assert.FileExists(t, filepath.Join(dir, training.ManifestFile))
}

func TestWriteArtifactsGivesTheModeOSCreateGives(t *testing.T) {
	m, res, tr := quickFit(t)
	dir := t.TempDir()
	// the reference: what os.Create makes under this process's umask
	// (0644 under the usual 022), so that the test holds under any umask
	ref, err := os.Create(filepath.Join(t.TempDir(), "reference"))
	require.NoError(t, err)
	require.NoError(t, ref.Close())
	want, err := os.Stat(ref.Name())
	require.NoError(t, err)

	require.NoError(t, training.WriteArtifacts(dir, m, res, tr.Settings))
	for _, name := range []string{training.PredictorFile, training.ManifestFile} {
		got, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Equal(t, want.Mode().Perm(), got.Mode().Perm(), "%s is read by another user (the server) than the one who trained it", name)
	}
}

func TestAUC(t *testing.T) {
	cases := []struct {
		name   string
		scores []float64
		labels []float64
		want   float64
	}{
		{"perfect", []float64{0.1, 0.2, 0.8, 0.9}, []float64{0, 0, 1, 1}, 1},
		{"inverted", []float64{0.9, 0.8, 0.2, 0.1}, []float64{0, 0, 1, 1}, 0},
		{"ties count half", []float64{0.5, 0.5}, []float64{0, 1}, 0.5},
		{"one class", []float64{0.1, 0.2}, []float64{1, 1}, 0.5},
		{"mixed", []float64{0.1, 0.4, 0.35, 0.8}, []float64{0, 0, 1, 1}, 0.75},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := training.AUCOf(c.scores, c.labels)
			assert.InDelta(t, c.want, got, 1e-12)
			assert.False(t, math.IsNaN(got))
		})
	}
}

func TestSplitIsStableAndByPrompt(t *testing.T) {
	var ex []training.Example
	for i := 0; i < 2000; i++ {
		ex = append(ex, training.Example{PromptID: string(rune('a'+i%26)) + string(rune('A'+i/26%26)) + string(rune('0'+i/676))})
	}
	tr, ho := training.Split(ex, "s", 0.25)
	assert.InDelta(t, 500, len(ho), 80)
	assert.Equal(t, 2000, len(tr)+len(ho))
	tr2, ho2 := training.Split(ex, "s", 0.25)
	assert.Equal(t, tr, tr2)
	assert.Equal(t, ho, ho2)
	_, ho3 := training.Split(ex, "other salt", 0.25)
	assert.NotEqual(t, ho, ho3)
}

// quickFit trains one epoch on 200 synthetic prompts.
func quickFit(t *testing.T) (*classifier.Model, *training.Result, *training.Trainer) {
	t.Helper()
	tr := smallTrainer(2)
	tr.Settings.Epochs = 1
	m, res, err := tr.Fit(context.Background(), syntheticDataset(t, 200), smallJob())
	require.NoError(t, err)
	return m, res, tr
}
