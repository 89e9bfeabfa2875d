// Package policy is Switchyard's routing policy: the one decision rule that
// turns predicted qualities and expected costs into a choice of model, and
// the Router that runs features, scorer and rule for a request. The server,
// the command line, the simulator and offline evaluation all decide through
// this package; none of them re-implements the rule.
package policy

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Option is one candidate model as the rule sees it.
type Option struct {
	Model            string  `json:"model"`
	PredictedQuality float64 `json:"predicted_quality"`
	ExpectedCostUSD  float64 `json:"expected_cost_usd"`
}

// Choice is the outcome of the decision rule.
type Choice struct {
	Index      int     // index of the chosen option
	Cleared    bool    // the chosen option's predicted quality clears the bar
	Fallbacks  []int   // the other allowed options, best first
	Propensity float64 // probability with which the rule picked Index (1: the rule is deterministic)
}

// ErrNoCandidate is returned when no option is allowed.
var ErrNoCandidate = errors.New("no candidate model is allowed")

// Choose applies the decision rule to the options: among the allowed ones
// (expected cost at most maxCost when maxCost > 0), the cheapest whose
// predicted quality is at least bar (ties: higher quality, then earlier
// option); when none clears the bar, the one with the highest predicted
// quality (ties: cheaper, then earlier). Fallbacks rank the remaining allowed
// options the same way: those that clear the bar by cost, then the rest by
// quality.
func Choose(opts []Option, bar, maxCost float64) (Choice, error) {
	allowed := make([]int, 0, len(opts))
	for i, o := range opts {
		if maxCost > 0 && o.ExpectedCostUSD > maxCost {
			continue
		}
		allowed = append(allowed, i)
	}
	if len(allowed) == 0 {
		if len(opts) == 0 {
			return Choice{}, ErrNoCandidate
		}
		cheapest := math.Inf(1)
		for _, o := range opts {
			cheapest = math.Min(cheapest, o.ExpectedCostUSD)
		}
		return Choice{}, fmt.Errorf("%w: max_cost_usd %g is below the cheapest candidate's expected cost %g", ErrNoCandidate, maxCost, cheapest)
	}
	sort.SliceStable(allowed, func(a, b int) bool { return better(opts[allowed[a]], opts[allowed[b]], bar) })
	return Choice{
		Index:      allowed[0],
		Cleared:    opts[allowed[0]].PredictedQuality >= bar,
		Fallbacks:  allowed[1:],
		Propensity: 1,
	}, nil
}

// better reports whether a ranks before b under the rule.
func better(a, b Option, bar float64) bool {
	ca, cb := a.PredictedQuality >= bar, b.PredictedQuality >= bar
	if ca != cb {
		return ca
	}
	if ca { // both clear: cheaper first
		if a.ExpectedCostUSD != b.ExpectedCostUSD {
			return a.ExpectedCostUSD < b.ExpectedCostUSD
		}
		return a.PredictedQuality > b.PredictedQuality
	}
	if a.PredictedQuality != b.PredictedQuality { // neither clears: better first
		return a.PredictedQuality > b.PredictedQuality
	}
	return a.ExpectedCostUSD < b.ExpectedCostUSD
}
