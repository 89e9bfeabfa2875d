package eval

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
	"switchyard/datasets/synthetic"
	"switchyard/features"
	"switchyard/training"
)

func TestECE(t *testing.T) {
	e, bins := ECE([]float64{0.05, 0.05, 0.95, 0.95}, []float64{0, 0, 1, 1}, 10)
	assert.InDelta(t, 0.05, e, 1e-12)
	assert.Equal(t, 2, bins[0].N)
	assert.Equal(t, 2, bins[9].N)
	e, _ = ECE([]float64{0.9, 0.9}, []float64{0, 0}, 10)
	assert.InDelta(t, 0.9, e, 1e-12)
}

func smallBench(t *testing.T, n int, pool []string) *Bench {
	t.Helper()
	w, err := synthetic.Generate(synthetic.Config{Seed: 4, Prompts: n})
	require.NoError(t, err)
	ds := &datasets.Dataset{Catalogue: w.Catalogue, Prompts: w.Prompts, Outcomes: w.Outcomes}
	spec := features.DefaultSpec()
	spec.Buckets = 1 << 14
	ext, err := features.NewExtractor(spec)
	require.NoError(t, err)
	b, err := NewBench(ds, pool, ext)
	require.NoError(t, err)
	return b
}

func smallConfig(spec features.Spec) Config {
	s := training.DefaultSettings()
	s.EmbeddingDim, s.Hidden, s.Epochs = 8, 16, 4
	return Config{TestShare: 0.3, Salt: "eval", Lambdas: 20,
		Learned:   &Learned{Trainer: training.Trainer{Settings: s}, Spec: spec},
		Baselines: []Predictor{&PerTask{}, &KNN{K: 10}, &Logistic{Epochs: 2, LR: 0.05, Seed: 1}}}
}

func TestRunReportsEveryRouterAndTheFiguresRecomputeFromDecisions(t *testing.T) {
	b := smallBench(t, 800, nil)
	cfg := smallConfig(features.Spec{})
	cfg.Learned.Spec = features.DefaultSpec()
	cfg.Learned.Spec.Buckets = 1 << 14
	var dec bytes.Buffer
	cfg.Decisions = &dec
	rep, err := Run(context.Background(), b, cfg)
	require.NoError(t, err)
	require.Len(t, rep.Folds, 1)
	f := rep.Folds[0]
	kinds := map[string]int{}
	byName := map[string]RouterResult{}
	for _, r := range f.Routers {
		kinds[r.Kind]++
		byName[r.Name] = r
	}
	assert.Equal(t, map[string]int{"learned": 1, "baseline": 3, "single": 7, "mixing": 1, "oracle": 1}, kinds)
	oracle := byName["oracle"].AIQ
	for _, r := range f.Routers {
		assert.LessOrEqual(t, r.AIQ, oracle+1e-12, "%s beats the oracle", r.Name)
		assert.True(t, r.AIQ >= 0 && r.AIQ <= 1)
	}
	assert.Greater(t, byName["learned"].AIQ, byName["open-8b-selfhosted"].AIQ)
	assert.Len(t, f.Calibration, 7)
	assert.Nil(t, byName["learned"].APGR, "APGR only for two-model pools")

	// every figure recomputes from the decisions and the ground truth
	rows, err := csv.NewReader(&dec).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"prompt_id", "setting", "model"}, rows[0])
	idx := map[string]int{}
	for i, id := range b.PromptIDs {
		idx[id] = i
	}
	col := map[string]int{}
	for j, m := range b.Models {
		col[m] = j
	}
	type acc struct{ cost, q, n float64 }
	sums := map[string]*acc{}
	for _, r := range rows[1:] {
		a := sums[r[1]]
		if a == nil {
			a = &acc{}
			sums[r[1]] = a
		}
		i, j := idx[r[0]], col[r[2]]
		a.cost += b.Cost[i][j]
		a.q += b.Quality[i][j]
		a.n++
	}
	checked := 0
	for _, r := range f.Routers {
		if r.Kind == "mixing" {
			continue
		}
		for _, p := range r.Points {
			a := sums[p.Setting]
			require.NotNil(t, a, "no decisions for %s", p.Setting)
			assert.Equal(t, float64(f.TestPrompts), a.n)
			assert.InDelta(t, p.Cost, a.cost/a.n, 1e-12, p.Setting)
			assert.InDelta(t, p.Quality, a.q/a.n, 1e-12, p.Setting)
			checked++
		}
	}
	assert.Greater(t, checked, 100)
}

func TestRunTwoModelPoolReportsAPGRAndFolds(t *testing.T) {
	rep := twoModelRun(t, 600)
	require.True(t, rep.TwoModel)
	require.Len(t, rep.Folds, 3)
	test := 0
	for _, f := range rep.Folds {
		test += f.TestPrompts
	}
	assert.Equal(t, rep.Prompts, test, "every prompt is tested exactly once")
	for _, s := range rep.Summaries {
		require.NotNil(t, s.APGR, s.Name)
		assert.True(t, s.APGR.Mean >= 0 && s.APGR.Mean <= 1, s.Name)
		assert.False(t, math.IsNaN(s.AIQ.Std))
		if s.Kind == "oracle" {
			assert.Greater(t, s.APGR.Mean, 0.9, "the oracle recovers the gap almost for free")
		}
	}
}

func TestNewBenchRestrictsToCompletePrompts(t *testing.T) {
	w, err := synthetic.Generate(synthetic.Config{Seed: 4, Prompts: 50})
	require.NoError(t, err)
	// drop one outcome: that prompt leaves the bench
	var out []datasets.OutcomeRecord
	for _, o := range w.Outcomes {
		if !(o.PromptID == w.Prompts[0].PromptID && o.Model == "mini") {
			out = append(out, o)
		}
	}
	ds := &datasets.Dataset{Catalogue: w.Catalogue, Prompts: w.Prompts, Outcomes: out}
	ext, err := features.NewExtractor(features.DefaultSpec())
	require.NoError(t, err)
	b, err := NewBench(ds, []string{"mini", "flash"}, ext)
	require.NoError(t, err)
	assert.Equal(t, 49, len(b.PromptIDs))
	assert.Equal(t, 1, b.Dropped)
	_, err = NewBench(ds, []string{"mini"}, ext)
	require.ErrorContains(t, err, "at least two")
	_, err = NewBench(ds, []string{"mini", "gpt-9"}, ext)
	require.ErrorContains(t, err, "gpt-9")
}

// The baselines are deterministic: fitting and predicting twice gives the
// same numbers bit for bit (k-NN sums its similarities in id order, not in
// map order). Prompts share many ids here, so that the order of the sums
// shows in their last bits.
func TestBaselinesAreDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	b := &Bench{Models: []string{"a", "b", "c"}}
	for i := range 400 {
		v := features.Vector{TaskID: int32(1 + i%3), Dense: make([]float32, features.NumDense)}
		for range 150 {
			v.IDs = append(v.IDs, int32(4+rng.IntN(60)))
		}
		b.PromptIDs = append(b.PromptIDs, fmt.Sprintf("p%d", i))
		b.Tasks = append(b.Tasks, fmt.Sprint(v.TaskID))
		b.Vecs = append(b.Vecs, v)
		b.Quality = append(b.Quality, []float64{float64(rng.IntN(2)), float64(rng.IntN(2)), float64(rng.IntN(2))})
	}
	train, test := Config{TestShare: 0.3, Salt: "det"}.Split(b, 0)
	for _, mk := range []func() Predictor{
		func() Predictor { return &KNN{K: 7} },
		func() Predictor { return &Logistic{Epochs: 2, LR: 0.05, L2: 1e-6, Seed: 3} },
	} {
		var runs [5][][]float64
		for r := range runs {
			p := mk()
			require.NoError(t, p.Fit(context.Background(), b, train))
			runs[r] = p.Predict(b, test)
		}
		for r := 1; r < len(runs); r++ {
			require.Equal(t, runs[0], runs[r], mk().Name())
		}
	}
}

// labelSpy is a predictor that records which task labels it was shown in
// training and in test prompts (labels and features alike).
type labelSpy struct {
	trainLabelled, testLabelled int
}

func (s *labelSpy) Name() string { return "spy" }

func (s *labelSpy) Fit(_ context.Context, b *Bench, train []int) error {
	s.trainLabelled = 0
	for _, i := range train {
		if b.Tasks[i] != "" || b.Vecs[i].TaskID != 0 || b.Inputs[i].Task != "" {
			s.trainLabelled++
		}
	}
	return nil
}

func (s *labelSpy) Predict(b *Bench, test []int) [][]float64 {
	s.testLabelled = 0
	out := make([][]float64, len(test))
	for k, i := range test {
		if b.Tasks[i] != "" || b.Vecs[i].TaskID != 0 || b.Inputs[i].Task != "" {
			s.testLabelled++
		}
		out[k] = make([]float64, len(b.Models))
	}
	return out
}

func TestTaskLabelSettingsHideLabelsWhereTheySay(t *testing.T) {
	b := smallBench(t, 300, []string{"mini", "opus-class"})
	for _, c := range []struct {
		labels          TaskLabels
		inTrain, inTest bool
	}{{LabelsUse, true, true}, {LabelsTrainOnly, true, false}, {LabelsIgnore, false, false}} {
		t.Run(string(c.labels), func(t *testing.T) {
			spy := &labelSpy{}
			cfg := smallConfig(features.Spec{})
			cfg.Learned.Spec = features.DefaultSpec()
			cfg.Learned.Spec.Buckets = 1 << 14
			cfg.Learned.Trainer.Settings.Epochs = 1
			cfg.Baselines, cfg.Folds, cfg.TaskLabels = []Predictor{spy, &PerTask{}}, 2, c.labels
			rep, err := Run(context.Background(), b, cfg)
			require.NoError(t, err)
			assert.Equal(t, c.labels, rep.TaskLabels)
			assert.Equal(t, c.inTrain, spy.trainLabelled > 0, "training prompts labelled")
			assert.Equal(t, c.inTest, spy.testLabelled > 0, "test prompts labelled")
			assert.NotEmpty(t, b.Tasks[0], "the bench itself keeps its labels")
		})
	}
	_, err := ParseTaskLabels("some")
	require.Error(t, err)
}

// The learned router's paired differences are fold by fold, with an
// interval around their mean.
func TestVersusPairsTheLearnedRouterFoldByFold(t *testing.T) {
	rep := twoModelRun(t, 400)
	require.Len(t, rep.Versus, len(rep.Folds[0].Routers)-1)
	learned := rep.Folds[0].Routers[0]
	require.Equal(t, "learned", learned.Kind)
	for r, c := range rep.Versus {
		other := r + 1
		require.Len(t, c.PerFold, 3)
		for k, f := range rep.Folds {
			assert.InDelta(t, f.Routers[0].AIQ-f.Routers[other].AIQ, c.PerFold[k], 1e-12, c.Router)
		}
		require.NotNil(t, c.Lo)
		assert.LessOrEqual(t, *c.Lo, c.Mean)
		assert.GreaterOrEqual(t, *c.Hi, c.Mean)
	}
	best := rep.BestBaseline()
	require.NotNil(t, best)
	assert.Contains(t, []string{"baseline", "mixing"}, best.Kind)
	for _, c := range rep.Versus {
		if c.Kind == "baseline" || c.Kind == "mixing" {
			assert.GreaterOrEqual(t, c.Mean, best.Mean, "the best baseline is the one the learned router leads least")
		}
	}
}

// twoModelRun evaluates, on 3 folds, the routers over a pool of two models
// on n synthetic prompts.
func twoModelRun(t *testing.T, n int) *Report {
	t.Helper()
	cfg := smallConfig(features.Spec{})
	cfg.Learned.Spec = features.DefaultSpec()
	cfg.Learned.Spec.Buckets = 1 << 14
	cfg.Folds = 3
	rep, err := Run(context.Background(), smallBench(t, n, []string{"mini", "opus-class"}), cfg)
	require.NoError(t, err)
	return rep
}
