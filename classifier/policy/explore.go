package policy

import (
	"fmt"
	"math"
)

// Exploration strategies.
const (
	ExploreNone          = "none"
	ExploreEpsilonGreedy = "epsilon-greedy"
)

// Exploration makes a policy try other allowed candidates now and then, so
// that the logs show what they would have done. Every decision records the
// probability of its choice (the propensity) and the whole distribution.
type Exploration struct {
	Strategy string  `json:"strategy"`          // ExploreNone (default) or ExploreEpsilonGreedy
	Epsilon  float64 `json:"epsilon,omitempty"` // epsilon-greedy: share of decisions drawn uniformly among the allowed candidates
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
	}
	return fmt.Errorf("exploration: unknown strategy %q (want %s or %s)", e.Strategy, ExploreNone, ExploreEpsilonGreedy)
}

// Distribution returns the probability of each option under the rule's
// choice c and the exploration: the greedy choice keeps 1−ε, and ε is
// shared evenly among the allowed options (those within maxCost).
func (e Exploration) Distribution(opts []Option, c Choice, maxCost float64) []float64 {
	p := make([]float64, len(opts))
	if e.Strategy != ExploreEpsilonGreedy || e.Epsilon == 0 {
		p[c.Index] = 1
		return p
	}
	allowed := append([]int{c.Index}, c.Fallbacks...) // exactly the allowed options
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
