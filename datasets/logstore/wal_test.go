package logstore

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
)

func rec(i int) datasets.OutcomeRecord {
	return datasets.OutcomeRecord{DecisionID: fmt.Sprintf("d-%d", i), Model: "m", Quality: float64(i % 2), Source: datasets.SourceOnline}
}

// kill stops w as a killed process would stop: no more appends, the
// background loop gone, nothing closed, converted or removed.
func kill[T any](w *WAL[T]) {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.aborted.Store(true)
	close(w.stop)
	<-w.done
	<-w.convDone
}

func readAll(t *testing.T, dir string) []datasets.OutcomeRecord {
	t.Helper()
	_, out, err := datasets.ReadLogDir(dir)
	require.NoError(t, err)
	return out
}

// openOutcomes opens an outcome log with opt, its Prefix set to the outcome
// log's, and returns it with the number of records it recovered.
func openOutcomes(t *testing.T, opt Options) (*WAL[datasets.OutcomeRecord], int) {
	t.Helper()
	opt.Prefix = datasets.OutcomeLogPrefix
	w, n, err := Open[datasets.OutcomeRecord](opt)
	require.NoError(t, err)
	return w, n
}

// appendRecs appends rec(i) for i in [from, to).
func appendRecs(t *testing.T, w *WAL[datasets.OutcomeRecord], from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		require.NoError(t, w.Append(rec(i)))
	}
}

// appendConcurrently appends each records from each of goroutines
// goroutines at once, rec(g*1000+i) for goroutine g, calling after (if not
// nil) after the i-th append of each.
func appendConcurrently(t *testing.T, w *WAL[datasets.OutcomeRecord], goroutines, each int, after func(i int)) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				assert.NoError(t, w.Append(rec(g*1000+i)))
				if after != nil {
					after(i)
				}
			}
		}()
	}
	wg.Wait()
}

// waitFlushed waits until the flusher has written every appended record to
// the open segment.
func waitFlushed[T any](t *testing.T, w *WAL[T]) {
	t.Helper()
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.flushed == w.pos
	}, 5*time.Second, time.Millisecond)
}

// assertEachOnce checks that no decision id occurs twice in got.
func assertEachOnce(t *testing.T, got []datasets.OutcomeRecord) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range got {
		assert.False(t, seen[r.DecisionID], "recovered twice: %s", r.DecisionID)
		seen[r.DecisionID] = true
	}
}

// requireRecoveredOnce opens the log of a killed process again with opt,
// closes it, and checks that it recovered want records and that its folder
// then holds each of them once.
func requireRecoveredOnce(t *testing.T, opt Options, want int) {
	t.Helper()
	w, n := openOutcomes(t, opt)
	assert.Equal(t, want, n)
	require.NoError(t, w.Close())
	got := readAll(t, opt.Dir)
	require.Len(t, got, want)
	assertEachOnce(t, got)
}

func TestAppendsBecomePartitionedParquetOnClose(t *testing.T) {
	dir := t.TempDir()
	w, n := openOutcomes(t, Options{Dir: dir})
	assert.Zero(t, n)
	appendConcurrently(t, w, 8, 50, nil)
	require.NoError(t, w.Close())
	files, _ := filepath.Glob(filepath.Join(dir, "dt=*", "hour=*", "outcomes-*.parquet"))
	assert.Len(t, files, 1)
	got := readAll(t, dir)
	assert.Len(t, got, 400)
	assertEachOnce(t, got)
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	assert.Empty(t, segs, "converted segments are removed")
	require.Error(t, w.Append(rec(1)), "closed")
}

func TestSegmentsRotateBySize(t *testing.T) {
	dir := t.TempDir()
	w, _ := openOutcomes(t, Options{Dir: dir, MaxBytes: 2000})
	appendRecs(t, w, 0, 100)
	require.NoError(t, w.Close())
	files, _ := filepath.Glob(filepath.Join(dir, "dt=*", "hour=*", "outcomes-*.parquet"))
	assert.Greater(t, len(files), 3)
	assert.Len(t, readAll(t, dir), 100)
}

// A process killed before Close leaves a segment; the next Open converts
// it, ignoring a torn record at its end.
func TestOpenRecoversWhatAKilledProcessLeft(t *testing.T) {
	dir := t.TempDir()
	w, _ := openOutcomes(t, Options{Dir: dir})
	appendRecs(t, w, 0, 10)
	// kill -9: no Close; a half-written record after the last one
	kill(w)
	seg := w.segPath(w.segName)
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{200, 0, 0, 0, 1, 2, 3, 4, '{', '"'}, w.segSize)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	w2, n := openOutcomes(t, Options{Dir: dir})
	assert.Equal(t, 10, n)
	require.NoError(t, w2.Append(rec(99)))
	require.NoError(t, w2.Close())
	assert.Len(t, readAll(t, dir), 11)
}

// OpenRecovering hands over exactly the records it recovers (a fleet
// replica tells Redis of them), and nothing it writes later.
func TestOpenRecoveringHandsOverTheRecoveredRecords(t *testing.T) {
	dir := t.TempDir()
	w, _ := openOutcomes(t, Options{Dir: dir})
	appendRecs(t, w, 0, 7)
	kill(w)
	var got []string
	w2, n, err := OpenRecovering(Options{Dir: dir, Prefix: datasets.OutcomeLogPrefix}, func(recs []datasets.OutcomeRecord) {
		for _, r := range recs {
			got = append(got, r.DecisionID)
		}
	})
	require.NoError(t, err)
	assert.Equal(t, 7, n)
	require.NoError(t, w2.Append(rec(99)))
	require.NoError(t, w2.Close())
	want := make([]string, 7)
	for i := range want {
		want[i] = rec(i).DecisionID
	}
	assert.ElementsMatch(t, want, got)
}

// A crash after the Parquet file was renamed but before the segment was
// removed must not convert the segment twice.
func TestASegmentIsNeverConvertedTwice(t *testing.T) {
	dir := t.TempDir()
	w, _ := openOutcomes(t, Options{Dir: dir})
	appendRecs(t, w, 0, 5)
	seg := w.segPath(w.segName)
	b, err := os.ReadFile(seg)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, os.WriteFile(seg, b, 0o644)) // the segment "survived" the crash
	w2, n := openOutcomes(t, Options{Dir: dir})
	assert.Zero(t, n)
	require.NoError(t, w2.Close())
	assert.Len(t, readAll(t, dir), 5)
	_, err = os.Stat(seg)
	assert.True(t, os.IsNotExist(err))
}

func TestPartition(t *testing.T) {
	at := time.Date(2026, 11, 26, 9, 30, 0, 0, time.FixedZone("x", 3600))
	assert.Equal(t, filepath.Join("dt=2026-11-26", "hour=08"), Partition(at))
}

// Each Open starts new segment names, so a second process's segments are
// never mistaken for the first's already-converted ones.
func TestRestartsNeverReuseSegmentNames(t *testing.T) {
	dir := t.TempDir()
	for run := 0; run < 3; run++ {
		w, _ := openOutcomes(t, Options{Dir: dir})
		appendRecs(t, w, run*100, run*100+5)
		require.NoError(t, w.Close())
	}
	assert.Len(t, readAll(t, dir), 15)
}

func TestASecondLockOnAFolderIsRefusedWithTheHoldersPID(t *testing.T) {
	dir := t.TempDir()
	l, err := LockDir(dir, "w1")
	require.NoError(t, err)
	_, err = LockDir(dir, "w1")
	require.ErrorIs(t, err, ErrLocked)
	assert.Contains(t, err.Error(), fmt.Sprintf("process %d", os.Getpid()))
	assert.Contains(t, err.Error(), dir)

	other, err := LockDir(dir, "w2")
	require.NoError(t, err, "another writer id may share the folder")
	require.NoError(t, other.Close())

	require.NoError(t, l.Close())
	again, err := LockDir(dir, "w1")
	require.NoError(t, err, "the lock is free once released")
	require.NoError(t, again.Close())

	_, err = LockDir(dir, "Bad-ID")
	require.Error(t, err)
}

// A writer recovers only its own segments: another writer's, in the same
// folder, are never converted or removed.
func TestWritersOnlyRecoverTheirOwnSegments(t *testing.T) {
	dir := t.TempDir()
	a, _ := openOutcomes(t, Options{Dir: dir, Writer: "a"})
	appendRecs(t, a, 0, 7)
	kill(a)
	segA := a.segPath(a.segName)

	b, n := openOutcomes(t, Options{Dir: dir, Writer: "b"})
	assert.Zero(t, n)
	require.NoError(t, b.Append(rec(100)))
	require.NoError(t, b.Close())
	_, err := os.Stat(segA)
	require.NoError(t, err, "b left a's live segment alone")
	assert.Len(t, readAll(t, dir), 1)

	a2, n := openOutcomes(t, Options{Dir: dir, Writer: "a"})
	assert.Equal(t, 7, n)
	require.NoError(t, a2.Close())
	assert.Len(t, readAll(t, dir), 8)
}

// With SyncEvery set, an acknowledged append survives a killed process
// whether or not the flusher wrote it to a segment yet, and is recovered
// exactly once: from the ring, from a segment, or partly from each.
func TestPeriodicSyncAppendsSurviveAKillExactlyOnce(t *testing.T) {
	for _, c := range []struct {
		name  string
		flush bool // let the flusher write some records out before the kill
	}{{"in the ring only", false}, {"in a segment and the ring", true}} {
		t.Run(c.name, func(t *testing.T) {
			opt := Options{Dir: t.TempDir(), SyncEvery: time.Hour, RingDir: t.TempDir()}
			w, _ := openOutcomes(t, opt)
			appendConcurrently(t, w, 4, 25, func(i int) {
				if c.flush && i == 10 {
					time.Sleep(3 * flushEvery)
				}
			})
			kill(w)
			requireRecoveredOnce(t, opt, 100)
			rings, _ := filepath.Glob(filepath.Join(opt.RingDir, "*.ring"))
			assert.Empty(t, rings, "a clean close leaves no ring behind")
		})
	}
}

// When the open segment is removed from under the log, its records are
// copied into a new segment rather than lost with the file.
func TestARemovedSegmentIsSalvaged(t *testing.T) {
	dir := t.TempDir()
	w, _ := openOutcomes(t, Options{Dir: dir, SyncEvery: 50 * time.Millisecond})
	appendRecs(t, w, 0, 9)
	waitFlushed(t, w)
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "wal")))
	require.Eventually(t, func() bool { return w.Failing(time.Minute) != nil }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, w.Close())
	assert.Len(t, readAll(t, dir), 9)
	assert.Contains(t, w.Failing(time.Minute).Error(), "removed or moved")
}

// Decisions use their own compact encoding in the log.
func TestDecisionRecordsRoundTripThroughTheLog(t *testing.T) {
	dir := t.TempDir()
	w, _, err := Open[datasets.DecisionRecord](Options{Dir: dir, Prefix: datasets.DecisionLogPrefix, SyncEvery: time.Second})
	require.NoError(t, err)
	want := datasets.DecisionRecord{DecisionID: "d1", Time: time.Date(2026, 12, 1, 10, 0, 0, 123000, time.UTC), Prompt: "héllo\x00",
		Candidates: []datasets.Candidate{{Model: "a", PredictedQuality: 0.5, ExpectedCostUSD: 1e-5, Probability: 0.9}}, Chosen: "a",
		Propensity: 0.9, QualityBar: 0.8, InputTokens: 12, Experiment: "e", Arm: "t", UnitHash: "ab"}
	require.NoError(t, w.Append(want))
	require.NoError(t, w.Close())
	got, _, err := datasets.ReadLogDir(dir)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, want, got[0])
}

// A ring whose log folder is gone is removed by the next log that opens a
// ring in the same place: nothing could recover it.
func TestRingsOfVanishedLogFoldersAreRemoved(t *testing.T) {
	rings, gone := t.TempDir(), t.TempDir()
	w, _ := openOutcomes(t, Options{Dir: gone, SyncEvery: time.Second, RingDir: rings, RingBytes: 1 << 16})
	require.NoError(t, w.Append(rec(1)))
	kill(w)
	left, _ := filepath.Glob(filepath.Join(rings, "*.ring"))
	require.Len(t, left, 1)
	require.NoError(t, os.RemoveAll(gone))

	other := t.TempDir()
	w2, _ := openOutcomes(t, Options{Dir: other, SyncEvery: time.Second, RingDir: rings, RingBytes: 1 << 16})
	_, err := os.Stat(left[0])
	assert.True(t, os.IsNotExist(err), "the orphan ring is removed")
	require.NoError(t, w2.Close())
}

// A crash after the flusher wrote records to a segment but before it moved
// the ring's tail leaves them in both: the next start recovers each once.
func TestRecordsInBothASegmentAndTheRingAreRecoveredOnce(t *testing.T) {
	opt := Options{Dir: t.TempDir(), SyncEvery: time.Hour, RingDir: t.TempDir(), RingBytes: 1 << 16}
	w, _ := openOutcomes(t, opt)
	start := w.ring.tail()
	appendRecs(t, w, 0, 20)
	waitFlushed(t, w)
	appendRecs(t, w, 20, 30) // these stay in the ring only
	kill(w)
	w.ring.setTail(start) // as if the process died before moving the tail
	requireRecoveredOnce(t, opt, 30)
}
