package eval

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"sort"

	"switchyard/classifier"
	"switchyard/features"
	"switchyard/training"
)

// Predictor is a way of predicting every pool model's quality on a prompt,
// fitted on training prompts. The learned router and the learned baselines
// are Predictors; routing them all through the same rule makes them
// comparable.
type Predictor interface {
	Name() string
	// Fit learns from the training prompts' ground truth.
	Fit(ctx context.Context, b *Bench, train []int) error
	// Predict returns [len(test)][len(models)] predicted qualities in [0,1].
	Predict(b *Bench, test []int) [][]float64
}

// Learned is Switchyard's predictor, trained as `switchyard train` does.
type Learned struct {
	Trainer training.Trainer
	Spec    features.Spec
	Model   *classifier.Model // set by Fit
}

// Name implements Predictor.
func (l *Learned) Name() string { return "learned" }

// Fit implements Predictor: a tenth of the training prompts (by hash) is held
// out for early stopping.
func (l *Learned) Fit(ctx context.Context, b *Bench, train []int) error {
	ex := make([]training.Example, len(train))
	for k, i := range train {
		lab := make([]float32, len(b.Models))
		w := make([]float32, len(b.Models))
		for j := range lab {
			lab[j], w[j] = float32(b.Quality[i][j]), 1
		}
		ex[k] = training.Example{PromptID: b.PromptIDs[i], Vec: b.Vecs[i], Labels: lab, Weights: w}
	}
	tr, val := training.Split(ex, "validation", 0.1)
	t := l.Trainer
	if t.Costs == nil { // the blend is judged at the prices the router will see
		t.Costs = make([]float64, len(b.Models))
		for _, row := range b.ExpectedCosts(train, train) {
			for j, c := range row {
				t.Costs[j] += c / float64(len(train))
			}
		}
	}
	m, _, err := t.Train(ctx, l.Spec, b.Models, tr, val)
	if err != nil {
		return fmt.Errorf("learned: %w", err)
	}
	l.Model = m
	return nil
}

// Predict implements Predictor.
func (l *Learned) Predict(b *Bench, test []int) [][]float64 {
	var a classifier.Activations
	out := make([][]float64, len(test))
	for k, i := range test {
		l.Model.Forward(&b.Vecs[i], &a)
		out[k] = make([]float64, len(a.Out))
		for j, p := range a.Out {
			out[k][j] = float64(p)
		}
	}
	return out
}

// PerTask predicts each model's mean training quality on the prompt's task
// label (the overall mean for a task not seen in training): what a
// category-based router does.
type PerTask struct {
	means  map[string][]float64
	global []float64
}

// Name implements Predictor.
func (p *PerTask) Name() string { return "per-task" }

// Fit implements Predictor.
func (p *PerTask) Fit(_ context.Context, b *Bench, train []int) error {
	sums, counts := map[string][]float64{}, map[string]float64{}
	p.global = make([]float64, len(b.Models))
	for _, i := range train {
		t := b.Tasks[i]
		if sums[t] == nil {
			sums[t] = make([]float64, len(b.Models))
		}
		for j, q := range b.Quality[i] {
			sums[t][j] += q
			p.global[j] += q
		}
		counts[t]++
	}
	for j := range p.global {
		p.global[j] /= math.Max(1, float64(len(train)))
	}
	p.means = map[string][]float64{}
	for t, s := range sums {
		for j := range s {
			s[j] /= counts[t]
		}
		p.means[t] = s
	}
	return nil
}

// Predict implements Predictor.
func (p *PerTask) Predict(b *Bench, test []int) [][]float64 {
	out := make([][]float64, len(test))
	for k, i := range test {
		m, ok := p.means[b.Tasks[i]]
		if !ok {
			m = p.global
		}
		out[k] = append([]float64(nil), m...)
	}
	return out
}

// KNN predicts the mean quality of the K training prompts most similar to
// the prompt by cosine similarity of the same hashed features (n-gram ids
// and task id, counted and L2-normalised).
type KNN struct {
	K      int
	post   map[int32][]posting
	train  []int
	global []float64
}

type posting struct {
	doc int // index into train
	w   float32
}

// Name implements Predictor.
func (n *KNN) Name() string { return fmt.Sprintf("knn-%d", n.K) }

// weighted is one dimension of a sparse vector.
type weighted struct {
	id int32
	w  float32
}

// sparse returns v's n-gram ids and task id, counted and L2-normalised, in
// id order (so that sums over it, and the neighbours they rank, are the same
// in every run).
func sparse(v *features.Vector) []weighted {
	counts := make(map[int32]float32, len(v.IDs)+1)
	for _, id := range v.IDs {
		counts[id]++
	}
	if v.TaskID > 0 {
		counts[-v.TaskID] += 4 // its own dimension, weighted like a few shared words
	}
	out := make([]weighted, 0, len(counts))
	for id, c := range counts {
		out = append(out, weighted{id, c})
	}
	slices.SortFunc(out, func(a, b weighted) int { return cmp.Compare(a.id, b.id) })
	var norm float64
	for _, x := range out {
		norm += float64(x.w) * float64(x.w)
	}
	inv := float32(1 / math.Sqrt(math.Max(norm, 1e-12)))
	for k := range out {
		out[k].w *= inv
	}
	return out
}

// Fit implements Predictor.
func (n *KNN) Fit(_ context.Context, b *Bench, train []int) error {
	if n.K < 1 {
		return fmt.Errorf("knn: k %d must be positive", n.K)
	}
	n.train = train
	n.post = map[int32][]posting{}
	n.global = make([]float64, len(b.Models))
	for d, i := range train {
		for _, x := range sparse(&b.Vecs[i]) {
			n.post[x.id] = append(n.post[x.id], posting{d, x.w})
		}
		for j, q := range b.Quality[i] {
			n.global[j] += q / float64(len(train))
		}
	}
	return nil
}

// Predict implements Predictor.
func (n *KNN) Predict(b *Bench, test []int) [][]float64 {
	sim := make([]float32, len(n.train))
	var touched []int
	out := make([][]float64, len(test))
	type nb struct {
		doc int
		s   float32
	}
	var cand []nb
	for k, i := range test {
		touched = touched[:0]
		for _, x := range sparse(&b.Vecs[i]) {
			for _, p := range n.post[x.id] {
				if sim[p.doc] == 0 {
					touched = append(touched, p.doc)
				}
				sim[p.doc] += x.w * p.w
			}
		}
		// the K best by similarity, then document order (a total order, so
		// the neighbours are the same however they are found)
		cand = cand[:0]
		before := func(a, b nb) bool { return a.s > b.s || (a.s == b.s && a.doc < b.doc) }
		for _, d := range touched {
			c := nb{d, sim[d]}
			sim[d] = 0
			if len(cand) == n.K && !before(c, cand[n.K-1]) {
				continue
			}
			at := sort.Search(len(cand), func(x int) bool { return before(c, cand[x]) })
			if len(cand) < n.K {
				cand = append(cand, nb{})
			}
			copy(cand[at+1:], cand[at:len(cand)-1])
			cand[at] = c
		}
		row := make([]float64, len(b.Models))
		if len(cand) == 0 {
			copy(row, n.global)
		} else {
			for _, c := range cand {
				for j, q := range b.Quality[n.train[c.doc]] {
					row[j] += q / float64(len(cand))
				}
			}
		}
		out[k] = row
	}
	return out
}

// Logistic is one logistic regression per model over the same features: the
// normalised bag of n-gram ids, the task id and the dense signals, trained
// with AdaGrad and L2.
type Logistic struct {
	Epochs int
	LR     float64
	L2     float64
	Seed   int64
	w      [][]float64 // [feature][model], features: ids (buckets), task ids (buckets), dense
	bias   []float64
	nb     int
}

// Name implements Predictor.
func (l *Logistic) Name() string { return "logistic" }

type feat struct {
	idx int
	x   float64
}

func (l *Logistic) feats(v *features.Vector, dst []feat) []feat {
	dst = dst[:0]
	if n := len(v.IDs); n > 0 {
		x := 1 / math.Sqrt(float64(n))
		for _, id := range v.IDs {
			dst = append(dst, feat{int(id), x})
		}
	}
	if v.TaskID > 0 {
		dst = append(dst, feat{l.nb + int(v.TaskID), 1})
	}
	for d, x := range v.Dense {
		dst = append(dst, feat{2*l.nb + d, float64(x)})
	}
	return dst
}

// Fit implements Predictor.
func (l *Logistic) Fit(ctx context.Context, b *Bench, train []int) error {
	if len(train) == 0 {
		return fmt.Errorf("logistic: no training prompts")
	}
	l.nb = 0 // the id space actually used
	for _, v := range b.Vecs {
		for _, id := range v.IDs {
			l.nb = max(l.nb, int(id)+1)
		}
		l.nb = max(l.nb, int(v.TaskID)+1)
	}
	nm := len(b.Models)
	nf := 2*l.nb + features.NumDense
	l.w = make([][]float64, nf)
	g2 := make([][]float64, nf)
	l.bias = make([]float64, nm)
	bg2 := make([]float64, nm)
	rng := rand.New(rand.NewSource(l.Seed))
	order := append([]int(nil), train...)
	var fs []feat
	grad := make([]float64, nm)
	for e := 0; e < l.Epochs; e++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			fs = l.feats(&b.Vecs[i], fs)
			for j := 0; j < nm; j++ {
				z := l.bias[j]
				for _, f := range fs {
					if w := l.w[f.idx]; w != nil {
						z += w[j] * f.x
					}
				}
				p := 1 / (1 + math.Exp(-z))
				grad[j] = p - b.Quality[i][j]
			}
			for j, g := range grad {
				bg2[j] += g * g
				l.bias[j] -= l.LR * g / math.Sqrt(bg2[j]+1e-8)
			}
			for _, f := range fs {
				if l.w[f.idx] == nil {
					l.w[f.idx] = make([]float64, nm)
					g2[f.idx] = make([]float64, nm)
				}
				w, gg := l.w[f.idx], g2[f.idx]
				for j, g := range grad {
					gj := g*f.x + l.L2*w[j]
					gg[j] += gj * gj
					w[j] -= l.LR * gj / math.Sqrt(gg[j]+1e-8)
				}
			}
		}
	}
	return nil
}

// Predict implements Predictor.
func (l *Logistic) Predict(b *Bench, test []int) [][]float64 {
	out := make([][]float64, len(test))
	var fs []feat
	for k, i := range test {
		fs = l.feats(&b.Vecs[i], fs)
		row := make([]float64, len(b.Models))
		for j := range row {
			z := l.bias[j]
			for _, f := range fs {
				if f.idx < len(l.w) && l.w[f.idx] != nil {
					z += l.w[f.idx][j] * f.x
				}
			}
			row[j] = 1 / (1 + math.Exp(-z))
		}
		out[k] = row
	}
	return out
}
