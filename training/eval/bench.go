// Package eval answers "how good is this router, and compared to what?" on
// a full-information benchmark: it splits the prompts deterministically,
// trains the learned predictor and the baseline predictors on one part, routes
// the other part through the project's one decision rule at many settings, and
// scores every router's cost–quality curve against the ground truth (AIQ,
// quality at the best single model's cost, cost to reach its quality, APGR and
// CPT for two-model pools, calibration).
package eval

import (
	"fmt"
	"math"
	"sort"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/features"
)

// Bench is a full-information benchmark restricted to a pool: every prompt
// has an observed quality and cost for every pool model.
type Bench struct {
	Models      []string
	Prices      []datasets.ModelPrice
	PromptIDs   []string
	Tasks       []string
	Inputs      []features.Input
	InputTokens []int
	Quality     [][]float64 // [prompt][model], ground truth
	Cost        [][]float64 // [prompt][model], ground truth USD
	OutTokens   [][]float64 // [prompt][model]
	Vecs        []features.Vector
	Dropped     int // prompts without a value for every pool model
}

// NewBench restricts ds to the pool (every catalogue model with outcomes when
// pool is empty) and to the prompts where every pool model has an outcome,
// and extracts features with ext.
func NewBench(ds *datasets.Dataset, pool []string, ext *features.Extractor) (*Bench, error) {
	if len(pool) == 0 {
		seen := map[string]bool{}
		for _, o := range ds.Outcomes {
			seen[o.Model] = true
		}
		for _, m := range ds.Catalogue.Models {
			if seen[m.Name] {
				pool = append(pool, m.Name)
			}
		}
	}
	if len(pool) < 2 {
		return nil, fmt.Errorf("bench: a pool needs at least two models, got %v", pool)
	}
	b := &Bench{Models: pool}
	col := map[string]int{}
	for j, m := range pool {
		p, ok := ds.Catalogue.Lookup(m)
		if !ok {
			return nil, fmt.Errorf("bench: pool model %q is not in the catalogue", m)
		}
		if _, dup := col[m]; dup {
			return nil, fmt.Errorf("bench: pool model %q named twice", m)
		}
		col[m] = j
		b.Prices = append(b.Prices, p)
	}
	type cell struct{ q, c, out float64 }
	rows := map[string][]cell{}
	seen := map[string][]bool{}
	for _, o := range ds.Outcomes {
		j, ok := col[o.Model]
		if !ok {
			continue
		}
		if rows[o.PromptID] == nil {
			rows[o.PromptID] = make([]cell, len(pool))
			seen[o.PromptID] = make([]bool, len(pool))
		}
		rows[o.PromptID][j] = cell{o.Quality, o.CostUSD, float64(o.OutputTokens)}
		seen[o.PromptID][j] = true
	}
	for _, p := range ds.Prompts {
		s := seen[p.PromptID]
		complete := s != nil
		for _, ok := range s {
			complete = complete && ok
		}
		if !complete {
			b.Dropped++
			continue
		}
		r := rows[p.PromptID]
		q, c, out := make([]float64, len(pool)), make([]float64, len(pool)), make([]float64, len(pool))
		for j := range r {
			q[j], c[j], out[j] = r[j].q, r[j].c, r[j].out
		}
		in := features.Input{Prompt: p.Prompt, Task: p.Task}
		var v features.Vector
		ext.Extract(in, &v)
		b.PromptIDs = append(b.PromptIDs, p.PromptID)
		b.Tasks = append(b.Tasks, p.Task)
		b.Inputs = append(b.Inputs, in)
		b.InputTokens = append(b.InputTokens, policy.InputTokens(in))
		b.Quality = append(b.Quality, q)
		b.Cost = append(b.Cost, c)
		b.OutTokens = append(b.OutTokens, out)
		b.Vecs = append(b.Vecs, v)
	}
	if len(b.PromptIDs) < 10 {
		return nil, fmt.Errorf("bench: only %d prompts have an outcome for every pool model %v", len(b.PromptIDs), pool)
	}
	return b, nil
}

// ExpectedCosts is what a router knows of each test prompt's cost before
// answering: estimated input tokens at the input price plus each model's mean
// output tokens over the training prompts at the output price.
func (b *Bench) ExpectedCosts(train, test []int) [][]float64 {
	meanOut := make([]float64, len(b.Models))
	for _, i := range train {
		for j := range b.Models {
			meanOut[j] += b.OutTokens[i][j]
		}
	}
	for j := range meanOut {
		meanOut[j] /= math.Max(1, float64(len(train)))
	}
	out := make([][]float64, len(test))
	for k, i := range test {
		out[k] = make([]float64, len(b.Models))
		for j, p := range b.Prices {
			out[k][j] = p.CostUSD(float64(b.InputTokens[i]), meanOut[j])
		}
	}
	return out
}

// singleModel returns each pool model's average true cost and quality on test.
func (b *Bench) singleModel(test []int) (cost, quality []float64) {
	cost, quality = make([]float64, len(b.Models)), make([]float64, len(b.Models))
	for _, i := range test {
		for j := range b.Models {
			cost[j] += b.Cost[i][j]
			quality[j] += b.Quality[i][j]
		}
	}
	n := float64(len(test))
	for j := range cost {
		cost[j] /= n
		quality[j] /= n
	}
	return cost, quality
}

// byPrice returns the pool indices from the cheapest to the dearest list price
// (input + output price).
func (b *Bench) byPrice() []int {
	idx := make([]int, len(b.Models))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(x, y int) bool {
		px := b.Prices[idx[x]].InputUSDPerMTok + b.Prices[idx[x]].OutputUSDPerMTok
		py := b.Prices[idx[y]].InputUSDPerMTok + b.Prices[idx[y]].OutputUSDPerMTok
		return px < py
	})
	return idx
}
