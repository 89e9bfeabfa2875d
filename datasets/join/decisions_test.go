package join_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/join"
	"switchyard/datasets/synthetic"
	"switchyard/experiments"
	"switchyard/experiments/abtest"
	"switchyard/experiments/ope"
	"switchyard/training/trainingtest"
)

// evalLogs writes a fleet's synthetic logs of an experiment "x" (three
// replicas, arms a and b, the synthetic workload of seed 2 and 400
// prompts) and, in a later partition, decisions and outcomes of the kinds
// the synthetic logs lack: a prompt not kept, a candidate no predictor
// scores, a decision without unit, one of another experiment, outcomes
// logged after a later one of the same decision, a shadow outcome alone,
// a benchmark label, an outcome without its decision.
func evalLogs(t *testing.T) string {
	t.Helper()
	logs := t.TempDir()
	_, err := synthetic.WriteLogs(logs, synthetic.LogsConfig{Seed: 2, Decisions: 3000, Replicas: 3, PromptBytes: 300, Prompts: 400,
		Experiment: "x", Users: 150})
	require.NoError(t, err)
	cands := []datasets.Candidate{{Model: "mini", Probability: 0.5}, {Model: "flash", Probability: 0.5}}
	at := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	decision := func(id, arm, unit string) datasets.DecisionRecord {
		return datasets.DecisionRecord{DecisionID: id, Time: at, Prompt: "summarise the ticket " + id, PromptSHA256: id, Task: "summarization",
			Candidates: cands, Chosen: "mini", Propensity: 0.5, Experiment: "x", Arm: arm, UnitHash: unit}
	}
	outcome := func(id string, q float64, source string, after time.Duration) datasets.OutcomeRecord {
		return datasets.OutcomeRecord{DecisionID: id, Model: "mini", Quality: q, CostUSD: q / 100, LatencyMS: 100 + 100*q,
			InputTokens: 10, OutputTokens: 20, Source: source, Time: at.Add(after)}
	}
	noPrompt, unscored, noUnit, other := decision("e-no-prompt", "a", "u1"), decision("e-unscored", "b", "u2"), decision("e-no-unit", "b", ""), decision("e-other", "a", "u1")
	noPrompt.Prompt = ""
	unscored.Candidates = append([]datasets.Candidate{{Model: "no-such-model"}}, cands...)
	other.Experiment = "y"
	decisions := []datasets.DecisionRecord{noPrompt, unscored, noUnit, other,
		decision("e-relabelled", "a", "u1"), decision("e-shadow-only", "a", "u3"), decision("e-benchmark", "b", "u3")}
	outcomes := []datasets.OutcomeRecord{
		outcome("e-no-prompt", 1, datasets.SourceOnline, time.Second), outcome("e-unscored", 0, datasets.SourceOnline, time.Second),
		outcome("e-no-unit", 1, datasets.SourceOnline, time.Second), outcome("e-other", 1, datasets.SourceOnline, time.Second),
		// the last logged outcome counts, not the latest in time
		outcome("e-relabelled", 1, datasets.SourceOnline, time.Hour), outcome("e-relabelled", 0, datasets.SourceOnline, time.Minute),
		{DecisionID: "e-shadow-only", Model: "flash", Quality: 1, Source: datasets.SourceShadow, Time: at},
		outcome("e-benchmark", 1, datasets.SourceBenchmark, time.Second),
		outcome("e-lost", 1, datasets.SourceOnline, time.Second),
	}
	part := filepath.Join(logs, "dt=2026-12-03", "hour=00")
	require.NoError(t, os.MkdirAll(part, 0o755))
	require.NoError(t, datasets.WriteDecisions(filepath.Join(part, datasets.LogFileName(datasets.DecisionLogPrefix, at, "edge", 1)+".parquet"), decisions))
	require.NoError(t, datasets.WriteOutcomes(filepath.Join(part, datasets.LogFileName(datasets.OutcomeLogPrefix, at, "edge", 1)+".parquet"), outcomes))
	return logs
}

func openLogs(t *testing.T, opt join.LogOptions) *join.LogReader {
	t.Helper()
	r, err := join.OpenLogs(opt)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, r.Close()) })
	return r
}

// The engine's reader hands over the decisions in log order, each with
// the outcome the in-memory join gives it (the last logged of any source
// but shadow), and counts the outcomes without decision the same way.
func TestLogReaderJoinsLikeTheLogsInMemory(t *testing.T) {
	logs := evalLogs(t)
	decisions, outcomes, err := datasets.ReadLogDir(logs)
	require.NoError(t, err)
	want := datasets.JoinDecisions(decisions, outcomes, datasets.JoinOptions{})

	r := openLogs(t, join.LogOptions{Logs: []string{logs}, Threads: 2, MemoryMB: 256})
	var got []datasets.Joined
	require.NoError(t, r.Decisions(context.Background(), func(b []datasets.Joined) error {
		assert.LessOrEqual(t, len(b), join.Batch)
		got = append(got, b...)
		return nil
	}))
	require.Len(t, got, len(want))
	answered := 0
	for i := range want {
		w, g := want[i], got[i]
		require.Equal(t, w.Decision, g.Decision, "decision %d", i)
		require.Equal(t, w.Outcome == nil, g.Outcome == nil, "outcome of %s", w.Decision.DecisionID)
		if w.Outcome == nil {
			continue
		}
		answered++
		o := *w.Outcome
		o.Source, o.PromptID, o.Error = "", "", "" // the engine's reader leaves them out
		assert.Equal(t, o, *g.Outcome, "outcome of %s", w.Decision.DecisionID)
		if w.Decision.DecisionID == "e-relabelled" {
			assert.Equal(t, 0.0, g.Outcome.Quality, "the last logged outcome, though not the latest")
		}
	}
	assert.Greater(t, answered, 2800)

	links, err := r.Links(context.Background())
	require.NoError(t, err)
	assert.Equal(t, datasets.CountOutcomeLinks(decisions, outcomes), links)
	assert.Equal(t, 1, links.WithoutDecision)
	assert.Equal(t, join.Stats{DecisionFiles: r.Stats().DecisionFiles, OutcomeFiles: r.Stats().OutcomeFiles}, r.Stats())
	assert.Greater(t, r.Stats().DecisionFiles, 3)
}

// Off-policy estimates from the engine's reader are those of the logs in
// memory, to the last bit: the same records reach the estimators in the
// same order, whatever the number of workers routing them.
func TestOffPolicyThroughTheEngineMatchesInMemory(t *testing.T) {
	logs := evalLogs(t)
	w := trainingtest.Train(t, trainingtest.Options{Seed: 2, Prompts: 400, Buckets: 1 << 10, EmbeddingDim: 4, Hidden: 4, Epochs: 1})
	target := w.Router(t, policy.Config{Name: "t", Version: "1", QualityBar: 0.8})
	cheap := w.Router(t, policy.Config{Name: "c", Version: "1", QualityBar: 0.5})
	cfg := ope.Config{Bootstrap: 200, Seed: 3}
	targets := []experiments.Target{{Router: target, Config: cfg},
		experiments.ArmTarget("x", "a", target, cfg), experiments.ArmTarget("x", "b", cheap, cfg)}

	decisions, outcomes, err := datasets.ReadLogDir(logs)
	require.NoError(t, err)
	recs, st, err := experiments.OffPolicyRecords(decisions, outcomes, target)
	require.NoError(t, err)
	rep, err := ope.Value(recs, cfg)
	require.NoError(t, err)
	inMemory, err := experiments.Evaluate(context.Background(), experiments.InMemory(decisions, outcomes), targets, 1)
	require.NoError(t, err)

	r := openLogs(t, join.LogOptions{Logs: []string{logs}, Threads: 2})
	for _, workers := range []int{1, 3} {
		est, err := experiments.Evaluate(context.Background(), r, targets, workers)
		require.NoError(t, err)
		require.NoError(t, est[0].Err)
		assert.Equal(t, st, est[0].Stats)
		assert.Equal(t, rep, est[0].Report, "%d workers", workers)
		assert.Equal(t, inMemory, est, "%d workers", workers)
	}
	assert.Equal(t, 1, st.NoPrompt)
	assert.Equal(t, 1, st.NotCandidates)
	assert.Equal(t, 1, st.OutcomesWithoutDecision)
	assert.Less(t, inMemory[1].Stats.Decisions, st.Decisions/2+50, "arm a's policy on arm b's decisions")
	assert.Positive(t, inMemory[2].Stats.Used)
}

// The engine reduces an experiment's logs to per-unit sums that give the
// A/B report the logs in memory give (up to the order of the sums).
func TestExperimentThroughTheEngineMatchesAnalyze(t *testing.T) {
	logs := evalLogs(t)
	decisions, outcomes, err := datasets.ReadLogDir(logs)
	require.NoError(t, err)
	cfg := abtest.Config{Experiment: "x", Control: "a", Weights: map[string]float64{"a": 0.5, "b": 0.5}}
	want, err := abtest.Analyze(decisions, outcomes, cfg)
	require.NoError(t, err)

	r := openLogs(t, join.LogOptions{Logs: []string{logs}, Threads: 2})
	arms, err := r.Experiment(context.Background(), "x")
	require.NoError(t, err)
	require.Len(t, arms, 2)
	links, err := r.Links(context.Background())
	require.NoError(t, err)
	in := make([]abtest.ArmLogs, len(arms))
	for i, a := range arms {
		in[i] = abtest.ArmLogs(a)
	}
	got, err := abtest.Summarize(in, links, cfg)
	require.NoError(t, err)

	require.Len(t, got.Arms, len(want.Arms))
	for i, w := range want.Arms {
		g := got.Arms[i]
		assert.Equal(t, w.Name, g.Name)
		assert.Equal(t, []int{w.Units, w.Requests, w.WithOutcome}, []int{g.Units, g.Requests, g.WithOutcome}, w.Name)
		assert.Equal(t, []float64{w.LatencyP50MS, w.LatencyP90MS, w.LatencyP99MS}, []float64{g.LatencyP50MS, g.LatencyP90MS, g.LatencyP99MS})
		for _, m := range [][2]abtest.Metric{{w.Quality, g.Quality}, {w.Cost, g.Cost}} {
			assert.InDelta(t, m[0].Mean, m[1].Mean, 1e-12, w.Name)
			assert.InDelta(t, m[0].StdErr, m[1].StdErr, 1e-12, w.Name)
		}
		if w.QualityLift != nil {
			require.NotNil(t, g.QualityLift)
			assert.InDelta(t, w.QualityLift.PValue, g.QualityLift.PValue, 1e-9)
		}
	}
	assert.InDelta(t, want.SRM.ChiSquare, got.SRM.ChiSquare, 1e-9)
	assert.Equal(t, want.OutcomesWithoutDecision, got.OutcomesWithoutDecision)
	assert.Positive(t, got.Arms[0].LatencyP50MS, "the edge decisions' online outcomes have latencies")

	// the first decision of each arm in log order, as the in-memory pass meets them
	first := map[string]string{}
	for _, d := range decisions {
		if _, ok := first[d.Arm]; !ok && d.Experiment == "x" {
			first[d.Arm] = d.DecisionID
		}
	}
	for _, a := range arms {
		assert.Equal(t, first[a.Name], a.FirstDecision)
	}
	none, err := r.Experiment(context.Background(), "no-such-experiment")
	require.NoError(t, err)
	assert.Empty(t, none)
}

// A log file that cannot be read is named, before the engine starts; with
// SkipBad it is left out and named in the stats, and the rest is read.
func TestLogReaderNamesABadLogFile(t *testing.T) {
	logs := evalLogs(t)
	dfiles, _, err := datasets.LogFiles(logs)
	require.NoError(t, err)
	bad := dfiles[1]
	b, err := os.ReadFile(bad)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bad, b[:len(b)/2], 0o644))

	_, err = join.OpenLogs(join.LogOptions{Logs: []string{logs}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad)
	assert.Contains(t, err.Error(), "--skip-bad")

	r := openLogs(t, join.LogOptions{Logs: []string{logs}, SkipBad: true})
	require.Len(t, r.Stats().Skipped, 1)
	assert.Contains(t, r.Stats().Skipped[0], bad)
	n := 0
	require.NoError(t, r.Decisions(context.Background(), func(b []datasets.Joined) error {
		n += len(b)
		return nil
	}))
	all, _, err := datasets.ReadLogDir(evalLogs(t))
	require.NoError(t, err)
	assert.Less(t, n, len(all))
	assert.Greater(t, n, len(all)/2)
}

// Logs whose decision files are all lost read as logs without decisions:
// every outcome is counted as without its decision.
func TestLogReaderWithoutDecisionFiles(t *testing.T) {
	logs := t.TempDir()
	lost := []datasets.OutcomeRecord{{DecisionID: "gone-1", Model: "mini", Quality: 1, Source: datasets.SourceOnline},
		{DecisionID: "gone-2", Model: "mini", Quality: 0, Source: datasets.SourceOnline}, {PromptID: "p", Model: "mini", Source: datasets.SourceBenchmark}}
	require.NoError(t, datasets.WriteOutcomes(filepath.Join(logs, "outcomes-1.parquet"), lost))
	r := openLogs(t, join.LogOptions{Logs: []string{logs}})
	links, err := r.Links(context.Background())
	require.NoError(t, err)
	assert.Equal(t, datasets.OutcomeLinks{Linked: 2, WithoutDecision: 2}, links)
	require.NoError(t, r.Decisions(context.Background(), func([]datasets.Joined) error {
		t.Fatal("no decisions to hand over")
		return nil
	}))
	arms, err := r.Experiment(context.Background(), "x")
	require.NoError(t, err)
	assert.Empty(t, arms)

	_, err = join.OpenLogs(join.LogOptions{Logs: []string{t.TempDir()}})
	require.ErrorContains(t, err, "no decision log files")
}
