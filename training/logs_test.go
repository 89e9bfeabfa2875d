package training_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
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
	assert.Equal(t, training.LogStats{Decisions: 6, Used: 3, NoOutcome: 1, NoPrompt: 1, OtherModels: 1, Shadow: 1, Clipped: 1, MeanWeight: 4}, st)
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
