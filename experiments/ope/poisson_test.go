package ope

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The table lookup draws what a search of the CDF draws, at every cell's
// edges and on a grid over [0, 2³²), and the draws have Poisson(1)'s
// probabilities, mean and variance.
func TestPoissonSamplerIsPoissonOne(t *testing.T) {
	ps := poissonOne
	for i := range uint64(len(ps.cell)) {
		for _, u := range []uint64{i << 20, i<<20 + 1, (i+1)<<20 - 1} {
			require.Equal(t, float64(ps.count(u, 0)), ps.draw(uint32(u)), "u %d", u)
		}
	}
	const grid = 1 << 22
	counts := map[float64]int{}
	var sum, sum2 float64
	for i := range uint64(grid) {
		u := i << 10
		c := ps.draw(uint32(u))
		if want := float64(ps.count(u, 0)); c != want {
			require.Equal(t, want, c, "u %d", u)
		}
		counts[c]++
		sum += c
		sum2 += c * c
	}
	mean := sum / grid
	assert.InDelta(t, 1, mean, 1e-5)
	assert.InDelta(t, 1, sum2/grid-mean*mean, 1e-4)
	p := math.Exp(-1)
	for k := range 6 {
		assert.InDelta(t, p, float64(counts[float64(k)])/grid, 1e-5, "P(X = %d)", k)
		p /= float64(k + 1)
	}
}
