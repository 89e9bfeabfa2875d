package training

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier"
	"switchyard/features"
)

// Platt scaling is applied where the validation split is large enough for
// it to generalise, and never on a few dozen examples.
func TestCalibrationOnlyWhereItGeneralises(t *testing.T) {
	spec := features.DefaultSpec()
	spec.Buckets = 1 << 10
	ext, err := features.NewExtractor(spec)
	require.NoError(t, err)
	words := []string{"alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"}
	examples := func(m *classifier.Model, n int) []Example {
		rng := rand.New(rand.NewSource(int64(n)))
		ex := make([]Example, n)
		z := make([]float32, n)
		var a classifier.Activations
		for i := range ex {
			text := ""
			for k := 0; k < 6; k++ {
				text += words[rng.Intn(len(words))] + " "
			}
			ex[i] = Example{PromptID: fmt.Sprintf("p%d", i), Weights: []float32{1}, Labels: []float32{0}}
			ext.Extract(features.Input{Prompt: text}, &ex[i].Vec)
			m.Forward(&ex[i].Vec, &a)
			z[i] = a.Logits[0]
		}
		med := slices.Clone(z)
		slices.Sort(med)
		for i := range ex { // the label follows the logit far more sharply than the output says
			if z[i] > med[n/2] {
				ex[i].Labels[0] = 1
			}
		}
		return ex
	}
	for _, c := range []struct {
		n       int
		applied bool
	}{{60, false}, {2000, true}} {
		m, err := classifier.NewModel(spec, []string{"a"}, 4, 4)
		require.NoError(t, err)
		m.Init(rand.New(rand.NewSource(1)))
		before := m.B2[0]
		calibrate(m, examples(m, c.n))
		assert.Equal(t, c.applied, m.B2[0] != before, "%d validation examples", c.n)
	}
}
