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

// param is one weight tensor with its gradient and Adam moments.
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
	emb    *param
	dense  []*param // w1, b1, w2, b2, ws
	w1, w2 *param
	ws     *param
	b1, b2 *param
	t      int    // steps taken
	grads  *grads // the gradients, in the params' own buffers
}

// grads are the gradients accumulated over a batch, with their scratch
// space.
type grads struct {
	w1, b1, w2, b2, ws, emb []float32
	touched                 []int32 // embedding rows with a gradient in this batch
	mark                    []bool  // mark[row] when row is in touched
	act                     classifier.Activations
	dz, dh, dx              []float32
	drop                    features.Vector // the example with some ids dropped
	dropIDs                 []int32         // its ids' buffer
}

func newState(m *classifier.Model, s Settings) *state {
	st := &state{mod: m, set: s,
		emb: newParam(m.Emb, true),
		w1:  newParam(m.W1, true), b1: newParam(m.B1, false),
		w2: newParam(m.W2, true), b2: newParam(m.B2, false),
		ws: newParam(m.Ws, true),
	}
	st.dense = []*param{st.w1, st.b1, st.w2, st.b2, st.ws}
	st.grads = &grads{w1: st.w1.g, b1: st.b1.g, w2: st.w2.g, b2: st.b2.g, ws: st.ws.g, emb: st.emb.g,
		mark: make([]bool, len(m.Emb)/s.EmbeddingDim)}
	return st
}

// batchWeight is the summed weight of a batch's examples.
func batchWeight(ex []Example, batch []int) float64 {
	var wSum float64
	for _, i := range batch {
		for _, w := range ex[i].Weights {
			wSum += float64(w)
		}
	}
	return wSum
}

// step runs forward and backward over one batch and applies one Adam
// update. It returns the batch's summed weighted loss and summed weight.
func (st *state) step(obj Objective, ex []Example, batch []int, rng *rand.Rand) (float64, float64) {
	wSum := batchWeight(ex, batch)
	if wSum == 0 {
		return 0, 0
	}
	scale := float32(1 / wSum)
	g := st.grads
	var lossSum float64
	for _, i := range batch {
		lossSum += st.backprop(g, obj, &ex[i], st.dropout(g, &ex[i].Vec, rng), scale)
	}
	st.apply()
	return lossSum, wSum
}

// dropout draws the ids and task label of v dropped in training, in g's
// scratch vector; it returns v itself when nothing is dropped.
func (st *state) dropout(g *grads, v *features.Vector, rng *rand.Rand) *features.Vector {
	vec := v
	if st.set.IDDropout > 0 {
		g.dropIDs = g.dropIDs[:0]
		for _, id := range v.IDs {
			if rng.Float64() >= st.set.IDDropout {
				g.dropIDs = append(g.dropIDs, id)
			}
		}
		g.drop.IDs, g.drop.TaskID, g.drop.Dense = g.dropIDs, v.TaskID, v.Dense
		vec = &g.drop
	}
	if st.set.TaskDropout > 0 && vec.TaskID > 0 && rng.Float64() < st.set.TaskDropout {
		if vec != &g.drop {
			g.drop.IDs, g.drop.Dense = v.IDs, v.Dense
		}
		g.drop.TaskID = 0 // trained as a prompt without label too
		vec = &g.drop
	}
	return vec
}

// backprop adds the gradient of example e (as vec, after dropout) at
// weight scale into g and returns its weighted loss.
func (st *state) backprop(g *grads, obj Objective, e *Example, vec *features.Vector, scale float32) float64 {
	m := st.mod
	d, hid := st.set.EmbeddingDim, st.set.Hidden
	nout := len(m.Meta.Models)
	g.dz = grow(g.dz, nout)
	g.dh = grow(g.dh, hid)
	g.dx = grow(g.dx, classifier.InputDim(d))
	a := &g.act
	m.Forward(vec, a)
	seen := false
	var lossSum float64
	for j, p := range a.Out {
		w := e.Weights[j]
		if w == 0 {
			g.dz[j] = 0
			continue
		}
		lossSum += obj.Loss(p, e.Labels[j], w)
		g.dz[j] = obj.GradLogit(p, e.Labels[j], w) * scale
		seen = true
	}
	if !seen {
		return lossSum
	}
	// output layer
	for k, hk := range a.H {
		row := g.w2[k*nout : k*nout+nout]
		wrow := m.W2[k*nout : k*nout+nout]
		var s float32
		for j, dz := range g.dz {
			row[j] += hk * dz
			s += wrow[j] * dz
		}
		if hk > 0 {
			g.dh[k] = s
		} else {
			g.dh[k] = 0
		}
	}
	for j, dz := range g.dz {
		g.b2[j] += dz
	}
	// hidden layer
	clear(g.dx)
	for k, xk := range a.X {
		gRow := g.w1[k*hid : k*hid+hid]
		wrow := m.W1[k*hid : k*hid+hid]
		var s float32
		for j, dh := range g.dh {
			if xk != 0 {
				gRow[j] += xk * dh
			}
			s += wrow[j] * dh
		}
		// the wide path: logits += x · Ws
		wsg := g.ws[k*nout : k*nout+nout]
		wsw := m.Ws[k*nout : k*nout+nout]
		for j, dz := range g.dz {
			if xk != 0 {
				wsg[j] += xk * dz
			}
			s += wsw[j] * dz
		}
		g.dx[k] = s
	}
	for j, dh := range g.dh {
		g.b1[j] += dh
	}
	// embeddings: the bag mean spreads its gradient evenly over its ids
	if a.NIDs > 0 {
		inv := 1 / float32(a.NIDs)
		for _, id := range vec.IDs {
			if id > 0 {
				g.addRow(id, g.dx[:d], inv)
			}
		}
	}
	if vec.TaskID > 0 {
		g.addRow(vec.TaskID, g.dx[d:2*d], 1)
	}
	return lossSum
}

func (g *grads) addRow(id int32, grad []float32, scale float32) {
	d := len(grad)
	if !g.mark[id] {
		g.mark[id] = true
		g.touched = append(g.touched, id)
	}
	row := g.emb[int(id)*d : int(id)*d+d]
	for j, x := range grad {
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
	lr := float32(o.LearningRate * math.Sqrt(c2) / c1)
	b1, b2, eps := float32(o.Beta1), float32(o.Beta2), float32(o.Epsilon)
	l2 := float32(st.set.L2)
	upd := func(p *param, lo, hi int) {
		w, g, m, v := p.w[lo:hi], p.g[lo:hi], p.m[lo:hi], p.v[lo:hi]
		for i := range w {
			gi := g[i]
			if p.decay {
				gi += l2 * w[i]
			}
			m[i] = b1*m[i] + (1-b1)*gi
			v[i] = b2*v[i] + (1-b2)*gi*gi
			w[i] -= lr * m[i] / (float32(math.Sqrt(float64(v[i]))) + eps)
			g[i] = 0
		}
	}
	for _, p := range st.dense {
		upd(p, 0, len(p.w))
	}
	d := st.set.EmbeddingDim
	for _, id := range st.grads.touched {
		upd(st.emb, int(id)*d, int(id)*d+d)
		st.grads.mark[id] = false
	}
	st.grads.touched = st.grads.touched[:0]
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
