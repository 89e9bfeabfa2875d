package policy

import (
	"fmt"
	"math"
)

// Exploration strategies.
const (
	ExploreNone          = "none"
	ExploreEpsilonGreedy = "epsilon-greedy"
	ExploreSoftmax       = "softmax"
	ExploreOptimism      = "optimism"
)

// Exploration makes a policy try other allowed candidates now and then, so
// that the logs show what they would have done. Every decision records the
// probability of its choice (the propensity) and the whole distribution.
type Exploration struct {
	Strategy    string  `json:"strategy"`              // ExploreNone (default), ExploreEpsilonGreedy or ExploreSoftmax
	Epsilon     float64 `json:"epsilon,omitempty"`     // epsilon-greedy: share of decisions drawn uniformly among the allowed candidates
	Temperature float64 `json:"temperature,omitempty"` // softmax: temperature over the utility (see Distribution)
	// Bonus is the optimism strategy's bonus: the rule sees each model's
	// predicted quality plus Bonus/sqrt(1 + observations of the model), so
	// models with few observations are tried until the evidence says
	// otherwise. Epsilon, when set, adds a uniform floor as in
	// epsilon-greedy, which keeps the logs usable for off-policy estimates.
	Bonus float64 `json:"bonus,omitempty"`
}

// NewModels lets a policy route to catalogue models the predictor has no
// head for yet: each is scored with a prior (the mean of the predictor's
// outputs for the request) and explored on a bounded share of traffic until
// it has MinObservations outcomes; retraining then learns its head.
type NewModels struct {
	Share           float64 `json:"share"`            // share of decisions spent on under-observed new models
	MinObservations int     `json:"min_observations"` // outcomes after which a new model is no longer forced
}

// Validate checks the share and the count.
func (n *NewModels) Validate() error {
	if n == nil {
		return nil
	}
	if math.IsNaN(n.Share) || n.Share < 0 || n.Share > 1 {
		return fmt.Errorf("new models: share %v must be in [0,1]", n.Share)
	}
	if n.MinObservations < 0 {
		return fmt.Errorf("new models: min_observations %d must not be negative", n.MinObservations)
	}
	return nil
}

// Validate checks the strategy and its parameters.
func (e Exploration) Validate() error {
	switch e.Strategy {
	case "", ExploreNone:
		return nil
	case ExploreEpsilonGreedy:
		if math.IsNaN(e.Epsilon) || e.Epsilon < 0 || e.Epsilon > 1 {
			return fmt.Errorf("exploration: epsilon %v must be in [0,1]", e.Epsilon)
		}
		return nil
	case ExploreSoftmax:
		if !(e.Temperature > 0) || math.IsInf(e.Temperature, 0) {
			return fmt.Errorf("exploration: softmax temperature %v must be positive", e.Temperature)
		}
		return nil
	case ExploreOptimism:
		if !(e.Bonus > 0) || math.IsInf(e.Bonus, 0) {
			return fmt.Errorf("exploration: optimism bonus %v must be positive", e.Bonus)
		}
		if math.IsNaN(e.Epsilon) || e.Epsilon < 0 || e.Epsilon > 1 {
			return fmt.Errorf("exploration: epsilon %v must be in [0,1]", e.Epsilon)
		}
		return nil
	}
	return fmt.Errorf("exploration: unknown strategy %q (want %s, %s, %s or %s)", e.Strategy, ExploreNone, ExploreEpsilonGreedy, ExploreSoftmax, ExploreOptimism)
}

// Distribution returns the probability of each option under the rule's
// choice c and the exploration. Only allowed options (c.Index and
// c.Fallbacks) get probability.
//   - epsilon-greedy: the greedy choice keeps 1−ε, and ε is shared evenly
//     among the allowed options;
//   - softmax: p ∝ exp(u/T) over the allowed options, where the utility u is
//     predicted quality − λ·expected cost under the trade-off rule (lambda
//     set), and minus the option's position in the rule's ranking under the
//     bar rule (0 for the choice, −1 for the first fallback, ...).
func (e Exploration) Distribution(opts []Option, c Choice, lambda *float64) []float64 {
	p := make([]float64, len(opts))
	allowed := append([]int{c.Index}, c.Fallbacks...) // exactly the allowed options
	if e.Strategy == ExploreSoftmax {
		u := make([]float64, len(allowed))
		top := math.Inf(-1)
		for k, i := range allowed {
			if lambda != nil {
				u[k] = opts[i].PredictedQuality - *lambda*opts[i].ExpectedCostUSD
			} else {
				u[k] = -float64(k)
			}
			top = math.Max(top, u[k])
		}
		var z float64
		for k := range u {
			u[k] = math.Exp((u[k] - top) / e.Temperature)
			z += u[k]
		}
		if !(z > 0) || math.IsInf(z, 0) { // a non-finite utility: no exploration rather than NaN propensities
			p[c.Index] = 1
			return p
		}
		for k, i := range allowed {
			p[i] = u[k] / z
		}
		return p
	}
	if (e.Strategy != ExploreEpsilonGreedy && e.Strategy != ExploreOptimism) || e.Epsilon == 0 {
		p[c.Index] = 1
		return p
	}
	share := e.Epsilon / float64(len(allowed))
	for _, i := range allowed {
		p[i] = share
	}
	p[c.Index] += 1 - e.Epsilon
	return p
}

// Sample picks an index from the distribution p with a uniform draw u in [0,1).
func Sample(p []float64, u float64) int {
	acc := 0.0
	last := 0
	for i, x := range p {
		if x <= 0 {
			continue
		}
		acc += x
		last = i
		if u < acc {
			return i
		}
	}
	return last // rounding: the last option with positive probability
}
