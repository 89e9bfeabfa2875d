package logstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"switchyard/datasets"
)

// DecisionLogConfig sets where and how decisions are written.
type DecisionLogConfig struct {
	Dir       string        // log folder: segments in Dir/wal, Parquet files in dt=/hour= partitions
	Writer    string        // writer id in every file name (default "local"; see logstore.LockDir)
	MaxBytes  int64         // a write-ahead-log segment larger than this is converted to Parquet
	MaxAge    time.Duration // a segment is converted after this long even when not full
	SyncEvery time.Duration // the segments are fsynced at least this often
	// RingBytes is the memory (a file on /dev/shm) that holds decisions
	// between the answer and the segment file; a decision larger than half
	// of it cannot be logged.
	RingBytes int
	// QueueSize bounds the decisions held in memory while the log cannot be
	// written (a full disk, say); beyond it, new ones are dropped and counted.
	QueueSize int
}

// DefaultDecisionLogConfig returns the defaults for dir.
func DefaultDecisionLogConfig(dir string) DecisionLogConfig {
	return DecisionLogConfig{Dir: dir, MaxBytes: 64 << 20, MaxAge: time.Minute, SyncEvery: time.Second, RingBytes: 16 << 20, QueueSize: 1 << 13}
}

// DecisionLog writes every decision to a write-ahead log before the server
// answers: into the log's ring (a memory-mapped file on /dev/shm), where it
// survives a killed process, from which it reaches a segment file on disk
// within milliseconds, fsynced once a second, so a power cut loses at most
// about the last second. Segments become Parquet files in Hive-style
// partitions.
// When the log cannot be written, routing goes on: decisions wait in a
// bounded queue and are written again once a second.
type DecisionLog struct {
	wal     *WAL[datasets.DecisionRecord]
	log     *slog.Logger
	retry   chan datasets.DecisionRecord
	dropped atomic.Int64
	stop    chan struct{}
	done    chan struct{}
	closing sync.Once
}

// NewDecisionLog opens the decision log in cfg.Dir, first converting to
// Parquet what an earlier process of the same writer left in it.
func NewDecisionLog(cfg DecisionLogConfig, log *slog.Logger) (*DecisionLog, error) {
	if cfg.MaxBytes <= 0 || cfg.QueueSize <= 0 || cfg.MaxAge <= 0 || cfg.SyncEvery <= 0 {
		return nil, fmt.Errorf("decision log: max bytes, queue size, max age and sync period must be positive: %+v", cfg)
	}
	wal, recovered, err := Open[datasets.DecisionRecord](Options{Dir: cfg.Dir, Prefix: datasets.DecisionLogPrefix,
		Writer: cfg.Writer, MaxBytes: cfg.MaxBytes, MaxAge: cfg.MaxAge, SyncEvery: cfg.SyncEvery, RingBytes: cfg.RingBytes, Log: log})
	if err != nil {
		return nil, fmt.Errorf("decision log: %w", err)
	}
	if recovered > 0 {
		log.Info("recovered decisions from the write-ahead log", "records", recovered)
	}
	l := &DecisionLog{wal: wal, log: log, retry: make(chan datasets.DecisionRecord, cfg.QueueSize),
		stop: make(chan struct{}), done: make(chan struct{})}
	go l.retryLoop()
	return l, nil
}

// Log writes one decision and returns once the operating system has it.
// When that fails, the decision is queued for another try (or, with the
// queue full, dropped and counted); Log never fails the request.
func (l *DecisionLog) Log(rec datasets.DecisionRecord) {
	switch err := l.wal.Append(rec); {
	case errors.Is(err, ErrClosed):
		l.dropped.Add(1) // a handler that outlived the shutdown
	case err != nil:
		l.hold(rec)
	}
}

func (l *DecisionLog) hold(rec datasets.DecisionRecord) {
	select {
	case l.retry <- rec:
	default:
		l.dropped.Add(1)
	}
}

// retryLoop writes the held decisions again once a second.
func (l *DecisionLog) retryLoop() {
	defer close(l.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			l.retryHeld()
			return
		case <-t.C:
			l.retryHeld()
		}
	}
}

func (l *DecisionLog) retryHeld() {
	for n := len(l.retry); n > 0; n-- {
		rec := <-l.retry
		if err := l.wal.Append(rec); err != nil {
			l.hold(rec)
			return // still failing: try again on the next tick
		}
	}
}

// Health reports the decisions held in memory, the drops, the write errors
// and the last error.
func (l *DecisionLog) Health() Health {
	_, errs, last := l.wal.Stats()
	return Health{Backlog: int64(len(l.retry)), Dropped: l.dropped.Load(), Errors: errs, Last: last}
}

// Failing reports the last write error if it happened within d.
func (l *DecisionLog) Failing(d time.Duration) error { return l.wal.Failing(d) }

// Stats returns the decisions written, dropped and the write errors so far.
func (l *DecisionLog) Stats() (written, dropped, errors int64) {
	appended, errs, _ := l.wal.Stats()
	return appended, l.dropped.Load(), errs
}

// Close writes the held decisions once more, closes the write-ahead log and
// converts it to Parquet; held decisions it still cannot write are counted
// as dropped. It waits until done or ctx ends.
func (l *DecisionLog) Close(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		l.closing.Do(func() { close(l.stop) })
		<-l.done
		err := l.wal.Close()
		l.dropped.Add(int64(len(l.retry)))
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("decision log: close: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("decision log: close: %w", ctx.Err())
	}
}
