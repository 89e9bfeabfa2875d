package training

import (
	"context"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier"
	"switchyard/features"
)

// blendData are prompts whose words say which of two models answers well:
// "alpha" prompts suit the cheap model, "beta" prompts only the dear one.
func blendData(t *testing.T, n int, seed int64) (features.Spec, []Example) {
	t.Helper()
	spec := features.DefaultSpec()
	spec.Buckets = 1 << 12
	ext, err := features.NewExtractor(spec)
	require.NoError(t, err)
	rng := rand.New(rand.NewSource(seed))
	words := []string{"river", "stone", "cloud", "paper", "glass", "light"}
	ex := make([]Example, n)
	for i := range ex {
		kind := rng.Intn(2)
		text := []string{"alpha", "beta"}[kind]
		for k := 0; k < 4; k++ {
			text += " " + words[rng.Intn(len(words))]
		}
		var v features.Vector
		ext.Extract(features.Input{Prompt: text}, &v)
		cheap := float32(0)
		if rng.Float64() < []float64{0.9, 0.2}[kind] {
			cheap = 1
		}
		dear := float32(0)
		if rng.Float64() < 0.85 {
			dear = 1
		}
		ex[i] = Example{PromptID: text + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)),
			Vec: v, Labels: []float32{cheap, dear}, Weights: []float32{1, 1}}
	}
	return spec, ex
}

func TestBlendIsChosenByOutOfFoldRoutingAIQ(t *testing.T) {
	spec, ex := blendData(t, 900, 1)
	train, val := Split(ex, "validation", 0.1)
	s := DefaultSettings()
	s.EmbeddingDim, s.Hidden, s.Epochs = 8, 8, 6
	tr := &Trainer{Settings: s, Costs: []float64{1, 10}}
	m, res, err := tr.Train(context.Background(), spec, []string{"cheap", "dear"}, train, val)
	require.NoError(t, err)
	require.NotNil(t, res.Blend, "900 full-information examples are enough to judge the blend")
	b := res.Blend
	assert.Len(t, b.AIQ, len(blendGrid)*len(blendGrid))
	for _, v := range b.AIQ {
		assert.LessOrEqual(t, v, b.Chosen(), "the chosen blend has the highest out-of-fold AIQ")
	}
	assert.Greater(t, b.Chosen(), b.AIQ[BlendKey(0, 0)], "the words carry the signal: the prior alone routes worse")
	assert.Equal(t, len(train), b.Examples)

	// the words are learned: alpha prompts predicted good on the cheap model, beta prompts not
	var a classifier.Activations
	var alpha, beta []float64
	for i := range val {
		m.Forward(&val[i].Vec, &a)
		if val[i].PromptID[0] == 'a' {
			alpha = append(alpha, float64(a.Out[0]))
		} else {
			beta = append(beta, float64(a.Out[0]))
		}
	}
	assert.Greater(t, mean(alpha)-mean(beta), 0.4)

	// without prices there is nothing to judge the blend by: the network alone
	tr.Costs = nil
	_, res, err = tr.Train(context.Background(), spec, []string{"cheap", "dear"}, train, val)
	require.NoError(t, err)
	assert.Nil(t, res.Blend)
}

func TestTrainingWithTuningIsDeterministic(t *testing.T) {
	spec, ex := blendData(t, 400, 2)
	train, val := Split(ex, "validation", 0.1)
	s := DefaultSettings()
	s.EmbeddingDim, s.Hidden, s.Epochs = 8, 8, 4
	run := func() string {
		m, res, err := (&Trainer{Settings: s, Costs: []float64{1, 10}}).Train(context.Background(), spec, []string{"cheap", "dear"}, train, val)
		require.NoError(t, err)
		require.NotNil(t, res.Blend)
		return m.Fingerprint()
	}
	assert.Equal(t, run(), run(), "inner folds run in parallel; the model is the same")
}

// applyBlend folds the blend into the weights: the model's logit is the
// prior plus the weighted network and linear parts, as the blend was judged.
func TestApplyBlendFoldsThePartsIntoTheWeights(t *testing.T) {
	spec, ex := blendData(t, 300, 3)
	s := DefaultSettings()
	s.EmbeddingDim, s.Hidden, s.Epochs = 8, 8, 3
	tr := &Trainer{Settings: s}
	net, _, err := tr.fitNetwork(context.Background(), spec, []string{"cheap", "dear"}, ex, nil, nil)
	require.NoError(t, err)
	lp, err := fitLinearPath(context.Background(), net, ex, s)
	require.NoError(t, err)
	b := &Blend{Network: 0.75, Linear: 0.5}
	var a classifier.Activations
	want := make([][]float64, len(ex))
	lin := make([]float32, 2)
	for i := range ex {
		net.Forward(&ex[i].Vec, &a)
		lp.logits(net, &ex[i].Vec, ex[i].Vec.TaskID, lin)
		want[i] = make([]float64, 2)
		for j := range want[i] {
			p := float64(net.Prior[int(ex[i].Vec.TaskID)*2+j])
			want[i][j] = p + 0.75*(float64(a.Logits[j])-p) + 0.5*(float64(lin[j])-p)
		}
	}
	applyBlend(net, lp, b)
	for i := range ex {
		net.Forward(&ex[i].Vec, &a)
		for j := range want[i] {
			require.InDelta(t, want[i][j], float64(a.Logits[j]), 1e-4, "example %d model %d", i, j)
		}
	}
}

// Task dropout trains the predictor for prompts that come without their
// label too: on unlabelled prompts it is closer to the truth than a
// predictor that only ever saw labels.
func TestTaskDropoutTeachesUnlabelledPrompts(t *testing.T) {
	spec, ex := blendData(t, 1200, 4)
	ext, err := features.NewExtractor(spec)
	require.NoError(t, err)
	for i := range ex { // the label says what the words say
		task := "alpha"
		if ex[i].PromptID[0] == 'b' {
			task = "beta"
		}
		var v features.Vector
		ext.Extract(features.Input{Prompt: "x", Task: task}, &v)
		ex[i].Vec.TaskID = v.TaskID
	}
	train, test := Split(ex, "test", 0.25)
	unlabelled := make([]Example, len(test))
	for i := range test {
		unlabelled[i] = test[i]
		unlabelled[i].Vec.TaskID = 0
	}
	loss := func(dropout float64) float64 {
		s := DefaultSettings()
		s.EmbeddingDim, s.Hidden, s.Epochs, s.TuneFolds, s.TaskDropout = 8, 8, 6, 1, dropout
		m, _, err := (&Trainer{Settings: s}).Train(context.Background(), spec, []string{"cheap", "dear"}, train, nil)
		require.NoError(t, err)
		return Loss(m, WeightedBCE{}, unlabelled)
	}
	with, without := loss(0.5), loss(0)
	t.Logf("loss on unlabelled prompts: %.4f with task dropout, %.4f without", with, without)
	assert.Less(t, with, without)
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / math.Max(1, float64(len(xs)))
}

// Graded quality (a judge's score in [0,1]) trains like 0/1 quality: the
// predictions come out at the graded level of each kind of prompt, and the
// blend and the calibration keep them there.
func TestGradedQualityIsLearnedAtItsLevel(t *testing.T) {
	spec, ex := blendData(t, 1200, 5)
	for i := range ex { // alpha prompts score 0.3 on the cheap model, beta prompts 0.05; the dear one 0.6
		ex[i].Labels[0] = 0.05
		if ex[i].PromptID[0] == 'a' {
			ex[i].Labels[0] = 0.3
		}
		ex[i].Labels[1] = 0.6
	}
	train, val := Split(ex, "validation", 0.2)
	s := DefaultSettings()
	s.EmbeddingDim, s.Hidden, s.Epochs = 8, 8, 8
	m, res, err := (&Trainer{Settings: s, Costs: []float64{1, 10}}).Train(context.Background(), spec, []string{"cheap", "dear"}, train, val)
	require.NoError(t, err)
	require.NotNil(t, res.Blend)
	var a classifier.Activations
	var alpha, beta, dear []float64
	for i := range val {
		m.Forward(&val[i].Vec, &a)
		dear = append(dear, float64(a.Out[1]))
		if val[i].PromptID[0] == 'a' {
			alpha = append(alpha, float64(a.Out[0]))
		} else {
			beta = append(beta, float64(a.Out[0]))
		}
	}
	t.Logf("mean predictions: alpha %.3f, beta %.3f, dear %.3f", mean(alpha), mean(beta), mean(dear))
	assert.InDelta(t, 0.3, mean(alpha), 0.05)
	assert.InDelta(t, 0.05, mean(beta), 0.05)
	assert.InDelta(t, 0.6, mean(dear), 0.05)
}
