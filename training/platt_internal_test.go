package training

import (
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Platt scaling is shrunk towards the identity: on many observations it
// finds the true scaling, on a few it moves far less than an unshrunk fit,
// whose own noise would otherwise become the calibration.
func TestPlattScalingIsShrunkOnFewObservations(t *testing.T) {
	sample := func(n int, seed int64) []plattObs {
		rng := rand.New(rand.NewSource(seed))
		o := make([]plattObs, n)
		for i := range o {
			z := rng.NormFloat64()
			y := 0.0
			if rng.Float64() < 1/(1+math.Exp(-(3*z-1))) { // true scaling a = 3, b = -1
				y = 1
			}
			o[i] = plattObs{z: z, y: y, w: 1}
		}
		return o
	}
	a, b := fitPlatt(sample(20000, 1), plattShrink)
	assert.InDelta(t, 3, a, 0.25, "many observations: the data decide")
	assert.InDelta(t, -1, b, 0.15)

	var shrunk, free float64
	for seed := int64(0); seed < 20; seed++ {
		o := sample(40, seed)
		sa, sb := fitPlatt(o, plattShrink)
		fa, fb := fitPlatt(o, 0)
		shrunk += math.Abs(sa-1) + math.Abs(sb)
		free += math.Abs(fa-1) + math.Abs(fb)
	}
	assert.Less(t, shrunk, free/2, "a few observations move the shrunk fit far less")
}
