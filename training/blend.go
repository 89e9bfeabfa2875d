package training

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"

	"switchyard/classifier"
	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/features"
	"switchyard/training/frontier"
)

// Blend is how the predictor's three parts add up to each model's logit:
// the per-task prior, plus Network times the network's part, plus Linear
// times the sparse linear path's part. Training chooses the weights by the
// routing objective (AIQ) on out-of-fold predictions of the training part.
type Blend struct {
	Network float64 `json:"network"`
	Linear  float64 `json:"linear"`
	// AIQ is the out-of-fold AIQ of each candidate, keyed "network,linear".
	AIQ map[string]float64 `json:"out_of_fold_aiq,omitempty"`
	// Examples is the number of held-out prompts that judged the
	// candidates. When training has task labels and task dropout, each
	// labelled prompt is routed twice, with and without its label, so that
	// the blend and its calibration serve both kinds of traffic.
	Examples int `json:"examples"`
}

// blendGrid are the candidate weights of each part: 0 leaves a part out, 1
// takes it as fitted, values between shrink it towards the prior.
var blendGrid = [...]float64{0, 0.25, 0.5, 0.75, 1}

// minTuneExamples is the least number of full-information training examples
// (every model observed) that the blend is judged on; with fewer, the
// network is used alone as before.
const minTuneExamples = 100

// parts are one example's logits split by part: the prior, and what the
// network and the linear path each add to it.
type parts struct {
	prior, network, linear []float32
	labels, weights        []float32
	unlabelledCopy         bool // a labelled prompt routed again without its label
}

// tuneBlend fits the network and the linear path on all but one of
// Settings.TuneFolds folds of train (by prompt id), predicts the held-out fold, and
// chooses the blend whose routing on these out-of-fold predictions has the
// highest AIQ at the given per-model costs. It returns nil when train has too
// few full-information examples to judge by.
func (t *Trainer) tuneBlend(ctx context.Context, spec features.Spec, models []string, train, val []Example) (*Blend, []parts, error) {
	k := t.Settings.TuneFolds
	if k == 0 {
		k = 3
		if len(train) <= 5000 {
			k = 5
		}
	}
	fold := make([]int, len(train))
	full := 0
	for i := range train {
		fold[i] = int(datasets.SaltedHash("tune", train[i].PromptID) % uint64(k))
		if fullInformation(&train[i]) {
			full++
		}
	}
	if full < minTuneExamples || !spread(t.Costs) {
		return nil, nil, nil // nothing to judge by: no frontier, or too few prompts on it
	}
	held := make([][]parts, k)
	errs := make([]error, k)
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for f := 0; f < k; f++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			held[f], errs[f] = t.outOfFold(ctx, spec, models, train, val, fold, f)
		}()
	}
	wg.Wait()
	var oof []parts
	for f := range held {
		if errs[f] != nil {
			return nil, nil, errs[f]
		}
		oof = append(oof, held[f]...)
	}
	b := chooseBlend(oof, t.Costs)
	b.Examples = 0
	for _, p := range oof {
		if !p.unlabelledCopy {
			b.Examples++
		}
	}
	return b, oof, nil
}

// outOfFold trains on every fold but f and returns the parts of fold f's
// full-information examples.
func (t *Trainer) outOfFold(ctx context.Context, spec features.Spec, models []string, train, val []Example, fold []int, f int) ([]parts, error) {
	var in, out []Example
	for i := range train {
		switch {
		case fold[i] != f:
			in = append(in, train[i])
		case fullInformation(&train[i]):
			out = append(out, train[i])
		}
	}
	if len(in) == 0 || len(out) == 0 {
		return nil, nil
	}
	net, _, err := t.fitNetwork(ctx, spec, models, in, val, nil)
	if err != nil {
		return nil, fmt.Errorf("tune: fold %d: %w", f, err)
	}
	lp, err := fitLinearPath(ctx, net, in, t.Settings)
	if err != nil {
		return nil, fmt.Errorf("tune: fold %d: %w", f, err)
	}
	nout := len(models)
	var a classifier.Activations
	res := make([]parts, 0, len(out))
	for i := range out {
		v := out[i].Vec
		tasks := []int32{v.TaskID}
		if v.TaskID > 0 && t.Settings.TaskDropout > 0 {
			tasks = append(tasks, 0) // judged with and without its label
		}
		for k, task := range tasks {
			v.TaskID = task
			p := parts{prior: make([]float32, nout), network: make([]float32, nout), linear: make([]float32, nout),
				labels: out[i].Labels, weights: out[i].Weights, unlabelledCopy: k > 0}
			copy(p.prior, net.Prior[int(task)*nout:int(task)*nout+nout])
			net.Forward(&v, &a)
			lp.logits(net, &v, task, p.linear)
			for j := range p.prior {
				p.network[j] = a.Logits[j] - p.prior[j]
				p.linear[j] -= p.prior[j]
			}
			res = append(res, p)
		}
	}
	return res, nil
}

// chooseBlend returns the grid's blend with the highest AIQ on oof. Ties
// keep the earlier candidate; the network alone is tried first.
func chooseBlend(oof []parts, costs []float64) *Blend {
	type cand struct{ net, lin float64 }
	cands := []cand{{1, 0}}
	for _, n := range blendGrid {
		for _, l := range blendGrid {
			if n != 1 || l != 0 {
				cands = append(cands, cand{n, l})
			}
		}
	}
	var bars []float64
	for i := 0; i <= 20; i++ {
		bars = append(bars, float64(i)/20)
	}
	rules := frontier.Sweep(bars, 30, [][]float64{costs}) // the same settings judge every candidate
	aiq := make([]float64, len(cands))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for c := range cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			aiq[c] = routingAIQ(oof, cands[c].net, cands[c].lin, costs, rules)
		}()
	}
	wg.Wait()
	b := &Blend{AIQ: map[string]float64{}}
	best := 0
	for c, v := range aiq {
		b.AIQ[BlendKey(cands[c].net, cands[c].lin)] = v
		if v > aiq[best] {
			best = c
		}
	}
	b.Network, b.Linear = cands[best].net, cands[best].lin
	return b
}

// routingAIQ routes every out-of-fold example by the decision rule over a
// sweep of quality bars and cost weights, with the blended predictions and
// the given per-model costs, and returns the AIQ of the resulting
// cost–quality envelope between the cheapest and the dearest model.
func routingAIQ(oof []parts, net, lin float64, costs []float64, rules []policy.Rule) float64 {
	if len(oof) == 0 {
		return 0
	}
	nout := len(costs)
	lo, hi := costRange(costs)
	opts := make([]policy.Option, nout)
	for j := range opts {
		opts[j].ExpectedCostUSD = costs[j]
	}
	// the options of each example, then the choice of each rule
	preds := make([][]float64, len(oof))
	for i, p := range oof {
		preds[i] = make([]float64, nout)
		for j := range preds[i] {
			z := float64(p.prior[j]) + net*float64(p.network[j]) + lin*float64(p.linear[j])
			preds[i][j] = 1 / (1 + math.Exp(-z))
		}
	}
	pts := make([]frontier.Point, 0, len(rules))
	for _, r := range rules {
		var q, c float64
		for i, p := range oof {
			for j := range opts {
				opts[j].PredictedQuality = preds[i][j]
			}
			ch, err := r.Pick(opts)
			if err != nil {
				return math.Inf(-1)
			}
			q += float64(p.labels[ch])
			c += costs[ch]
		}
		n := float64(len(oof))
		pts = append(pts, frontier.Point{Setting: r.String(), Cost: c / n, Quality: q / n})
	}
	return frontier.AIQ(frontier.Envelope(pts), lo, hi)
}

// applyBlend folds the blend and the linear path (nil: none) into m's weights, so the
// exported graph is unchanged: the network's output layer and wide path are
// scaled by b.Network, and the linear path's sparse, dense and bias weights,
// scaled by b.Linear, join the sparse path, the wide path's dense rows and
// the output bias.
func applyBlend(m *classifier.Model, lp *linearPath, b *Blend) {
	nout := len(m.Meta.Models)
	a := float32(b.Network)
	for i := range m.W2 {
		m.W2[i] *= a
	}
	for i := range m.Ws {
		m.Ws[i] *= a
	}
	for i := range m.B2 {
		m.B2[i] *= a
	}
	if lp == nil { // a blend without the linear path: its weights stay zero
		return
	}
	l := float32(b.Linear)
	for i := range m.B2 {
		m.B2[i] += l * lp.bias[i]
	}
	for i, w := range lp.sparse {
		m.Sparse[i] = l * w
	}
	denseRow := 2 * m.Meta.EmbeddingDim
	for d := 0; d < features.NumDense; d++ {
		for j := 0; j < nout; j++ {
			m.Ws[(denseRow+d)*nout+j] += l * lp.dense[d*nout+j]
		}
	}
}

// spread reports whether the costs differ: a frontier needs a cheapest and
// a dearest model.
func spread(costs []float64) bool {
	lo, hi := costRange(costs)
	return hi > lo
}

// costRange is the cheapest and the dearest of the costs.
func costRange(costs []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, c := range costs {
		lo, hi = math.Min(lo, c), math.Max(hi, c)
	}
	return lo, hi
}

// BlendKey names a candidate in Blend.AIQ.
func BlendKey(network, linear float64) string { return fmt.Sprintf("%g,%g", network, linear) }

// Chosen is the out-of-fold AIQ of the chosen blend.
func (b *Blend) Chosen() float64 { return b.AIQ[BlendKey(b.Network, b.Linear)] }

// fullInformation reports whether every model was observed on e.
func fullInformation(e *Example) bool {
	for _, w := range e.Weights {
		if w <= 0 {
			return false
		}
	}
	return true
}
