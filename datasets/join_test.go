package datasets_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
)

func TestJoinDecisionsTakesTheChosenOutcomeAndTheShadows(t *testing.T) {
	decisions := []datasets.DecisionRecord{
		{DecisionID: "d1", Chosen: "mini"},
		{DecisionID: "d2", Chosen: "opus"},
		{DecisionID: "d3", Chosen: "mini"},
	}
	outcomes := []datasets.OutcomeRecord{
		{DecisionID: "d1", Model: "mini", Quality: 0.2, Source: datasets.SourceOnline},
		{DecisionID: "d1", Model: "opus", Quality: 0.9, Source: datasets.SourceShadow},
		{DecisionID: "d1", Model: "mini", Quality: 0.4, Source: "offline"},           // a later label: the last one wins
		{DecisionID: "d2", Model: "mini", Quality: 1, Source: datasets.SourceOnline}, // not the chosen model
		{PromptID: "p", Model: "mini", Quality: 1, Source: datasets.SourceBenchmark}, // no decision: not joined
		{DecisionID: "d3", Model: "mini", Quality: 0.7, Source: datasets.SourceOnline},
	}
	j := datasets.JoinDecisions(decisions, outcomes, datasets.JoinOptions{})
	require.Len(t, j, 3)
	require.NotNil(t, j[0].Outcome)
	assert.Equal(t, 0.4, j[0].Outcome.Quality)
	require.Len(t, j[0].Shadows, 1)
	assert.Equal(t, "opus", j[0].Shadows[0].Model)
	assert.Nil(t, j[1].Outcome, "an outcome of another model is not the decision's")
	assert.Equal(t, 0.7, j[2].Outcome.Quality)

	online := datasets.JoinDecisions(decisions, outcomes, datasets.JoinOptions{OnlineOnly: true})
	assert.Equal(t, 0.2, online[0].Outcome.Quality, "A/B analysis counts what was served, not later labels")
	assert.Equal(t, "d1", online[0].Decision.DecisionID)
}
