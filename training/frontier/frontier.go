// Package frontier measures a router by its cost–quality frontier: each
// setting of the decision rule gives one point (average cost, average
// quality) on a set of prompts, the envelope is the best any mix of settings
// reaches, and AIQ is the average quality under the envelope over a cost
// range. Evaluation reports it; training chooses its blend by it.
package frontier

import (
	"math"
	"sort"
	"strconv"

	"switchyard/classifier/policy"
)

// Point is one setting of a router: its average true cost and quality on the
// test prompts.
type Point struct {
	Setting string  `json:"setting"`
	Cost    float64 `json:"avg_cost_usd"`
	Quality float64 `json:"avg_quality"`
	// StrongShare is the share of calls to the pool's dearest model (used by
	// APGR and CPT for two-model pools).
	StrongShare float64 `json:"strong_share"`
}

// Envelope returns the upper non-decreasing envelope of points: the upper
// concave hull (any two settings can be mixed at random, which reaches every
// point on the segment between them), cut at its highest quality, sorted by
// cost. Beyond its last vertex the envelope is flat.
func Envelope(points []Point) []Point {
	ps := append([]Point(nil), points...)
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Cost != ps[j].Cost {
			return ps[i].Cost < ps[j].Cost
		}
		return ps[i].Quality > ps[j].Quality
	})
	var hull []Point
	for _, p := range ps {
		if len(hull) > 0 && hull[len(hull)-1].Cost == p.Cost {
			continue // same cost, lower quality
		}
		for len(hull) >= 2 {
			a, b := hull[len(hull)-2], hull[len(hull)-1]
			// drop b when it lies on or below the segment a–p
			if (b.Quality-a.Quality)*(p.Cost-a.Cost) <= (p.Quality-a.Quality)*(b.Cost-a.Cost) {
				hull = hull[:len(hull)-1]
				continue
			}
			break
		}
		hull = append(hull, p)
	}
	best := 0
	for i, p := range hull {
		if p.Quality > hull[best].Quality {
			best = i
		}
	}
	return hull[:best+1]
}

// QualityAt is the envelope's quality at cost c: linear between vertices,
// flat after the last, and 0 below the first (no setting is that cheap).
func QualityAt(env []Point, c float64) float64 {
	if len(env) == 0 || c < env[0].Cost {
		return 0
	}
	for i := 1; i < len(env); i++ {
		if c <= env[i].Cost {
			a, b := env[i-1], env[i]
			return a.Quality + (b.Quality-a.Quality)*(c-a.Cost)/(b.Cost-a.Cost)
		}
	}
	return env[len(env)-1].Quality
}

// CostToReach is the least cost at which the envelope reaches quality q, or
// false when it never does.
func CostToReach(env []Point, q float64) (float64, bool) {
	for i, p := range env {
		if p.Quality >= q {
			if i == 0 {
				return p.Cost, true
			}
			a := env[i-1]
			return a.Cost + (p.Cost-a.Cost)*(q-a.Quality)/(p.Quality-a.Quality), true
		}
	}
	return 0, false
}

// AIQ is the average quality of the envelope over [lo, hi]: the area under
// it divided by hi − lo (0 where the envelope has no setting that cheap).
func AIQ(env []Point, lo, hi float64) float64 {
	if hi <= lo || len(env) == 0 {
		return 0
	}
	start := math.Max(lo, env[0].Cost)
	if start >= hi {
		return 0
	}
	// the envelope is linear between its vertices: trapezoids are exact
	xs := []float64{start}
	for _, p := range env {
		if p.Cost > start && p.Cost < hi {
			xs = append(xs, p.Cost)
		}
	}
	xs = append(xs, hi)
	var area float64
	for i := 1; i < len(xs); i++ {
		area += (xs[i] - xs[i-1]) * (QualityAt(env, xs[i-1]) + QualityAt(env, xs[i])) / 2
	}
	return area / (hi - lo)
}

// PGRCurve maps a router's points to (share of calls to the strong model,
// performance gap recovered) for a two-model pool.
func PGRCurve(points []Point, weakQ, strongQ float64) []Point {
	out := make([]Point, 0, len(points)+2)
	gap := strongQ - weakQ
	for _, p := range points {
		pgr := 0.0
		if gap != 0 {
			pgr = (p.Quality - weakQ) / gap
		}
		out = append(out, Point{Setting: p.Setting, Cost: p.StrongShare, Quality: pgr})
	}
	// all-weak and all-strong are always available
	out = append(out, Point{Setting: "all-weak", Cost: 0, Quality: 0}, Point{Setting: "all-strong", Cost: 1, Quality: 1})
	return out
}

// APGR is the average performance gap recovered over strong-call shares in
// [0,1], under the envelope of the PGR curve (RouteLLM's APGR).
func APGR(pgr []Point) float64 { return AIQ(Envelope(pgr), 0, 1) }

// CPT is the least share of calls to the strong model at which the PGR
// envelope reaches x (RouteLLM's call-performance threshold).
func CPT(pgr []Point, x float64) float64 {
	c, ok := CostToReach(Envelope(pgr), x)
	if !ok {
		return 1
	}
	return c
}

// Sweep returns the rules of a sweep: one per quality bar, then λ = 0 and
// lambdas settings of λ log-spaced so that
// λ·cost spans from negligible to dominant over the given costs.
func Sweep(bars []float64, lambdas int, costs [][]float64) []policy.Rule {
	var out []policy.Rule
	for _, b := range bars {
		out = append(out, policy.Rule{QualityBar: b})
	}
	if lambdas <= 0 {
		return out
	}
	lo, hi := math.Inf(1), 0.0
	for _, row := range costs {
		for _, c := range row {
			if c > 0 {
				lo, hi = math.Min(lo, c), math.Max(hi, c)
			}
		}
	}
	if hi == 0 {
		return out
	}
	zero := 0.0
	out = append(out, policy.Rule{Lambda: &zero})
	a, z := math.Log(1e-3/hi), math.Log(10/lo)
	for i := 0; i < lambdas; i++ {
		l := math.Exp(a + (z-a)*float64(i)/float64(max(1, lambdas-1)))
		l = roundSig(l)
		out = append(out, policy.Rule{Lambda: &l})
	}
	return out
}

func roundSig(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 4, 64), 64)
	return v
}
