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
	Rows []table.Row
	// Groups, when set, are the rows of each row group of the tables, in
	// order (ReadTables sets them): training then takes the rows in table
	// order and its epochs in the order streaming (FitTable) does, so that
	// the same tables give the same model in memory and streamed. Without
	// them the rows are taken by decision time, then id.
	Groups []int
	Stats  LogStats
}

// ReadTables reads training tables into memory with their row groups,
// checking each table's version and schema.
func ReadTables(paths []string) (*Table, error) {
	units, err := rowGroups(paths)
	if err != nil {
		return nil, err
	}
	t := &Table{Groups: make([]int, len(units))}
	for i, u := range units {
		t.Groups[i] = int(u.rows)
	}
	for _, p := range paths {
		rows, err := table.Read(p)
		if err != nil {
			return nil, err
		}
		t.Rows = append(t.Rows, rows...)
	}
	return t, nil
}

// FromTable turns a training table's rows into examples, as FromLogs does
// with the logs it joins: the chosen model observed at the row's weight
// divided by the mean weight of the rows, each shadow outcome's model at
// weight 1. With the table's Groups it also returns the row group of each
// example.
func FromTable(t *Table, ext *features.Extractor, models []string) ([]Example, []int, LogStats, error) {
	rows := t.Rows
	st := LogStats{Decisions: len(rows)}
	var rowGroup []int // of each row, with Groups
	if t.Groups != nil {
		for g, n := range t.Groups {
			for range n {
				rowGroup = append(rowGroup, g)
			}
		}
		if len(rowGroup) != len(rows) {
			return nil, nil, st, fmt.Errorf("training table: row groups of %d rows in all, but %d rows", len(rowGroup), len(rows))
		}
	} else {
		// a table's rows come in no particular order: training takes them
		// by decision time, then id, so that the same rows in any order
		// give the same model
		rows = slices.Clone(rows)
		slices.SortFunc(rows, func(a, b table.Row) int {
			if c := a.Time.Compare(b.Time); c != 0 {
				return c
			}
			return strings.Compare(a.DecisionID, b.DecisionID)
		})
	}
	var groups []int
	b := newBanditSet(models, ext, &st)
	for i, r := range rows {
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
			return nil, nil, st, fmt.Errorf("training table: decision %s: quality %v outside [0,1]", r.DecisionID, r.Quality)
		}
		if !(r.Weight >= 1) || math.IsInf(r.Weight, 0) {
			return nil, nil, st, fmt.Errorf("training table: decision %s: weight %v must be at least 1 (the inverse of a propensity, clipped)", r.DecisionID, r.Weight)
		}
		shadows := make([]observed, len(r.Shadows))
		for i, s := range r.Shadows {
			shadows[i] = observed{model: s.Model, quality: s.Quality, at: s.Time}
		}
		b.add(r.PromptKey, features.Input{Prompt: r.Prompt, Task: r.Task}, j, observed{quality: r.Quality, at: r.OutcomeTime}, r.Weight, shadows)
		if rowGroup != nil {
			groups = append(groups, rowGroup[i])
		}
	}
	return b.done(), groups, st, nil
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
