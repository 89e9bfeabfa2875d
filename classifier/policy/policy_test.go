package policy

import (
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChooseCheapestThatClearsTheBar(t *testing.T) {
	opts := []Option{
		{Model: "opus", PredictedQuality: 0.95, ExpectedCostUSD: 0.05},
		{Model: "mini", PredictedQuality: 0.70, ExpectedCostUSD: 0.001},
		{Model: "haiku", PredictedQuality: 0.85, ExpectedCostUSD: 0.004},
		{Model: "sonnet", PredictedQuality: 0.90, ExpectedCostUSD: 0.02},
	}
	cases := []struct {
		name      string
		bar, max  float64
		want      string
		cleared   bool
		fallbacks []string
	}{
		{"low bar takes the cheapest", 0.5, 0, "mini", true, []string{"haiku", "sonnet", "opus"}},
		{"mid bar skips what falls short", 0.8, 0, "haiku", true, []string{"sonnet", "opus", "mini"}},
		{"bar equal to a prediction clears", 0.9, 0, "sonnet", true, []string{"opus", "haiku", "mini"}},
		{"nothing clears: best quality", 0.99, 0, "opus", false, []string{"sonnet", "haiku", "mini"}},
		{"max cost removes the expensive", 0.99, 0.01, "haiku", false, []string{"mini"}},
		{"max cost with a clearing model", 0.8, 0.005, "haiku", true, []string{"mini"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch, err := Choose(opts, c.bar, c.max)
			require.NoError(t, err)
			assert.Equal(t, c.want, opts[ch.Index].Model)
			assert.Equal(t, c.cleared, ch.Cleared)
			assert.Equal(t, 1.0, ch.Propensity)
			var fb []string
			for _, i := range ch.Fallbacks {
				fb = append(fb, opts[i].Model)
			}
			assert.Equal(t, c.fallbacks, fb)
		})
	}
}

func TestChooseTiesAreDeterministic(t *testing.T) {
	opts := []Option{
		{Model: "a", PredictedQuality: 0.8, ExpectedCostUSD: 0.01},
		{Model: "b", PredictedQuality: 0.9, ExpectedCostUSD: 0.01},
		{Model: "c", PredictedQuality: 0.9, ExpectedCostUSD: 0.01},
	}
	ch, err := Choose(opts, 0.5, 0)
	require.NoError(t, err)
	assert.Equal(t, 1, ch.Index, "equal cost: higher quality, then earlier")
	ch, err = Choose(opts, 0.95, 0)
	require.NoError(t, err)
	assert.Equal(t, 1, ch.Index, "none clears, equal quality and cost: earlier")
}

func TestChooseNoCandidate(t *testing.T) {
	_, err := Choose(nil, 0.5, 0)
	require.ErrorIs(t, err, ErrNoCandidate)
	_, err = Choose([]Option{{Model: "a", ExpectedCostUSD: 0.02}}, 0.5, 0.01)
	require.ErrorIs(t, err, ErrNoCandidate)
	assert.Contains(t, err.Error(), "max_cost_usd")
}

func TestChooseTradeoffWeighsCostAgainstQuality(t *testing.T) {
	opts := []Option{
		{Model: "cheap", PredictedQuality: 0.70, ExpectedCostUSD: 0.001},
		{Model: "mid", PredictedQuality: 0.85, ExpectedCostUSD: 0.01},
		{Model: "dear", PredictedQuality: 0.90, ExpectedCostUSD: 0.10},
	}
	cases := []struct {
		lambda float64
		want   string
	}{
		{0, "dear"},     // quality only
		{0.3, "dear"},   // 0.87 vs 0.847 vs 0.6997
		{1, "mid"},      // 0.80 vs 0.84 vs 0.699
		{10, "mid"},     // -0.1, 0.75, 0.69
		{1000, "cheap"}, // cost dominates
	}
	for _, c := range cases {
		l := c.lambda
		ch, err := Rule{QualityBar: 0.8, Lambda: &l}.Choose(opts, 0)
		require.NoError(t, err)
		assert.Equal(t, c.want, opts[ch.Index].Model, "lambda %v", c.lambda)
		assert.Len(t, ch.Fallbacks, 2)
	}
	_, err := ChooseTradeoff(opts, -1, 0.5, 0)
	require.Error(t, err)
	assert.Equal(t, "bar=0.80", Rule{QualityBar: 0.8}.String())
}

func TestRuleExcludesOptionsThePromptDoesNotFit(t *testing.T) {
	opts := []Option{
		{Model: "small", PredictedQuality: 0.95, ExpectedCostUSD: 0.001, ContextWindow: 1000, TokensNeeded: 1500},
		{Model: "unknown", PredictedQuality: 0.60, ExpectedCostUSD: 0.002, TokensNeeded: 1500},
		{Model: "big", PredictedQuality: 0.90, ExpectedCostUSD: 0.010, ContextWindow: 4000, TokensNeeded: 1500},
		{Model: "mid", PredictedQuality: 0.85, ExpectedCostUSD: 0.005, ContextWindow: 1500, TokensNeeded: 1500},
	}
	tooLong := make([]Option, len(opts))
	for i, o := range opts {
		o.TokensNeeded = 5000
		tooLong[i] = o
	}
	tooLong[1].ContextWindow = 4000 // now every window is known
	one := 1.0
	cases := []struct {
		name      string
		rule      Rule
		opts      []Option
		want      string
		fallbacks []string
		err       string
	}{
		{"bar: the cheapest that fits and clears", Rule{QualityBar: 0.8}, opts, "mid", []string{"big", "unknown"}, ""},
		{"bar: nothing clears, the best that fits", Rule{QualityBar: 0.99}, opts, "big", []string{"mid", "unknown"}, ""},
		{"trade-off: the best utility that fits", Rule{Lambda: &one}, opts, "big", []string{"mid", "unknown"}, ""},
		{"nothing fits: the largest window is named", Rule{QualityBar: 0.8}, tooLong, "", nil,
			"prompt needs about 5,000 tokens; the largest context window among the candidates is 4,000 (unknown): shorten the prompt or name a candidate with a larger window"},
		{"largest: the rule among the largest windows", Rule{QualityBar: 0.8, ContextOverflow: OverflowLargest}, tooLong, "big", []string{"unknown"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch, err := c.rule.Choose(c.opts, 0)
			if c.err != "" {
				var cw *ContextWindowError
				require.ErrorAs(t, err, &cw)
				assert.Equal(t, ContextWindowError{TokensNeeded: 5000, Window: 4000, Model: "unknown"}, *cw)
				assert.EqualError(t, err, c.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, c.opts[ch.Index].Model)
			var fb []string
			for _, i := range ch.Fallbacks {
				fb = append(fb, c.opts[i].Model)
			}
			assert.Equal(t, c.fallbacks, fb)
		})
	}
}

func TestThousandsGroupsDigits(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 262145: "262,145", 1000000: "1,000,000", -12345: "-12,345"} {
		assert.Equal(t, want, thousands(n))
	}
}

func TestPickIsWhatChooseChoosesChoice(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for trial := 0; trial < 2000; trial++ {
		opts := make([]Option, 1+rng.Intn(6))
		for i := range opts {
			// coarse values so that ties happen
			opts[i] = Option{PredictedQuality: float64(rng.Intn(5)) / 4, ExpectedCostUSD: float64(1 + rng.Intn(3))}
			if rng.Intn(20) == 0 {
				opts[i].PredictedQuality = math.NaN() // a diverged predictor
			}
			if rng.Intn(8) == 0 {
				opts[i].ContextWindow, opts[i].TokensNeeded = 10, 20 // does not fit
			}
		}
		r := Rule{QualityBar: float64(rng.Intn(5)) / 4}
		if rng.Intn(2) == 0 {
			l := float64(rng.Intn(4)) / 8
			r.Lambda = &l
		}
		if rng.Intn(2) == 0 {
			r.CostWeight = float64(rng.Intn(4)) / 8
		}
		c, cerr := r.Choose(opts, 0)
		got, perr := r.Pick(opts)
		if cerr != nil {
			require.Error(t, perr, "trial %d", trial)
			continue
		}
		require.NoError(t, perr)
		require.Equal(t, c.Index, got, "trial %d: %+v under %s", trial, opts, r)
	}
	bad := -1.0
	_, err := Rule{Lambda: &bad}.Pick([]Option{{}})
	assert.ErrorContains(t, err, "lambda")
	_, err = Rule{CostWeight: math.NaN()}.Choose([]Option{{}}, 0)
	assert.ErrorContains(t, err, "cost weight")
}

// A budget's cost weight: 0 is the bar rule; as it grows the rule gives up
// quality above the bar first (nothing is lost there), then below it where
// the saving is worth more than the weight.
func TestCostWeightTradesQualityBelowTheBarForCost(t *testing.T) {
	opts := []Option{
		{Model: "large", PredictedQuality: 0.95, ExpectedCostUSD: 0.010},
		{Model: "medium", PredictedQuality: 0.85, ExpectedCostUSD: 0.004},
		{Model: "small", PredictedQuality: 0.60, ExpectedCostUSD: 0.001},
	}
	pick := func(bar, w float64) string {
		c, err := Rule{QualityBar: bar, CostWeight: w}.Choose(opts, 0)
		require.NoError(t, err)
		return opts[c.Index].Model
	}
	for _, bar := range []float64{0.5, 0.8, 0.9, 0.99} {
		c, err := Choose(opts, bar, 0)
		require.NoError(t, err)
		assert.Equal(t, opts[c.Index].Model, pick(bar, 0), "bar %v", bar)
	}
	assert.Equal(t, "large", pick(0.9, 1))   // 0.9-0.01 > 0.85-0.004
	assert.Equal(t, "medium", pick(0.9, 20)) // saving 0.006 USD is worth the 0.05 of quality at 20/USD
	assert.Equal(t, "medium", pick(0.8, 1))  // both clear: cheaper, as the bar rule
	assert.Equal(t, "small", pick(0.8, 100)) // 0.2 of quality below the bar for 0.003 USD at 100/USD
	assert.Equal(t, "small", pick(0.8, 1e6))
	l := 10.0
	c, err := Rule{Lambda: &l, CostWeight: 20}.Choose(opts, 0)
	require.NoError(t, err)
	want, _ := ChooseTradeoff(opts, 30, 0, 0)
	assert.Equal(t, want.Index, c.Index, "with λ the weight adds to it")
}
