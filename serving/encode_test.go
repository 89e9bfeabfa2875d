package serving

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
)

func TestRouteResponseEncodesLikeEncodingJSON(t *testing.T) {
	cases := []RouteResponse{
		{DecisionID: "a-1", Model: "m", Candidates: []policy.Option{{Model: "m", PredictedQuality: 0.5, ExpectedCostUSD: 1.5e-7}}, Fallbacks: []string{}},
		{DecisionID: "x\"y\\z\n\x01", RequestID: "r\u00e9", Model: "mod\xff", Cleared: true, QualityBar: 0.8,
			Candidates: []policy.Option{{Model: "a", PredictedQuality: 0.123456789, ExpectedCostUSD: 0.002},
				{Model: "b", PredictedQuality: 1, ExpectedCostUSD: 0}},
			Fallbacks: []string{"b"}, Propensity: 0.925, Explored: true, InputTokens: 17, Policy: "p<&>", PolicyVersion: "1",
			PredictorVersion: "p-1", FeatureSpecID: "fs1-x"},
		{DecisionID: "b-2", Model: "m", Candidates: []policy.Option{}, Fallbacks: []string{}, Experiment: "e", Arm: "a",
			Budget: &BudgetNote{Tenant: "acme \"eu\"", Action: "paced", CostWeight: 123.45}},
	}
	for _, c := range cases {
		got := c.appendJSON(nil)
		want, err := json.Marshal(c)
		require.NoError(t, err)
		var a, b any
		require.NoError(t, json.Unmarshal(got, &a), string(got))
		require.NoError(t, json.Unmarshal(want, &b))
		assert.Equal(t, b, a)
	}
}
