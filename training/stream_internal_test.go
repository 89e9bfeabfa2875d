package training

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier"
	"switchyard/features"
)

// A warm start takes the previous predictor's embeddings and hidden layer
// whole and the output column of each model the new pool shares with it;
// a model new to the pool keeps its fresh outputs, and a predictor of
// another feature spec or width is refused.
func TestWarmStartKeepsSharedModelsAndAddsNewOnes(t *testing.T) {
	spec := features.DefaultSpec()
	spec.Buckets = 256
	prev, err := classifier.NewModel(spec, []string{"a", "b"}, 4, 3)
	require.NoError(t, err)
	prev.Init(rand.New(rand.NewSource(1)))
	m, err := classifier.NewModel(spec, []string{"b", "c"}, 4, 3)
	require.NoError(t, err)
	m.Init(rand.New(rand.NewSource(2)))
	fresh := cloneWeights(m)
	require.NoError(t, warmStart(m, prev))
	assert.Equal(t, prev.Emb, m.Emb)
	assert.Equal(t, prev.W1, m.W1)
	assert.Equal(t, prev.B1, m.B1)
	hid, in := 3, len(m.W1)/3
	for r := range hid {
		assert.Equal(t, prev.W2[r*2+1], m.W2[r*2+0], "b's output weights, row %d", r)
		assert.Equal(t, fresh.W2[r*2+1], m.W2[r*2+1], "c's stay fresh, row %d", r)
	}
	for r := range in {
		assert.Equal(t, prev.Ws[r*2+1], m.Ws[r*2+0], "b's wide path, row %d", r)
		assert.Equal(t, fresh.Ws[r*2+1], m.Ws[r*2+1], "c's wide path stays fresh, row %d", r)
	}
	assert.Equal(t, prev.B2[1], m.B2[0])

	wide, err := classifier.NewModel(spec, []string{"b"}, 8, 3)
	require.NoError(t, err)
	assert.ErrorContains(t, warmStart(wide, prev), "layers")
	spec.Buckets = 512
	other, err := classifier.NewModel(spec, []string{"b"}, 4, 3)
	require.NoError(t, err)
	assert.ErrorContains(t, warmStart(other, prev), "feature spec")
}
