package frontier

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEnvelopeIsUpperNonDecreasingHull(t *testing.T) {
	pts := []Point{{Cost: 1, Quality: 0.5}, {Cost: 2, Quality: 0.55}, {Cost: 3, Quality: 0.8}, {Cost: 4, Quality: 0.7}, {Cost: 2, Quality: 0.4}}
	env := Envelope(pts)
	require.Len(t, env, 2, "the point at cost 2 lies below the segment 1→3; cost 4 is past the best quality")
	assert.Equal(t, Point{Cost: 1, Quality: 0.5}, env[0])
	assert.Equal(t, Point{Cost: 3, Quality: 0.8}, env[1])
	assert.InDelta(t, 0.65, QualityAt(env, 2), 1e-12)
	assert.InDelta(t, 0.8, QualityAt(env, 10), 1e-12, "flat past the last point")
	assert.Equal(t, 0.0, QualityAt(env, 0.5), "nothing that cheap")
	c, ok := CostToReach(env, 0.65)
	require.True(t, ok)
	assert.InDelta(t, 2, c, 1e-12)
	_, ok = CostToReach(env, 0.9)
	assert.False(t, ok)
	// area over [1,5]: trapezoid 1→3 (0.5→0.8) = 1.3, then flat 0.8 over 2 = 1.6
	assert.InDelta(t, (1.3+1.6)/4, AIQ(env, 1, 5), 1e-12)
	// over [0,2]: nothing below cost 1, then 0.5→0.65 over 1
	assert.InDelta(t, 0.575/2, AIQ(env, 0, 2), 1e-12)
}

func TestAPGRAndCPT(t *testing.T) {
	// a router that recovers the gap linearly in its strong-call share
	var pts []Point
	for i := 0; i <= 10; i++ {
		s := float64(i) / 10
		pts = append(pts, Point{Quality: 0.5 + 0.2*s, StrongShare: s})
	}
	pgr := PGRCurve(pts, 0.5, 0.7)
	assert.InDelta(t, 0.5, APGR(pgr), 1e-9)
	assert.InDelta(t, 0.5, CPT(pgr, 0.5), 1e-9)
	assert.InDelta(t, 0.8, CPT(pgr, 0.8), 1e-9)
	// a router that recovers all of it with 20% strong calls
	pgr = PGRCurve([]Point{{Quality: 0.7, StrongShare: 0.2}}, 0.5, 0.7)
	assert.InDelta(t, 0.2, CPT(pgr, 1), 1e-9)
	assert.InDelta(t, 1-0.1, APGR(pgr), 1e-9)
}
