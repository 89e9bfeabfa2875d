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
	col := make(map[string]int, len(models))
	for i, m := range models {
		col[m] = i
	}
	links := datasets.CountOutcomeLinks(decisions, outcomes)
	st := LogStats{Decisions: len(decisions), Outcomes: links.Linked, OutcomesWithoutDecision: links.WithoutDecision}
	var out []Example
	var wsum float64
	type cell struct{ ex, model int }
	var bandit []cell
	for _, jd := range datasets.JoinDecisions(decisions, outcomes, datasets.JoinOptions{}) {
		d, o := jd.Decision, jd.Outcome
		if o == nil {
			st.NoOutcome++
			continue
		}
		j, ok := col[d.Chosen]
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
		e := Example{PromptID: key, Labels: make([]float32, len(models)), Weights: make([]float32, len(models))}
		ext.Extract(features.Input{Prompt: d.Prompt, Task: d.Task}, &e.Vec)
		e.Labels[j], e.Weights[j] = float32(o.Quality), float32(w)
		st.Newest = latest(st.Newest, o.Time)
		wsum += w
		bandit = append(bandit, cell{len(out), j})
		for _, s := range jd.Shadows {
			if k, ok := col[s.Model]; ok && k != j {
				e.Labels[k], e.Weights[k] = float32(s.Quality), 1
				st.Newest = latest(st.Newest, s.Time)
				st.Shadow++
			}
		}
		out = append(out, e)
	}
	st.Used = len(out)
	if len(bandit) > 0 {
		mean := wsum / float64(len(bandit))
		st.MeanWeight = mean
		for _, c := range bandit {
			out[c.ex].Weights[c.model] = float32(float64(out[c.ex].Weights[c.model]) / mean)
		}
	}
	return out, st, nil
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
