package datasets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeDecisionLog writes files decisions of n rows each into dt=/hour=
// partitions, named as the decision log names them, and returns every row
// in the order written.
func writeDecisionLog(t *testing.T, dir string, files, n int) []DecisionRecord {
	t.Helper()
	var all []DecisionRecord
	for f := range files {
		part := filepath.Join(dir, "dt=2026-11-27", fmt.Sprintf("hour=%02d", f/2))
		require.NoError(t, os.MkdirAll(part, 0o755))
		rows := make([]DecisionRecord, n)
		for i := range rows {
			rows[i] = DecisionRecord{DecisionID: fmt.Sprintf("f%d-d%d", f, i), Chosen: fmt.Sprintf("m%d", (f+i)%3),
				Prompt: "prompt text that the start-up read does not need", Candidates: []Candidate{{Model: "m0"}}}
		}
		w, err := NewWriter[DecisionRecord](filepath.Join(part, LogFileName(DecisionLogPrefix, fileTime(f), "w1", f)+".parquet"))
		require.NoError(t, err)
		require.NoError(t, w.Write(rows...))
		require.NoError(t, w.Close())
		all = append(all, rows...)
	}
	return all
}

// fileTime is when test decision file f was opened.
func fileTime(f int) time.Time { return time.Date(2026, 11, 27, f/2, f%2, 0, 123000, time.UTC) }

func TestReadRecentDecisionsIsTheTailOfReadLogDir(t *testing.T) {
	dir := t.TempDir()
	all := writeDecisionLog(t, dir, 5, 300)
	outs := sampleOutcomes()
	ow, err := NewWriter[OutcomeRecord](filepath.Join(dir, "dt=2026-11-27", "hour=00", "outcomes-0001.parquet"))
	require.NoError(t, err)
	require.NoError(t, ow.Write(outs...))
	require.NoError(t, ow.Close())

	full, fullOut, err := ReadLogDir(dir)
	require.NoError(t, err)
	require.Len(t, full, len(all))
	for _, max := range []int{1, 299, 300, 301, 1000, 1500, 10_000} {
		got, since, err := ReadRecentDecisions(dir, max)
		require.NoError(t, err, "max %d", max)
		want := full[len(full)-min(max, len(full)):]
		require.Len(t, got, len(want), "max %d", max)
		for i := range want {
			require.Equal(t, DecisionKey{want[i].DecisionID, want[i].Chosen}, got[i], "max %d row %d", max, i)
		}
		oldestFile := 5 - (min(max, len(full))+299)/300 // files of 300 rows, newest read first
		assert.Equal(t, fileTime(oldestFile), since, "max %d: when the oldest file read was opened", max)
	}
	var gotOut []OutcomeRecord
	require.NoError(t, EachOutcomeFile(dir, func(rows []OutcomeRecord) error {
		gotOut = append(gotOut, rows...)
		return nil
	}))
	assert.Equal(t, fullOut, gotOut, "every outcome, as ReadLogDir reads them")
	require.EqualError(t, EachOutcomeFile(dir, func([]OutcomeRecord) error { return errors.New("stop") }), "stop")
}

func TestReadRecentDecisionsReportsACorruptFile(t *testing.T) {
	dir := t.TempDir()
	writeDecisionLog(t, dir, 2, 10)
	bad := filepath.Join(dir, "dt=2026-11-27", "hour=09", "decisions-20261127T090000.000000Z-0009.parquet")
	require.NoError(t, os.MkdirAll(filepath.Dir(bad), 0o755))
	require.NoError(t, os.WriteFile(bad, []byte("PAR1 not really parquet PAR1"), 0o644))
	_, _, err := ReadRecentDecisions(dir, 5)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad)
	// the newest files are read first: an old corrupt file past max is not read
	old := filepath.Join(dir, "dt=2026-11-26", "hour=00", "decisions-20261126T000000.000000Z-0001.parquet")
	require.NoError(t, os.Remove(bad))
	require.NoError(t, os.MkdirAll(filepath.Dir(old), 0o755))
	require.NoError(t, os.WriteFile(old, []byte("garbage"), 0o644))
	got, _, err := ReadRecentDecisions(dir, 15)
	require.NoError(t, err)
	assert.Len(t, got, 15)
	_, _, err = ReadRecentDecisions(dir, 25)
	require.Error(t, err, "reaching the corrupt file")
}
