package ope_test

import (
	"fmt"

	"switchyard/experiments/ope"
)

// Estimating a policy from exploration logs: the logging policy chose
// between two models with the recorded propensities; the target policy
// always takes model 0. IPS reweights the records where the logs took
// model 0; doubly robust starts from the direct model's predictions and
// corrects them on those records: (1.1 + 0.8 + 1.3 + 0.9) / 4 here (on four
// records an estimate can leave [0,1]).
func ExampleValue() {
	recs := []ope.Record{
		{Logged: 0, Propensity: 0.5, Reward: 1, Cost: 0.01, Target: []float64{1, 0}, PredReward: []float64{0.9, 0.5}, PredCost: []float64{0.01, 0.001}},
		{Logged: 1, Propensity: 0.5, Reward: 0, Cost: 0.001, Target: []float64{1, 0}, PredReward: []float64{0.8, 0.4}, PredCost: []float64{0.01, 0.001}},
		{Logged: 0, Propensity: 0.5, Reward: 1, Cost: 0.01, Target: []float64{1, 0}, PredReward: []float64{0.7, 0.6}, PredCost: []float64{0.01, 0.001}},
		{Logged: 1, Propensity: 0.5, Reward: 1, Cost: 0.001, Target: []float64{1, 0}, PredReward: []float64{0.9, 0.7}, PredCost: []float64{0.01, 0.001}},
	}
	rep, err := ope.Value(recs, ope.Config{Bootstrap: 100, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range []string{"ips", "snips", "dr"} {
		fmt.Printf("%-5s quality %.3f  cost %.4f\n", name, rep.Quality[name].Value, rep.Cost[name].Value)
	}
	// Output:
	// ips   quality 1.000  cost 0.0100
	// snips quality 1.000  cost 0.0100
	// dr    quality 1.025  cost 0.0100
}
