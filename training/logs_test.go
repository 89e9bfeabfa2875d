package training_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
	"switchyard/datasets/synthetic"
	"switchyard/features"
	"switchyard/training"
)

func TestFromLogsWeightsByClippedNormalisedInversePropensity(t *testing.T) {
	ext, err := features.NewExtractor(features.DefaultSpec())
	require.NoError(t, err)
	models := []string{"a", "b", "c"}
	decisions := []datasets.DecisionRecord{
		{DecisionID: "1", Prompt: "p1", Chosen: "a", Propensity: 0.5},  // w 2
		{DecisionID: "2", Prompt: "p2", Chosen: "b", Propensity: 0.25}, // w 4
		{DecisionID: "3", Prompt: "p3", Chosen: "c", Propensity: 0.01}, // w 100, clipped to 6
		{DecisionID: "4", Prompt: "", Chosen: "a", Propensity: 1},      // no prompt
		{DecisionID: "5", Prompt: "p5", Chosen: "a", Propensity: 1},    // no outcome
		{DecisionID: "6", Prompt: "p6", Chosen: "z", Propensity: 1},    // outside the pool
	}
	outcomes := []datasets.OutcomeRecord{
		{DecisionID: "1", Model: "a", Quality: 1, Source: datasets.SourceOnline, OutputTokens: 10},
		{DecisionID: "1", Model: "c", Quality: 0, Source: datasets.SourceShadow, OutputTokens: 30},
		{DecisionID: "2", Model: "b", Quality: 0, Source: datasets.SourceOnline},
		{DecisionID: "3", Model: "c", Quality: 1, Source: datasets.SourceOnline, OutputTokens: 50},
		{DecisionID: "4", Model: "a", Quality: 1, Source: datasets.SourceOnline},
		{DecisionID: "6", Model: "z", Quality: 1, Source: datasets.SourceOnline},
	}
	ex, st, err := training.FromLogs(decisions, outcomes, ext, models, 6)
	require.NoError(t, err)
	require.Len(t, ex, 3)
	assert.Equal(t, training.LogStats{Decisions: 6, Used: 3, NoOutcome: 1, NoPrompt: 1, OtherModels: 1, Shadow: 1, Clipped: 1, MeanWeight: 4, Outcomes: 6}, st)
	// raw weights 2, 4, 6 with mean 4: normalised 0.5, 1, 1.5
	assert.Equal(t, []float32{0.5, 0, 1}, ex[0].Weights, "chosen a at 0.5; the shadow c at 1")
	assert.Equal(t, []float32{1, 0, 0}, ex[0].Labels)
	assert.Equal(t, []float32{0, 1, 0}, ex[1].Weights)
	assert.Equal(t, []float32{0, 0, 1.5}, ex[2].Weights)
	assert.Equal(t, map[string]float64{"a": 10, "c": 40}, training.TokenMeans(outcomes, models))

	_, _, err = training.FromLogs([]datasets.DecisionRecord{{DecisionID: "x", Prompt: "p", Chosen: "a", Propensity: 0}},
		[]datasets.OutcomeRecord{{DecisionID: "x", Model: "a", Quality: 1}}, ext, models, 6)
	require.ErrorContains(t, err, "propensity")
}

func TestFromLogsKeysExamplesByPrompt(t *testing.T) {
	ext, err := features.NewExtractor(features.DefaultSpec())
	require.NoError(t, err)
	decisions := []datasets.DecisionRecord{
		{DecisionID: "1", Prompt: "same", PromptSHA256: "abc", Chosen: "a", Propensity: 1},
		{DecisionID: "2", Prompt: "same", PromptSHA256: "abc", Chosen: "a", Propensity: 1},
	}
	outcomes := []datasets.OutcomeRecord{{DecisionID: "1", Model: "a", Quality: 1}, {DecisionID: "2", Model: "a", Quality: 0}}
	ex, _, err := training.FromLogs(decisions, outcomes, ext, []string{"a"}, 20)
	require.NoError(t, err)
	require.Len(t, ex, 2)
	assert.Equal(t, ex[0].PromptID, ex[1].PromptID, "a repeated prompt falls on one side of the split")
}

func TestFromLogsCountsOutcomesWithoutDecision(t *testing.T) {
	ext, err := features.NewExtractor(features.DefaultSpec())
	require.NoError(t, err)
	decisions := []datasets.DecisionRecord{{DecisionID: "1", Prompt: "p1", Chosen: "a", Propensity: 0.5}}
	outcomes := []datasets.OutcomeRecord{
		{DecisionID: "1", Model: "a", Quality: 1, Source: datasets.SourceOnline},
		{DecisionID: "1", Model: "b", Quality: 0, Source: datasets.SourceShadow},
		{DecisionID: "lost", Model: "a", Quality: 1, Source: datasets.SourceOnline}, // its decision was never flushed
		{DecisionID: "lost", Model: "b", Quality: 1, Source: datasets.SourceShadow},
	}
	ex, st, err := training.FromLogs(decisions, outcomes, ext, []string{"a", "b"}, 20)
	require.NoError(t, err)
	require.Len(t, ex, 1)
	assert.Equal(t, 1, st.Shadow, "the shadow of a logged decision still joins")
	assert.Equal(t, 4, st.Outcomes)
	assert.Equal(t, 2, st.OutcomesWithoutDecision)
	assert.Equal(t, datasets.OutcomeLinks{Linked: 4, WithoutDecision: 2}, st.Links())
}

func TestFitSaysWhenEveryOutcomeLacksItsDecision(t *testing.T) {
	w, err := synthetic.Generate(synthetic.Config{Seed: 1, Prompts: 10})
	require.NoError(t, err)
	var outcomes []datasets.OutcomeRecord
	for i := range 1060 {
		outcomes = append(outcomes, datasets.OutcomeRecord{DecisionID: fmt.Sprintf("d-%d", i), Model: "mini", Quality: 1, Source: datasets.SourceOnline})
	}
	lost := []datasets.DecisionRecord{{DecisionID: "other", Prompt: "p", Chosen: "mini", Propensity: 1}}
	cases := []struct {
		name      string
		decisions []datasets.DecisionRecord
		outcomes  []datasets.OutcomeRecord
		want      string
	}{
		{"every decision lost", lost, outcomes,
			"fit: no examples: 1,060 outcomes have no matching decision in the decision logs (were the decision logs lost or written elsewhere?)"},
		{"some decisions lost, the rest unusable",
			append(lost, datasets.DecisionRecord{DecisionID: "d-0", Chosen: "mini", Propensity: 1}), outcomes, // no prompt text
			"fit: no examples for models [mini]; also, 1,059 of 1,060 outcomes have no matching decision"},
		{"no outcomes at all", lost, nil, "fit: no examples for models [mini]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			job := smallJob()
			job.Models, job.Catalogue = []string{"mini"}, w.Catalogue
			job.Logs = &training.Logs{Decisions: c.decisions, Outcomes: c.outcomes, Clip: 20}
			_, _, err := smallTrainer(1).Fit(context.Background(), nil, job)
			require.ErrorContains(t, err, c.want)
			if c.outcomes == nil {
				var md *datasets.MissingDecisionsError
				assert.False(t, errors.As(err, &md), "no outcomes is not a lost decision log")
			}
		})
	}
}

func TestFitWarnsOfOutcomesWithoutDecisionAndTrainsOnTheRest(t *testing.T) {
	w, err := synthetic.Generate(synthetic.Config{Seed: 1, Prompts: 60})
	require.NoError(t, err)
	var decisions []datasets.DecisionRecord
	var outcomes []datasets.OutcomeRecord
	for i, p := range w.Prompts {
		id := fmt.Sprintf("d-%d", i)
		if i%3 != 0 { // every third decision was lost
			decisions = append(decisions, datasets.DecisionRecord{DecisionID: id, Prompt: p.Prompt, Chosen: "mini", Propensity: 0.5})
		}
		outcomes = append(outcomes, datasets.OutcomeRecord{DecisionID: id, Model: "mini", Quality: float64(i % 2), Source: datasets.SourceOnline})
	}
	var logged bytes.Buffer
	tr := smallTrainer(1)
	tr.Log = slog.New(slog.NewTextHandler(&logged, nil))
	job := smallJob()
	job.Models, job.Catalogue = []string{"mini"}, w.Catalogue
	job.Logs = &training.Logs{Decisions: decisions, Outcomes: outcomes, Clip: 20}
	_, _, err = tr.Fit(context.Background(), nil, job)
	require.NoError(t, err)
	assert.Equal(t, 40, job.Logs.Stats.Used)
	assert.Equal(t, 20, job.Logs.Stats.OutcomesWithoutDecision)
	assert.Contains(t, logged.String(), "outcomes without decision")
	assert.Contains(t, logged.String(), "count=20")
}
