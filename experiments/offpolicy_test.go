package experiments_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/classifiertest"
	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/synthetic"
	"switchyard/experiments"
	"switchyard/experiments/ope"
	"switchyard/features"
	"switchyard/training"
	"switchyard/training/trainingtest"
)

// TestOffPolicyEstimateFromSimulatedLogsCoversTheTruth logs an
// epsilon-greedy policy's decisions on a full-information benchmark as
// Parquet (revealing only the chosen model's outcome), then estimates another
// policy's value from those logs and compares with its true value.
func TestOffPolicyEstimateFromSimulatedLogsCoversTheTruth(t *testing.T) {
	inLog := func(p datasets.PromptRecord) bool { return training.InHoldout(p.PromptID, "ope-test", 0.5) }
	w := trainingtest.Train(t, trainingtest.Options{Seed: 5, Prompts: 3000, Buckets: 1 << 14, EmbeddingDim: 8, Hidden: 16, Epochs: 4,
		Train: func(p datasets.PromptRecord) bool { return !inLog(p) }})
	var logP []datasets.PromptRecord
	for _, p := range w.Prompts {
		if inLog(p) {
			logP = append(logP, p)
		}
	}
	newRouter := func(cfg policy.Config) *policy.Router { return w.Router(t, cfg) }
	logging := newRouter(policy.Config{Name: "logging", QualityBar: 0.7,
		Exploration: policy.Exploration{Strategy: policy.ExploreEpsilonGreedy, Epsilon: 0.3}})
	target := newRouter(policy.Config{Name: "target", QualityBar: 0.9})

	rng := rand.New(rand.NewSource(9))
	var decisions []datasets.DecisionRecord
	var outcomes []datasets.OutcomeRecord
	var trueQ, trueC float64
	for i, p := range logP {
		in := features.Input{Prompt: p.Prompt, Task: p.Task}
		d, err := logging.Route(policy.Request{Input: in, Draw: rng.Float64()})
		require.NoError(t, err)
		id := fmt.Sprintf("d-%05d", i)
		rec := datasets.DecisionRecord{DecisionID: id, Prompt: p.Prompt, Task: p.Task, Chosen: d.Chosen, Propensity: d.Propensity, Policy: "logging"}
		for _, o := range d.Options {
			rec.Candidates = append(rec.Candidates, datasets.Candidate{Model: o.Model, PredictedQuality: o.PredictedQuality, ExpectedCostUSD: o.ExpectedCostUSD})
		}
		decisions = append(decisions, rec)
		o := w.Truth(t, p.PromptID, d.Chosen)
		outcomes = append(outcomes, datasets.OutcomeRecord{DecisionID: id, Model: d.Chosen, Quality: o.Quality, CostUSD: o.CostUSD, Source: datasets.SourceOnline})
		td, err := target.Route(policy.Request{Input: in})
		require.NoError(t, err)
		to := w.Truth(t, p.PromptID, td.Chosen)
		trueQ += to.Quality
		trueC += to.CostUSD
	}
	trueQ /= float64(len(logP))
	trueC /= float64(len(logP))

	dir := t.TempDir()
	part := filepath.Join(dir, "dt=2026-11-26", "hour=10")
	require.NoError(t, os.MkdirAll(part, 0o755))
	require.NoError(t, datasets.WriteFile(filepath.Join(part, "decisions-1.parquet"), decisions))
	require.NoError(t, datasets.WriteFile(filepath.Join(part, "outcomes-1.parquet"), outcomes))

	gotD, gotO, err := datasets.ReadLogDir(dir)
	require.NoError(t, err)
	recs, st, err := experiments.OffPolicyRecords(gotD, gotO, target)
	require.NoError(t, err)
	assert.Equal(t, len(logP), st.Used)
	rep, err := ope.Value(recs, ope.Config{Bootstrap: 300, Seed: 1})
	require.NoError(t, err)
	dr := rep.Quality[ope.DR]
	t.Logf("true quality %.4f, DR %.4f [%.4f, %.4f], IPS %.4f; true cost %.6f, DR %.6f [%.6f, %.6f]; ESS %.0f of %d",
		trueQ, dr.Value, dr.Lo, dr.Hi, rep.Quality[ope.IPS].Value, trueC, rep.Cost[ope.DR].Value, rep.Cost[ope.DR].Lo, rep.Cost[ope.DR].Hi, rep.ESS, rep.N)
	assert.True(t, dr.Lo <= trueQ && trueQ <= dr.Hi, "DR interval covers the true quality")
	assert.True(t, rep.Cost[ope.DR].Lo <= trueC && trueC <= rep.Cost[ope.DR].Hi, "DR interval covers the true cost")
	assert.Less(t, rep.ESS, float64(rep.N))
	assert.Less(t, dr.StdErr, rep.Quality[ope.IPS].StdErr, "the direct model lowers the variance")
}

// smallRouter is a router over mini and flash with an untrained predictor.
func smallRouter(t *testing.T) *policy.Router {
	t.Helper()
	w, err := synthetic.Generate(synthetic.Config{Seed: 1, Prompts: 20})
	require.NoError(t, err)
	m := classifiertest.New(t, classifiertest.Options{Models: []string{"mini", "flash"}, Buckets: 1 << 10, EmbeddingDim: 4, Hidden: 4})
	r, err := policy.ModelRouter(m, w.Catalogue, policy.Config{Name: "t", QualityBar: 0.5})
	require.NoError(t, err)
	return r
}

func TestOffPolicyRecordsCountsOutcomesWithoutDecision(t *testing.T) {
	r := smallRouter(t)
	cands := []datasets.Candidate{{Model: "mini"}, {Model: "flash"}}
	decisions := []datasets.DecisionRecord{
		{DecisionID: "a", Prompt: "hi", Candidates: cands, Chosen: "mini", Propensity: 0.5, Experiment: "x", Arm: "control"},
		{DecisionID: "b", Prompt: "ho", Candidates: cands, Chosen: "flash", Propensity: 0.5, Experiment: "x", Arm: "treatment"},
	}
	var lost []datasets.OutcomeRecord
	for i := range 1060 {
		lost = append(lost, datasets.OutcomeRecord{DecisionID: fmt.Sprintf("lost-%d", i), Model: "mini", Quality: 1, Source: datasets.SourceOnline})
	}
	joined := []datasets.OutcomeRecord{
		{DecisionID: "a", Model: "mini", Quality: 1, Source: datasets.SourceOnline},
		{DecisionID: "b", Model: "flash", Quality: 0, Source: datasets.SourceOnline},
		{DecisionID: "b", Model: "mini", Quality: 1, Source: datasets.SourceShadow},
	}

	// some decisions lost: counted, the rest evaluated
	recs, st, err := experiments.OffPolicyRecords(decisions, append(joined, lost[:3]...), r)
	require.NoError(t, err)
	assert.Len(t, recs, 2)
	assert.Equal(t, experiments.JoinStats{Decisions: 2, WithOutcome: 2, Used: 2, LoggedReward: 0.5, Outcomes: 6, OutcomesWithoutDecision: 3}, st)

	// every decision lost: an error that says so, not "no usable decisions" alone
	_, st, err = experiments.OffPolicyRecords(decisions, lost, r)
	require.EqualError(t, err, "no usable logged decisions: 1,060 outcomes have no matching decision in the decision logs (were the decision logs lost or written elsewhere?)")
	var md *datasets.MissingDecisionsError
	require.ErrorAs(t, err, &md)
	assert.Equal(t, 1060, st.OutcomesWithoutDecision)

	// an arm's estimate counts over all the logged decisions, not only the other arms'
	arm := []experiments.Target{experiments.ArmTarget("x", "control", r, ope.Config{Bootstrap: 10})}
	est, err := experiments.Evaluate(context.Background(), experiments.InMemory(decisions, append(joined, lost[:3]...)), arm, 1)
	require.NoError(t, err)
	require.NoError(t, est[0].Err)
	st = est[0].Stats
	assert.Equal(t, 1, st.Used)
	assert.Equal(t, 6, st.Outcomes)
	assert.Equal(t, 3, st.OutcomesWithoutDecision, "control's outcomes are not orphans of the treatment's decisions")
	est, err = experiments.Evaluate(context.Background(), experiments.InMemory(decisions, lost), arm, 1)
	require.NoError(t, err)
	require.ErrorContains(t, est[0].Err, "arm control: no usable decisions of the other arms: 1,060 outcomes have no matching decision")
}

func TestOffPolicyRecordsSkipsWhatCannotBeEvaluated(t *testing.T) {
	r := smallRouter(t)
	cands := []datasets.Candidate{{Model: "mini"}, {Model: "flash"}}
	decisions := []datasets.DecisionRecord{
		{DecisionID: "a", Prompt: "hi", Candidates: cands, Chosen: "mini", Propensity: 0.5},
		{DecisionID: "b", Prompt: "", PromptSHA256: "x", Candidates: cands, Chosen: "mini", Propensity: 0.5},
		{DecisionID: "c", Prompt: "hi", Candidates: []datasets.Candidate{{Model: "opus-class"}}, Chosen: "opus-class", Propensity: 1},
		{DecisionID: "d", Prompt: "no outcome", Candidates: cands, Chosen: "flash", Propensity: 0.5},
	}
	outcomes := []datasets.OutcomeRecord{
		{DecisionID: "a", Model: "mini", Quality: 1}, {DecisionID: "b", Model: "mini", Quality: 1},
		{DecisionID: "c", Model: "opus-class", Quality: 1}, {DecisionID: "d", Model: "mini", Quality: 1, Source: datasets.SourceShadow},
	}
	recs, st, err := experiments.OffPolicyRecords(decisions, outcomes, r)
	require.NoError(t, err)
	assert.Len(t, recs, 1)
	assert.Equal(t, experiments.JoinStats{Decisions: 4, WithOutcome: 3, Used: 1, NoPrompt: 1, NotCandidates: 1, LoggedReward: 1, Outcomes: 4}, st)
}

// Evaluate gives what OffPolicyRecords and ope.Value give, whatever the
// number of workers; a decision no record can be built from fails its
// target alone, and is named.
func TestEvaluateMatchesTheRecordsAndValue(t *testing.T) {
	r := smallRouter(t)
	cands := []datasets.Candidate{{Model: "mini"}, {Model: "flash"}}
	rng := rand.New(rand.NewSource(4))
	var decisions []datasets.DecisionRecord
	var outcomes []datasets.OutcomeRecord
	for i := range 3000 {
		id := fmt.Sprintf("d-%04d", i)
		chosen, p := "mini", 0.8
		if rng.Float64() < 0.2 {
			chosen, p = "flash", 0.2
		}
		decisions = append(decisions, datasets.DecisionRecord{DecisionID: id, Prompt: fmt.Sprintf("question %d about %d", i, rng.Intn(50)),
			Candidates: cands, Chosen: chosen, Propensity: p, Experiment: "x", Arm: []string{"a", "b"}[i%2]})
		if i%10 != 0 {
			outcomes = append(outcomes, datasets.OutcomeRecord{DecisionID: id, Model: chosen, Quality: float64(rng.Intn(2)), CostUSD: 0.001, Source: datasets.SourceOnline})
		}
	}
	cfg := ope.Config{Bootstrap: 100, Seed: 9}
	recs, st, err := experiments.OffPolicyRecords(decisions, outcomes, r)
	require.NoError(t, err)
	want, err := ope.Value(recs, cfg)
	require.NoError(t, err)
	for _, workers := range []int{1, 4} {
		est, err := experiments.Evaluate(context.Background(), experiments.InMemory(decisions, outcomes), []experiments.Target{{Router: r, Config: cfg}}, workers)
		require.NoError(t, err)
		require.NoError(t, est[0].Err)
		assert.Equal(t, st, est[0].Stats)
		assert.Equal(t, want, est[0].Report, "%d workers", workers)
	}

	decisions[1501].Chosen = "opus-class" // arm b's
	for i := range outcomes {
		if outcomes[i].DecisionID == "d-1501" {
			outcomes[i].Model = "opus-class"
		}
	}
	targets := []experiments.Target{{Router: r, Config: cfg}, experiments.ArmTarget("x", "b", r, cfg)}
	est, err := experiments.Evaluate(context.Background(), experiments.InMemory(decisions, outcomes), targets, 2)
	require.NoError(t, err)
	require.EqualError(t, est[0].Err, `decision d-1501: chosen model "opus-class" is not among its candidates`)
	assert.Nil(t, est[0].Report)
	require.NoError(t, est[1].Err, "arm b's policy is evaluated on arm a's decisions only")
	assert.Equal(t, 1500, est[1].Stats.Decisions)
}
