package rollout_test

import (
	"fmt"
	"math"
	"math/rand"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/experiments/rollout"
)

func known(string) bool { return true }

func TestExperimentAssignsUnitsByWeightAndKeepsThem(t *testing.T) {
	x, err := rollout.NewExperiment(rollout.ExperimentSpec{Name: "e", Unit: rollout.UnitUser, Salt: "s",
		Arms: []rollout.ArmSpec{{Name: "a", Policy: "p", Weight: 0.7}, {Name: "b", Policy: "q", Weight: 0.3}}}, known)
	require.NoError(t, err)
	var n [2]int
	for i := 0; i < 10000; i++ {
		u := "user-" + strconv.Itoa(i)
		arm := x.Assign(u)
		n[arm]++
		require.Equal(t, arm, x.Arm(u), "a unit stays in its arm")
	}
	assert.InDelta(t, 7000, n[0], 200)
	st := x.State(func(p string) string { return p + "-v1" })
	assert.Equal(t, "running", st.State)
	assert.Equal(t, int64(n[0]), st.Arms[0].Decisions)
	assert.Equal(t, "q-v1", st.Arms[1].PolicyVersion)
}

func TestNewExperimentNamesWhatIsWrong(t *testing.T) {
	arms := []rollout.ArmSpec{{Name: "a", Policy: "p", Weight: 0.5}, {Name: "b", Policy: "q", Weight: 0.5}}
	for _, c := range []struct {
		spec rollout.ExperimentSpec
		want string
	}{
		{rollout.ExperimentSpec{Name: "e", Unit: "user", Arms: arms}, "salt is empty"},
		{rollout.ExperimentSpec{Name: "e", Unit: "planet", Salt: "s", Arms: arms}, `unit "planet"`},
		{rollout.ExperimentSpec{Name: "e", Unit: "user", Salt: "s", Arms: arms[:1]}, "at least two arms"},
		{rollout.ExperimentSpec{Name: "e", Unit: "user", Salt: "s", Arms: []rollout.ArmSpec{{Name: "a", Policy: "p", Weight: 0.5}, {Name: "b", Policy: "q", Weight: 0.2}}}, "sum to 0.7"},
		{rollout.ExperimentSpec{Name: "e", Unit: "user", Salt: "s", Arms: arms,
			Rollout: &rollout.Spec{Treatment: "b", Control: "a", Stages: []float64{0.5, 0.2}, MinOutcomes: 10}}, "stages must increase"},
	} {
		_, err := rollout.NewExperiment(c.spec, known)
		require.ErrorContains(t, err, c.want)
	}
	_, err := rollout.NewExperiment(rollout.ExperimentSpec{Name: "e", Unit: "user", Salt: "s", Arms: arms}, func(p string) bool { return p == "p" })
	require.ErrorContains(t, err, `names policy "q", which is not defined`)
}

// The engine on its own: equal arms climb every stage; a treatment that
// is clearly worse on quality is reverted, and everything goes to control.
func TestRolloutAdvancesAndRevertsWithoutAServer(t *testing.T) {
	run := func(treatmentQuality float64) rollout.State {
		x, err := rollout.NewExperiment(rollout.ExperimentSpec{Name: "r", Unit: rollout.UnitUser, Salt: "s",
			Arms: []rollout.ArmSpec{{Name: "control", Policy: "p"}, {Name: "treatment", Policy: "q"}},
			Rollout: &rollout.Spec{Treatment: "treatment", Control: "control", Stages: []float64{0.1, 0.5, 1}, MinOutcomes: 200,
				Guardrails: []rollout.Guardrail{{Metric: rollout.MetricQuality, Tolerance: 0.05}}}}, known)
		require.NoError(t, err)
		var logged []rollout.Transition
		x.Watch(func(exp string, tr rollout.Transition) { logged = append(logged, tr) })
		rng := rand.New(rand.NewSource(1))
		for i := 0; i < 20000; i++ {
			arm := x.Assign("u" + strconv.Itoa(i))
			p := 0.8
			if arm == 1 {
				p = treatmentQuality
			}
			q := 0.0
			if rng.Float64() < p {
				q = 1
			}
			x.Observe(arm, q, 0.001, false)
		}
		st := x.State(func(string) string { return "1" })
		require.NotNil(t, st.Rollout)
		assert.Equal(t, st.Rollout.Transitions, logged, "every transition was reported to the watcher")
		return *st.Rollout
	}
	good := run(0.8)
	assert.Equal(t, "complete", good.State)
	assert.Equal(t, 1.0, good.Share)
	bad := run(0.5)
	assert.Equal(t, "reverted", bad.State)
	assert.Equal(t, 0.0, bad.Share)
	assert.Contains(t, bad.Transitions[len(bad.Transitions)-1].Reason, "guardrail breached: quality")
}

// With no true difference between the arms, the always-valid guardrail
// tests rarely revert: over 200 seeded rollouts of 2,500 outcomes (the
// scale of a test through the server), at most alpha = 5% are reverted,
// and most complete.
func TestRolloutWithNoTrueDifferenceIsRarelyReverted(t *testing.T) {
	reverted, complete := 0, 0
	for seed := range 200 {
		x, err := rollout.NewExperiment(rollout.ExperimentSpec{Name: "r", Unit: rollout.UnitUser, Salt: fmt.Sprint("salt-", seed),
			Arms: []rollout.ArmSpec{{Name: "control", Policy: "p"}, {Name: "treatment", Policy: "p"}},
			Rollout: &rollout.Spec{Treatment: "treatment", Control: "control", Stages: []float64{0.1, 0.25, 0.5, 1}, MinOutcomes: 80,
				Guardrails: []rollout.Guardrail{{Metric: rollout.MetricQuality, Tolerance: 0.05}, {Metric: rollout.MetricErrorRate, Tolerance: 0.02},
					{Metric: rollout.MetricCost, Tolerance: 0.1}}}}, known)
		require.NoError(t, err)
		rng := rand.New(rand.NewSource(int64(seed)))
		for i := 0; i < 2500; i++ {
			arm := x.Assign(fmt.Sprint("u", rng.Intn(5000)))
			q := 0.0
			if rng.Float64() < 0.8 {
				q = 1
			}
			x.Observe(arm, q, 0.002*math.Exp(rng.NormFloat64()), rng.Float64() < 0.01)
		}
		switch x.State(func(string) string { return "1" }).State {
		case "reverted":
			reverted++
		case "complete":
			complete++
		}
	}
	t.Logf("200 rollouts: %d reverted, %d complete", reverted, complete)
	assert.LessOrEqual(t, reverted, 10, "at most alpha of the rollouts revert")
	assert.Greater(t, complete, 150, "most reach the last stage")
}

func TestResumeCarriesTheRolloutAcrossAnUnchangedReload(t *testing.T) {
	spec := rollout.ExperimentSpec{Name: "r", Unit: rollout.UnitUser, Salt: "s",
		Arms:    []rollout.ArmSpec{{Name: "control", Policy: "p"}, {Name: "treatment", Policy: "q"}},
		Rollout: &rollout.Spec{Treatment: "treatment", Control: "control", Stages: []float64{0.2, 1}, MinOutcomes: 50}}
	old, err := rollout.NewExperiment(spec, known)
	require.NoError(t, err)
	for i := 0; i < 2000; i++ {
		old.Observe(old.Assign("u"+strconv.Itoa(i)), 1, 0.001, false)
	}
	require.Equal(t, "complete", old.State(func(string) string { return "" }).State)
	same, _ := rollout.NewExperiment(spec, known)
	assert.True(t, same.Resume(old))
	assert.Equal(t, old.State(func(string) string { return "" }), same.State(func(string) string { return "" }))
	changed := spec
	changed.Salt = "other"
	other, _ := rollout.NewExperiment(changed, known)
	assert.False(t, other.Resume(old), "a changed experiment starts again")
	assert.Equal(t, "rolling out", other.State(func(string) string { return "" }).State)
}
