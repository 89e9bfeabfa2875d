package serving_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	"switchyard/experiments/rollout"
	"switchyard/features"
	"switchyard/serving"
	"switchyard/training"
)

// rolloutWorld is a trained predictor over the synthetic workload and its
// ground truth, shared by the rollout tests.
type rolloutWorld struct {
	dir     string
	prompts []datasets.PromptRecord
	quality map[string]float64
	cost    map[string]float64
}

func newRolloutWorld(t *testing.T) *rolloutWorld {
	t.Helper()
	w, err := synthetic.Generate(synthetic.Config{Seed: 12, Prompts: 800})
	require.NoError(t, err)
	spec := features.DefaultSpec()
	spec.Buckets = 1 << 12
	s := training.DefaultSettings()
	s.Epochs = 3
	m, _, err := (&training.Trainer{Settings: s}).Fit(context.Background(), &datasets.Dataset{Catalogue: w.Catalogue, Prompts: w.Prompts, Outcomes: w.Outcomes},
		training.Job{Spec: spec, ValidationShare: 0.1, SplitSalt: "validation"})
	require.NoError(t, err)
	rw := &rolloutWorld{dir: t.TempDir(), prompts: w.Prompts, quality: map[string]float64{}, cost: map[string]float64{}}
	require.NoError(t, classifier.WriteONNX(filepath.Join(rw.dir, "p.onnx"), m))
	require.NoError(t, datasets.WriteCatalogue(filepath.Join(rw.dir, "catalogue.csv"), w.Catalogue))
	for _, o := range w.Outcomes {
		rw.quality[o.PromptID+"/"+o.Model] = o.Quality
		rw.cost[o.PromptID+"/"+o.Model] = o.CostUSD
	}
	return rw
}

// run serves a rollout of treatmentBar against a control at bar 0.9 on
// loopback until it completes, reverts or maxRequests are sent, and
// returns the final experiment state and the largest treatment share.
func (rw *rolloutWorld) run(t *testing.T, seed int64, treatmentBar float64, maxRequests int) (rollout.ExperimentState, float64) {
	t.Helper()
	fc := serving.FileConfig{Catalogue: filepath.Join(rw.dir, "catalogue.csv"), DefaultPolicy: "control",
		Policies: []serving.PolicySpec{
			{Config: policy.Config{Name: "control", Version: "1", QualityBar: 0.9}, Predictor: filepath.Join(rw.dir, "p.onnx")},
			{Config: policy.Config{Name: "candidate", Version: "1", QualityBar: treatmentBar}, Predictor: filepath.Join(rw.dir, "p.onnx")},
		},
		Experiments: []rollout.ExperimentSpec{{Name: "rollout", Unit: rollout.UnitUser, Salt: fmt.Sprint("salt-", seed),
			Arms: []rollout.ArmSpec{{Name: "control", Policy: "control"}, {Name: "treatment", Policy: "candidate"}},
			Rollout: &rollout.Spec{Treatment: "treatment", Control: "control", Stages: []float64{0.1, 0.25, 0.5, 1}, MinOutcomes: 80,
				Guardrails: []rollout.Guardrail{{Metric: rollout.MetricQuality, Tolerance: 0.05}, {Metric: rollout.MetricErrorRate, Tolerance: 0.02}}}}}}
	rt, err := serving.BuildRouting(fc, policy.LoadOptions{Scorer: policy.ScorerGo})
	require.NoError(t, err)
	defer rt.Close()
	wal, _, err := logstore.Open[datasets.OutcomeRecord](logstore.Options{Dir: t.TempDir(), Prefix: datasets.OutcomeLogPrefix})
	require.NoError(t, err)
	defer wal.Close()
	srv, err := serving.New(serving.DefaultConfig(), serving.Deps{Routing: rt, Catalogue: rt.Catalogue, Outcomes: wal})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	rng := rand.New(rand.NewSource(seed))
	maxShare := 0.0
	var st rollout.ExperimentState
	for i := 0; i < maxRequests; i++ {
		p := rw.prompts[rng.Intn(len(rw.prompts))]
		body, _ := json.Marshal(map[string]string{"prompt": p.Prompt, "task": p.Task, "user": fmt.Sprint("u", rng.Intn(5000))})
		resp, err := http.Post(ts.URL+"/v1/route", "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		var r serving.RouteResponse
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
		resp.Body.Close()
		key := p.PromptID + "/" + r.Model
		fb, _ := json.Marshal(map[string]any{"decision_id": r.DecisionID, "quality": rw.quality[key], "cost_usd": rw.cost[key]})
		resp, err = http.Post(ts.URL+"/v1/feedback", "application/json", bytes.NewReader(fb))
		require.NoError(t, err)
		resp.Body.Close()
		if i%100 == 99 || i == maxRequests-1 {
			var ex struct {
				Experiments []rollout.ExperimentState `json:"experiments"`
			}
			getJSON(t, ts.URL+"/v1/experiments", &ex)
			st = ex.Experiments[0]
			for _, tr := range st.Rollout.Transitions {
				maxShare = max(maxShare, tr.From, tr.To)
			}
			if st.State != "rolling out" {
				break
			}
		}
	}
	return st, maxShare
}

func TestRolloutOfAWorsePolicyIsRevertedBeforeHalfTheUnits(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a real server under load, or many training rounds): make test runs it; -short leaves it out")
	}
	rw := newRolloutWorld(t)
	st, maxShare := rw.run(t, 1, 0.2, 6000)
	require.NotNil(t, st.Rollout)
	assert.Equal(t, "reverted", st.State, "transitions: %+v", st.Rollout.Transitions)
	assert.Less(t, maxShare, 0.5, "reverted before half of the units")
	assert.Equal(t, 0.0, st.Rollout.Share)
	last := st.Rollout.Transitions[len(st.Rollout.Transitions)-1]
	assert.Contains(t, last.Reason, "guardrail breached: quality")
	t.Logf("transitions: %+v", st.Rollout.Transitions)
}

func TestRolloutWithNoTrueDifferenceIsRarelyReverted(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a real server under load, or many training rounds): make test runs it; -short leaves it out")
	}
	rw := newRolloutWorld(t)
	reverted, complete := 0, 0
	for seed := int64(0); seed < 20; seed++ {
		st, _ := rw.run(t, 100+seed, 0.9, 2500) // the same policy as control
		switch st.State {
		case "reverted":
			reverted++
		case "complete":
			complete++
		}
	}
	t.Logf("20 runs: %d reverted, %d complete", reverted, complete)
	assert.LessOrEqual(t, reverted, 1, "not reverted in at least 19 of 20 runs")
	assert.Greater(t, complete, 10, "most runs reach the last stage")
}
