// Package logstore keeps Switchyard's logs durable: an append-only
// write-ahead log whose records are on disk (fsynced, with a checksum) before
// Append returns, and which is turned into Parquet files in Hive-style
// partitions (dt=YYYY-MM-DD/hour=HH) when a segment is full or old, and again
// at start-up for whatever a killed process left behind. A Parquet file is
// written under a temporary name and renamed when complete, and it is named
// after its segment, so a segment is never converted twice: after a crash
// between the rename and the segment's removal, the existing file is kept
// and the segment just removed.
package logstore

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"switchyard/datasets"
)

// Partition is the Hive-style partition folder of a time, in UTC.
func Partition(t time.Time) string {
	t = t.UTC()
	return filepath.Join("dt="+t.Format("2006-01-02"), "hour="+t.Format("15"))
}

// Options configure a WAL.
type Options struct {
	Dir        string        // log folder: segments in Dir/wal, Parquet files in partitions under Dir
	Prefix     string        // file name prefix, e.g. "outcomes"
	MaxBytes   int64         // a segment larger than this is converted to Parquet
	MaxAge     time.Duration // a segment older than this is converted
	BatchDelay time.Duration // group commit: how long the writer waits to gather more records before an fsync
	Log        *slog.Logger
}

// WAL is a durable append-only log of records of type T.
type WAL[T any] struct {
	opt     Options
	walDir  string
	reqs    chan *appendReq[T]
	done    chan struct{}
	closeMu sync.Mutex
	closed  bool

	// owned by the writer goroutine
	seg      *os.File
	segOpen  atomic.Bool // seg != nil, readable from other goroutines
	segBuf   *bufio.Writer
	run      string // unique per Open: segment names never repeat across restarts
	segSeq   int64
	segSize  int64
	segStart time.Time
	segRecs  []T

	statsMu  sync.Mutex
	appended int64
	errs     int64
	lastErr  error
	lastAt   time.Time
}

type appendReq[T any] struct {
	recs []T
	done chan error
}

// Open opens the log in opt.Dir, first converting every segment left by an
// earlier process into Parquet. It returns how many records it recovered.
func Open[T any](opt Options) (*WAL[T], int, error) {
	if opt.Prefix == "" || opt.Dir == "" {
		return nil, 0, errors.New("wal: dir and prefix are required")
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = 64 << 20
	}
	if opt.MaxAge <= 0 {
		opt.MaxAge = 10 * time.Minute
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w := &WAL[T]{opt: opt, walDir: filepath.Join(opt.Dir, "wal"), reqs: make(chan *appendReq[T], 4096), done: make(chan struct{})}
	if err := os.MkdirAll(w.walDir, 0o755); err != nil {
		return nil, 0, fmt.Errorf("wal: %w", err)
	}
	segs, err := w.segments()
	if err != nil {
		return nil, 0, err
	}
	recovered := 0
	for _, seg := range segs {
		n, err := w.convert(seg, nil)
		if err != nil {
			return nil, recovered, fmt.Errorf("wal: recover segment %s: %w", seg, err)
		}
		recovered += n
	}
	w.run = fmt.Sprintf("%019d", time.Now().UnixNano())
	if len(segs) > 0 && segs[len(segs)-1] >= w.run {
		w.run = segs[len(segs)-1] + "x" // a clock that went backwards still sorts after
	}
	go w.loop()
	return w, recovered, nil
}

// Append writes recs to the log and returns once they are on disk. Records
// of one call are committed together; concurrent calls share an fsync.
func (w *WAL[T]) Append(recs ...T) error {
	w.closeMu.Lock()
	if w.closed {
		w.closeMu.Unlock()
		return errors.New("wal: closed")
	}
	r := &appendReq[T]{recs: recs, done: make(chan error, 1)}
	w.reqs <- r
	w.closeMu.Unlock()
	return <-r.done
}

// Stats returns the records appended and the write errors so far, and the
// last error.
func (w *WAL[T]) Stats() (appended, errs int64, last error) {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return w.appended, w.errs, w.lastErr
}

// Close waits for pending appends, then converts the open segment to Parquet.
func (w *WAL[T]) Close() error {
	w.closeMu.Lock()
	if w.closed {
		w.closeMu.Unlock()
		return nil
	}
	w.closed = true
	close(w.reqs)
	w.closeMu.Unlock()
	<-w.done
	return w.rotate()
}

func (w *WAL[T]) loop() {
	defer close(w.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case r, ok := <-w.reqs:
			if !ok {
				return
			}
			batch := []*appendReq[T]{r}
			if w.opt.BatchDelay > 0 {
				time.Sleep(w.opt.BatchDelay)
			}
		gather:
			for len(batch) < 4096 {
				select {
				case r2, ok := <-w.reqs:
					if !ok {
						break gather
					}
					batch = append(batch, r2)
				default:
					break gather
				}
			}
			err := w.commit(batch)
			for _, b := range batch {
				b.done <- err
			}
			if err == nil && (w.segSize >= w.opt.MaxBytes) {
				w.noteErr(w.rotate())
			}
		case <-tick.C:
			if w.seg != nil && time.Since(w.segStart) >= w.opt.MaxAge {
				w.noteErr(w.rotate())
			}
			w.noteErr(w.retryLeftovers())
		}
	}
}

func (w *WAL[T]) noteErr(err error) {
	if err == nil {
		return
	}
	w.statsMu.Lock()
	w.errs++
	w.lastErr, w.lastAt = err, time.Now()
	w.statsMu.Unlock()
	w.opt.Log.Error("wal", "prefix", w.opt.Prefix, "err", err)
}

// commit writes a batch as framed records (length, CRC-32C, JSON) and fsyncs.
func (w *WAL[T]) commit(batch []*appendReq[T]) error {
	if w.seg == nil {
		if err := os.MkdirAll(w.walDir, 0o755); err != nil { // the folder may have been lost and restored
			w.noteErr(err)
			return fmt.Errorf("wal: %w", err)
		}
		w.segSeq++
		f, err := os.OpenFile(w.segPath(w.current()), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			w.noteErr(err)
			return fmt.Errorf("wal: open segment: %w", err)
		}
		w.seg, w.segBuf, w.segSize, w.segStart, w.segRecs = f, bufio.NewWriterSize(f, 1<<16), 0, time.Now(), nil
		w.segOpen.Store(true)
		if err := syncDir(w.walDir); err != nil {
			w.noteErr(err)
			return err
		}
	}
	// encode the whole batch first: nothing is written unless all of it can be
	var frame []byte
	var n int
	for _, r := range batch {
		for _, rec := range r.recs {
			b, err := json.Marshal(rec)
			if err != nil {
				return fmt.Errorf("wal: encode: %w", err)
			}
			var hdr [8]byte
			binary.LittleEndian.PutUint32(hdr[:4], uint32(len(b)))
			binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(b, crcTable))
			frame = append(frame, hdr[:]...)
			frame = append(frame, b...)
			n++
		}
	}
	_, err := w.segBuf.Write(frame)
	if err == nil {
		err = w.segBuf.Flush()
	}
	if err == nil {
		err = w.seg.Sync()
	}
	if err != nil {
		// nothing of this batch is acknowledged; the segment may now end in
		// a torn record, so it is closed (its good records are converted
		// later) and the next batch starts a fresh one
		w.noteErr(err)
		w.abandonSegment()
		return fmt.Errorf("wal: write: %w", err)
	}
	w.segSize += int64(len(frame))
	for _, r := range batch {
		w.segRecs = append(w.segRecs, r.recs...)
	}
	w.statsMu.Lock()
	w.appended += int64(n)
	w.statsMu.Unlock()
	return nil
}

// retryLeftovers converts closed segments whose conversion failed earlier
// (a full disk, say), so writing resumes when space returns.
func (w *WAL[T]) retryLeftovers() error {
	segs, err := w.segments()
	if err != nil {
		return err
	}
	for _, seg := range segs {
		if w.seg != nil && seg == w.current() {
			continue
		}
		if _, err := w.convert(seg, nil); err != nil {
			return err
		}
	}
	return nil
}

// LogHealth returns the segments waiting for conversion, 0 dropped (an
// append either is on disk or fails), the write errors and the last error.
func (w *WAL[T]) LogHealth() (backlog, dropped, errors int64, last error) {
	pending := int64(w.Pending()) // lists the folder: outside the lock
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return pending, 0, w.errs, w.lastErr
}

// Failing reports the last error if it happened within d.
func (w *WAL[T]) Failing(d time.Duration) error {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	if w.lastErr != nil && time.Since(w.lastAt) < d {
		return w.lastErr
	}
	return nil
}

// Pending is the number of closed segments waiting for conversion.
func (w *WAL[T]) Pending() int {
	segs, _ := w.segments()
	n := len(segs)
	if n > 0 && w.segOpen.Load() {
		n--
	}
	return n
}

// rotate closes the open segment and converts it to Parquet.
func (w *WAL[T]) rotate() error {
	if w.seg == nil {
		return nil
	}
	closeErr := w.seg.Close()
	recs := w.segRecs
	w.seg, w.segBuf, w.segRecs = nil, nil, nil
	w.segOpen.Store(false)
	if closeErr != nil {
		// the segment stays on disk; retryLeftovers converts it from there
		return fmt.Errorf("wal: close segment: %w", closeErr)
	}
	_, err := w.convert(w.current(), recs)
	return err
}

// abandonSegment closes the open segment without converting it now.
func (w *WAL[T]) abandonSegment() {
	if w.seg != nil {
		_ = w.seg.Close()
	}
	w.seg, w.segBuf, w.segRecs = nil, nil, nil
	w.segOpen.Store(false)
}

// current names the open segment: the run, then its sequence number.
func (w *WAL[T]) current() string { return fmt.Sprintf("%s-%06d", w.run, w.segSeq) }

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func (w *WAL[T]) segPath(seg string) string {
	return filepath.Join(w.walDir, w.opt.Prefix+"-"+seg+".wal")
}

func (w *WAL[T]) parquetName(seg string) string {
	return w.opt.Prefix + "-" + seg + ".parquet"
}

// segments lists the segments on disk, oldest first.
func (w *WAL[T]) segments() ([]string, error) {
	ents, err := os.ReadDir(w.walDir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, w.opt.Prefix+"-") || !strings.HasSuffix(name, ".wal") {
			continue
		}
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(name, w.opt.Prefix+"-"), ".wal"))
	}
	sort.Strings(out)
	return out, nil
}

// convert writes segment seg's records (read from disk when recs is nil)
// to a Parquet file named after the segment, then removes the segment. A
// segment whose Parquet file already exists is only removed.
func (w *WAL[T]) convert(id string, recs []T) (int, error) {
	seg := w.segPath(id)
	name := w.parquetName(id)
	if existing, _ := filepath.Glob(filepath.Join(w.opt.Dir, "dt=*", "hour=*", name)); len(existing) > 0 {
		return 0, removeSynced(seg)
	}
	st, err := os.Stat(seg)
	if err != nil {
		return 0, fmt.Errorf("wal: %w", err)
	}
	if recs == nil {
		if recs, err = readSegment[T](seg); err != nil {
			return 0, err
		}
	}
	if len(recs) == 0 {
		return 0, removeSynced(seg)
	}
	dir := filepath.Join(w.opt.Dir, Partition(st.ModTime()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("wal: %w", err)
	}
	if err := datasets.WriteFile(filepath.Join(dir, name), recs); err != nil {
		return 0, err
	}
	return len(recs), removeSynced(seg)
}

// readSegment reads a segment's records, stopping at a torn or corrupt tail
// (records that were never acknowledged).
func readSegment[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var out []T
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return out, nil // end, or a torn header
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		if n > 64<<20 {
			return out, nil
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return out, nil
		}
		if crc32.Checksum(b, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
			return out, nil
		}
		var rec T
		if err := json.Unmarshal(b, &rec); err != nil {
			return out, fmt.Errorf("wal: %s: record %d: %w", path, len(out)+1, err)
		}
		out = append(out, rec)
	}
}

func removeSynced(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("wal: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
