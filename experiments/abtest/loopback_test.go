package abtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier"
	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/logstore"
	"switchyard/datasets/synthetic"
	"switchyard/experiments/abtest"
	"switchyard/experiments/rollout"
	"switchyard/features"
	"switchyard/serving"
	"switchyard/training"
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
	w, err := synthetic.Generate(synthetic.Config{Seed: 8, Prompts: 1500})
	require.NoError(t, err)
	ds := &datasets.Dataset{Catalogue: w.Catalogue, Prompts: w.Prompts, Outcomes: w.Outcomes}
	spec := features.DefaultSpec()
	spec.Buckets = 1 << 14
	s := training.DefaultSettings()
	s.Epochs = 4
	m, _, err := (&training.Trainer{Settings: s}).Fit(context.Background(), ds, training.Job{Spec: spec, ValidationShare: 0.1, SplitSalt: "validation"})
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, classifier.WriteONNX(filepath.Join(dir, "p.onnx"), m))
	require.NoError(t, datasets.WriteCatalogue(filepath.Join(dir, "catalogue.csv"), w.Catalogue))
	eps := policy.Exploration{Strategy: policy.ExploreEpsilonGreedy, Epsilon: 0.1}
	fc := serving.FileConfig{Catalogue: filepath.Join(dir, "catalogue.csv"), DefaultPolicy: "control",
		Policies: []serving.PolicySpec{
			{Config: policy.Config{Name: "control", Version: "1", QualityBar: 0.9, Exploration: eps}, Predictor: filepath.Join(dir, "p.onnx")},
			{Config: policy.Config{Name: "cheap", Version: "1", QualityBar: 0.5, Exploration: eps}, Predictor: filepath.Join(dir, "p.onnx")},
		},
		Experiments: []rollout.ExperimentSpec{{Name: "bar", Unit: rollout.UnitUser, Salt: "s",
			Arms: []rollout.ArmSpec{{Name: "control", Policy: "control", Weight: 0.5}, {Name: "cheap", Policy: "cheap", Weight: 0.5}}}}}
	rt, err := serving.BuildRouting(fc, policy.LoadOptions{Scorer: policy.ScorerGo})
	require.NoError(t, err)
	defer rt.Close()
	logs := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	wal, _, err := logstore.Open[datasets.OutcomeRecord](logstore.Options{Dir: logs, Prefix: datasets.OutcomeLogPrefix})
	require.NoError(t, err)
	dlog, err := logstore.NewDecisionLog(logstore.DefaultDecisionLogConfig(logs), quiet)
	require.NoError(t, err)
	srv, err := serving.New(serving.DefaultConfig(), serving.Deps{Routing: rt, Catalogue: rt.Catalogue, Decisions: dlog, Outcomes: wal, Log: quiet})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	quality, cost := map[string]float64{}, map[string]float64{}
	for _, o := range w.Outcomes {
		quality[o.PromptID+"/"+o.Model] = o.Quality
		cost[o.PromptID+"/"+o.Model] = o.CostUSD
	}
	// the truth: each policy's expected quality over the prompt distribution
	truth := map[string]float64{}
	for _, name := range []string{"control", "cheap"} {
		var sum float64
		for _, p := range w.Prompts {
			d, err := rt.Policies[name].Route(policy.Request{Input: features.Input{Prompt: p.Prompt, Task: p.Task}})
			require.NoError(t, err)
			for k, o := range d.Options {
				sum += d.Probs[k] * quality[p.PromptID+"/"+o.Model]
			}
		}
		truth[name] = sum / float64(len(w.Prompts))
	}
	trueLift := truth["cheap"]/truth["control"] - 1

	rng := rand.New(rand.NewSource(4))
	client := &http.Client{}
	for i := 0; i < 6000; i++ {
		p := w.Prompts[rng.Intn(len(w.Prompts))]
		user := fmt.Sprintf("user-%d", rng.Intn(1500))
		body, _ := json.Marshal(map[string]string{"prompt": p.Prompt, "task": p.Task, "user": user})
		resp, err := client.Post(ts.URL+"/v1/route", "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		var r serving.RouteResponse
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
		resp.Body.Close()
		key := p.PromptID + "/" + r.Model
		fb, _ := json.Marshal(map[string]any{"decision_id": r.DecisionID, "quality": quality[key], "cost_usd": cost[key], "latency_ms": 100 + rng.Float64()*900})
		resp, err = client.Post(ts.URL+"/v1/feedback", "application/json", bytes.NewReader(fb))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.NoError(t, dlog.Close(context.Background()))
	require.NoError(t, wal.Close())
	decisions, outcomes, err := datasets.ReadLogDir(logs)
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
