// Package classifier is Switchyard's predictor: from a request's features,
// the expected quality in [0,1] of each candidate model (for 0/1 quality, the
// probability that the model answers acceptably).
//
// The architecture is a wide-and-deep fastText-style embedding bag: the mean of the
// embeddings of the hashed n-gram ids, concatenated with the embedding of the
// task label and the dense signals, one ReLU hidden layer, and one sigmoid
// output per model, added to a fixed per-task prior logit (the smoothed mean
// quality of each model on the task in the training data) and to a sparse
// linear path (one weight per n-gram id and model, on the ids scaled by
// 1/√count: a logistic regression on the bag of n-grams). The package holds the weights (Model), a pure-Go forward
// pass used by training and evaluation, the ONNX export and import, and two
// implementations of one Scorer interface: ONNX Runtime and pure Go.
package classifier

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand"
	"time"

	"switchyard/features"
)

// Metrics are a model head's validation metrics.
type Metrics struct {
	AUC   float64 `json:"auc"`
	Brier float64 `json:"brier"`
	N     int     `json:"n"`
	Mean  float64 `json:"mean_quality"`
}

// Metadata describes a trained predictor. It travels inside the ONNX file.
type Metadata struct {
	Models          []string           `json:"models"` // output order
	FeatureSpec     features.Spec      `json:"feature_spec"`
	FeatureSpecID   string             `json:"feature_spec_id"`
	DataFingerprint string             `json:"data_fingerprint"`
	CreatedAt       time.Time          `json:"created_at"`
	Validation      map[string]Metrics `json:"validation"`
	OutputTokens    map[string]float64 `json:"expected_output_tokens"` // per model, learned from the outcome log
	Observations    map[string]int     `json:"observations,omitempty"` // per model, training examples that observed it
	// ObservedUntil is when the newest logged outcome the predictor was
	// trained on was stored (zero without logs): a server counts only
	// outcomes stored later on top of Observations. (A logged outcome
	// stored earlier that training could not use, its prompt not kept,
	// say, is counted again only by a later predictor.)
	ObservedUntil time.Time `json:"observed_until,omitzero"`
	Version       string    `json:"predictor_version"` // fingerprint of the weights
	EmbeddingDim  int       `json:"embedding_dim"`
	Hidden        int       `json:"hidden"`
}

// Model is the predictor's weights. Matrices are row-major float32.
type Model struct {
	Meta   Metadata
	Emb    []float32 // Buckets × EmbeddingDim; row 0 (padding, "no task") stays zero
	W1     []float32 // InputDim × Hidden
	B1     []float32 // Hidden
	W2     []float32 // Hidden × len(Models)
	B2     []float32 // len(Models)
	Ws     []float32 // InputDim × len(Models): the wide (linear) path from the input straight to the logits
	Prior  []float32 // Buckets × len(Models): logit offset per task-label id (row 0: no label), fixed before training
	Sparse []float32 // Buckets × len(Models): the sparse linear path, weights of the n-gram ids scaled by 1/√count; row 0 stays zero
	dim    int
	hidden int
	nout   int
}

// InputDim is the width of the hidden layer's input: bag, task, dense.
func InputDim(embDim int) int { return 2*embDim + features.NumDense }

// NewModel allocates a model with zero weights for the given spec, models
// and sizes. Initialise it with Init before training.
func NewModel(spec features.Spec, models []string, embDim, hidden int) (*Model, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if len(models) == 0 {
		return nil, fmt.Errorf("new model: no models")
	}
	if embDim < 1 || hidden < 1 {
		return nil, fmt.Errorf("new model: embedding dim %d and hidden %d must be positive", embDim, hidden)
	}
	in := InputDim(embDim)
	m := &Model{
		Meta: Metadata{Models: append([]string(nil), models...), FeatureSpec: spec, FeatureSpecID: spec.ID(),
			EmbeddingDim: embDim, Hidden: hidden, Validation: map[string]Metrics{}, OutputTokens: map[string]float64{}},
		Emb: make([]float32, spec.Buckets*embDim),
		W1:  make([]float32, in*hidden), B1: make([]float32, hidden),
		W2: make([]float32, hidden*len(models)), B2: make([]float32, len(models)),
		Ws: make([]float32, in*len(models)), Prior: make([]float32, spec.Buckets*len(models)),
		Sparse: make([]float32, spec.Buckets*len(models)),
	}
	m.setDims()
	return m, nil
}

func (m *Model) setDims() {
	m.dim, m.hidden, m.nout = m.Meta.EmbeddingDim, m.Meta.Hidden, len(m.Meta.Models)
}

// check verifies that the weight shapes agree with the metadata.
func (m *Model) check() error {
	m.setDims()
	in := InputDim(m.dim)
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"embedding", len(m.Emb), m.Meta.FeatureSpec.Buckets * m.dim},
		{"w1", len(m.W1), in * m.hidden}, {"b1", len(m.B1), m.hidden},
		{"w2", len(m.W2), m.hidden * m.nout}, {"b2", len(m.B2), m.nout},
		{"ws", len(m.Ws), in * m.nout}, {"prior", len(m.Prior), m.Meta.FeatureSpec.Buckets * m.nout},
		{"sparse", len(m.Sparse), m.Meta.FeatureSpec.Buckets * m.nout},
	} {
		if c.got != c.want || c.want == 0 {
			return fmt.Errorf("weight %s has %d values, want %d", c.name, c.got, c.want)
		}
	}
	return nil
}

// Models returns the model names in output order.
func (m *Model) Models() []string { return m.Meta.Models }

// Activations holds the intermediate values of one forward pass; training
// keeps them for the backward pass. Reuse one per goroutine.
type Activations struct {
	X      []float32 // input of the hidden layer
	H      []float32 // hidden layer after ReLU
	Logits []float32
	Out    []float32 // sigmoid outputs
	NIDs   int       // ids that went into the bag (padding excluded)
}

// Forward computes the predicted quality of every model for v into a.Out.
// It allocates only when a is used for the first time.
func (m *Model) Forward(v *features.Vector, a *Activations) {
	d, hid, nout := m.dim, m.hidden, m.nout
	in := InputDim(d)
	a.X = resize(a.X, in)
	a.H = resize(a.H, hid)
	a.Logits = resize(a.Logits, nout)
	a.Out = resize(a.Out, nout)
	x := a.X
	bag := x[:d]
	var n int
	if d == 16 {
		n = bag16(m.Emb, v.IDs, (*[16]float32)(bag))
	} else {
		clear(bag)
		for _, id := range v.IDs {
			if id <= 0 {
				continue
			}
			row := m.Emb[int(id)*d : int(id)*d+d]
			for j, w := range row {
				bag[j] += w
			}
			n++
		}
	}
	a.NIDs = n
	if n > 0 {
		inv := float32(1) / float32(n)
		for j := range bag {
			bag[j] *= inv
		}
	}
	task := x[d : 2*d]
	if v.TaskID > 0 {
		copy(task, m.Emb[int(v.TaskID)*d:int(v.TaskID)*d+d])
	} else {
		clear(task)
	}
	copy(x[2*d:], v.Dense)

	h := a.H
	copy(h, m.B1)
	addProduct(h, x, m.W1)
	for j := range h {
		if h[j] < 0 {
			h[j] = 0
		}
	}
	lg := a.Logits
	copy(lg, m.B2)
	prior := m.Prior[int(v.TaskID)*nout : int(v.TaskID)*nout+nout]
	for j, p := range prior {
		lg[j] += p
	}
	addProduct(lg, h, m.W2)
	addProduct(lg, x, m.Ws)
	if n > 0 && len(m.Sparse) > 0 { // nil while the network alone trains
		scale := SparseScale(n)
		for _, id := range v.IDs {
			if id <= 0 {
				continue
			}
			row := m.Sparse[int(id)*nout : int(id)*nout+nout]
			for j, w := range row {
				lg[j] += scale * w
			}
		}
	}
	for j, z := range lg {
		a.Out[j] = Sigmoid(z)
	}
}

// bag16 sums the 16-wide embedding rows of ids (ids ≤ 0 are padding) into
// bag and returns their number: the sums the general loop takes, in the
// same order, in registers, so that the rows' loads (at random places in a
// table larger than the caches) are in flight together.
func bag16(emb []float32, ids []int32, bag *[16]float32) int {
	var a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15 float32
	n := 0
	for _, id := range ids {
		if id <= 0 {
			continue
		}
		r := (*[16]float32)(emb[int(id)*16 : int(id)*16+16])
		a0 += r[0]
		a1 += r[1]
		a2 += r[2]
		a3 += r[3]
		a4 += r[4]
		a5 += r[5]
		a6 += r[6]
		a7 += r[7]
		a8 += r[8]
		a9 += r[9]
		a10 += r[10]
		a11 += r[11]
		a12 += r[12]
		a13 += r[13]
		a14 += r[14]
		a15 += r[15]
		n++
	}
	*bag = [16]float32{a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15}
	return n
}

// SparseScale is the value of each of n present n-gram ids in the sparse
// linear path: 1/√n (unit length when the ids are distinct; a repeated
// n-gram counts each time).
func SparseScale(n int) float32 { return float32(1 / math.Sqrt(float64(n))) }

// Sigmoid is the logistic function in float32.
func Sigmoid(z float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(z))))
}

// addProduct adds x·w to dst, w row-major with len(dst) columns, skipping
// the rows of zero inputs (a ReLU layer's inactive units, an input's
// absent task embedding).
func addProduct(dst, x, w []float32) {
	n := len(dst)
	for i, xi := range x {
		if xi == 0 {
			continue
		}
		row := w[i*n : i*n+n]
		for j, v := range row {
			dst[j] += xi * v
		}
	}
}

func resize(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// Fingerprint returns a short hash of the weights and the model list, used as
// the predictor version.
func (m *Model) Fingerprint() string {
	h := sha256.New()
	for _, name := range m.Meta.Models {
		h.Write([]byte(name))
		h.Write([]byte{0})
	}
	h.Write([]byte(m.Meta.FeatureSpecID))
	var buf [4]byte
	for _, w := range [][]float32{m.Emb, m.W1, m.B1, m.W2, m.B2, m.Ws, m.Prior, m.Sparse} {
		for _, x := range w {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(x))
			h.Write(buf[:])
		}
	}
	return "p-" + hex.EncodeToString(h.Sum(nil)[:6])
}

// Init sets random initial weights from rng: small normal embeddings (row 0
// stays zero), Glorot-uniform layers and zero biases.
func (m *Model) Init(rng *rand.Rand) {
	d := m.dim
	for i := d; i < len(m.Emb); i++ { // skip row 0
		m.Emb[i] = float32(rng.NormFloat64() * 0.1)
	}
	in := InputDim(d)
	glorot(rng, m.W1, in, m.hidden)
	clear(m.W2) // the network starts as a no-op on top of the prior
	clear(m.B1)
	clear(m.B2)
	clear(m.Ws) // the wide path starts at zero and grows where it helps
	clear(m.Sparse)
}

func glorot(rng *rand.Rand, w []float32, fanIn, fanOut int) {
	limit := math.Sqrt(6 / float64(fanIn+fanOut))
	for i := range w {
		w[i] = float32((2*rng.Float64() - 1) * limit)
	}
}
