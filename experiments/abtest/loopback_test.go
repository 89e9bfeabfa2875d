package abtest_test

import (
	"fmt"
	"math/rand"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/experiments/abtest"
	"switchyard/experiments/rollout"
	"switchyard/features"
	"switchyard/serving"
	"switchyard/serving/servingtest"
	"switchyard/training/trainingtest"
)

// TestExperimentThroughTheServerCoversTheTrueDifference runs an experiment
// between two policies through a real server on loopback: simulated users
// send prompts of the synthetic workload, the server assigns them to arms,
// and the gateway reports the true quality of the chosen model. The
// analysis's interval for the difference must cover the true difference,
// computed from the full ground truth and the policies' own distributions.
func TestExperimentThroughTheServerCoversTheTrueDifference(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a real server under load, or many training rounds): make test runs it; -short leaves it out")
	}
	w := trainingtest.Train(t, trainingtest.Options{Seed: 8, Prompts: 1500, Buckets: 1 << 14, Epochs: 4})
	eps := policy.Exploration{Strategy: policy.ExploreEpsilonGreedy, Epsilon: 0.1}
	fc := serving.FileConfig{Catalogue: w.CataloguePath, DefaultPolicy: "control",
		Policies: []serving.PolicySpec{
			{Config: policy.Config{Name: "control", Version: "1", QualityBar: 0.9, Exploration: eps}, Predictor: w.Predictor},
			{Config: policy.Config{Name: "cheap", Version: "1", QualityBar: 0.5, Exploration: eps}, Predictor: w.Predictor},
		},
		Experiments: []rollout.ExperimentSpec{{Name: "bar", Unit: rollout.UnitUser, Salt: "s",
			Arms: []rollout.ArmSpec{{Name: "control", Policy: "control", Weight: 0.5}, {Name: "cheap", Policy: "cheap", Weight: 0.5}}}}}
	cfg := serving.DefaultConfig()
	cfg.InstanceID = "loopback" // decision ids, and so the exploration draws, are the same on every run
	ts := servingtest.Start(t, serving.Options{Config: cfg, Load: servingtest.Routing(fc)})
	rt, err := serving.BuildRouting(fc, policy.LoadOptions{Scorer: policy.ScorerGo})
	require.NoError(t, err)
	defer rt.Close()

	// the truth: each policy's expected quality over the prompt distribution
	truth := map[string]float64{}
	for _, name := range []string{"control", "cheap"} {
		var sum float64
		for _, p := range w.Prompts {
			d, err := rt.Policies[name].Route(policy.Request{Input: features.Input{Prompt: p.Prompt, Task: p.Task}})
			require.NoError(t, err)
			for k, o := range d.Options {
				sum += d.Probs[k] * w.Truth(t, p.PromptID, o.Model).Quality
			}
		}
		truth[name] = sum / float64(len(w.Prompts))
	}
	trueLift := truth["cheap"]/truth["control"] - 1

	rng := rand.New(rand.NewSource(4))
	for i := 0; i < 6000; i++ {
		p := w.Prompts[rng.Intn(len(w.Prompts))]
		user := fmt.Sprintf("user-%d", rng.Intn(1500))
		r := ts.Route(t, map[string]string{"prompt": p.Prompt, "task": p.Task, "user": user})
		o := w.Truth(t, p.PromptID, r.Model)
		require.Equal(t, http.StatusOK, ts.Feedback(t, map[string]any{"decision_id": r.DecisionID, "quality": o.Quality, "cost_usd": o.CostUSD,
			"latency_ms": 100 + rng.Float64()*900}))
	}
	require.NoError(t, ts.Stop())
	decisions, outcomes, err := datasets.ReadLogDir(ts.LogDir)
	require.NoError(t, err)
	rep, err := abtest.Analyze(decisions, outcomes, abtest.Config{Experiment: "bar", Control: "control",
		Weights: map[string]float64{"control": 0.5, "cheap": 0.5}})
	require.NoError(t, err)
	l := rep.Arms[1].QualityLift
	t.Logf("true quality control %.4f cheap %.4f (lift %+.2f%%); measured lift %+.2f%% [%+.2f, %+.2f], p %.3g",
		truth["control"], truth["cheap"], 100*trueLift, 100*l.Relative, 100*l.Lo, 100*l.Hi, l.PValue)
	assert.True(t, l.Lo <= trueLift && trueLift <= l.Hi, "the interval covers the true lift")
	assert.False(t, rep.SRM.Mismatch)
	assert.Less(t, rep.Arms[1].Cost.Mean, rep.Arms[0].Cost.Mean, "a lower bar costs less")
}
