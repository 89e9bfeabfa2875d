package experiments

import (
	"fmt"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/experiments/ope"
)

// JoinStats counts what happened to the logged decisions while building
// off-policy records.
type JoinStats struct {
	Decisions     int // decisions read
	WithOutcome   int // decisions with an outcome of the chosen model
	Used          int // records built
	NoPrompt      int // skipped: the prompt was not kept (hash only)
	NotCandidates int // skipped: the target cannot score the logged candidates
	LoggedReward  float64
	LoggedCost    float64 // the logging policy's own average quality and cost on Used
	// Outcomes counts the outcomes that name a decision, and
	// OutcomesWithoutDecision those of them whose decision is not in the
	// logs at all (see datasets.CountOutcomeLinks); both are counted over
	// all the logged decisions, not only those evaluated.
	Outcomes                int
	OutcomesWithoutDecision int
}

// Links gives the outcome counts back as datasets.OutcomeLinks.
func (st JoinStats) Links() datasets.OutcomeLinks {
	return datasets.OutcomeLinks{Linked: st.Outcomes, WithoutDecision: st.OutcomesWithoutDecision}
}

// setLinks fills the outcome counts of st.
func (st *JoinStats) setLinks(l datasets.OutcomeLinks) {
	st.Outcomes, st.OutcomesWithoutDecision = l.Linked, l.WithoutDecision
}

// OffPolicyRecords joins logged decisions with the outcome of their chosen
// model and asks target what it would have done in each logged context: its
// choice among the logged candidates (Target, one-hot since the rule is
// deterministic) and its predictor's quality and expected cost of each
// candidate (the direct model for doubly robust estimates). Decisions
// without an outcome, without prompt text, or with candidates the target
// does not score are skipped and counted, and so are outcomes whose
// decision is not in the logs. When no record can be built because every
// outcome lacks its decision, the error (a *datasets.MissingDecisionsError,
// wrapped) says so. Evaluate does the same on logs of any size, without
// keeping the records.
func OffPolicyRecords(decisions []datasets.DecisionRecord, outcomes []datasets.OutcomeRecord, target *policy.Router) ([]ope.Record, JoinStats, error) {
	st := JoinStats{Decisions: len(decisions)}
	scores := scoredModels(target)
	var recs []ope.Record
	for _, jd := range datasets.JoinDecisions(decisions, outcomes, datasets.JoinOptions{}) {
		r, kind, err := offPolicyRecord(target, scores, &jd)
		if err != nil {
			return nil, st, err
		}
		if st.count(kind, &jd) {
			recs = append(recs, r)
		}
	}
	st.average()
	st.setLinks(datasets.CountOutcomeLinks(decisions, outcomes))
	if len(recs) == 0 && st.Links().AllWithoutDecision() {
		return nil, st, &NoRecordsError{Links: st.Links()}
	}
	return recs, st, nil
}

// recordKind says what became of one logged decision.
type recordKind uint8

const (
	noOutcome recordKind = iota
	noPrompt
	notCandidates
	used
)

// scoredModels is the set of models target scores.
func scoredModels(target *policy.Router) map[string]bool {
	scores := map[string]bool{}
	for _, m := range target.Models() {
		scores[m] = true
	}
	return scores
}

// offPolicyRecord builds the off-policy record of one joined decision for
// target (which scores the models in scores), or says why there is none.
// The error is for a decision no record can be built from: its chosen model
// is not among its candidates, or target fails on it.
func offPolicyRecord(target *policy.Router, scores map[string]bool, jd *datasets.Joined) (ope.Record, recordKind, error) {
	d, o := &jd.Decision, jd.Outcome
	switch {
	case o == nil:
		return ope.Record{}, noOutcome, nil
	case d.Prompt == "":
		return ope.Record{}, noPrompt, nil
	}
	cands := make([]string, len(d.Candidates))
	logged, usable := -1, true
	for i, c := range d.Candidates {
		cands[i] = c.Model
		if c.Model == d.Chosen {
			logged = i
		}
		usable = usable && scores[c.Model]
	}
	if logged < 0 {
		return ope.Record{}, 0, fmt.Errorf("decision %s: chosen model %q is not among its candidates", d.DecisionID, d.Chosen)
	}
	if !usable {
		return ope.Record{}, notCandidates, nil
	}
	dec, err := target.Route(policy.Request{Input: inputOf(*d), Candidates: cands})
	if err != nil {
		return ope.Record{}, 0, fmt.Errorf("decision %s: target policy: %w", d.DecisionID, err)
	}
	r := ope.Record{Logged: logged, Propensity: d.Propensity, Reward: o.Quality, Cost: o.CostUSD,
		Target: make([]float64, len(cands)), PredReward: make([]float64, len(cands)), PredCost: make([]float64, len(cands))}
	r.Target[dec.Index] = 1
	for i, op := range dec.Options {
		r.PredReward[i], r.PredCost[i] = op.PredictedQuality, op.ExpectedCostUSD
	}
	return r, used, nil
}

// count counts a decision of kind in st and reports whether it makes a
// record.
func (st *JoinStats) count(kind recordKind, jd *datasets.Joined) bool {
	if kind != noOutcome {
		st.WithOutcome++
	}
	switch kind {
	case noPrompt:
		st.NoPrompt++
	case notCandidates:
		st.NotCandidates++
	case used:
		st.Used++
		st.LoggedReward += jd.Outcome.Quality
		st.LoggedCost += jd.Outcome.CostUSD
		return true
	}
	return false
}

// average turns the logged reward and cost sums of st into averages.
func (st *JoinStats) average() {
	if st.Used > 0 {
		st.LoggedReward /= float64(st.Used)
		st.LoggedCost /= float64(st.Used)
	}
}
