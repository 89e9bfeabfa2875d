package policy_test

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/features"
)

// promptOf returns a prompt the router estimates at exactly n input tokens
// (one token per four runes).
func promptOf(n int) features.Input { return features.Input{Prompt: strings.Repeat("abcd", n)} }

func modelsOf(d policy.Decision, idx []int) []string {
	out := []string{}
	for _, i := range idx {
		out = append(out, d.Options[i].Model)
	}
	return out
}

func TestRouteRespectsContextWindows(t *testing.T) {
	graded := map[string]int{"cheap": 1000, "mid": 2000, "dear": 4000, "top": 8000}
	zero, quality := 0.0, 0.0
	cases := []struct {
		name       string
		windows    map[string]int
		overflow   policy.ContextOverflow
		lambda     *float64
		candidates []string
		maxCost    float64
		tokens     int // estimated input tokens; every model expects 100 output tokens
		want       string
		fallbacks  []string
		err        string // a *ContextWindowError with this message
	}{
		{name: "a short prompt may go to any candidate", windows: graded, tokens: 10,
			want: "cheap", fallbacks: []string{"mid", "dear", "top"}},
		{name: "a prompt too long for the cheap models goes to the cheapest that fits", windows: graded, tokens: 2500,
			want: "dear", fallbacks: []string{"top"}},
		{name: "the window holds input and expected output: exactly full fits", windows: graded, tokens: 1900,
			want: "mid", fallbacks: []string{"dear", "top"}},
		{name: "the window holds input and expected output: one token over does not", windows: graded, tokens: 1901,
			want: "dear", fallbacks: []string{"top"}},
		{name: "the model ranked last is chosen when it is the only one that fits",
			windows: map[string]int{"cheap": 1000, "mid": 1000, "dear": 1000, "top": 200000}, tokens: 150000,
			want: "top", fallbacks: []string{}},
		{name: "an unknown window always fits",
			windows: map[string]int{"cheap": 1000, "mid": 1000, "dear": 1000}, tokens: 262045,
			want: "top", fallbacks: []string{}},
		{name: "nothing fits: the error names the tokens and the largest window", windows: graded, tokens: 262045,
			err: "prompt needs about 262,145 tokens; the largest context window among the candidates is 8,000 (top): shorten the prompt or name a candidate with a larger window"},
		{name: "the largest window is looked for among the request's candidates", windows: graded, tokens: 2500,
			candidates: []string{"cheap", "mid"},
			err:        "prompt needs about 2,600 tokens; the largest context window among the candidates is 2,000 (mid): shorten the prompt or name a candidate with a larger window"},
		{name: "largest: a prompt that fits nothing goes to the largest window", windows: graded, tokens: 262045,
			overflow: policy.OverflowLargest, want: "top", fallbacks: []string{}},
		{name: "largest: the rule chooses among candidates sharing the largest window",
			windows: map[string]int{"cheap": 1000, "mid": 1000, "dear": 4000, "top": 4000}, tokens: 10000,
			overflow: policy.OverflowLargest, want: "dear", fallbacks: []string{"top"}},
		{name: "largest: a prompt that fits some is routed as under reject", windows: graded, tokens: 2500,
			overflow: policy.OverflowLargest, want: "dear", fallbacks: []string{"top"}},
		{name: "largest: within the request's candidates", windows: graded, tokens: 10000,
			candidates: []string{"cheap", "mid", "dear"}, overflow: policy.OverflowLargest, want: "dear", fallbacks: []string{}},
		{name: "trade-off rule: the best quality that fits",
			windows: map[string]int{"cheap": 8000, "mid": 8000, "dear": 8000, "top": 1000}, tokens: 2500,
			lambda: &quality, want: "dear", fallbacks: []string{"mid", "cheap"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := testRouterWindows(t, policy.Config{Name: "p", QualityBar: 0.8, Lambda: c.lambda, ContextOverflow: c.overflow}, c.windows, false)
			req := policy.Request{Input: promptOf(c.tokens), Candidates: c.candidates, MaxCostUSD: c.maxCost}
			if c.lambda == nil {
				req.QualityBar = &zero // the cheapest allowed model wins, so exclusions show
			}
			d, err := r.Route(req)
			if c.err != "" {
				require.Error(t, err)
				var cw *policy.ContextWindowError
				require.ErrorAs(t, err, &cw)
				assert.ErrorIs(t, err, policy.ErrContextWindow)
				assert.ErrorIs(t, err, policy.ErrNoCandidate, "servers already answer ErrNoCandidate with 400")
				assert.EqualError(t, err, c.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.tokens, d.InputTokens)
			assert.Equal(t, c.want, d.Chosen)
			assert.Equal(t, c.fallbacks, modelsOf(d, d.Fallbacks))
			assert.Equal(t, 1.0, d.Propensity)
			for _, o := range d.Options {
				assert.Equal(t, c.tokens+100, o.TokensNeeded, "model %s", o.Model)
				assert.Equal(t, c.windows[o.Model], o.ContextWindow, "model %s", o.Model)
			}
		})
	}
}

func TestMaxCostAppliesToTheCandidatesThePromptFits(t *testing.T) {
	r := testRouterWindows(t, policy.Config{Name: "p", QualityBar: 0.8},
		map[string]int{"cheap": 1000, "mid": 2000, "dear": 4000, "top": 8000}, false)
	// cheap and mid are within budget but too small; dear costs 0.026
	_, err := r.Route(policy.Request{Input: promptOf(2500), MaxCostUSD: 0.001})
	require.ErrorIs(t, err, policy.ErrNoCandidate)
	assert.NotErrorIs(t, err, policy.ErrContextWindow, "some candidates fit: the budget is what excludes them")
	assert.Contains(t, err.Error(), "max_cost_usd 0.001 is below the cheapest fitting candidate's expected cost 0.026")

	d, err := r.Route(policy.Request{Input: promptOf(2500), MaxCostUSD: 0.03})
	require.NoError(t, err)
	assert.Equal(t, "dear", d.Chosen, "top fits but is over budget")
	assert.Empty(t, d.Fallbacks)
}

func TestExplorationNeverPicksAModelThePromptDoesNotFit(t *testing.T) {
	windows := map[string]int{"cheap": 1000, "mid": 2000, "dear": 8000, "top": 8000}
	small := map[string]int{"cheap": 1000, "mid": 2000, "dear": 8000, "top": 8000, "fresh": 1000}
	zero := 0.0
	cases := []struct {
		name    string
		cfg     policy.Config
		windows map[string]int
		extra   bool
		probs   map[string]float64 // of the models the prompt fits; the others must be 0
	}{
		{name: "epsilon-greedy shares epsilon among the fitting", windows: windows,
			cfg:   policy.Config{Exploration: policy.Exploration{Strategy: policy.ExploreEpsilonGreedy, Epsilon: 1}},
			probs: map[string]float64{"dear": 0.5, "top": 0.5}},
		{name: "softmax over the fitting (bar rule)", windows: windows,
			cfg: policy.Config{Exploration: policy.Exploration{Strategy: policy.ExploreSoftmax, Temperature: 1}}},
		{name: "softmax over the fitting (trade-off rule)", windows: windows,
			cfg: policy.Config{Lambda: &zero, Exploration: policy.Exploration{Strategy: policy.ExploreSoftmax, Temperature: 1}}},
		{name: "optimism with an epsilon floor", windows: windows,
			cfg: policy.Config{Exploration: policy.Exploration{Strategy: policy.ExploreOptimism, Bonus: 0.5, Epsilon: 0.5}}},
		{name: "a new model the prompt does not fit is not forced", windows: small, extra: true,
			cfg: policy.Config{NewModels: &policy.NewModels{Share: 0.5, MinObservations: 10},
				Exploration: policy.Exploration{Strategy: policy.ExploreEpsilonGreedy, Epsilon: 0.2}},
			probs: map[string]float64{"dear": 0.9, "top": 0.1}},
		{name: "a new model the prompt fits is forced", windows: windows, extra: true, // fresh's window unknown
			cfg: policy.Config{NewModels: &policy.NewModels{Share: 0.5, MinObservations: 10},
				Exploration: policy.Exploration{Strategy: policy.ExploreEpsilonGreedy, Epsilon: 0.2}},
			probs: map[string]float64{"dear": 0.5 * (0.8 + 0.2/3), "top": 0.5 * 0.2 / 3, "fresh": 0.5 + 0.5*0.2/3}},
		{name: "largest: exploration stays among the largest windows", windows: map[string]int{"cheap": 1000, "mid": 2000, "dear": 2000, "top": 1500},
			cfg: policy.Config{ContextOverflow: policy.OverflowLargest,
				Exploration: policy.Exploration{Strategy: policy.ExploreEpsilonGreedy, Epsilon: 1}},
			probs: map[string]float64{"mid": 0.5, "dear": 0.5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Name, c.cfg.QualityBar = "p", 0.8
			r := testRouterWindows(t, c.cfg, c.windows, c.extra)
			rng := rand.New(rand.NewSource(11))
			chosen := map[string]int{}
			in := promptOf(2500) // fits dear and top (and fresh when its window is unknown)
			for i := 0; i < 500; i++ {
				d, err := r.Route(policy.Request{Input: in, Draw: rng.Float64()})
				require.NoError(t, err)
				var sum float64
				for k, o := range d.Options {
					sum += d.Probs[k]
					if c.cfg.ContextOverflow == "" && !o.Fits() {
						require.Zero(t, d.Probs[k], "model %s does not fit", o.Model)
						require.NotContains(t, modelsOf(d, d.Fallbacks), o.Model)
					}
					if want, ok := c.probs[o.Model]; ok {
						require.InDelta(t, want, d.Probs[k], 1e-12, "model %s", o.Model)
					} else if c.probs != nil {
						require.Zero(t, d.Probs[k], "model %s", o.Model)
					}
				}
				require.InDelta(t, 1, sum, 1e-12)
				require.Positive(t, d.Propensity)
				require.InDelta(t, d.Probs[d.Index], d.Propensity, 1e-12)
				chosen[d.Chosen]++
			}
			assert.NotContains(t, chosen, "cheap")
			if c.cfg.ContextOverflow == "" {
				assert.NotContains(t, chosen, "mid")
			}
			assert.Greater(t, len(chosen), 1, "exploration still explores among the models that fit: %v", chosen)
		})
	}
}

func TestContextOverflowSettingIsValidated(t *testing.T) {
	cases := []struct {
		setting policy.ContextOverflow
		ok      bool
	}{
		{"", true}, {policy.OverflowReject, true}, {policy.OverflowLargest, true}, {"biggest", false}, {"Reject", false},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(string(c.setting), func(t *testing.T) {
			_, err := newTestRouter(t, policy.Config{Name: "p", QualityBar: 0.8, ContextOverflow: c.setting}, nil, false)
			path := filepath.Join(dir, "policy.json")
			require.NoError(t, os.WriteFile(path, []byte(`{"name": "p", "quality_bar": 0.8, "context_overflow": "`+string(c.setting)+
				`", "predictor": "p.onnx", "catalogue": "c.csv"}`), 0o644))
			f, ferr := policy.ReadFile(path)
			if c.ok {
				require.NoError(t, err)
				require.NoError(t, ferr)
				assert.Equal(t, c.setting, f.ContextOverflow)
				return
			}
			for _, e := range []error{err, ferr} {
				require.Error(t, e)
				assert.Contains(t, e.Error(), `context_overflow "`+string(c.setting)+`" is not a setting (want "reject" or "largest")`)
			}
		})
	}
}
