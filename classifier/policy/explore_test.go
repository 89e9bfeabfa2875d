package policy_test

import (
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/classifiertest"
	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/features"
)

func testRouter(t *testing.T, exp policy.Exploration) *policy.Router {
	return testRouterWith(t, policy.Config{Name: "p", QualityBar: 0.8, Exploration: exp}, false)
}

// testRouterWith builds a router over four models; with extra, the
// catalogue also has "fresh", a model the predictor has no head for.
func testRouterWith(t *testing.T, cfg policy.Config, extra bool) *policy.Router {
	t.Helper()
	return testRouterWindows(t, cfg, nil, extra)
}

// testRouterWindows is testRouterWith with the context windows of the
// catalogue's models (missing: unknown). Every model expects 100 output
// tokens, and the predictor's bias ranks them cheap < mid < dear < top.
func testRouterWindows(t *testing.T, cfg policy.Config, windows map[string]int, extra bool) *policy.Router {
	t.Helper()
	r, err := newTestRouter(t, cfg, windows, extra)
	require.NoError(t, err)
	return r
}

// newTestRouter builds testRouterWindows's router and returns NewRouter's
// error.
func newTestRouter(t *testing.T, cfg policy.Config, windows map[string]int, extra bool) (*policy.Router, error) {
	t.Helper()
	// dearer models predicted better
	m := classifiertest.New(t, classifiertest.Options{Models: []string{"cheap", "mid", "dear", "top"}, Buckets: 1 << 10,
		EmbeddingDim: 4, Hidden: 4, BiasStep: 1, OutputTokens: 100})
	prices := []datasets.ModelPrice{
		{Name: "cheap", InputUSDPerMTok: 0.1, OutputUSDPerMTok: 0.1}, {Name: "mid", InputUSDPerMTok: 1, OutputUSDPerMTok: 1},
		{Name: "dear", InputUSDPerMTok: 10, OutputUSDPerMTok: 10}, {Name: "top", InputUSDPerMTok: 100, OutputUSDPerMTok: 100}}
	if extra {
		prices = append(prices, datasets.ModelPrice{Name: "fresh", InputUSDPerMTok: 0.5, OutputUSDPerMTok: 0.5})
	}
	for i := range prices {
		prices[i].ContextWindow = windows[prices[i].Name]
	}
	cat, err := datasets.NewCatalogue(prices)
	require.NoError(t, err)
	return policy.ModelRouter(m, cat, cfg)
}

// checkFrequencies routes one context n times and checks that every
// model's logged propensity matches how often it was chosen.
func checkFrequencies(t *testing.T, r *policy.Router, n int) map[string]float64 {
	t.Helper()
	rng := rand.New(rand.NewSource(42))
	counts := map[string]int{}
	var probs map[string]float64
	for i := 0; i < n; i++ {
		d, err := r.Route(policy.Request{Input: features.Input{Prompt: "one fixed context"}, Draw: rng.Float64()})
		require.NoError(t, err)
		counts[d.Chosen]++
		if probs == nil {
			probs = map[string]float64{}
			for k, o := range d.Options {
				probs[o.Model] = d.Probs[k]
			}
		}
		require.InDelta(t, probs[d.Chosen], d.Propensity, 1e-12)
	}
	var sum float64
	for m, p := range probs {
		sum += p
		se := math.Sqrt(p * (1 - p) / float64(n))
		assert.InDelta(t, p, float64(counts[m])/float64(n), 4*se+1e-9, "model %s", m)
	}
	assert.InDelta(t, 1, sum, 1e-12)
	return probs
}

func TestSoftmaxPropensitiesMatchChoiceFrequencies(t *testing.T) {
	probs := checkFrequencies(t, testRouter(t, policy.Exploration{Strategy: policy.ExploreSoftmax, Temperature: 1}), 20000)
	// bar rule: p ∝ exp(-rank); 'dear' first, then 'top', 'mid', 'cheap'
	z := 1 + math.Exp(-1) + math.Exp(-2) + math.Exp(-3)
	assert.InDelta(t, 1/z, probs["dear"], 1e-12)
	assert.InDelta(t, math.Exp(-3)/z, probs["cheap"], 1e-12)
	l := 0.0
	probs = checkFrequencies(t, testRouterWith(t, policy.Config{Name: "p", Lambda: &l,
		Exploration: policy.Exploration{Strategy: policy.ExploreSoftmax, Temperature: 0.5}}, false), 20000)
	assert.Greater(t, probs["top"], probs["dear"], "λ=0: utility is predicted quality")
}

func TestNewModelsGetBoundedTrafficUntilObserved(t *testing.T) {
	r := testRouterWith(t, policy.Config{Name: "p", QualityBar: 0.8, NewModels: &policy.NewModels{Share: 0.2, MinObservations: 50}}, true)
	assert.Contains(t, r.Models(), "fresh")
	assert.True(t, r.IsNew("fresh"))
	probs := checkFrequencies(t, r, 20000)
	assert.InDelta(t, 0.2, probs["fresh"], 1e-12, "the whole exploration share goes to the one new model")
	assert.InDelta(t, 0.8, probs["dear"], 1e-12)
	for i := 0; i < 50; i++ {
		r.Observe("fresh")
	}
	d, err := r.Route(policy.Request{Input: features.Input{Prompt: "one fixed context"}})
	require.NoError(t, err)
	for k, o := range d.Options {
		if o.Model == "fresh" {
			assert.Zero(t, d.Probs[k], "observed enough: no longer forced")
			assert.Greater(t, o.PredictedQuality, 0.0, "scored by the prior")
		}
	}
	without := testRouter(t, policy.Exploration{})
	assert.NotContains(t, without.Models(), "fresh")
}

func TestEpsilonGreedyPropensitiesMatchChoiceFrequencies(t *testing.T) {
	r := testRouter(t, policy.Exploration{Strategy: policy.ExploreEpsilonGreedy, Epsilon: 0.3})
	probs := checkFrequencies(t, r, 20000)
	assert.InDelta(t, 0.3/4+0.7, probs["dear"], 1e-12, "bar 0.8 is first cleared by 'dear'")
	rng := rand.New(rand.NewSource(3))
	for i := 0; i < 200; i++ {
		d, err := r.Route(policy.Request{Input: features.Input{Prompt: "one fixed context"}, Draw: rng.Float64()})
		require.NoError(t, err)
		assert.Equal(t, d.Chosen != d.Options[d.Greedy].Model, d.Explored)
	}
}

func TestExplorationStaysWithinCandidatesAndBudget(t *testing.T) {
	r := testRouter(t, policy.Exploration{Strategy: policy.ExploreEpsilonGreedy, Epsilon: 1})
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 2000; i++ {
		d, err := r.Route(policy.Request{Input: features.Input{Prompt: "x"}, Candidates: []string{"cheap", "mid", "top"},
			MaxCostUSD: 1e-3, Draw: rng.Float64()})
		require.NoError(t, err)
		assert.Contains(t, []string{"cheap", "mid"}, d.Chosen, "top is over budget and dear is not a candidate")
		assert.InDelta(t, 0.5, d.Propensity, 1e-12)
	}
}

// A request a budget sends to the cheapest model (past its cap) is not
// explored, whatever the policy's exploration.
func TestNoExploreRequestsFollowTheRule(t *testing.T) {
	r := testRouter(t, policy.Exploration{Strategy: policy.ExploreEpsilonGreedy, Epsilon: 1})
	for _, u := range []float64{0, 0.3, 0.6, 0.999} {
		d, err := r.Route(policy.Request{Input: features.Input{Prompt: "x"}, Draw: u, CostWeight: 1e12, NoExplore: true})
		require.NoError(t, err)
		assert.Equal(t, "cheap", d.Chosen)
		assert.Equal(t, 1.0, d.Propensity)
		assert.False(t, d.Explored)
	}
}

func TestNoExplorationIsDeterministic(t *testing.T) {
	r := testRouter(t, policy.Exploration{})
	for _, u := range []float64{0, 0.5, 0.999} {
		d, err := r.Route(policy.Request{Input: features.Input{Prompt: "x"}, Draw: u})
		require.NoError(t, err)
		assert.Equal(t, 1.0, d.Propensity)
		assert.False(t, d.Explored)
	}
	_, err := r.Route(policy.Request{Input: features.Input{Prompt: "x"}, Draw: 1})
	require.Error(t, err)
	assert.Error(t, policy.Exploration{Strategy: "thompson-ish"}.Validate())
	assert.Error(t, policy.Exploration{Strategy: policy.ExploreEpsilonGreedy, Epsilon: 2}.Validate())
}

func TestOptimismTriesUnderObservedModelsAndLogsItsPropensities(t *testing.T) {
	r := testRouterWith(t, policy.Config{Name: "p", QualityBar: 0.8,
		Exploration: policy.Exploration{Strategy: policy.ExploreOptimism, Bonus: 0.5, Epsilon: 0.1}}, false)
	// nothing observed: every model gets the full bonus, so the bar is
	// cleared by the cheapest model
	d, err := r.Route(policy.Request{Input: features.Input{Prompt: "one fixed context"}})
	require.NoError(t, err)
	assert.Equal(t, "cheap", d.Options[d.Greedy].Model)
	for i := 0; i < 10000; i++ {
		r.Observe("cheap")
	}
	d, err = r.Route(policy.Request{Input: features.Input{Prompt: "one fixed context"}})
	require.NoError(t, err)
	assert.Equal(t, "mid", d.Options[d.Greedy].Model, "once 'cheap' is well known, its bonus is gone")
	probs := checkFrequencies(t, r, 20000)
	assert.InDelta(t, 0.9+0.1/4, probs["mid"], 1e-12, "epsilon floor on top of the optimistic choice")
}
