package training

import (
	"context"
	"fmt"
	"math"
	"math/rand"

	"switchyard/classifier"
	"switchyard/features"
)

// linearPath is a logistic regression per model on the bag of n-gram ids
// (each present id worth classifier.SparseScale of the count) and the dense
// signals, on top of the per-task prior logit: the model's sparse linear
// path, fitted on its own so that it can be blended with the network.
type linearPath struct {
	sparse []float32 // buckets × nout
	dense  []float32 // NumDense × nout
	bias   []float32 // nout
	nout   int
}

// fitLinearPath fits the linear path by AdaGrad on the weighted
// cross-entropy (labels in [0,1]), with an L2 penalty on the weights, for
// s.LinearEpochs passes in an order drawn from s.Seed, on top of each
// example's prior logits (m.Prior's row of its task; row 0 when task
// dropout hides the label).
func fitLinearPath(ctx context.Context, m *classifier.Model, ex []Example, s Settings) (*linearPath, error) {
	nout := len(m.Meta.Models)
	buckets := m.Meta.FeatureSpec.Buckets
	lp := &linearPath{sparse: make([]float32, buckets*nout), dense: make([]float32, features.NumDense*nout),
		bias: make([]float32, nout), nout: nout}
	gSparse := make([]float32, len(lp.sparse))
	gDense := make([]float32, len(lp.dense))
	gBias := make([]float32, nout)
	lr, l2 := float32(s.LinearRate), float32(s.LinearL2)
	const eps = 1e-8
	rng := rand.New(rand.NewSource(s.Seed + 7919))
	order := make([]int, len(ex))
	for i := range order {
		order[i] = i
	}
	z := make([]float32, nout)
	grad := make([]float32, nout)
	for e := 0; e < s.LinearEpochs; e++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("linear path: %w", err)
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			x := &ex[i]
			task := x.Vec.TaskID
			if s.TaskDropout > 0 && task > 0 && rng.Float64() < s.TaskDropout {
				task = 0 // as the network: also trained without the label
			}
			lp.logits(m, &x.Vec, task, z)
			any := false
			for j := range grad {
				grad[j] = 0
				if w := x.Weights[j]; w > 0 {
					grad[j] = w * (classifier.Sigmoid(z[j]) - x.Labels[j])
					any = true
				}
			}
			if !any {
				continue
			}
			for j, g := range grad {
				gBias[j] += g * g
				lp.bias[j] -= lr * g / float32(math.Sqrt(float64(gBias[j])+eps))
			}
			update := func(w, g2 []float32, xv float32) {
				for j, g := range grad {
					if g == 0 && w[j] == 0 {
						continue
					}
					gj := g*xv + l2*w[j]
					g2[j] += gj * gj
					w[j] -= lr * gj / float32(math.Sqrt(float64(g2[j])+eps))
				}
			}
			if n := presentIDs(&x.Vec); n > 0 {
				sc := classifier.SparseScale(n)
				for _, id := range x.Vec.IDs {
					if id > 0 {
						r := int(id) * nout
						update(lp.sparse[r:r+nout], gSparse[r:r+nout], sc)
					}
				}
			}
			for d, xv := range x.Vec.Dense {
				if xv != 0 {
					update(lp.dense[d*nout:d*nout+nout], gDense[d*nout:d*nout+nout], xv)
				}
			}
		}
	}
	return lp, nil
}

// logits writes the path's logits for v, with the prior of task (v's own
// task id, or 0 for none), into z.
func (lp *linearPath) logits(m *classifier.Model, v *features.Vector, task int32, z []float32) {
	nout := lp.nout
	copy(z, m.Prior[int(task)*nout:int(task)*nout+nout])
	for j, b := range lp.bias {
		z[j] += b
	}
	if n := presentIDs(v); n > 0 {
		sc := classifier.SparseScale(n)
		for _, id := range v.IDs {
			if id > 0 {
				for j, w := range lp.sparse[int(id)*nout : int(id)*nout+nout] {
					z[j] += sc * w
				}
			}
		}
	}
	for d, xv := range v.Dense {
		if xv != 0 {
			for j, w := range lp.dense[d*nout : d*nout+nout] {
				z[j] += xv * w
			}
		}
	}
}

func presentIDs(v *features.Vector) int {
	n := 0
	for _, id := range v.IDs {
		if id > 0 {
			n++
		}
	}
	return n
}
