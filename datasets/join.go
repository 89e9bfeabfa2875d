package datasets

// JoinOptions say which outcome is a decision's own.
type JoinOptions struct {
	// OnlineOnly takes as the chosen model's outcome only feedback on served
	// traffic (Source online): what an A/B test measures. Otherwise any
	// source but shadow counts (online feedback and later offline labels),
	// as training and off-policy evaluation want.
	OnlineOnly bool
}

// Joined is a logged decision with its outcomes.
type Joined struct {
	Decision DecisionRecord
	// Outcome is the chosen model's outcome (the last logged when there are
	// several); nil when the decision has none.
	Outcome *OutcomeRecord
	// Shadows are the outcomes of the decision's shadow copies, in log order.
	Shadows []OutcomeRecord
}

// JoinDecisions is the one join of decisions with their outcomes, used by
// training from logs, off-policy evaluation and A/B analysis: every
// decision, in order, with the outcome of its chosen model and its shadow
// outcomes. Outcomes without a decision id (benchmark outcomes, keyed by
// prompt) are not joined; CountOutcomeLinks counts the outcomes whose
// decision is missing.
func JoinDecisions(decisions []DecisionRecord, outcomes []OutcomeRecord, opt JoinOptions) []Joined {
	type key struct{ id, model string }
	own := make(map[key]int, len(outcomes))
	shadows := map[string][]int{}
	for i, o := range outcomes {
		switch {
		case o.DecisionID == "":
		case o.Source == SourceShadow:
			shadows[o.DecisionID] = append(shadows[o.DecisionID], i)
		case !opt.OnlineOnly || o.Source == SourceOnline:
			own[key{o.DecisionID, o.Model}] = i
		}
	}
	out := make([]Joined, len(decisions))
	for k, d := range decisions {
		out[k].Decision = d
		if i, ok := own[key{d.DecisionID, d.Chosen}]; ok {
			out[k].Outcome = &outcomes[i]
		}
		for _, i := range shadows[d.DecisionID] {
			out[k].Shadows = append(out[k].Shadows, outcomes[i])
		}
	}
	return out
}
