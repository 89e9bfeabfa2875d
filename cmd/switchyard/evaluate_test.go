package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/experiments"
	"switchyard/experiments/abtest"
	"switchyard/experiments/ope"
	"switchyard/serving"
)

// experimentLogs writes a fleet's synthetic logs of experiment x (arms a
// and b) on the workload trained(t) learns from, and a configuration whose
// arms' policies are that predictor with two quality bars.
func experimentLogs(t *testing.T, data, model string) (logs, config string) {
	t.Helper()
	logs = filepath.Join(t.TempDir(), "logs")
	o, err := run(t, "generate", "--logs", logs, "--decisions", "4000", "--seed", "3", "--prompts", "400", "--prompt-bytes", "300",
		"--replicas", "3", "--experiment", "x", "--users", "200")
	require.NoError(t, err, o)
	cfg := fmt.Sprintf(`{"catalogue": %q, "default_policy": "a",
  "policies": [{"name": "a", "version": "1", "predictor": %q, "quality_bar": 0.8},
               {"name": "b", "version": "1", "predictor": %q, "quality_bar": 0.6}],
  "experiments": [{"name": "x", "unit": "user", "salt": "x",
                   "arms": [{"name": "a", "policy": "a", "weight": 0.5}, {"name": "b", "policy": "b", "weight": 0.5}]}]}`,
		filepath.Join(data, "catalogue.csv"), model, model)
	config = filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(config, []byte(cfg), 0o644))
	return logs, config
}

// ope and experiment analyze read the logs through the engine and report
// what the logs read into memory give: the same counts and estimates.
func TestOPEAndAnalyzeMatchTheLogsInMemory(t *testing.T) {
	data, model := trained(t)
	cat := filepath.Join(data, "catalogue.csv")
	logs, config := experimentLogs(t, data, model)
	decisions, outcomes, err := datasets.ReadLogDir(logs)
	require.NoError(t, err)

	t.Run("ope", func(t *testing.T) {
		o, err := run(t, "ope", "--logs", logs, "--model", model, "--catalogue", cat, "--scorer", "go", "--bootstrap", "200", "--memory-mb", "256")
		require.NoError(t, err, o)
		sc, err := datasets.ReadCatalogue(cat)
		require.NoError(t, err)
		target, closer, err := policy.LoadRouter(policy.LoadOptions{ModelPath: model, Catalogue: sc, Scorer: policy.ScorerGo,
			Policy: policy.Config{Name: "default", Version: "1", QualityBar: 0.8}})
		require.NoError(t, err)
		defer closer.Close()
		recs, st, err := experiments.OffPolicyRecords(decisions, outcomes, target)
		require.NoError(t, err)
		rep, err := ope.Value(recs, ope.Config{Bootstrap: 200, Seed: 1})
		require.NoError(t, err)

		assert.Contains(t, o, fmt.Sprintf("logs: %d decisions, %d with an outcome of the chosen model, %d used", st.Decisions, st.WithOutcome, st.Used))
		assert.Contains(t, o, fmt.Sprintf("effective sample size %.1f of %d", rep.ESS, rep.N))
		for _, k := range []string{ope.IPS, ope.SNIPS, ope.DR} {
			q, c := rep.Quality[k], rep.Cost[k]
			line := fmt.Sprintf(`(?m)^\s*%s\s+%.4f\s+\[%.4f, %.4f\]\s+%.6f\s+\[%.6f, %.6f\]\s*$`, k, q.Value, q.Lo, q.Hi, c.Value, c.Lo, c.Hi)
			assert.Regexp(t, regexp.MustCompile(line), o, k)
		}
	})

	t.Run("experiment analyze", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		o, err := run(t, "experiment", "analyze", "--logs", logs, "--config", config, "--out", out)
		require.NoError(t, err, o)
		b, err := os.ReadFile(filepath.Join(out, "report.json"))
		require.NoError(t, err)
		var got struct {
			abtest.Report
			OffPolicy map[string]*ope.Report `json:"off_policy"`
		}
		require.NoError(t, json.Unmarshal(b, &got))

		cfg := abtest.Config{Experiment: "x", Control: "a", Weights: map[string]float64{"a": 0.5, "b": 0.5}}
		want, err := abtest.Analyze(decisions, outcomes, cfg)
		require.NoError(t, err)
		require.Len(t, got.Arms, 2)
		for i, w := range want.Arms {
			g := got.Arms[i]
			assert.Equal(t, []any{w.Name, w.Units, w.Requests, w.WithOutcome}, []any{g.Name, g.Units, g.Requests, g.WithOutcome})
			assert.InDelta(t, w.Quality.Mean, g.Quality.Mean, 1e-12)
			assert.InDelta(t, w.Quality.StdErr, g.Quality.StdErr, 1e-12)
			assert.InDelta(t, w.Cost.Mean, g.Cost.Mean, 1e-12)
		}
		assert.InDelta(t, want.SRM.PValue, got.SRM.PValue, 1e-9)

		rt, err := serving.ReadConfig(config, policy.LoadOptions{Scorer: policy.ScorerGo})
		require.NoError(t, err)
		defer rt.Close()
		cfgOPE := ope.Config{Bootstrap: 500, Seed: 1}
		targets := []experiments.Target{experiments.ArmTarget("x", "a", rt.Policies["a"], cfgOPE), experiments.ArmTarget("x", "b", rt.Policies["b"], cfgOPE)}
		est, err := experiments.Evaluate(context.Background(), experiments.InMemory(decisions, outcomes), targets, 1)
		require.NoError(t, err)
		for i, arm := range []string{"a", "b"} {
			require.NoError(t, est[i].Err)
			w, g := est[i].Report, got.OffPolicy[arm]
			require.NotNil(t, g, arm)
			assert.Equal(t, w.N, g.N)
			for _, k := range []string{ope.IPS, ope.SNIPS, ope.DR} {
				assert.InDelta(t, w.Quality[k].Value, g.Quality[k].Value, 1e-12, "%s %s", arm, k)
				assert.InDelta(t, w.Quality[k].Lo, g.Quality[k].Lo, 1e-12, "%s %s", arm, k)
				assert.InDelta(t, w.Cost[k].Hi, g.Cost[k].Hi, 1e-12, "%s %s", arm, k)
			}
			assert.Contains(t, o, fmt.Sprintf("  %s: quality %.4f [%.4f, %.4f]", arm, w.Quality[ope.DR].Value, w.Quality[ope.DR].Lo, w.Quality[ope.DR].Hi))
		}
	})
}

// A corrupt log file stops ope and experiment analyze with its name;
// --skip-bad leaves it out, names it, and reads the rest.
func TestLogCommandsNameACorruptLogFile(t *testing.T) {
	data, model := trained(t)
	cat := filepath.Join(data, "catalogue.csv")
	logs, config := experimentLogs(t, data, model)
	dfiles, _, err := datasets.LogFiles(logs)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dfiles[0], []byte("not parquet at all"), 0o644))

	opeArgs := []string{"ope", "--logs", logs, "--model", model, "--catalogue", cat, "--scorer", "go", "--bootstrap", "50"}
	analyze := []string{"experiment", "analyze", "--logs", logs, "--config", config, "--out", filepath.Join(t.TempDir(), "out")}
	for _, args := range [][]string{opeArgs, analyze} {
		o, err := run(t, args...)
		require.Error(t, err, o)
		assert.Contains(t, o, dfiles[0])
		assert.Contains(t, o, "not a Parquet file")

		o, err = run(t, append(args, "--skip-bad")...)
		require.NoError(t, err, o)
		assert.Contains(t, o, "skipped: read "+dfiles[0])
	}
}
