package classifier_test

import (
	"encoding/binary"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"switchyard/classifier"
	"switchyard/classifier/onnxpb"
	"switchyard/datasets/synthetic"
	"switchyard/features"
)

// smallSpec keeps test models small; the ONNX graph is the same at any size.
func smallSpec() features.Spec {
	s := features.DefaultSpec()
	s.Buckets = 1 << 12
	return s
}

func randomModel(t testing.TB, models []string) *classifier.Model {
	t.Helper()
	m, err := classifier.NewModel(smallSpec(), models, 16, 24)
	require.NoError(t, err)
	rng := rand.New(rand.NewSource(7))
	m.Init(rng)
	// non-zero biases and larger embeddings so that outputs spread over (0,1)
	for i := range m.B1 {
		m.B1[i] = float32(rng.NormFloat64() * 0.3)
	}
	for i := range m.B2 {
		m.B2[i] = float32(rng.NormFloat64())
	}
	for i := 16; i < len(m.Emb); i++ {
		m.Emb[i] *= 10
	}
	// every weight takes part, so the parity test covers every path of the graph
	for _, w := range [][]float32{m.W2, m.Ws, m.Prior, m.Sparse[len(models):]} {
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.3)
		}
	}
	m.Meta.Version = m.Fingerprint()
	return m
}

func runtimeForTest(t testing.TB) *classifier.Runtime {
	t.Helper()
	path := classifier.FindRuntimeLibrary("")
	rt, err := classifier.OpenRuntime(path)
	require.NoError(t, err, "the real ONNX Runtime is required: run `make ort` at the repository root")
	return rt
}

func generatedInputs(t testing.TB, n int) []features.Input {
	t.Helper()
	w, err := synthetic.Generate(synthetic.Config{Seed: 3, Prompts: n})
	require.NoError(t, err)
	out := make([]features.Input, 0, n+3)
	for _, p := range w.Prompts {
		out = append(out, features.Input{Prompt: p.Prompt, Task: p.Task})
	}
	// and the edge cases: nothing at all, binary, chat
	out = append(out, features.Input{}, features.Input{Prompt: "\xff\x00\xfe"},
		features.Input{Messages: []features.Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "hello"}}})
	return out
}

func TestONNXRuntimeAgreesWithGoForwardPass(t *testing.T) {
	rt := runtimeForTest(t)
	m := randomModel(t, []string{"a", "b", "c", "d", "e", "f"})
	b, err := classifier.ExportONNX(m)
	require.NoError(t, err)
	onnxScorer, err := classifier.NewORTScorer(rt, b, m.Meta)
	require.NoError(t, err)
	defer onnxScorer.Close()
	goScorer, err := classifier.NewGoScorer(m)
	require.NoError(t, err)

	ext, err := features.NewExtractor(m.Meta.FeatureSpec)
	require.NoError(t, err)
	inputs := generatedInputs(t, 1000)
	require.GreaterOrEqual(t, len(inputs), 1000)
	var v features.Vector
	got, want := make([]float32, 6), make([]float32, 6)
	var maxDiff float64
	var spread [2]float32 = [2]float32{1, 0}
	for _, in := range inputs {
		ext.Extract(in, &v)
		require.NoError(t, onnxScorer.Score(&v, got))
		require.NoError(t, goScorer.Score(&v, want))
		for j := range got {
			maxDiff = math.Max(maxDiff, math.Abs(float64(got[j]-want[j])))
			spread[0] = min(spread[0], want[j])
			spread[1] = max(spread[1], want[j])
		}
	}
	assert.Less(t, maxDiff, 1e-5, "ONNX Runtime and the Go forward pass must agree")
	assert.Less(t, spread[0], float32(0.3), "outputs should spread, or the comparison proves little")
	assert.Greater(t, spread[1], float32(0.7))
	t.Logf("max |onnx - go| over %d inputs × 6 models: %.2g", len(inputs), maxDiff)
}

func TestONNXScorerIsSafeForConcurrentUse(t *testing.T) {
	rt := runtimeForTest(t)
	m := randomModel(t, []string{"a", "b", "c"})
	b, err := classifier.ExportONNX(m)
	require.NoError(t, err)
	s, err := classifier.NewORTScorer(rt, b, m.Meta)
	require.NoError(t, err)
	defer s.Close()
	g, err := classifier.NewGoScorer(m)
	require.NoError(t, err)
	ext, err := features.NewExtractor(m.Meta.FeatureSpec)
	require.NoError(t, err)
	inputs := generatedInputs(t, 200)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var v features.Vector
			got, want := make([]float32, 3), make([]float32, 3)
			for i := w; i < len(inputs); i += 4 {
				ext.Extract(inputs[i], &v)
				if err := s.Score(&v, got); err != nil {
					errs <- err
					return
				}
				_ = g.Score(&v, want)
				for j := range got {
					if math.Abs(float64(got[j]-want[j])) > 1e-5 {
						errs <- assert.AnError
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestONNXRoundTripKeepsWeightsAndMetadata(t *testing.T) {
	m := randomModel(t, []string{"x", "y"})
	m.Meta.DataFingerprint = "d-1234"
	m.Meta.OutputTokens = map[string]float64{"x": 120, "y": 40}
	m.Meta.Validation = map[string]classifier.Metrics{"x": {AUC: 0.7, Brier: 0.2, N: 10}}
	path := filepath.Join(t.TempDir(), "p.onnx")
	require.NoError(t, classifier.WriteONNX(path, m))
	got, err := classifier.ReadONNX(path)
	require.NoError(t, err)
	assert.Equal(t, m.Emb, got.Emb)
	assert.Equal(t, m.W1, got.W1)
	assert.Equal(t, m.B2, got.B2)
	assert.Equal(t, m.Meta.Models, got.Meta.Models)
	assert.Equal(t, m.Meta.FeatureSpecID, got.Meta.FeatureSpecID)
	assert.Equal(t, m.Meta.OutputTokens, got.Meta.OutputTokens)
	assert.Equal(t, m.Meta.Validation, got.Meta.Validation)
	assert.Equal(t, m.Meta.Version, got.Meta.Version)
	assert.Equal(t, m.Fingerprint(), got.Fingerprint())
}

// Predictors exported before the sparse path have an embedding table of
// the embedding width and layers on the network's own input: they load with
// the sparse path at zero and every other weight as it was.
func TestPredictorWithoutSparsePathStillLoads(t *testing.T) {
	m := randomModel(t, []string{"x", "y"})
	clear(m.Sparse)
	b, err := classifier.ExportONNX(m)
	require.NoError(t, err)
	var mp onnxpb.ModelProto
	require.NoError(t, proto.Unmarshal(b, &mp))
	in := int64(classifier.InputDim(m.Meta.EmbeddingDim))
	old := map[string]*onnxpb.TensorProto{
		"embedding": {Dims: []int64{int64(m.Meta.FeatureSpec.Buckets), int64(m.Meta.EmbeddingDim)}, FloatData: m.Emb},
		"w1":        {Dims: []int64{in, int64(m.Meta.Hidden)}, FloatData: m.W1},
		"ws":        {Dims: []int64{in, 2}, FloatData: m.Ws},
	}
	for _, init := range mp.Graph.Initializer {
		if o, ok := old[init.Name]; ok {
			init.Dims, init.FloatData, init.RawData = o.Dims, o.FloatData, nil
		}
	}
	b, err = proto.Marshal(&mp)
	require.NoError(t, err)
	got, err := classifier.ParseONNX(b)
	require.NoError(t, err)
	require.True(t, slices.Equal(m.Sparse, got.Sparse), "the sparse path is zero")
	require.Equal(t, m.Fingerprint(), got.Fingerprint(), "every weight as it was")
}

// The export's shared layout is checked when read: a ws whose identity
// block was changed would make ONNX Runtime and the pure-Go pass disagree.
func TestParseONNXRefusesAnAlteredSharedLayout(t *testing.T) {
	m := randomModel(t, []string{"x", "y"})
	b, err := classifier.ExportONNX(m)
	require.NoError(t, err)
	var mp onnxpb.ModelProto
	require.NoError(t, proto.Unmarshal(b, &mp))
	for _, init := range mp.Graph.Initializer {
		if init.Name == "ws" {
			vals := make([]float32, len(init.RawData)/4)
			for i := range vals {
				vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(init.RawData[4*i:]))
			}
			d, nout := m.Meta.EmbeddingDim, 2
			vals[(d+nout+d)*nout] = 0.5 // the identity's first entry
			init.RawData, init.FloatData = nil, vals
		}
	}
	b, err = proto.Marshal(&mp)
	require.NoError(t, err)
	_, err = classifier.ParseONNX(b)
	require.ErrorContains(t, err, "weight ws")
}

func TestReadONNXRejectsBrokenFiles(t *testing.T) {
	m := randomModel(t, []string{"x", "y"})
	b, err := classifier.ExportONNX(m)
	require.NoError(t, err)
	dir := t.TempDir()
	cases := map[string][]byte{
		"truncated": b[:len(b)/2],
		"garbage":   []byte("this is not an onnx model at all, just text\n"),
		"empty":     {},
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name+".onnx")
			require.NoError(t, os.WriteFile(p, data, 0o644))
			_, err := classifier.ReadONNX(p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), p)
		})
	}
	_, err = classifier.ReadONNX(filepath.Join(dir, "missing.onnx"))
	require.Error(t, err)
}

func TestReadONNXRefusesAnUnknownFeatureSpec(t *testing.T) {
	m := randomModel(t, []string{"x"})
	m.Meta.FeatureSpec.Version = 99
	m.Meta.FeatureSpecID = m.Meta.FeatureSpec.ID()
	b, err := classifier.ExportONNX(m)
	require.NoError(t, err)
	_, err = classifier.ParseONNX(b)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "version 99")
}

func TestOpenRuntimeMissingLibrarySaysHowToInstall(t *testing.T) {
	_, err := classifier.OpenRuntime(filepath.Join(t.TempDir(), "libonnxruntime.so.1"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not found")
	assert.Contains(t, err.Error(), "make ort")
}

func TestGoScorerChecksItsInput(t *testing.T) {
	m := randomModel(t, []string{"x", "y"})
	s, err := classifier.NewGoScorer(m)
	require.NoError(t, err)
	v := features.Vector{IDs: []int32{1 << 20}, Dense: make([]float32, features.NumDense)}
	require.Error(t, s.Score(&v, make([]float32, 2)))
	v.IDs = nil
	require.Error(t, s.Score(&v, make([]float32, 3)))
	require.NoError(t, s.Score(&v, make([]float32, 2)))
}

func TestWriteONNXGivesTheModeOSCreateGives(t *testing.T) {
	dir := t.TempDir()
	// the reference: what os.Create makes under this process's umask
	// (0644 under the usual 022), so that the test holds under any umask
	ref, err := os.Create(filepath.Join(dir, "reference"))
	require.NoError(t, err)
	require.NoError(t, ref.Close())
	want, err := os.Stat(ref.Name())
	require.NoError(t, err)

	path := filepath.Join(dir, "p.onnx")
	require.NoError(t, classifier.WriteONNX(path, randomModel(t, []string{"x"})))
	got, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, want.Mode().Perm(), got.Mode().Perm(), "a predictor is read by another user than the one who trained it")

	left, err := filepath.Glob(filepath.Join(dir, ".*"))
	require.NoError(t, err)
	assert.Empty(t, left, "no temporary file is left behind")
}
