package policy_test

import (
	"fmt"

	"switchyard/classifier/policy"
)

// The decision rule: among the candidates, the cheapest whose predicted
// quality clears the bar; the others follow as fallbacks. With no
// candidate clearing it, the best predicted quality wins.
func ExampleRule_Choose() {
	opts := []policy.Option{
		{Model: "opus-class", PredictedQuality: 0.95, ExpectedCostUSD: 0.0180},
		{Model: "mini", PredictedQuality: 0.83, ExpectedCostUSD: 0.0001},
		{Model: "open-8b", PredictedQuality: 0.62, ExpectedCostUSD: 0.00001},
	}
	for _, bar := range []float64{0.8, 0.9, 0.99} {
		c, err := policy.Rule{QualityBar: bar}.Choose(opts, 0)
		if err != nil {
			fmt.Println(err)
			continue
		}
		var fallbacks []string
		for _, i := range c.Fallbacks {
			fallbacks = append(fallbacks, opts[i].Model)
		}
		fmt.Printf("bar %.2f: %s (clears it: %v), then %v\n", bar, opts[c.Index].Model, c.Cleared, fallbacks)
	}
	// Output:
	// bar 0.80: mini (clears it: true), then [opus-class open-8b]
	// bar 0.90: opus-class (clears it: true), then [mini open-8b]
	// bar 0.99: opus-class (clears it: false), then [mini open-8b]
}
