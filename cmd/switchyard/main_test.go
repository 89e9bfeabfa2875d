package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
)

func TestGenerateTrainServeRoute(t *testing.T) {
	data, model := trained(t)
	logs := t.TempDir()
	// the defaults, the shedding by queueing delay included
	cmd, base := startServeUnder(t, nil, "--model", model, "--catalogue", filepath.Join(data, "catalogue.csv"), "--logs", logs)

	resp, err := http.Post(base+"/v1/route", "application/json",
		strings.NewReader(`{"prompt":"Write a Python function that merges two sorted lists, with edge cases and tests."}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var out struct {
		Model      string `json:"model"`
		Candidates []struct {
			Model            string  `json:"model"`
			PredictedQuality float64 `json:"predicted_quality"`
		} `json:"candidates"`
	}
	require.NoError(t, json.Unmarshal(body, &out))
	cat, err := datasets.ReadCatalogue(filepath.Join(data, "catalogue.csv"))
	require.NoError(t, err)
	_, ok := cat.Lookup(out.Model)
	assert.True(t, ok, "model %q in the catalogue", out.Model)
	assert.Len(t, out.Candidates, len(cat.Models))

	// the defaults shed by queueing delay: its gauges and counters are exported
	resp, err = http.Get(base + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Regexp(t, `(?m)^switchyard_shed_share 0$`, string(metrics))
	assert.Regexp(t, `(?m)^switchyard_queueing_delay_seconds `, string(metrics))
	assert.Regexp(t, `(?m)^switchyard_shed_requests_total\{reason="queue_delay"\} 0$`, string(metrics))
	assert.Regexp(t, `(?m)^switchyard_shed_requests_total\{reason="in_flight"\} 0$`, string(metrics))

	resp, err = http.Post(base+"/v1/route", "application/json", strings.NewReader(`{"prompt": oops}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// the load generator against the same server, with a rate relative to
	// the closed-loop maximum it measures first (no-op: no decision logged)
	o, err := run(t, "loadgen", "--url", base+"/v1/noop", "--connections", "4", "--duration", "300ms", "--warmup", "100ms",
		"--rates", "0.5x,200")
	require.NoError(t, err, o)
	require.Regexp(t, `(?m)^\s+closed\s+max\s+\d+\s+\d+\s+0\s`, o)
	require.Regexp(t, `(?m)^\s+open\s+0\.5x = \d+/s\s+\d+\s+\d+\s+0\s`, o)
	require.Regexp(t, `(?m)^\s+open\s+200/s\s+\d+\s+\d+\s+0\s`, o)
	o, err = run(t, "loadgen", "--url", base+"/v1/noop", "--rates", "2y")
	require.Error(t, err)
	assert.Contains(t, o, `"2y" is neither a positive number of requests per second nor a positive multiple`)
	o, err = run(t, "loadgen", "--url", base+"/v1/noop", "--closed=false", "--rates", "2x")
	require.Error(t, err)
	assert.Contains(t, o, "relative to the closed-loop maximum")

	// SIGTERM: a clean shutdown that flushes the decision log
	stopServe(t, cmd)
	files, _ := filepath.Glob(filepath.Join(logs, "dt=*", "hour=*", "decisions*.parquet"))
	require.Len(t, files, 1)
	recs, err := datasets.ReadDecisions(files[0])
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, out.Model, recs[0].Chosen)

	// the route subcommand decides through the same router
	o, err = run(t, "route", "--model", model, "--catalogue", filepath.Join(data, "catalogue.csv"), "--scorer", "go", "Summarise", "this", "memo")
	require.NoError(t, err, o)
	assert.Contains(t, o, `"model"`)
}

func TestServeFailsClearlyOnBrokenSetup(t *testing.T) {
	data, model := trained(t)
	cat := filepath.Join(data, "catalogue.csv")
	raw, err := os.ReadFile(model)
	require.NoError(t, err)
	dir := t.TempDir()
	truncated := filepath.Join(dir, "truncated.onnx")
	require.NoError(t, os.WriteFile(truncated, raw[:len(raw)/3], 0o644))
	notALib := filepath.Join(dir, "libonnxruntime.so.1")
	require.NoError(t, os.WriteFile(notALib, []byte("not a shared library"), 0o644))

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing runtime library", []string{"--model", model, "--ort-lib", filepath.Join(dir, "missing.so")}, "make ort"},
		{"wrong runtime library", []string{"--model", model, "--ort-lib", notALib}, "could not be loaded"},
		{"truncated model", []string{"--model", truncated}, "not a valid ONNX file"},
		{"missing model", []string{"--model", filepath.Join(dir, "none.onnx")}, "no such file"},
		{"missing catalogue", []string{"--model", model, "--catalogue", filepath.Join(dir, "none.csv")}, "read catalogue"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"serve", "--catalogue", cat, "--logs", t.TempDir(), "--addr", "127.0.0.1:0"}, c.args...)
			out, err := run(t, args...)
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "serve must exit non-zero: %s", out)
			assert.NotZero(t, exit.ExitCode())
			assert.Contains(t, out, c.want)
		})
	}
}

func TestImportBenchmarkAndTrainOnRealData(t *testing.T) {
	src := filepath.Join("..", "..", "..", "shared", "data", "mmlu-pro")
	if _, err := os.Stat(filepath.Join(src, "quality.csv")); err != nil {
		t.Skipf("benchmark data not found at %s (it lives beside the project, not in it): %v", src, err)
	}
	if testing.Short() {
		t.Skip("-short: skipping the real-data import")
	}
	out := filepath.Join(t.TempDir(), "mmlu")
	o, err := run(t, "import", "--benchmark", src, "--out", out)
	require.NoError(t, err, o)
	assert.Contains(t, o, "12032 prompts")
	ds, err := datasets.ReadDataset(out)
	require.NoError(t, err)
	assert.Len(t, ds.Prompts, 12032)
	assert.Len(t, ds.Catalogue.Models, 32)
}

func TestUnknownCommandAndMissingFlags(t *testing.T) {
	out, err := run(t, "frobnicate")
	require.Error(t, err)
	assert.Contains(t, out, `unknown command "frobnicate"`)
	out, err = run(t, "train", "--data", "x")
	require.Error(t, err)
	assert.Contains(t, out, "--out is required")
}

func TestEvalWritesTableReportPlotsAndDecisions(t *testing.T) {
	data, _ := trained(t)
	out := t.TempDir()
	dec := filepath.Join(out, "decisions.csv")
	o, err := run(t, "eval", "--data", data, "--models", "mini,opus-class", "--out", out, "--decisions-out", dec,
		"--epochs", "2", "--dim", "8", "--hidden", "8", "--lambdas", "10")
	require.NoError(t, err, o)
	for _, col := range []string{"AIQ", "APGR", "CPT(50%)", "learned", "per-task", "knn-25", "logistic", "random-mixing", "oracle"} {
		assert.Contains(t, o, col)
	}
	for _, f := range []string{"report.json", "curves.png", "calibration.png"} {
		st, err := os.Stat(filepath.Join(out, f))
		require.NoError(t, err)
		assert.Greater(t, st.Size(), int64(1000), f)
	}
	b, err := os.ReadFile(dec)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b), "prompt_id,setting,model\n"))
}

func TestCalibrateWritesAPolicyThatServeReads(t *testing.T) {
	data, model := trained(t)
	cat := filepath.Join(data, "catalogue.csv")
	pol := filepath.Join(t.TempDir(), "policy.json")
	o, err := run(t, "calibrate", "--data", data, "--model", model, "--catalogue", cat, "--scorer", "go",
		"--validation-share", "1", "--budget-per-1k", "0.5", "--policy-out", pol)
	require.NoError(t, err, o)
	assert.Contains(t, o, "chosen: bar=")
	assert.Contains(t, o, "per 1,000 requests")
	b, err := os.ReadFile(pol)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"quality_bar"`)

	// an impossible target names the nearest setting
	o, err = run(t, "calibrate", "--data", data, "--policy-file", pol, "--scorer", "go", "--budget-per-1k", "1e-9")
	require.Error(t, err)
	assert.Contains(t, o, "no bar setting meets the target")

	// the route command (like serve) takes the policy file
	o, err = run(t, "route", "--policy-file", pol, "--scorer", "go", "hello there")
	require.NoError(t, err, o)
	var d map[string]any
	require.NoError(t, json.Unmarshal([]byte(o), &d))
	assert.Equal(t, "default", d["policy"])
	o, err = run(t, "route", "--policy-file", pol, "--scorer", "go", "--quality-bar", "0", "hello there")
	require.NoError(t, err, o)
	require.NoError(t, json.Unmarshal([]byte(o), &d))
	assert.Equal(t, 0.0, d["quality_bar"], "--quality-bar is this request's bar, over the policy file's")
	o, _ = run(t, "route", "-h")
	assert.Contains(t, o, "route [flags] PROMPT...")
	assert.NotRegexp(t, `(?m)^\s+-bar\b`, o, "one bar flag: --quality-bar")
	st, err := os.Stat(pol)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), st.Mode().Perm()&^0o022, "the policy file is readable by others (umask aside)")
}

func TestServeConfigWithAnExperimentAndAnalyzeIt(t *testing.T) {
	data, model := trained(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{"catalogue": %q, "default_policy": "a",
  "policies": [{"name": "a", "version": "1", "predictor": %q, "quality_bar": 0.9,
                "exploration": {"strategy": "epsilon-greedy", "epsilon": 0.2}},
               {"name": "b", "version": "1", "predictor": %q, "quality_bar": 0.3,
                "exploration": {"strategy": "epsilon-greedy", "epsilon": 0.2}}],
  "experiments": [{"name": "x", "unit": "user", "salt": "s",
                   "arms": [{"name": "a", "policy": "a", "weight": 0.5}, {"name": "b", "policy": "b", "weight": 0.5}]}]}`,
		filepath.Join(data, "catalogue.csv"), model, model)
	path := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o644))
	logs := t.TempDir()
	cmd, base := startServe(t, "--config", path, "--logs", logs, "--scorer", "go")
	for i := 0; i < 300; i++ {
		resp, err := http.Post(base+"/v1/route", "application/json", strings.NewReader(fmt.Sprintf(`{"prompt":"question %d","user":"u%d"}`, i, i%60)))
		require.NoError(t, err)
		var r struct {
			DecisionID string `json:"decision_id"`
			Experiment string `json:"experiment"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
		resp.Body.Close()
		require.Equal(t, "x", r.Experiment)
		resp, err = http.Post(base+"/v1/feedback", "application/json", strings.NewReader(fmt.Sprintf(`{"decision_id":%q,"quality":%d,"latency_ms":300}`, r.DecisionID, i%2)))
		require.NoError(t, err)
		resp.Body.Close()
	}
	stopServe(t, cmd)
	out, err := run(t, "experiment", "analyze", "--logs", logs, "--config", path, "--out", filepath.Join(dir, "out"))
	require.NoError(t, err, out)
	assert.Contains(t, out, "sample ratio check")
	assert.Contains(t, out, "off-policy estimates")
	assert.FileExists(t, filepath.Join(dir, "out", "arms.png"))
}

// TestLogReadersReportOutcomesWithoutDecision writes decision and outcome
// logs in which some (then all) outcomes have lost their decision, as after
// a crash that cost the decision log its last minute, and checks that train,
// ope and experiment analyze count them and say so.
func TestLogReadersReportOutcomesWithoutDecision(t *testing.T) {
	data, model := trained(t)
	cat := filepath.Join(data, "catalogue.csv")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{"catalogue": %q, "default_policy": "a",
  "policies": [{"name": "a", "version": "1", "predictor": %q, "quality_bar": 0.9},
               {"name": "b", "version": "1", "predictor": %q, "quality_bar": 0.3}],
  "experiments": [{"name": "x", "unit": "user", "salt": "s",
                   "arms": [{"name": "a", "policy": "a", "weight": 0.5}, {"name": "b", "policy": "b", "weight": 0.5}]}]}`,
		cat, model, model)
	config := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(config, []byte(cfg), 0o644))

	var decisions []datasets.DecisionRecord
	var outcomes, lost []datasets.OutcomeRecord
	for i := range 200 {
		id := fmt.Sprintf("d-%03d", i)
		p := 1.0
		if i%25 == 0 { // a few rare choices carry most of the weight: low overlap
			p = 0.002
		}
		decisions = append(decisions, datasets.DecisionRecord{DecisionID: id, Prompt: fmt.Sprintf("question %d about sorting lists", i),
			Candidates: []datasets.Candidate{{Model: "mini", Probability: 1}}, Chosen: "mini", Propensity: p,
			Experiment: "x", Arm: []string{"a", "b"}[i%2], UnitHash: fmt.Sprintf("u%d", i%40)})
		outcomes = append(outcomes, datasets.OutcomeRecord{DecisionID: id, Model: "mini", Quality: float64(i % 2), CostUSD: 0.001, Source: datasets.SourceOnline})
	}
	for i := range 1060 {
		lost = append(lost, datasets.OutcomeRecord{DecisionID: fmt.Sprintf("lost-%04d", i), Model: "mini", Quality: 1, CostUSD: 0.001, Source: datasets.SourceOnline})
	}
	writeLogs := func(decisions []datasets.DecisionRecord, outcomes []datasets.OutcomeRecord) string {
		logs := t.TempDir()
		if decisions != nil {
			require.NoError(t, datasets.WriteFile(filepath.Join(logs, "decisions-1.parquet"), decisions))
		}
		require.NoError(t, datasets.WriteFile(filepath.Join(logs, "outcomes-1.parquet"), outcomes))
		return logs
	}
	const missing = "outcomes have no matching decision in the decision logs (were the decision logs lost or written elsewhere?)"
	learn := []string{"--epochs", "1", "--dim", "8", "--hidden", "8", "--buckets", "4096"}

	t.Run("some decisions lost", func(t *testing.T) {
		logs := writeLogs(decisions, append(outcomes, lost[:25]...))
		o, err := run(t, append([]string{"train", "--logs", logs, "--catalogue", cat, "--out", t.TempDir()}, learn...)...)
		require.NoError(t, err, o)
		assert.Contains(t, o, "warning: 25 of 225 "+missing)
		assert.Contains(t, o, "; 25 outcomes without decision")

		o, err = run(t, "ope", "--logs", logs, "--model", model, "--catalogue", cat, "--scorer", "go", "--bootstrap", "50")
		require.NoError(t, err, o)
		assert.Contains(t, o, "warning: 25 of 225 "+missing)
		assert.Contains(t, o, "; 25 outcomes without decision")

		out := filepath.Join(t.TempDir(), "out")
		o, err = run(t, "experiment", "analyze", "--logs", logs, "--config", config, "--out", out)
		require.NoError(t, err, o)
		assert.Contains(t, o, "warning: 25 of 225 "+missing)
		assert.Contains(t, o, "(low overlap: effective sample size", "the off-policy estimates name their warnings")
		assert.NotContains(t, o, "low overlap: low overlap")
		b, err := os.ReadFile(filepath.Join(out, "report.json"))
		require.NoError(t, err)
		assert.Contains(t, string(b), `"outcomes_without_decision": 25`)
	})

	t.Run("every decision lost", func(t *testing.T) {
		logs := writeLogs(nil, lost)
		o, err := run(t, append([]string{"train", "--logs", logs, "--catalogue", cat, "--out", t.TempDir()}, learn...)...)
		require.Error(t, err)
		assert.Contains(t, o, "no examples: 1,060 "+missing)

		o, err = run(t, "ope", "--logs", logs, "--model", model, "--catalogue", cat, "--scorer", "go")
		require.Error(t, err)
		assert.Contains(t, o, "ope: no usable logged decisions: 1,060 "+missing)

		o, err = run(t, "experiment", "analyze", "--logs", logs, "--config", config, "--out", filepath.Join(t.TempDir(), "out"))
		require.Error(t, err)
		assert.Contains(t, o, "analyze: no outcomes to analyse: 1,060 "+missing)
	})
}
