package serving_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/logstore"
	"switchyard/datasets/synthetic"
	"switchyard/experiments/rollout"
	"switchyard/serving"
	"switchyard/serving/budget"
	"switchyard/serving/servingtest"
)

// writeConfig writes a catalogue, a predictor and a configuration with two
// policies and an experiment between them, and returns the config path.
func writeConfig(t *testing.T, mutate func(*serving.FileConfig)) (string, *serving.FileConfig) {
	t.Helper()
	dir := t.TempDir()
	cat := synthetic.DefaultCatalogue()
	require.NoError(t, datasets.WriteCatalogue(filepath.Join(dir, "catalogue.csv"), cat))
	raw, err := os.ReadFile(writeModel(t, cat))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "predictor.onnx"), raw, 0o644))
	var fc serving.FileConfig
	require.NoError(t, json.Unmarshal([]byte(`{
  "catalogue": "catalogue.csv",
  "default_policy": "control",
  "policies": [
    {"name": "control", "version": "3", "predictor": "predictor.onnx", "quality_bar": 0.9},
    {"name": "thrifty", "version": "1", "predictor": "predictor.onnx", "quality_bar": 0.2, "shadow": "opus-class"}
  ],
  "experiments": [
    {"name": "cheaper-bar", "unit": "user", "salt": "2026-11",
     "arms": [{"name": "control", "policy": "control", "weight": 0.7}, {"name": "treatment", "policy": "thrifty", "weight": 0.3}]}
  ]
}`), &fc))
	if mutate != nil {
		mutate(&fc)
	}
	path := filepath.Join(dir, "config.json")
	b, err := json.MarshalIndent(fc, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path, &fc
}

func TestExperimentsAssignUnitsDeterministically(t *testing.T) {
	path, _ := writeConfig(t, nil)
	ts := servingtest.Start(t, serving.Options{Config: serving.DefaultConfig(), Load: servingtest.Configuration(path)})

	armOf := map[string]string{}
	counts := map[string]int{}
	for i := 0; i < 2000; i++ {
		user := fmt.Sprintf("user-%d", i%400)
		code, out := ts.Post(t, "/v1/route", `{"prompt":"Summarise the meeting notes","user":"`+user+`"}`)
		require.Equal(t, http.StatusOK, code, out)
		arm := out["arm"].(string)
		assert.Equal(t, "cheaper-bar", out["experiment"])
		if prev, ok := armOf[user]; ok {
			require.Equal(t, prev, arm, "a unit stays in its arm")
		}
		armOf[user] = arm
		counts[arm]++
		if arm == "treatment" {
			assert.Equal(t, "thrifty", out["policy"])
			assert.Equal(t, "opus-class", out["shadow"])
		} else {
			assert.Equal(t, "control", out["policy"])
			assert.Equal(t, "3", out["policy_version"])
		}
	}
	treated := 0
	for _, a := range armOf {
		if a == "treatment" {
			treated++
		}
	}
	assert.InDelta(t, 0.3*400, treated, 3*9.2, "units split by weight") // 3 sd of Binomial(400, 0.3)

	// no unit key: the default policy, no experiment
	code, out := ts.Post(t, "/v1/route", `{"prompt":"hi"}`)
	require.Equal(t, http.StatusOK, code)
	assert.Nil(t, out["experiment"])
	assert.Equal(t, "control", out["policy"])

	// live counts
	var ex struct {
		Experiments []rollout.ExperimentState `json:"experiments"`
	}
	require.Equal(t, http.StatusOK, ts.Get(t, "/v1/experiments", &ex))
	require.Len(t, ex.Experiments, 1)
	got := map[string]int64{}
	for _, a := range ex.Experiments[0].Arms {
		got[a.Name] = a.Decisions
	}
	assert.Equal(t, int64(counts["control"]), got["control"])
	assert.Equal(t, int64(counts["treatment"]), got["treatment"])

	// the same assignment on another replica
	rt2, err := serving.ReadConfig(path, policy.LoadOptions{Scorer: policy.ScorerGo})
	require.NoError(t, err)
	defer rt2.Close()
	for user, arm := range armOf {
		i := rt2.Experiments[0].Arm(user)
		assert.Equal(t, arm, rt2.Experiments[0].Spec.Arms[i].Name)
	}

	// every decision records experiment and arm
	require.NoError(t, ts.Stop())
	decisions, _, err := datasets.ReadLogDir(ts.LogDir)
	require.NoError(t, err)
	require.Len(t, decisions, 2001)
	for _, d := range decisions[:2000] {
		assert.Equal(t, "cheaper-bar", d.Experiment)
		assert.Contains(t, []string{"control", "treatment"}, d.Arm)
	}
}

func TestInvalidConfigurationsAreRejectedWithTheReason(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*serving.FileConfig)
		want   string
	}{
		{"weights", func(c *serving.FileConfig) { c.Experiments[0].Arms[0].Weight = 0.5 }, "weights sum to 0.8"},
		{"unknown policy", func(c *serving.FileConfig) { c.Experiments[0].Arms[1].Policy = "nope" }, `policy "nope"`},
		{"unit", func(c *serving.FileConfig) { c.Experiments[0].Unit = "device" }, `unit "device"`},
		{"salt", func(c *serving.FileConfig) { c.Experiments[0].Salt = "" }, "salt is empty"},
		{"shadow", func(c *serving.FileConfig) { c.Policies[1].Shadow = "gpt-9" }, `shadow model "gpt-9"`},
		{"candidate", func(c *serving.FileConfig) { c.Policies[0].Candidates = []string{"gpt-9"} }, `"gpt-9"`},
		{"predictor", func(c *serving.FileConfig) { c.Policies[0].Predictor = "missing.onnx" }, "missing.onnx"},
		{"default", func(c *serving.FileConfig) { c.DefaultPolicy = "other" }, `default policy "other"`},
		{"duplicate", func(c *serving.FileConfig) { c.Policies[1].Name = "control" }, "defined twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path, _ := writeConfig(t, c.mutate)
			_, err := serving.ReadConfig(path, policy.LoadOptions{Scorer: policy.ScorerGo})
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
	path, _ := writeConfig(t, nil)
	b, _ := os.ReadFile(path)
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(b), `"salt"`, `"sault"`, 1)), 0o644))
	_, err := serving.ReadConfig(path, policy.LoadOptions{Scorer: policy.ScorerGo})
	require.ErrorContains(t, err, "sault")
}

// Reloading an invalid configuration under load leaves the old one serving
// with zero failed requests.
func TestInvalidReloadUnderLoadFailsNoRequest(t *testing.T) {
	path, _ := writeConfig(t, nil)
	cfg := serving.DefaultConfig()
	cfg.AdminKey = "k"
	ts := servingtest.Start(t, serving.Options{Config: cfg, Load: servingtest.Configuration(path)})
	// break the configuration: weights that do not sum to 1
	b, _ := os.ReadFile(path)
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(b), `"weight": 0.3`, `"weight": 0.9`, 1)), 0o644))

	var wg sync.WaitGroup
	var mu sync.Mutex
	failed, served := 0, 0
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				code, _ := ts.Post(t, "/v1/route", fmt.Sprintf(`{"prompt":"q %d","user":"u%d"}`, i, w))
				mu.Lock()
				if code == http.StatusOK {
					served++
				} else {
					failed++
				}
				mu.Unlock()
			}
		}(w)
	}
	rejected := 0
	for i := 0; i < 10; i++ {
		var body map[string]map[string]string
		if ts.Reload(t, "k", &body) == http.StatusUnprocessableEntity {
			rejected++
			assert.Contains(t, body["error"]["message"], "weights sum to 1.6")
		}
	}
	wg.Wait()
	assert.Equal(t, 10, rejected)
	assert.Zero(t, failed)
	assert.Equal(t, 600, served)
}

func TestShadowOutcomesAreStoredAsShadow(t *testing.T) {
	path, _ := writeConfig(t, func(c *serving.FileConfig) { c.DefaultPolicy = "thrifty"; c.Experiments = nil })
	ts := servingtest.Start(t, serving.Options{Config: serving.DefaultConfig(), Load: servingtest.Configuration(path)})
	_, out := ts.Post(t, "/v1/route", `{"prompt":"hello"}`)
	id := out["decision_id"].(string)
	require.Equal(t, "opus-class", out["shadow"])
	code, fb := ts.Post(t, "/v1/feedback", `{"decision_id":"`+id+`","quality":0.4}`)
	require.Equal(t, http.StatusOK, code, fb)
	code, sh := ts.Post(t, "/v1/feedback", `{"decision_id":"`+id+`","quality":0.9,"shadow":true}`)
	require.Equal(t, http.StatusOK, code, sh)
	assert.Equal(t, "opus-class", sh["model"])
	code, again := ts.Post(t, "/v1/feedback", `{"decision_id":"`+id+`","quality":0.1,"shadow":true}`)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, sh, again, "idempotent")
	require.NoError(t, ts.Stop())
	_, outcomes, err := datasets.ReadLogDir(ts.LogDir)
	require.NoError(t, err)
	require.Len(t, outcomes, 2)
	bySource := map[string]datasets.OutcomeRecord{}
	for _, o := range outcomes {
		bySource[o.Source] = o
	}
	assert.Equal(t, "opus-class", bySource[datasets.SourceShadow].Model)
	assert.Equal(t, 0.9, bySource[datasets.SourceShadow].Quality)
	assert.Equal(t, out["model"], bySource[datasets.SourceOnline].Model)
}

// TestConfigurationExampleIsValid keeps the documented example in step
// with the format: it decodes strictly and passes validation.
func TestConfigurationExampleIsValid(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "experiments.md"))
	require.NoError(t, err)
	text := string(b)
	start := strings.Index(text, "## Policies and experiments: the configuration file")
	require.GreaterOrEqual(t, start, 0)
	block := text[start:]
	block = block[strings.Index(block, "```json\n")+len("```json\n"):]
	block = block[:strings.Index(block, "```")]
	dec := json.NewDecoder(strings.NewReader(block))
	dec.DisallowUnknownFields()
	var fc serving.FileConfig
	require.NoError(t, dec.Decode(&fc))
	_, err = buildWithRealFiles(t, fc)
	require.NoError(t, err)
}

// buildWithRealFiles points a configuration's catalogue and predictors at
// real files and validates it completely.
func buildWithRealFiles(t *testing.T, fc serving.FileConfig) (*serving.Routing, error) {
	t.Helper()
	path, real := writeConfig(t, nil)
	fc.Catalogue = filepath.Join(filepath.Dir(path), real.Catalogue)
	fc.Policies = slices.Clone(fc.Policies)
	for i := range fc.Policies {
		fc.Policies[i].Predictor = filepath.Join(filepath.Dir(path), real.Policies[0].Predictor)
	}
	rt, err := serving.BuildRouting(fc, policy.LoadOptions{Scorer: policy.ScorerGo})
	if err == nil {
		t.Cleanup(func() { rt.Close() })
	}
	return rt, err
}

// The fleet example's configuration (docs/fleet/config.json) decodes
// strictly and validates, budgets included.
func TestFleetExampleConfigurationIsValid(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "docs", "fleet", "config.json"))
	require.NoError(t, err)
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var fc serving.FileConfig
	require.NoError(t, dec.Decode(&fc))
	require.NotNil(t, fc.Budgets)
	assert.Equal(t, "reject", fc.Budgets.Tenants["trial"].WhenExhausted)
	_, err = buildWithRealFiles(t, fc)
	require.NoError(t, err)
	fc.Budgets.Tenants["trial"] = budget.Spec{USD: 5, Period: "week", Mode: "cap"}
	_, err = buildWithRealFiles(t, fc)
	require.ErrorContains(t, err, `budget of tenant "trial": period "week" is not day or month`)
}

func TestReviewedEdgeCases(t *testing.T) {
	// a reverted rollout stays reverted across a reload of the same configuration
	rw := newRolloutWorld(t)
	fc := serving.FileConfig{Catalogue: rw.CataloguePath, DefaultPolicy: "a",
		Policies: []serving.PolicySpec{{Config: policy.Config{Name: "a", QualityBar: 0.9}, Predictor: rw.Predictor},
			{Config: policy.Config{Name: "b", QualityBar: 0.2}, Predictor: rw.Predictor}},
		Experiments: []rollout.ExperimentSpec{{Name: "r", Unit: rollout.UnitUser, Salt: "s",
			Arms: []rollout.ArmSpec{{Name: "control", Policy: "a"}, {Name: "treatment", Policy: "b"}},
			Rollout: &rollout.Spec{Treatment: "treatment", Control: "control", Stages: []float64{0.5, 1}, MinOutcomes: 1000,
				Guardrails: []rollout.Guardrail{{Metric: rollout.MetricQuality, Tolerance: 0.05}}}}}}
	cfg := serving.DefaultConfig()
	cfg.AdminKey = "k"
	ts := servingtest.Start(t, serving.Options{Config: cfg, Load: servingtest.Routing(fc)})
	for i := 0; i < 400; i++ {
		code, out := ts.Post(t, "/v1/route", fmt.Sprintf(`{"prompt":"q","user":"u%d"}`, i))
		require.Equal(t, http.StatusOK, code)
		q := 1.0
		if out["arm"] == "treatment" {
			q = 0 // treatment always fails: the quality guardrail breaches
		}
		ts.Post(t, "/v1/feedback", fmt.Sprintf(`{"decision_id":%q,"quality":%v}`, out["decision_id"], q))
	}
	state := func() rollout.ExperimentState {
		var ex struct {
			Experiments []rollout.ExperimentState `json:"experiments"`
		}
		ts.Get(t, "/v1/experiments", &ex)
		return ex.Experiments[0]
	}
	require.Equal(t, "reverted", state().State)
	require.Equal(t, http.StatusOK, ts.Reload(t, "k", nil))
	assert.Equal(t, "reverted", state().State, "a reload of the same experiment keeps its rollout state")

	// a decision id cannot reach the shadow slot
	code, out := ts.Post(t, "/v1/feedback", `{"decision_id":"x#shadow","quality":1}`)
	assert.Equal(t, http.StatusBadRequest, code, out)

	// the no-op endpoint answers 413 above the body limit
	code, _ = ts.Post(t, "/v1/noop", `{"prompt":"`+strings.Repeat("a", 5<<20)+`"}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, code)

	// logging after the decision log is closed drops instead of panicking
	dlog, err := logstore.NewDecisionLog(logstore.DefaultDecisionLogConfig(t.TempDir()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.NoError(t, dlog.Close(context.Background()))
	assert.NotPanics(t, func() { dlog.Log(datasets.DecisionRecord{DecisionID: "late"}) })
	_, dropped, _ := dlog.Stats()
	assert.Equal(t, int64(1), dropped)
}
