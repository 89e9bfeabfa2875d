package budget_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/serving/budget"
)

func TestConfigNamesWhatIsWrong(t *testing.T) {
	for _, c := range []struct {
		spec budget.Spec
		want string
	}{
		{budget.Spec{USD: 0, Period: "day", Mode: "pace"}, "usd 0 must be a positive amount"},
		{budget.Spec{USD: 1, Period: "week", Mode: "pace"}, `period "week" is not day or month`},
		{budget.Spec{USD: 1, Period: "day", Mode: "stop"}, `mode "stop" is not pace or cap`},
		{budget.Spec{USD: 1, Period: "day", Mode: "cap", WhenExhausted: "drop"}, `when_exhausted "drop"`},
		{budget.Spec{USD: 1, Period: "day", Mode: "pace", WhenExhausted: "reject"}, "applies to mode cap only"},
	} {
		err := (&budget.Config{Tenants: map[string]budget.Spec{"t": c.spec}}).Validate()
		require.ErrorContains(t, err, c.want)
		assert.ErrorContains(t, err, `tenant "t"`)
	}
	require.NoError(t, (&budget.Config{Default: &budget.Spec{USD: 1, Period: "month", Mode: "cap"}}).Validate())
	require.NoError(t, (*budget.Config)(nil).Validate())
}

// decision is a routing decision with one option costing cost.
func decision(cost float64) policy.Decision {
	return policy.Decision{Options: []policy.Option{{Model: "m", PredictedQuality: 0.9, ExpectedCostUSD: cost}}}
}

// A cap on one replica without a store: routed as usual below the budget,
// then the cheapest model (or a refusal); over by at most one request;
// a new day starts again; feedback's actual cost corrects the spend.
func TestCapWithoutAStore(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l := budget.NewLedger(&budget.Config{Tenants: map[string]budget.Spec{
		"c": {USD: 1, Period: budget.PeriodDay, Mode: budget.ModeCap},
		"r": {USD: 1, Period: budget.PeriodDay, Mode: budget.ModeCap, WhenExhausted: budget.ExhaustedReject}}}, clock, nil)
	ctx := context.Background()
	_, ok := l.Shape("nobody")
	assert.False(t, ok, "no budget without a default")
	spent := 0.0
	for range 10 {
		sh, ok := l.Shape("c")
		require.True(t, ok)
		if sh.Exhausted {
			assert.Equal(t, budget.CheapestWeight, sh.CostWeight)
			assert.Equal(t, "capped", sh.Action())
			assert.False(t, sh.Reject)
			break
		}
		assert.Zero(t, sh.CostWeight)
		require.NoError(t, l.Charge(ctx, sh, decision(0.3)))
		spent += 0.3
	}
	assert.InDelta(t, 1.2, spent, 1e-9, "over by one request at most")
	st, ok := l.State("c")
	require.True(t, ok)
	assert.Equal(t, "exhausted", st.Status)
	assert.InDelta(t, 1.2, st.SpentUSD, 1e-9)
	assert.InDelta(t, 1.0*10/24, st.PaceUSD, 1e-9, "an even pace at 10:00")

	l.Correct("c", -0.5) // the calls cost less than expected
	sh, _ := l.Shape("c")
	assert.False(t, sh.Exhausted, "below the budget again")

	for {
		sh, _ := l.Shape("r")
		if sh.Reject {
			assert.Equal(t, "rejected", sh.Action())
			break
		}
		require.NoError(t, l.Charge(ctx, sh, decision(0.4)))
	}
	now = now.Add(14 * time.Hour) // the next day
	st, _ = l.State("r")
	assert.Zero(t, st.SpentUSD)
	assert.Equal(t, time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC), st.PeriodStart)
	sh, _ = l.Shape("r")
	assert.False(t, sh.Reject)
}

// Two requests racing for the last of a cap: the one charged second is
// told the budget is spent and routes as past it.
func TestChargeRefusesPastTheCap(t *testing.T) {
	l := budget.NewLedger(&budget.Config{Default: &budget.Spec{USD: 1, Period: budget.PeriodMonth, Mode: budget.ModeCap}}, nil, nil)
	ctx := context.Background()
	a, _ := l.Shape("anyone")
	b, _ := l.Shape("anyone")
	require.NoError(t, l.Charge(ctx, a, decision(1.5)))
	require.ErrorIs(t, l.Charge(ctx, b, decision(0.1)), budget.ErrExhausted)
	past := b.Exhaust()
	assert.True(t, past.Exhausted)
	require.NoError(t, l.Charge(ctx, past, decision(0.01)), "the cheapest model past the cap is charged")
	st, _ := l.State("anyone")
	assert.InDelta(t, 1.51, st.SpentUSD, 1e-9)
	assert.Equal(t, "month", st.Period)
}

// Pacing on its own: a tenant spending twice its even pace gets a cost
// weight that brings the replayed decisions' cost down to the pace.
func TestPaceRaisesTheWeightWhenAhead(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	l := budget.NewLedger(&budget.Config{Tenants: map[string]budget.Spec{"p": {USD: 24, Period: budget.PeriodDay, Mode: budget.ModePace}}},
		func() time.Time { return now }, nil)
	// each request: a 2-USD model of quality 0.9 or a 0.5-USD one of 0.8
	d := policy.Decision{Options: []policy.Option{{Model: "big", PredictedQuality: 0.9, ExpectedCostUSD: 2}, {Model: "small", PredictedQuality: 0.8, ExpectedCostUSD: 0.5}},
		Rule: policy.Rule{QualityBar: 0.95}}
	ctx := context.Background()
	for range 120 { // one request a minute for two hours, routed as the shaping says
		sh, _ := l.Shape("p")
		r := d.Rule
		r.CostWeight = sh.CostWeight
		i, err := r.Pick(d.Options)
		require.NoError(t, err)
		d.Index = i
		require.NoError(t, l.Charge(ctx, sh, d))
		now = now.Add(time.Minute)
	}
	st, _ := l.State("p")
	// at one request a minute the budget allows 24/1440 USD a request:
	// less than even the small model, so the weight prefers it
	assert.Greater(t, st.CostWeight, 0.1/1.5, "the weight that makes the small model win")
	sh, _ := l.Shape("p")
	r := d.Rule
	r.CostWeight = sh.CostWeight
	i, _ := r.Pick(d.Options)
	assert.Equal(t, "small", d.Options[i].Model)
	assert.Equal(t, "paced", sh.Action())
}
