package training

import (
	"fmt"
	"math"
	"time"

	"switchyard/datasets"
	"switchyard/features"
)

// LogStats counts what FromLogs did with the logs.
type LogStats struct {
	Decisions   int     // decisions read
	Used        int     // decisions that became examples
	NoOutcome   int     // no outcome of the chosen model yet
	NoPrompt    int     // prompt not kept (hash only): cannot be featurised
	OtherModels int     // chosen model not in the trained pool
	Shadow      int     // shadow outcomes used (full information for their model)
	Clipped     int     // weights cut at the clip
	MeanWeight  float64 // mean raw weight before normalisation
	// Outcomes counts the outcomes that name a decision, and
	// OutcomesWithoutDecision those of them whose decision is not in the
	// logs (see datasets.CountOutcomeLinks): they cannot be used.
	Outcomes                int
	OutcomesWithoutDecision int
	// Newest is when the newest outcome that became part of an example
	// was stored (the predictor's ObservedUntil).
	Newest time.Time
}

// Links gives the outcome counts back as datasets.OutcomeLinks.
func (st LogStats) Links() datasets.OutcomeLinks {
	return datasets.OutcomeLinks{Linked: st.Outcomes, WithoutDecision: st.OutcomesWithoutDecision}
}

// FromLogs turns bandit feedback into training examples. Each logged
// decision with an outcome of its chosen model gives one example in which only
// the chosen model is observed, with weight min(1/propensity, clip), and the
// weights of all logged examples are then divided by their mean, so that they
// average 1 like full-information benchmark examples (which therefore mix in
// at weight 1). A shadow outcome observes its model on the decision's prompt
// at weight 1: the shadow copy is sent on every request that has one, so it
// needs no correction. Outcomes whose decision is not among decisions are
// counted in the stats (OutcomesWithoutDecision). Expected output tokens
// come from FromLogs' caller (Join) or TokenMeans.
func FromLogs(decisions []datasets.DecisionRecord, outcomes []datasets.OutcomeRecord, ext *features.Extractor, models []string, clip float64) ([]Example, LogStats, error) {
	if !(clip >= 1) {
		return nil, LogStats{}, fmt.Errorf("from logs: clip %v must be at least 1", clip)
	}
	links := datasets.CountOutcomeLinks(decisions, outcomes)
	st := LogStats{Decisions: len(decisions), Outcomes: links.Linked, OutcomesWithoutDecision: links.WithoutDecision}
	b := newBanditSet(models, ext, &st)
	for _, jd := range datasets.JoinDecisions(decisions, outcomes, datasets.JoinOptions{}) {
		d, o := jd.Decision, jd.Outcome
		if o == nil {
			st.NoOutcome++
			continue
		}
		j, ok := b.col[d.Chosen]
		if !ok {
			st.OtherModels++
			continue
		}
		if d.Prompt == "" {
			st.NoPrompt++
			continue
		}
		if !(d.Propensity > 0 && d.Propensity <= 1) {
			return nil, st, fmt.Errorf("from logs: decision %s: propensity %v outside (0,1]", d.DecisionID, d.Propensity)
		}
		if math.IsNaN(o.Quality) || o.Quality < 0 || o.Quality > 1 {
			return nil, st, fmt.Errorf("from logs: decision %s: quality %v outside [0,1]", d.DecisionID, o.Quality)
		}
		w := 1 / d.Propensity
		if w > clip {
			w = clip
			st.Clipped++
		}
		// the split is by prompt: the same text asked twice must not land on
		// both sides, so examples are keyed by the prompt's hash when known
		key := d.DecisionID
		if d.PromptSHA256 != "" {
			key = "sha256:" + d.PromptSHA256
		}
		shadows := make([]observed, len(jd.Shadows))
		for i, s := range jd.Shadows {
			shadows[i] = observed{model: s.Model, quality: s.Quality, at: s.Time}
		}
		b.add(key, features.Input{Prompt: d.Prompt, Task: d.Task}, j, observed{quality: o.Quality, at: o.Time}, w, shadows)
	}
	return b.done(), st, nil
}

// observed is one model's outcome on an example's prompt.
type observed struct {
	model   string
	quality float64
	at      time.Time
}

// banditSet collects the examples of logged decisions: each observes its
// chosen model by bandit feedback, at an inverse-propensity weight, and the
// models of its shadow copies at weight 1; done divides the bandit weights
// by their mean, so that they average 1 like full-information examples.
type banditSet struct {
	col   map[string]int
	n     int
	ext   *features.Extractor
	st    *LogStats
	out   []Example
	cells [][2]int // example, model of each bandit observation
	wsum  float64
}

func newBanditSet(models []string, ext *features.Extractor, st *LogStats) *banditSet {
	col := make(map[string]int, len(models))
	for i, m := range models {
		col[m] = i
	}
	return &banditSet{col: col, n: len(models), ext: ext, st: st}
}

// add adds the example of a prompt whose model j was observed at weight w,
// with its shadow outcomes (other models of the pool, at weight 1).
func (b *banditSet) add(key string, in features.Input, j int, chosen observed, w float64, shadows []observed) {
	e := Example{PromptID: key, Labels: make([]float32, b.n), Weights: make([]float32, b.n)}
	b.ext.Extract(in, &e.Vec)
	e.Labels[j], e.Weights[j] = float32(chosen.quality), float32(w)
	b.st.Newest = latest(b.st.Newest, chosen.at)
	b.wsum += w
	b.cells = append(b.cells, [2]int{len(b.out), j})
	for _, s := range shadows {
		if k, ok := b.col[s.model]; ok && k != j {
			e.Labels[k], e.Weights[k] = float32(s.quality), 1
			b.st.Newest = latest(b.st.Newest, s.at)
			b.st.Shadow++
		}
	}
	b.out = append(b.out, e)
}

// done normalises the bandit weights and returns the examples.
func (b *banditSet) done() []Example {
	b.st.Used = len(b.out)
	if len(b.cells) > 0 {
		mean := b.wsum / float64(len(b.cells))
		b.st.MeanWeight = mean
		for _, c := range b.cells {
			b.out[c[0]].Weights[c[1]] = float32(float64(b.out[c[0]].Weights[c[1]]) / mean)
		}
	}
	return b.out
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b.UTC()
	}
	return a
}

// TokenMeans is each model's mean output tokens over outcomes that report
// them (0 where none do).
func TokenMeans(outcomes []datasets.OutcomeRecord, models []string) map[string]float64 {
	sum, n := map[string]float64{}, map[string]float64{}
	for _, o := range outcomes {
		if o.OutputTokens > 0 {
			sum[o.Model] += float64(o.OutputTokens)
			n[o.Model]++
		}
	}
	out := make(map[string]float64, len(models))
	for _, m := range models {
		if n[m] > 0 {
			out[m] = sum[m] / n[m]
		}
	}
	return out
}
