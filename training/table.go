package training

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"switchyard/datasets"
	"switchyard/datasets/table"
	"switchyard/features"
)

// Table is a training table (datasets/table) to learn from: the logs
// joined elsewhere (switchyard join, or another engine).
type Table struct {
	Rows  []table.Row
	Stats LogStats
}

// FromTable turns a training table's rows into examples, as FromLogs does
// with the logs it joins: the chosen model observed at the row's weight
// divided by the mean weight of the rows, each shadow outcome's model at
// weight 1.
func FromTable(rows []table.Row, ext *features.Extractor, models []string) ([]Example, LogStats, error) {
	st := LogStats{Decisions: len(rows)}
	// a table's rows come in no particular order: training takes them by
	// decision time, then id, so that the same table gives the same model
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b table.Row) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.DecisionID, b.DecisionID)
	})
	b := newBanditSet(models, ext, &st)
	for _, r := range rows {
		j, ok := b.col[r.Model]
		if !ok {
			st.OtherModels++
			continue
		}
		if r.Prompt == "" {
			st.NoPrompt++
			continue
		}
		if math.IsNaN(r.Quality) || r.Quality < 0 || r.Quality > 1 {
			return nil, st, fmt.Errorf("training table: decision %s: quality %v outside [0,1]", r.DecisionID, r.Quality)
		}
		if !(r.Weight >= 1) || math.IsInf(r.Weight, 0) {
			return nil, st, fmt.Errorf("training table: decision %s: weight %v must be at least 1 (the inverse of a propensity, clipped)", r.DecisionID, r.Weight)
		}
		shadows := make([]observed, len(r.Shadows))
		for i, s := range r.Shadows {
			shadows[i] = observed{model: s.Model, quality: s.Quality, at: s.Time}
		}
		b.add(r.PromptKey, features.Input{Prompt: r.Prompt, Task: r.Task}, j, observed{quality: r.Quality, at: r.OutcomeTime}, r.Weight, shadows)
	}
	return b.done(), st, nil
}

// TableOutcomes are a training table's outcomes (the chosen model's and
// the shadows') as outcome records: the pool, token and cost means come
// from them.
func TableOutcomes(rows []table.Row) []datasets.OutcomeRecord {
	var out []datasets.OutcomeRecord
	for _, r := range rows {
		out = append(out, datasets.OutcomeRecord{DecisionID: r.DecisionID, Model: r.Model, Quality: r.Quality,
			InputTokens: r.InputTokens, OutputTokens: r.OutputTokens, CostUSD: r.CostUSD, Source: datasets.SourceOnline, Time: r.OutcomeTime})
		for _, s := range r.Shadows {
			out = append(out, datasets.OutcomeRecord{DecisionID: r.DecisionID, Model: s.Model, Quality: s.Quality,
				OutputTokens: s.OutputTokens, CostUSD: s.CostUSD, Source: datasets.SourceShadow, Time: s.Time})
		}
	}
	return out
}
