package join_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
	"switchyard/datasets/join"
	"switchyard/datasets/synthetic"
	"switchyard/datasets/table"
	"switchyard/features"
	"switchyard/training"
)

var t0 = time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)

// writeLogs writes two writers' decision and outcome files into dir, the
// way servers do, and returns the records.
func writeLogs(t *testing.T, dir string) ([]datasets.DecisionRecord, []datasets.OutcomeRecord) {
	t.Helper()
	var decisions []datasets.DecisionRecord
	var outcomes []datasets.OutcomeRecord
	models := []string{"small", "medium", "large"}
	for w := range 2 {
		var ds []datasets.DecisionRecord
		var outs []datasets.OutcomeRecord
		for i := range 200 {
			id := fmt.Sprintf("w%d-%d", w, i)
			at := t0.Add(time.Duration(w*200+i) * time.Minute)
			d := datasets.DecisionRecord{DecisionID: id, Time: at, Prompt: fmt.Sprintf("question %d of writer %d", i, w),
				PromptSHA256: fmt.Sprintf("%064x", w*1000+i), Task: []string{"qa", "code"}[i%2], Chosen: models[i%3],
				Propensity: []float64{1, 0.5, 0.02}[i%3], Policy: "p"}
			if i%17 == 0 {
				d.Prompt = "" // prompt not kept
			}
			ds = append(ds, d)
			if i%11 == 0 {
				continue // no outcome yet
			}
			o := datasets.OutcomeRecord{DecisionID: id, Model: d.Chosen, Quality: float64(i%5) / 4, CostUSD: 0.001 * float64(i%3+1),
				InputTokens: 10, OutputTokens: int64(20 + i), Source: datasets.SourceOnline, Time: at.Add(time.Second)}
			outs = append(outs, o)
			if i%13 == 0 { // a later outcome of the same decision: the latest is used
				o.Quality, o.Time = 0.33, at.Add(time.Hour)
				outs = append(outs, o)
			}
			if i%4 == 0 { // a shadow copy on another model
				outs = append(outs, datasets.OutcomeRecord{DecisionID: id, Model: models[(i+1)%3], Quality: 0.9, CostUSD: 0.01,
					OutputTokens: 50, Source: datasets.SourceShadow, Time: at.Add(2 * time.Second)})
			}
		}
		outs = append(outs, datasets.OutcomeRecord{DecisionID: "never-decided", Model: "small", Quality: 1, Source: datasets.SourceOnline, Time: t0})
		part := filepath.Join(dir, "dt=2026-12-02", "hour=09")
		require.NoError(t, os.MkdirAll(part, 0o755))
		require.NoError(t, datasets.WriteDecisions(filepath.Join(part, datasets.LogFileName("decisions", t0, fmt.Sprint("w", w), 1)+".parquet"), ds))
		require.NoError(t, datasets.WriteOutcomes(filepath.Join(part, datasets.LogFileName("outcomes", t0, fmt.Sprint("w", w), 1)+".parquet"), outs))
		decisions, outcomes = append(decisions, ds...), append(outcomes, outs...)
	}
	return decisions, outcomes
}

// The join on the embedded engine makes the examples training's in-memory
// join makes from the same logs: the same decisions, qualities, weights
// and shadow outcomes.
func TestJoinMatchesTheInMemoryJoin(t *testing.T) {
	logs := t.TempDir()
	decisions, outcomes := writeLogs(t, logs)
	out := filepath.Join(t.TempDir(), "table.parquet")
	st, err := join.Logs(context.Background(), join.Options{Logs: []string{logs}, Clip: 20, Threads: 2}, out)
	require.NoError(t, err)
	assert.Equal(t, 2, st.DecisionFiles)
	assert.Equal(t, 2, st.OutcomeFiles)
	rows, err := table.Read(out)
	require.NoError(t, err)
	assert.Equal(t, st.Rows, int64(len(rows)))

	spec := features.DefaultSpec()
	spec.Buckets = 1 << 10
	ext, err := features.NewExtractor(spec)
	require.NoError(t, err)
	models := []string{"small", "medium", "large"}
	examples, lst, err := training.FromLogs(decisions, outcomes, ext, models, 20)
	require.NoError(t, err)
	require.Len(t, rows, lst.Used)
	assert.Equal(t, int64(lst.Outcomes), st.Outcomes, "the outcomes that name a decision")
	assert.Equal(t, int64(lst.OutcomesWithoutDecision), st.OutcomesWithoutDecision, "those whose decision is not logged")
	assert.Equal(t, int64(2), st.OutcomesWithoutDecision)
	byKey := map[string]table.Row{}
	for _, r := range rows {
		byKey[r.PromptKey] = r
	}
	var sum float64
	for _, r := range rows {
		sum += r.Weight
	}
	mean := sum / float64(len(rows))
	for _, e := range examples {
		r, ok := byKey[e.PromptID]
		require.True(t, ok, "example %s in the table", e.PromptID)
		for j, m := range models {
			switch {
			case m == r.Model:
				assert.InDelta(t, float64(e.Labels[j]), r.Quality, 1e-6, "%s %s", e.PromptID, m)
				assert.InDelta(t, float64(e.Weights[j]), r.Weight/mean, 1e-5)
			case e.Weights[j] > 0:
				require.Len(t, r.Shadows, 1, "%s", e.PromptID)
				assert.Equal(t, m, r.Shadows[0].Model)
				assert.InDelta(t, float64(e.Labels[j]), r.Shadows[0].Quality, 1e-6)
			}
		}
	}
	assert.Equal(t, 0.33, byKey[fmt.Sprintf("sha256:%064x", 13)].Quality, "the latest outcome of a decision")
	assert.False(t, rows[0].Time.IsZero())
}

// Time windows and sampling: the same share on every run, nested in the
// larger sample.
func TestJoinWindowsAndSamples(t *testing.T) {
	logs := t.TempDir()
	writeLogs(t, logs)
	dir := t.TempDir()
	run := func(opt join.Options) []table.Row {
		opt.Logs = []string{logs}
		out := filepath.Join(dir, fmt.Sprint(time.Now().UnixNano(), ".parquet"))
		_, err := join.Logs(context.Background(), opt, out)
		require.NoError(t, err)
		rows, err := table.Read(out)
		require.NoError(t, err)
		sort.Slice(rows, func(i, j int) bool { return rows[i].DecisionID < rows[j].DecisionID }) // the table has no order
		return rows
	}
	all := run(join.Options{})
	window := run(join.Options{Since: t0.Add(100 * time.Minute), Until: t0.Add(200 * time.Minute)})
	for _, r := range window {
		assert.False(t, r.Time.Before(t0.Add(100*time.Minute)))
		assert.True(t, r.Time.Before(t0.Add(200*time.Minute)))
	}
	assert.Greater(t, len(window), 50)
	assert.Less(t, len(window), len(all)/2)
	half := run(join.Options{Sample: 0.5, Seed: 3})
	again := run(join.Options{Sample: 0.5, Seed: 3})
	assert.Equal(t, half, again, "a sample repeats")
	assert.InDelta(t, len(all)/2, len(half), float64(len(all))/6)
	other := run(join.Options{Sample: 0.5, Seed: 4})
	assert.NotEqual(t, half, other, "another seed, another sample")
}

// Malformed, truncated and schema-mismatched log files are named in the
// error, or left out and counted with SkipBad; never read as zeros.
func TestJoinNamesBadLogFiles(t *testing.T) {
	type oldOutcome struct { // an outcome log without its quality column
		DecisionID string `parquet:"decision_id"`
		Model      string `parquet:"model"`
	}
	cases := map[string]func(path string){
		"garbage": func(path string) {
			require.NoError(t, os.WriteFile(path, []byte("not parquet at all, just text"), 0o644))
		},
		"truncated": func(path string) {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, b[:len(b)/2], 0o644))
		},
		"schema": func(path string) {
			require.NoError(t, datasets.WriteFile(path, []oldOutcome{{DecisionID: "w0-1", Model: "small"}}))
		},
	}
	wants := map[string]string{"garbage": "not a Parquet file", "truncated": "truncated or not a Parquet file", "schema": `column "quality" missing`}
	for name, spoil := range cases {
		t.Run(name, func(t *testing.T) {
			logs := t.TempDir()
			writeLogs(t, logs)
			_, outs, err := datasets.LogFiles(logs)
			require.NoError(t, err)
			spoil(outs[0])
			out := filepath.Join(t.TempDir(), "table.parquet")
			_, err = join.Logs(context.Background(), join.Options{Logs: []string{logs}}, out)
			require.Error(t, err)
			assert.Contains(t, err.Error(), outs[0])
			assert.Contains(t, err.Error(), wants[name])
			assert.NoFileExists(t, out)

			st, err := join.Logs(context.Background(), join.Options{Logs: []string{logs}, SkipBad: true}, out)
			require.NoError(t, err)
			require.Len(t, st.Skipped, 1)
			assert.Contains(t, st.Skipped[0], outs[0])
			assert.Equal(t, 1, st.OutcomeFiles)
			rows, err := table.Read(out)
			require.NoError(t, err)
			assert.Positive(t, len(rows))
		})
	}
	// a table of another engine's making without the version is refused by name
	bad := filepath.Join(t.TempDir(), "table.parquet")
	require.NoError(t, datasets.WriteFile(bad, []table.Row{{DecisionID: "x"}}))
	_, err := table.Read(bad)
	require.ErrorContains(t, err, "not a training table")
}

// The same logs give the same table, row for row, on every run (training
// takes the rows in the table's order, so this is what makes a model
// reproducible from the logs).
func TestTheSameLogsGiveTheSameTable(t *testing.T) {
	logs := t.TempDir()
	_, err := synthetic.WriteLogs(logs, synthetic.LogsConfig{Seed: 4, Decisions: 30_000, PromptBytes: 256})
	require.NoError(t, err)
	ids := func() []string {
		out := filepath.Join(t.TempDir(), "table.parquet")
		_, err := join.Logs(context.Background(), join.Options{Logs: []string{logs}, Threads: 2}, out)
		require.NoError(t, err)
		rows, err := table.Read(out)
		require.NoError(t, err)
		var ids []string
		for _, r := range rows {
			ids = append(ids, r.DecisionID)
		}
		return ids
	}
	first := ids()
	require.Greater(t, len(first), 25_000)
	for range 2 {
		assert.Equal(t, first, ids())
	}
}
