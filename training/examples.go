// Package training fits the predictor of package classifier from logged or
// benchmark outcomes: it joins prompts with outcomes into examples, trains the
// embedding-bag network with mini-batch Adam on weighted binary cross-entropy,
// early-stops on a validation split by prompt, and reports per-model AUC and
// Brier score.
package training

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"sort"

	"switchyard/datasets"
	"switchyard/features"
)

// Example is one prompt with the observed quality of some models. A model
// whose Weight is 0 was not observed on this prompt (bandit feedback sees
// one model per prompt; benchmarks may have holes).
type Example struct {
	PromptID string
	Vec      features.Vector
	Labels   []float32 // per model, quality in [0,1]
	Weights  []float32 // per model, >= 0; 1 for full-information benchmark data
}

// Join builds one example per prompt from a dataset, for the given models
// (in output order). Outcomes of other models are ignored; prompts with no
// outcome for any of the models are dropped. It also returns the mean output
// tokens of each model over its outcomes (0 where it has none) and a
// fingerprint of the data used.
func Join(ds *datasets.Dataset, ext *features.Extractor, models []string) ([]Example, map[string]float64, string, error) {
	col := make(map[string]int, len(models))
	for i, m := range models {
		if _, dup := col[m]; dup {
			return nil, nil, "", fmt.Errorf("join: model %q named twice", m)
		}
		col[m] = i
	}
	byPrompt := make(map[string]int, len(ds.Prompts))
	for i, p := range ds.Prompts {
		byPrompt[p.PromptID] = i
	}
	exIndex := make(map[string]int, len(ds.Prompts))
	var out []Example
	tokSum := make([]float64, len(models))
	tokN := make([]float64, len(models))
	for _, o := range ds.Outcomes {
		j, ok := col[o.Model]
		if !ok {
			continue
		}
		pi, ok := byPrompt[o.PromptID]
		if !ok {
			return nil, nil, "", fmt.Errorf("join: outcome for prompt %q with no prompt text", o.PromptID)
		}
		if math.IsNaN(o.Quality) || o.Quality < 0 || o.Quality > 1 {
			return nil, nil, "", fmt.Errorf("join: prompt %q model %q: quality %v outside [0,1]", o.PromptID, o.Model, o.Quality)
		}
		k, ok := exIndex[o.PromptID]
		if !ok {
			k = len(out)
			exIndex[o.PromptID] = k
			out = append(out, Example{PromptID: o.PromptID,
				Labels: make([]float32, len(models)), Weights: make([]float32, len(models))})
			p := ds.Prompts[pi]
			ext.Extract(features.Input{Prompt: p.Prompt, Task: p.Task}, &out[k].Vec)
		}
		out[k].Labels[j] = float32(o.Quality)
		out[k].Weights[j] = 1
		if o.OutputTokens > 0 {
			tokSum[j] += float64(o.OutputTokens)
			tokN[j]++
		}
	}
	if len(out) == 0 {
		return nil, nil, "", fmt.Errorf("join: no outcomes for models %v", models)
	}
	toks := make(map[string]float64, len(models))
	for j, m := range models {
		if tokN[j] > 0 {
			toks[m] = tokSum[j] / tokN[j]
		}
	}
	return out, toks, fingerprint(out, models), nil
}

// fingerprint hashes the examples' prompt ids, labels and weights in prompt
// id order, so the same data in any order gives the same fingerprint.
func fingerprint(ex []Example, models []string) string {
	idx := make([]int, len(ex))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return ex[idx[a]].PromptID < ex[idx[b]].PromptID })
	h := sha256.New()
	for _, m := range models {
		h.Write([]byte(m))
		h.Write([]byte{0})
	}
	var buf [4]byte
	for _, i := range idx {
		h.Write([]byte(ex[i].PromptID))
		h.Write([]byte{0})
		for j := range ex[i].Labels {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(ex[i].Labels[j]))
			h.Write(buf[:])
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(ex[i].Weights[j]))
			h.Write(buf[:])
		}
	}
	return "d-" + hex.EncodeToString(h.Sum(nil)[:8])
}

// InHoldout reports whether a prompt falls in the held-out share of a
// deterministic split by a hash of its id and a salt. The same id and salt
// always land on the same side, whatever else is in the data.
func InHoldout(promptID, salt string, share float64) bool {
	return float64(datasets.SaltedHash(salt, promptID)%1_000_000) < share*1_000_000
}

// Split divides examples into a training and a held-out part with InHoldout.
func Split(ex []Example, salt string, share float64) (train, holdout []Example) {
	for _, e := range ex {
		if InHoldout(e.PromptID, salt, share) {
			holdout = append(holdout, e)
		} else {
			train = append(train, e)
		}
	}
	return train, holdout
}
