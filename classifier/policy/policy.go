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
	"strconv"
)

// Option is one candidate model as the rule sees it.
type Option struct {
	Model            string  `json:"model"`
	PredictedQuality float64 `json:"predicted_quality"`
	ExpectedCostUSD  float64 `json:"expected_cost_usd"`
	// ContextWindow is the model's context window in tokens (0: unknown,
	// which always fits) and TokensNeeded the tokens the request needs in
	// it: the same estimated input tokens as the expected cost plus the
	// model's expected output tokens, since the window holds both. An
	// option that does not fit (see Fits) is never allowed. Neither is part
	// of the wire formats; both zero (as offline evaluation leaves them)
	// means the option fits.
	ContextWindow int `json:"-"`
	TokensNeeded  int `json:"-"`
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
// (the request fits the context window, see Option.Fits, and the expected
// cost is at most maxCost when maxCost > 0), the cheapest whose
// predicted quality is at least bar (ties: higher quality, then earlier
// option); when none clears the bar, the one with the highest predicted
// quality (ties: cheaper, then earlier). Fallbacks rank the remaining allowed
// options the same way: those that clear the bar by cost, then the rest by
// quality. When no option fits, the error is a *ContextWindowError; when
// some fit but none within maxCost, it wraps ErrNoCandidate.
func Choose(opts []Option, bar, maxCost float64) (Choice, error) {
	allowed, err := allowedOptions(opts, maxCost)
	if err != nil {
		return Choice{}, err
	}
	sort.SliceStable(allowed, func(a, b int) bool { return better(opts[allowed[a]], opts[allowed[b]], bar) })
	return Choice{
		Index:      allowed[0],
		Cleared:    opts[allowed[0]].PredictedQuality >= bar,
		Fallbacks:  allowed[1:],
		Propensity: 1,
	}, nil
}

// ChooseTradeoff applies the trade-off form of the rule: among the allowed
// options, the one with the highest predicted quality − lambda × expected
// cost (ties: cheaper, then earlier). Fallbacks follow the same order.
// Cleared reports whether the chosen option's predicted quality is at least
// bar, for the record only: bar does not enter the choice.
func ChooseTradeoff(opts []Option, lambda, bar, maxCost float64) (Choice, error) {
	if err := checkLambda(lambda); err != nil {
		return Choice{}, err
	}
	allowed, err := allowedOptions(opts, maxCost)
	if err != nil {
		return Choice{}, err
	}
	sort.SliceStable(allowed, func(a, b int) bool { return tradeoffBefore(opts[allowed[a]], opts[allowed[b]], lambda) })
	return Choice{Index: allowed[0], Cleared: opts[allowed[0]].PredictedQuality >= bar, Fallbacks: allowed[1:], Propensity: 1}, nil
}

// Rule is a setting of the decision rule: a quality bar, or, when Lambda is
// set, the cost–quality trade-off; and what to do with a prompt that fits no
// candidate's context window.
type Rule struct {
	QualityBar      float64         `json:"quality_bar"`
	Lambda          *float64        `json:"lambda,omitempty"`
	ContextOverflow ContextOverflow `json:"context_overflow,omitempty"`
	// CostWeight is a tenant budget's extra weight on cost (quality per
	// USD; 0: none): with Lambda the rule ranks by quality − (λ + w) ×
	// cost; with a bar, by min(quality, bar) − w × cost, then cheaper, then
	// higher quality, which at w = 0 is exactly the bar rule and, as w
	// grows, gives up quality above nothing and below the bar only where
	// it saves more than w per unit of quality.
	CostWeight float64 `json:"cost_weight,omitempty"`
}

// Choose applies the rule to the options. When none fits its context window,
// OverflowLargest chooses among the options with the largest window (still
// within maxCost); otherwise the error is a *ContextWindowError.
func (r Rule) Choose(opts []Option, maxCost float64) (Choice, error) {
	c, err := r.choose(opts, maxCost)
	if err == nil || r.ContextOverflow != OverflowLargest {
		return c, err
	}
	var cw *ContextWindowError
	if !errors.As(err, &cw) {
		return c, err
	}
	return r.choose(largestWindowFits(opts), maxCost)
}

func (r Rule) choose(opts []Option, maxCost float64) (Choice, error) {
	if r.CostWeight != 0 {
		if err := checkCostWeight(r.CostWeight); err != nil {
			return Choice{}, err
		}
		if r.Lambda != nil {
			if err := checkLambda(*r.Lambda); err != nil {
				return Choice{}, err
			}
		}
		allowed, err := allowedOptions(opts, maxCost)
		if err != nil {
			return Choice{}, err
		}
		sort.SliceStable(allowed, func(a, b int) bool { return r.before(opts[allowed[a]], opts[allowed[b]]) })
		return Choice{Index: allowed[0], Cleared: opts[allowed[0]].PredictedQuality >= r.QualityBar, Fallbacks: allowed[1:], Propensity: 1}, nil
	}
	if r.Lambda != nil {
		return ChooseTradeoff(opts, *r.Lambda, r.QualityBar, maxCost)
	}
	return Choose(opts, r.QualityBar, maxCost)
}

// Tradeoff is the rule's weight on cost in the trade-off form (λ plus the
// budget's cost weight), or nil for the bar rule.
func (r Rule) Tradeoff() *float64 {
	if r.Lambda == nil {
		return nil
	}
	l := *r.Lambda + r.CostWeight
	return &l
}

func checkCostWeight(w float64) error {
	if math.IsNaN(w) || w < 0 || math.IsInf(w, 1) {
		return fmt.Errorf("cost weight %v must be a finite non-negative number", w)
	}
	return nil
}

// Pick returns the index of the option that Choose would choose with no
// cost cap, found in one pass without ranking the fallbacks or allocating:
// for evaluation and training, which route the same prompts under many
// settings of the rule.
func (r Rule) Pick(opts []Option) (int, error) {
	if r.Lambda != nil {
		if err := checkLambda(*r.Lambda); err != nil {
			return 0, err
		}
	}
	if err := checkCostWeight(r.CostWeight); err != nil {
		return 0, err
	}
	best := -1
	for i, o := range opts {
		if math.IsNaN(o.PredictedQuality) || math.IsNaN(o.ExpectedCostUSD) {
			best = -1 // no order to scan by: Choose's ranking decides
			break
		}
		if o.Fits() && (best < 0 || r.before(o, opts[best])) {
			best = i
		}
	}
	if best < 0 { // nothing fits, or a NaN: Choose knows what the rule does then
		c, err := r.Choose(opts, 0)
		return c.Index, err
	}
	return best, nil
}

// checkLambda is the one check of a trade-off weight.
func checkLambda(l float64) error {
	if math.IsNaN(l) || l < 0 {
		return fmt.Errorf("lambda %v must be a non-negative number", l)
	}
	return nil
}

// before reports whether the rule ranks a before b.
func (r Rule) before(a, b Option) bool {
	if r.Lambda != nil {
		return tradeoffBefore(a, b, *r.Lambda+r.CostWeight)
	}
	if r.CostWeight != 0 {
		ua := math.Min(a.PredictedQuality, r.QualityBar) - r.CostWeight*a.ExpectedCostUSD
		ub := math.Min(b.PredictedQuality, r.QualityBar) - r.CostWeight*b.ExpectedCostUSD
		if ua != ub {
			return ua > ub
		}
		if a.ExpectedCostUSD != b.ExpectedCostUSD {
			return a.ExpectedCostUSD < b.ExpectedCostUSD
		}
		return a.PredictedQuality > b.PredictedQuality
	}
	return better(a, b, r.QualityBar)
}

// tradeoffBefore reports whether a ranks before b in the trade-off form of
// the rule: higher quality − lambda × cost, then cheaper.
func tradeoffBefore(a, b Option, lambda float64) bool {
	ua, ub := a.PredictedQuality-lambda*a.ExpectedCostUSD, b.PredictedQuality-lambda*b.ExpectedCostUSD
	if ua != ub {
		return ua > ub
	}
	return a.ExpectedCostUSD < b.ExpectedCostUSD
}

// String names the setting, e.g. "bar=0.80" or "lambda=250".
func (r Rule) String() string {
	w := ""
	if r.CostWeight != 0 {
		w = ",cost_weight=" + strconv.FormatFloat(r.CostWeight, 'g', 4, 64)
	}
	if r.Lambda != nil {
		return "lambda=" + strconv.FormatFloat(*r.Lambda, 'g', 4, 64) + w
	}
	return "bar=" + strconv.FormatFloat(r.QualityBar, 'f', 2, 64) + w
}

// allowedOptions returns the indices of the options the rule may choose:
// those the request fits, within maxCost when maxCost > 0.
func allowedOptions(opts []Option, maxCost float64) ([]int, error) {
	allowed := make([]int, 0, len(opts))
	fit := 0
	for i, o := range opts {
		if !o.Fits() {
			continue
		}
		fit++
		if maxCost > 0 && o.ExpectedCostUSD > maxCost {
			continue
		}
		allowed = append(allowed, i)
	}
	if len(allowed) == 0 {
		if len(opts) == 0 {
			return nil, ErrNoCandidate
		}
		if fit == 0 {
			return nil, contextWindowError(opts)
		}
		cheapest := math.Inf(1)
		for _, o := range opts {
			if o.Fits() {
				cheapest = math.Min(cheapest, o.ExpectedCostUSD)
			}
		}
		which := "candidate's"
		if fit < len(opts) {
			which = "fitting candidate's" // the context window excluded some
		}
		return nil, fmt.Errorf("%w: max_cost_usd %g is below the cheapest %s expected cost %g", ErrNoCandidate, maxCost, which, cheapest)
	}
	return allowed, nil
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
