package datasets_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
)

func TestCountOutcomeLinksCountsOutcomesWhoseDecisionIsMissing(t *testing.T) {
	decisions := []datasets.DecisionRecord{{DecisionID: "d1"}, {DecisionID: "d2"}}
	orphans := func(n int) []datasets.OutcomeRecord {
		var out []datasets.OutcomeRecord
		for i := range n {
			out = append(out, datasets.OutcomeRecord{DecisionID: fmt.Sprintf("lost-%d", i), Source: datasets.SourceOnline})
		}
		return out
	}
	cases := []struct {
		name      string
		decisions []datasets.DecisionRecord
		outcomes  []datasets.OutcomeRecord
		want      datasets.OutcomeLinks
		all       bool
		err       string
	}{
		{"every outcome has its decision", decisions, []datasets.OutcomeRecord{
			{DecisionID: "d1", Source: datasets.SourceOnline}, {DecisionID: "d1", Source: datasets.SourceShadow}, {DecisionID: "d2"},
		}, datasets.OutcomeLinks{Linked: 3}, false, ""},
		{"outcomes without decision id are not counted", decisions, []datasets.OutcomeRecord{
			{PromptID: "p1", Source: datasets.SourceBenchmark}, {DecisionID: "d1"},
		}, datasets.OutcomeLinks{Linked: 1}, false, ""},
		{"shadow outcomes of a lost decision count like online ones", decisions, []datasets.OutcomeRecord{
			{DecisionID: "d1"}, {DecisionID: "gone", Source: datasets.SourceOnline}, {DecisionID: "gone", Source: datasets.SourceShadow},
		}, datasets.OutcomeLinks{Linked: 3, WithoutDecision: 2}, false,
			"2 of 3 outcomes have no matching decision in the decision logs (were the decision logs lost or written elsewhere?)"},
		{"the decision log lost everything", nil, orphans(1060), datasets.OutcomeLinks{Linked: 1060, WithoutDecision: 1060}, true,
			"1,060 outcomes have no matching decision in the decision logs (were the decision logs lost or written elsewhere?)"},
		{"no outcomes at all", decisions, nil, datasets.OutcomeLinks{}, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := datasets.CountOutcomeLinks(c.decisions, c.outcomes)
			require.Equal(t, c.want, got)
			assert.Equal(t, c.all, got.AllWithoutDecision())
			err := got.Err()
			if c.err == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, c.err)
			var md *datasets.MissingDecisionsError
			require.True(t, errors.As(err, &md))
			assert.Equal(t, c.want.WithoutDecision, md.Outcomes)
		})
	}
}

func TestMissingDecisionsErrorGroupsThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 1060: "1,060", 1234567: "1,234,567"} {
		err := &datasets.MissingDecisionsError{Outcomes: n, Linked: n}
		assert.Equal(t, want+" outcomes have no matching decision in the decision logs (were the decision logs lost or written elsewhere?)", err.Error())
	}
}
