package datasets

import (
	"fmt"
	"strconv"
)

// OutcomeLinks counts how the outcomes of a log link to its decisions. Every
// reader of the logs that joins outcomes to decisions (training, off-policy
// evaluation, A/B analysis) counts with CountOutcomeLinks, so the same logs
// give the same count everywhere.
type OutcomeLinks struct {
	// Linked is the number of outcomes that name a decision (DecisionID
	// set), of any source: online and shadow outcomes both carry the id
	// of the decision they belong to.
	Linked int
	// WithoutDecision is the number of those whose decision is not in the
	// decision logs, for example because the decision log lost its last
	// minute in a crash while the gateway's feedback was kept.
	WithoutDecision int
}

// CountOutcomeLinks counts the outcomes that name a decision and those of
// them whose decision is missing from decisions. Outcomes without a
// DecisionID (benchmark outcomes, keyed by prompt) are not counted.
func CountOutcomeLinks(decisions []DecisionRecord, outcomes []OutcomeRecord) OutcomeLinks {
	ids := make(map[string]struct{}, len(decisions))
	for _, d := range decisions {
		ids[d.DecisionID] = struct{}{}
	}
	var l OutcomeLinks
	for _, o := range outcomes {
		if o.DecisionID == "" {
			continue
		}
		l.Linked++
		if _, ok := ids[o.DecisionID]; !ok {
			l.WithoutDecision++
		}
	}
	return l
}

// AllWithoutDecision reports whether there are linked outcomes and none of
// them has its decision: nothing can be joined, and the likely cause is lost
// or misplaced decision logs rather than missing feedback.
func (l OutcomeLinks) AllWithoutDecision() bool {
	return l.Linked > 0 && l.WithoutDecision == l.Linked
}

// Err is a *MissingDecisionsError when some outcomes have no decision, nil
// otherwise.
func (l OutcomeLinks) Err() error {
	if l.WithoutDecision == 0 {
		return nil
	}
	return &MissingDecisionsError{Outcomes: l.WithoutDecision, Linked: l.Linked}
}

// MissingDecisionsError says that outcomes name decisions the decision logs
// do not have. It is the error (wrapped) when a join yields nothing because
// of it, and the text of the warning when only some outcomes are affected.
type MissingDecisionsError struct {
	Outcomes int // outcomes without their decision
	Linked   int // outcomes that name a decision at all
}

// Error implements error.
func (e *MissingDecisionsError) Error() string {
	n := thousands(e.Outcomes)
	if e.Linked > e.Outcomes {
		n += " of " + thousands(e.Linked)
	}
	return fmt.Sprintf("%s outcomes have no matching decision in the decision logs (were the decision logs lost or written elsewhere?)", n)
}

// thousands formats n with commas between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	if neg {
		return "-" + string(b)
	}
	return string(b)
}
