package serving

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"switchyard/datasets"
	"switchyard/datasets/logstore"
)

// DecisionLogConfig sets where and how decisions are written.
type DecisionLogConfig struct {
	Dir         string        // folder of the Parquet files
	MaxRows     int           // rows per file before it is closed and a new one started
	MaxAge      time.Duration // a file is closed after this long even when not full
	QueueSize   int           // decisions waiting to be written; beyond it, new ones are dropped and counted
	FlushPeriod time.Duration // buffered rows are handed to the Parquet writer at least this often
}

// DefaultDecisionLogConfig returns the defaults for dir.
func DefaultDecisionLogConfig(dir string) DecisionLogConfig {
	return DecisionLogConfig{Dir: dir, MaxRows: 100_000, MaxAge: time.Minute, QueueSize: 1 << 13, FlushPeriod: 100 * time.Millisecond}
}

// DecisionLog writes decisions to Parquet files in the background, so that
// routing never waits for the disk, in Hive-style partitions
// (dt=YYYY-MM-DD/hour=HH) by the time a file was started. Each file is written under a temporary
// name and renamed when complete: readers see only whole files.
type DecisionLog struct {
	cfg     DecisionLogConfig
	log     *slog.Logger
	queue   chan datasets.DecisionRecord
	done    chan struct{}
	closing sync.Once
	dropped atomic.Int64
	written atomic.Int64
	errs    atomic.Int64
	seq     int
	closeMu sync.RWMutex
	closed  bool
	lastMu  sync.Mutex
	lastErr error
	lastAt  time.Time
}

// LogHealth implements LogStats: queued decisions, drops, write errors and
// the last error.
func (l *DecisionLog) LogHealth() (backlog, dropped, errors int64, last error) {
	l.lastMu.Lock()
	last = l.lastErr
	l.lastMu.Unlock()
	return int64(len(l.queue)), l.dropped.Load(), l.errs.Load(), last
}

// Failing reports the last write error if it happened within d.
func (l *DecisionLog) Failing(d time.Duration) error {
	l.lastMu.Lock()
	defer l.lastMu.Unlock()
	if l.lastErr != nil && time.Since(l.lastAt) < d {
		return l.lastErr
	}
	return nil
}

func (l *DecisionLog) fail(err error) {
	l.errs.Add(1)
	l.lastMu.Lock()
	l.lastErr, l.lastAt = err, time.Now()
	l.lastMu.Unlock()
}

// NewDecisionLog starts a decision log writing into cfg.Dir.
func NewDecisionLog(cfg DecisionLogConfig, log *slog.Logger) (*DecisionLog, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("decision log: %w", err)
	}
	if cfg.MaxRows <= 0 || cfg.QueueSize <= 0 || cfg.MaxAge <= 0 || cfg.FlushPeriod <= 0 {
		return nil, fmt.Errorf("decision log: max rows, queue size, max age and flush period must be positive: %+v", cfg)
	}
	removeStaleTemporaries(cfg.Dir, log)
	l := &DecisionLog{cfg: cfg, log: log, queue: make(chan datasets.DecisionRecord, cfg.QueueSize), done: make(chan struct{})}
	go l.run()
	return l, nil
}

// Log queues one decision. It never blocks: when the queue is full the
// decision is dropped and counted.
func (l *DecisionLog) Log(rec datasets.DecisionRecord) {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		l.dropped.Add(1) // a handler that outlived the shutdown
		return
	}
	select {
	case l.queue <- rec:
	default:
		l.dropped.Add(1)
	}
}

// Stats returns the decisions written, dropped and the write errors so far.
func (l *DecisionLog) Stats() (written, dropped, errors int64) {
	return l.written.Load(), l.dropped.Load(), l.errs.Load()
}

// Close writes every queued decision and closes the current file. It waits
// until done or ctx ends.
func (l *DecisionLog) Close(ctx context.Context) error {
	l.closing.Do(func() {
		l.closeMu.Lock()
		l.closed = true
		close(l.queue)
		l.closeMu.Unlock()
	})
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("decision log: close: %w", ctx.Err())
	}
}

// The decision log encodes writeChunk rows between yields and ends a row
// group every rowGroupRows rows; both bound how long a request can wait
// behind the log's work on a busy processor (compressing a row group of
// 2,048 decisions takes a few milliseconds).
const (
	writeChunk   = 256
	rowGroupRows = 2048
)

func (l *DecisionLog) run() {
	defer close(l.done)
	var (
		w      *datasets.Writer[datasets.DecisionRecord]
		rows   int
		opened time.Time
		buf    []datasets.DecisionRecord
		// rows written when the last row group was flushed
		flushedAt int
	)
	tick := time.NewTicker(l.cfg.FlushPeriod)
	defer tick.Stop()
	flush := func() {
		if len(buf) == 0 {
			return
		}
		if w == nil {
			l.seq++
			now := time.Now().UTC()
			name := datasets.DecisionLogName(now, l.seq)
			dir := filepath.Join(l.cfg.Dir, logstore.Partition(now))
			err := os.MkdirAll(dir, 0o755)
			if err == nil {
				w, err = datasets.NewWriter[datasets.DecisionRecord](filepath.Join(dir, name))
			}
			if err != nil {
				l.fail(err)
				l.log.Error("decision log: open file", "err", err, "dropped", len(buf))
				l.dropped.Add(int64(len(buf)))
				buf = buf[:0]
				return
			}
			opened, rows, flushedAt = time.Now(), 0, 0
		}
		// Encode in small chunks and yield between them, so that on a busy
		// server (one processor) requests wait at most one chunk's work
		// behind the log, not a whole batch's.
		var err error
		added := 0
		for c := buf; len(c) > 0; {
			n := min(len(c), writeChunk)
			if err = w.Write(c[:n]...); err != nil {
				break
			}
			added += n
			c = c[n:]
			runtime.Gosched()
		}
		if err == nil && rows+added-flushedAt >= rowGroupRows {
			err = w.Flush() // a row group: bounds what the writer holds in memory
			flushedAt = rows + added
			runtime.Gosched()
		}
		if err != nil {
			// The file cannot be trusted after a failed write: abandon it.
			// Its earlier rows are lost with it (it was never complete), and
			// so is this batch; the next batch opens a new file.
			lost := rows + len(buf)
			w.Abort()
			w = nil
			l.fail(err)
			l.dropped.Add(int64(lost))
			l.log.Error("decision log: write failed; file abandoned", "err", err, "dropped", lost)
		} else {
			rows += len(buf)
			l.written.Add(int64(len(buf)))
		}
		buf = buf[:0]
	}
	closeFile := func() {
		if w == nil {
			return
		}
		if err := w.Close(); err != nil { // the temporary file is removed: its rows are lost
			l.fail(err)
			l.dropped.Add(int64(rows))
			l.log.Error("decision log: close file", "err", err, "dropped", rows)
		}
		w = nil
	}
	// The writer wakes on its ticker and drains the queue, instead of waking
	// for every decision: a send on the routing path then never has a
	// receiver to wake, which keeps it cheap.
	for {
		<-tick.C
		for drained := false; !drained; {
			select {
			case rec, ok := <-l.queue:
				if !ok {
					flush()
					closeFile()
					return
				}
				buf = append(buf, rec)
				if len(buf) >= 4096 {
					flush()
				}
				if w != nil && rows >= l.cfg.MaxRows {
					flush()
					closeFile()
				}
			default:
				drained = true
			}
		}
		flush()
		if w != nil && (rows >= l.cfg.MaxRows || time.Since(opened) >= l.cfg.MaxAge) {
			closeFile()
		}
	}
}

// removeStaleTemporaries deletes the temporary decision files a killed
// process left: they were never complete (decisions are logged
// asynchronously, so a kill loses at most the last MaxAge of them).
func removeStaleTemporaries(dir string, log *slog.Logger) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if n := d.Name(); strings.HasPrefix(n, ".decisions-") && strings.HasSuffix(n, ".tmp") {
			if os.Remove(path) == nil {
				log.Warn("removed an incomplete decision log file left by an earlier process", "file", path)
			}
		}
		return nil
	})
}
