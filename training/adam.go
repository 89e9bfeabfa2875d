package training

import (
	"fmt"
	"math"
	"math/rand"

	"switchyard/classifier"
	"switchyard/features"
)

// Adam is the optimiser: Adam with bias correction. Embedding rows are
// updated lazily, only when a batch touches them, so a step costs what the
// batch's ids cost, not the size of the id space.
type Adam struct {
	LearningRate float64
	Beta1        float64
	Beta2        float64
	Epsilon      float64
}

func (a Adam) validate() error {
	if !(a.LearningRate > 0) || !(a.Beta1 >= 0 && a.Beta1 < 1) || !(a.Beta2 >= 0 && a.Beta2 < 1) || !(a.Epsilon > 0) {
		return fmt.Errorf("settings: adam %+v: want learning rate > 0, betas in [0,1), epsilon > 0", a)
	}
	return nil
}

// param is one dense weight tensor with its gradient and Adam moments.
type param struct {
	w, g, m, v []float32
	decay      bool // L2 applies
}

func newParam(w []float32, decay bool) *param {
	n := len(w)
	return &param{w: w, g: make([]float32, n), m: make([]float32, n), v: make([]float32, n), decay: decay}
}

// state is the optimiser state of one training run.
type state struct {
	mod    *classifier.Model
	set    Settings
	dense  []*param // w1, b1, w2, b2, ws
	w1, w2 *param
	ws     *param
	b1, b2 *param
	// mv holds each embedding row's two moments side by side (d first
	// moments, then d second moments), so that an update reads one row of
	// weights and one of moments for each row touched at random.
	mv      []float32
	touched []int32   // embedding rows with a gradient in this batch
	grad    []float32 // their gradients, in the order of touched
	slot    []int32   // slot[row]: 1 + the row's index in touched; 0 when untouched
	sink    float32   // keeps the loads of apply's first pass
	t       int       // steps taken
	act     classifier.Activations
	dz, dh  []float32
	dx      []float32
	drop    features.Vector // the example with some ids dropped
}

func newState(m *classifier.Model, s Settings) *state {
	st := &state{mod: m, set: s,
		w1: newParam(m.W1, true), b1: newParam(m.B1, false),
		w2: newParam(m.W2, true), b2: newParam(m.B2, false),
		ws:   newParam(m.Ws, true),
		mv:   make([]float32, 2*len(m.Emb)),
		slot: make([]int32, len(m.Emb)/s.EmbeddingDim),
	}
	st.dense = []*param{st.w1, st.b1, st.w2, st.b2, st.ws}
	return st
}

// step runs forward and backward over one batch and applies one Adam
// update. It returns the batch's summed weighted loss and summed weight.
func (st *state) step(obj Objective, ex []Example, batch []int, rng *rand.Rand) (float64, float64) {
	m := st.mod
	d, hid := st.set.EmbeddingDim, st.set.Hidden
	nout := len(m.Meta.Models)
	in := classifier.InputDim(d)
	st.dz = grow(st.dz, nout)
	st.dh = grow(st.dh, hid)
	st.dx = grow(st.dx, in)

	var wSum float64
	for _, i := range batch {
		for _, w := range ex[i].Weights {
			wSum += float64(w)
		}
	}
	if wSum == 0 {
		return 0, 0
	}
	scale := float32(1 / wSum)
	var lossSum float64
	for _, i := range batch {
		e := &ex[i]
		a := &st.act
		vec := &e.Vec
		if st.set.IDDropout > 0 {
			st.drop.IDs = st.drop.IDs[:0]
			for _, id := range e.Vec.IDs {
				if rng.Float64() >= st.set.IDDropout {
					st.drop.IDs = append(st.drop.IDs, id)
				}
			}
			st.drop.TaskID, st.drop.Dense = e.Vec.TaskID, e.Vec.Dense
			vec = &st.drop
		}
		if st.set.TaskDropout > 0 && vec.TaskID > 0 && rng.Float64() < st.set.TaskDropout {
			if vec != &st.drop {
				st.drop.IDs, st.drop.Dense = append(st.drop.IDs[:0], e.Vec.IDs...), e.Vec.Dense
			}
			st.drop.TaskID = 0 // trained as a prompt without label too
			vec = &st.drop
		}
		m.Forward(vec, a)
		seen := false
		for j, p := range a.Out {
			w := e.Weights[j]
			if w == 0 {
				st.dz[j] = 0
				continue
			}
			lossSum += obj.Loss(p, e.Labels[j], w)
			st.dz[j] = obj.GradLogit(p, e.Labels[j], w) * scale
			seen = true
		}
		if !seen {
			continue
		}
		// output layer
		for k, hk := range a.H {
			row := st.w2.g[k*nout : k*nout+nout]
			wrow := m.W2[k*nout : k*nout+nout]
			var s float32
			for j, dz := range st.dz {
				row[j] += hk * dz
				s += wrow[j] * dz
			}
			if hk > 0 {
				st.dh[k] = s
			} else {
				st.dh[k] = 0
			}
		}
		for j, dz := range st.dz {
			st.b2.g[j] += dz
		}
		// hidden layer
		clear(st.dx)
		for k, xk := range a.X {
			gRow := st.w1.g[k*hid : k*hid+hid]
			wrow := m.W1[k*hid : k*hid+hid]
			var s float32
			for j, dh := range st.dh {
				if xk != 0 {
					gRow[j] += xk * dh
				}
				s += wrow[j] * dh
			}
			// the wide path: logits += x · Ws
			wsg := st.ws.g[k*nout : k*nout+nout]
			wsw := m.Ws[k*nout : k*nout+nout]
			for j, dz := range st.dz {
				if xk != 0 {
					wsg[j] += xk * dz
				}
				s += wsw[j] * dz
			}
			st.dx[k] = s
		}
		for j, dh := range st.dh {
			st.b1.g[j] += dh
		}
		// embeddings: the bag mean spreads its gradient evenly over its ids
		if a.NIDs > 0 {
			inv := 1 / float32(a.NIDs)
			for _, id := range vec.IDs {
				if id > 0 {
					st.addRow(id, st.dx[:d], inv)
				}
			}
		}
		if vec.TaskID > 0 {
			st.addRow(vec.TaskID, st.dx[d:2*d], 1)
		}
	}
	st.apply()
	return lossSum, wSum
}

// addRow adds g·scale to the gradient of embedding row id.
func (st *state) addRow(id int32, g []float32, scale float32) {
	d := len(g)
	k := st.slot[id]
	if k == 0 {
		st.touched = append(st.touched, id)
		k = int32(len(st.touched))
		st.slot[id] = k
		if n := int(k) * d; n > len(st.grad) {
			st.grad = append(st.grad, make([]float32, n-len(st.grad))...)
		}
	}
	row := st.grad[int(k-1)*d : int(k)*d]
	for j, x := range g {
		row[j] += x * scale
	}
}

// apply takes one Adam step on every dense parameter and on the touched
// embedding rows, then clears the gradients.
func (st *state) apply() {
	st.t++
	o := st.set.Optimizer
	c1 := 1 - math.Pow(o.Beta1, float64(st.t))
	c2 := 1 - math.Pow(o.Beta2, float64(st.t))
	a := adamStep{lr: float32(o.LearningRate * math.Sqrt(c2) / c1), b1: float32(o.Beta1), b2: float32(o.Beta2),
		eps: float32(o.Epsilon), l2: float32(st.set.L2)}
	d := st.set.EmbeddingDim
	emb := st.mod.Emb
	for _, q := range st.dense {
		a.update(q.w, q.g, q.m, q.v, q.decay)
	}
	// the rows lie at random in tables larger than the caches: a first
	// pass of independent loads brings them in together, so that the
	// updates do not wait on memory one row at a time
	var sink float32
	for _, id := range st.touched {
		r := int(id) * d
		sink += emb[r] + st.mv[2*r] + st.mv[2*r+d]
	}
	st.sink = sink
	for k, id := range st.touched {
		r := int(id) * d
		mv := st.mv[2*r : 2*r+2*d]
		a.update(emb[r:r+d], st.grad[k*d:k*d+d], mv[:d], mv[d:], true)
		st.slot[id] = 0
	}
	st.touched = st.touched[:0]
}

// adamStep is one Adam step's constants.
type adamStep struct{ lr, b1, b2, eps, l2 float32 }

// update applies the step to weights w with gradients g and moments m and
// v, and clears g.
func (a adamStep) update(w, g, m, v []float32, decay bool) {
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for i := range w {
		gi := g[i]
		if decay {
			gi += a.l2 * w[i]
		}
		m[i] = a.b1*m[i] + (1-a.b1)*gi
		v[i] = a.b2*v[i] + (1-a.b2)*gi*gi
		w[i] -= a.lr * m[i] / (float32(math.Sqrt(float64(v[i]))) + a.eps)
		g[i] = 0
	}
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
