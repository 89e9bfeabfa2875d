package abtest

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
)

// simulate logs an experiment: units with 1–6 requests each and a
// per-unit effect, control answering acceptably with probability pc and
// treatment with pt; actual is the share of units really sent to treatment.
func simulate(seed int64, units int, actual, pc, pt float64) ([]datasets.DecisionRecord, []datasets.OutcomeRecord) {
	rng := rand.New(rand.NewSource(seed))
	var ds []datasets.DecisionRecord
	var os []datasets.OutcomeRecord
	for u := 0; u < units; u++ {
		arm, p, cost := "control", pc, 0.002
		if rng.Float64() < actual {
			arm, p, cost = "treatment", pt, 0.001
		}
		effect := rng.NormFloat64() * 0.05
		for r := 0; r < 1+rng.Intn(6); r++ {
			id := fmt.Sprintf("d-%d-%d", u, r)
			ds = append(ds, datasets.DecisionRecord{DecisionID: id, Experiment: "e", Arm: arm, UnitHash: fmt.Sprintf("u%d", u)})
			q := 0.0
			if rng.Float64() < p+effect {
				q = 1
			}
			os = append(os, datasets.OutcomeRecord{DecisionID: id, Quality: q, CostUSD: cost * (0.5 + rng.Float64()),
				LatencyMS: 200 + 100*rng.Float64(), Source: datasets.SourceOnline})
		}
	}
	return ds, os
}

var cfg = Config{Experiment: "e", Control: "control", Weights: map[string]float64{"control": 0.5, "treatment": 0.5}}

func TestLiftIntervalCoversTheTrueDifference(t *testing.T) {
	truth := 0.75/0.70 - 1
	covered := 0
	for seed := int64(0); seed < 20; seed++ {
		ds, os := simulate(seed, 3000, 0.5, 0.70, 0.75)
		rep, err := Analyze(ds, os, cfg)
		require.NoError(t, err)
		l := rep.Arms[1].QualityLift
		if l.Lo <= truth && truth <= l.Hi {
			covered++
		}
		assert.False(t, rep.SRM.Mismatch, "seed %d: an honest split", seed)
	}
	assert.GreaterOrEqual(t, covered, 18, "the 95%% interval covers the true lift in nearly all seeds")
}

func TestAnalyzeReportsPerArmFigures(t *testing.T) {
	ds, os := simulate(1, 4000, 0.5, 0.70, 0.80)
	rep, err := Analyze(ds, os, cfg)
	require.NoError(t, err)
	require.Len(t, rep.Arms, 2)
	c, tr := rep.Arms[0], rep.Arms[1]
	assert.Equal(t, "control", c.Name)
	assert.Nil(t, c.QualityLift)
	assert.InDelta(t, 0.70, c.Quality.Mean, 0.03)
	assert.InDelta(t, 0.80, tr.Quality.Mean, 0.03)
	assert.Less(t, tr.QualityLift.PValue, 0.001, "a 10-point difference on 4,000 units is clear")
	assert.Less(t, tr.CostLift.Relative, -0.4, "treatment costs half")
	assert.Equal(t, c.Requests, c.WithOutcome)
	assert.Greater(t, c.Units, 1800)
	assert.True(t, c.LatencyP50MS > 200 && c.LatencyP99MS <= 300)
	assert.True(t, c.Quality.Lo < c.Quality.Mean && c.Quality.Mean < c.Quality.Hi)

	// no difference: a large p-value, lift interval around 0
	ds, os = simulate(2, 4000, 0.5, 0.7, 0.7)
	rep, err = Analyze(ds, os, cfg)
	require.NoError(t, err)
	l := rep.Arms[1].QualityLift
	assert.True(t, l.Lo < 0 && 0 < l.Hi)
}

func TestSampleRatioMismatchIsFlagged(t *testing.T) {
	// configured 70/30, but the split really sends half of the units to treatment
	ds, os := simulate(3, 3000, 0.5, 0.7, 0.7)
	broken := cfg
	broken.Weights = map[string]float64{"control": 0.7, "treatment": 0.3}
	rep, err := Analyze(ds, os, broken)
	require.NoError(t, err)
	assert.True(t, rep.SRM.Mismatch)
	assert.Less(t, rep.SRM.PValue, 1e-10)
	rep, err = Analyze(ds, os, cfg)
	require.NoError(t, err)
	assert.False(t, rep.SRM.Mismatch)
	assert.False(t, math.IsNaN(rep.SRM.ChiSquare))
}

func TestAnalyzeRejectsWhatItCannotAnalyse(t *testing.T) {
	ds, os := simulate(4, 50, 0.5, 0.7, 0.7)
	_, err := Analyze(ds, os, Config{Experiment: "other", Control: "control", Weights: cfg.Weights})
	require.ErrorContains(t, err, "no decisions")
	_, err = Analyze(ds, os, Config{Experiment: "e", Control: "control", Weights: map[string]float64{"control": 1}})
	require.ErrorContains(t, err, `arm "treatment"`)
	_, err = Analyze(ds, os, Config{Experiment: "e", Control: "nope", Weights: cfg.Weights})
	require.ErrorContains(t, err, `control arm "nope"`)
}

func TestIdenticalConstantArmsAreNotSignificant(t *testing.T) {
	// every request of both arms has quality 0.7 and cost 0.0013 (neither
	// exact in binary): the ratio estimates differ by rounding alone
	var ds []datasets.DecisionRecord
	var os []datasets.OutcomeRecord
	for u := range 400 {
		arm := []string{"control", "treatment"}[u%2]
		for r := range 1 + u%7 {
			id := fmt.Sprintf("d-%d-%d", u, r)
			ds = append(ds, datasets.DecisionRecord{DecisionID: id, Experiment: "e", Arm: arm, UnitHash: fmt.Sprintf("u%d", u)})
			os = append(os, datasets.OutcomeRecord{DecisionID: id, Quality: 0.7, CostUSD: 0.0013, Source: datasets.SourceOnline})
		}
	}
	rep, err := Analyze(ds, os, cfg)
	require.NoError(t, err)
	for name, l := range map[string]*Lift{"quality": rep.Arms[1].QualityLift, "cost": rep.Arms[1].CostLift} {
		require.NotNil(t, l, name)
		assert.InDelta(t, 0, l.Relative, 1e-12, name)
		assert.Equal(t, 1.0, l.PValue, "%s: no difference without variance is no evidence", name)
	}
}

func TestLiftPValueGuardsAgainstZeroStandardError(t *testing.T) {
	cases := []struct {
		name          string
		arm, control  Metric
		wantP         float64
		significantly bool
	}{
		{"no difference, no variance", Metric{Mean: 0.7}, Metric{Mean: 0.7}, 1, false},
		{"rounding difference over rounding error", Metric{Mean: 0.7 + 1e-16, StdErr: 1e-17}, Metric{Mean: 0.7, StdErr: 1e-17}, 1, false},
		{"a difference without measured variance", Metric{Mean: 0.8}, Metric{Mean: 0.7}, 1, false},
		{"a difference with variance", Metric{Mean: 0.8, StdErr: 0.01}, Metric{Mean: 0.7, StdErr: 0.01}, 0, true},
		{"no difference with variance", Metric{Mean: 0.7, StdErr: 0.01}, Metric{Mean: 0.7, StdErr: 0.01}, 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := lift(c.arm, c.control)
			require.NotNil(t, l)
			if c.significantly {
				assert.Less(t, l.PValue, 1e-6)
			} else {
				assert.Equal(t, c.wantP, l.PValue)
			}
		})
	}
}

func TestAnalyzeCountsOutcomesWithoutDecision(t *testing.T) {
	ds, os := simulate(5, 200, 0.5, 0.7, 0.7)
	lost := make([]datasets.OutcomeRecord, 1060)
	for i := range lost {
		lost[i] = datasets.OutcomeRecord{DecisionID: fmt.Sprintf("lost-%d", i), Quality: 1, Source: datasets.SourceOnline}
	}

	rep, err := Analyze(ds, append(os, lost[:25]...), cfg)
	require.NoError(t, err)
	assert.Equal(t, 25, rep.OutcomesWithoutDecision)
	assert.Equal(t, len(os), rep.Arms[0].WithOutcome+rep.Arms[1].WithOutcome, "the rest join as before")
	b, err := json.Marshal(rep)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"outcomes_without_decision":25`)

	rep, err = Analyze(ds, os, cfg)
	require.NoError(t, err)
	assert.Zero(t, rep.OutcomesWithoutDecision)

	for name, decisions := range map[string][]datasets.DecisionRecord{"decisions of the experiment": ds, "no decisions at all": nil} {
		_, err = Analyze(decisions, lost, cfg)
		require.EqualError(t, err, "analyze: no outcomes to analyse: 1,060 outcomes have no matching decision in the decision logs (were the decision logs lost or written elsewhere?)", name)
	}
}
