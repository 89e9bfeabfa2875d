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

// OffPolicyRecords joins logged decisions with the outcome of their chosen
// model and asks target what it would have done in each logged context: its
// choice among the logged candidates (Target, one-hot since the rule is
// deterministic) and its predictor's quality and expected cost of each
// candidate (the direct model for doubly robust estimates). Decisions
// without an outcome, without prompt text, or with candidates the target
// does not score are skipped and counted, and so are outcomes whose
// decision is not in the logs. When no record can be built because every
// outcome lacks its decision, the error (a *datasets.MissingDecisionsError,
// wrapped) says so.
func OffPolicyRecords(decisions []datasets.DecisionRecord, outcomes []datasets.OutcomeRecord, target *policy.Router) ([]ope.Record, JoinStats, error) {
	recs, st, err := offPolicyRecords(decisions, outcomes, target)
	if err != nil {
		return nil, st, err
	}
	countLinks(&st, decisions, outcomes)
	if len(recs) == 0 && st.Links().AllWithoutDecision() {
		return nil, st, fmt.Errorf("no usable logged decisions: %w", st.Links().Err())
	}
	return recs, st, nil
}

// countLinks fills the outcome counts of st from all the logged decisions.
func countLinks(st *JoinStats, decisions []datasets.DecisionRecord, outcomes []datasets.OutcomeRecord) {
	l := datasets.CountOutcomeLinks(decisions, outcomes)
	st.Outcomes, st.OutcomesWithoutDecision = l.Linked, l.WithoutDecision
}

// offPolicyRecords is the join of OffPolicyRecords on a subset of the logged
// decisions; it leaves the outcome counts to its caller.
func offPolicyRecords(decisions []datasets.DecisionRecord, outcomes []datasets.OutcomeRecord, target *policy.Router) ([]ope.Record, JoinStats, error) {
	st := JoinStats{Decisions: len(decisions)}
	scores := map[string]bool{}
	for _, m := range target.Models() {
		scores[m] = true
	}
	var recs []ope.Record
	for _, jd := range datasets.JoinDecisions(decisions, outcomes, datasets.JoinOptions{}) {
		d, o := jd.Decision, jd.Outcome
		if o == nil {
			continue
		}
		st.WithOutcome++
		if d.Prompt == "" {
			st.NoPrompt++
			continue
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
			return nil, st, fmt.Errorf("decision %s: chosen model %q is not among its candidates", d.DecisionID, d.Chosen)
		}
		if !usable {
			st.NotCandidates++
			continue
		}
		dec, err := target.Route(policy.Request{Input: inputOf(d), Candidates: cands})
		if err != nil {
			return nil, st, fmt.Errorf("decision %s: target policy: %w", d.DecisionID, err)
		}
		r := ope.Record{Logged: logged, Propensity: d.Propensity, Reward: o.Quality, Cost: o.CostUSD,
			Target: make([]float64, len(cands)), PredReward: make([]float64, len(cands)), PredCost: make([]float64, len(cands))}
		r.Target[dec.Index] = 1
		for i, op := range dec.Options {
			r.PredReward[i], r.PredCost[i] = op.PredictedQuality, op.ExpectedCostUSD
		}
		recs = append(recs, r)
		st.LoggedReward += o.Quality
		st.LoggedCost += o.CostUSD
	}
	st.Used = len(recs)
	if st.Used > 0 {
		st.LoggedReward /= float64(st.Used)
		st.LoggedCost /= float64(st.Used)
	}
	return recs, st, nil
}

// ArmOffPolicy estimates what the policy of one arm would have done on the
// decisions the experiment's other arms logged (with their exploration
// propensities), so that the A/B result and the off-policy estimate can be
// compared. Its outcome counts are over all of decisions, like
// OffPolicyRecords'.
func ArmOffPolicy(decisions []datasets.DecisionRecord, outcomes []datasets.OutcomeRecord, experiment, arm string, target *policy.Router, cfg ope.Config) (*ope.Report, JoinStats, error) {
	var others []datasets.DecisionRecord
	for _, d := range decisions {
		if d.Experiment == experiment && d.Arm != arm {
			others = append(others, d)
		}
	}
	recs, st, err := offPolicyRecords(others, outcomes, target)
	if err != nil {
		return nil, st, err
	}
	countLinks(&st, decisions, outcomes)
	if len(recs) == 0 {
		if st.Links().AllWithoutDecision() {
			return nil, st, fmt.Errorf("arm %s: no usable decisions of the other arms: %w", arm, st.Links().Err())
		}
		return nil, st, fmt.Errorf("arm %s: no usable decisions of the other arms", arm)
	}
	rep, err := ope.Value(recs, cfg)
	return rep, st, err
}
