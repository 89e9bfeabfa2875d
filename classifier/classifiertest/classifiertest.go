// Package classifiertest builds small predictors for tests whose answers are
// known in advance: weights drawn from a seed, and output biases that rank
// the models, so that "later models are predicted better" is the ground
// truth a test can check a decision against. Predictors trained on data
// with the true outcomes of every prompt are in training/trainingtest.
package classifiertest

import (
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"switchyard/classifier"
	"switchyard/features"
)

// Options describe a predictor. Zero fields take the defaults named.
type Options struct {
	Models []string // output heads, in order (required)
	// Spec is the feature spec; zero: features.DefaultSpec with Buckets.
	Spec features.Spec
	// Buckets of the default spec's hashed n-grams; 1<<12 when 0.
	Buckets int
	// EmbeddingDim and Hidden size the network; 8 and 16 when 0.
	EmbeddingDim, Hidden int
	// Seed draws the initial weights; 1 when 0.
	Seed int64
	// BiasStep > 0 sets model j's output bias to j·BiasStep: every later
	// model is predicted better than every earlier one on most prompts.
	// 0 keeps the drawn biases.
	BiasStep float32
	// OutputTokens > 0 is every model's expected output length (the
	// decision rule's cost estimate); 0 leaves it unset.
	OutputTokens float64
}

// New returns the predictor opt describes, its version set to its
// fingerprint.
func New(t testing.TB, opt Options) *classifier.Model {
	t.Helper()
	spec := opt.Spec
	if spec.Buckets == 0 {
		spec = features.DefaultSpec()
		spec.Buckets = 1 << 12
		if opt.Buckets > 0 {
			spec.Buckets = opt.Buckets
		}
	}
	emb, hidden, seed := opt.EmbeddingDim, opt.Hidden, opt.Seed
	if emb == 0 {
		emb = 8
	}
	if hidden == 0 {
		hidden = 16
	}
	if seed == 0 {
		seed = 1
	}
	m, err := classifier.NewModel(spec, opt.Models, emb, hidden)
	require.NoError(t, err)
	m.Init(rand.New(rand.NewSource(seed)))
	if opt.BiasStep > 0 {
		for j := range m.B2 {
			m.B2[j] = float32(j) * opt.BiasStep
		}
	}
	if opt.OutputTokens > 0 {
		m.Meta.OutputTokens = map[string]float64{}
		for _, name := range opt.Models {
			m.Meta.OutputTokens[name] = opt.OutputTokens
		}
	}
	m.Meta.Version = m.Fingerprint()
	return m
}

// Write writes m as ONNX into a folder of the test's and returns its path.
func Write(t testing.TB, m *classifier.Model) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "predictor.onnx")
	require.NoError(t, classifier.WriteONNX(path, m))
	return path
}
