// Package logstore keeps Switchyard's logs durable: an append-only
// write-ahead log whose records are on disk before Append returns, and which
// is turned into Parquet files in Hive-style partitions (dt=YYYY-MM-DD/hour=HH)
// when a segment is full or old, and again at start-up for whatever a killed
// process left behind.
//
// Every file a WAL makes carries its writer id (see LockDir), and a WAL only
// ever recovers, converts or removes files with its own id, so several
// writers can share one folder without touching each other's files. A Parquet
// file is written under a temporary name and renamed when complete, and it is
// named after its segment, so a segment is never converted twice: after a
// crash between the rename and the segment's removal, the existing file is
// kept and the segment just removed.
package logstore

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
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
	Dir      string        // log folder: segments in Dir/wal, Parquet files in partitions under Dir
	Prefix   string        // file name prefix, e.g. datasets.OutcomeLogPrefix
	Writer   string        // writer id in every file name (see ValidWriterID); default "local"
	MaxBytes int64         // a segment larger than this is converted to Parquet
	MaxAge   time.Duration // a segment older than this is converted
	// SyncEvery is how durable an acknowledged Append is. 0: every commit is
	// fsynced before Append returns (it survives a power cut). Positive:
	// Append returns once its records are written to the operating system
	// (they survive a killed process), and the open segment is fsynced at
	// least this often (a power cut loses at most that much).
	SyncEvery time.Duration
	Log       *slog.Logger
}

// Record is implemented by record types with a compact encoding of their
// own for the write-ahead log; others are encoded as JSON.
type Record interface {
	AppendWAL(b []byte) []byte
	DecodeWAL(b []byte) error
}

// WAL is a durable append-only log of records of type T.
//
// Appends are group-committed: the first caller to find no write in progress
// writes every record queued so far (and fsyncs, with SyncEvery 0) while the
// others wait and queue theirs for the next write, so concurrent callers share
// system calls and no goroutine is woken per record.
type WAL[T any] struct {
	opt    Options
	walDir string

	mu      sync.Mutex
	cond    *sync.Cond
	cur     *batch // records queued for the next write
	spare   []byte
	writing bool // a goroutine owns the open segment (writing, syncing or rotating)
	closed  bool

	// owned by whoever set writing
	seg      *os.File
	segName  string
	segSize  int64
	segStart time.Time
	seq      int
	dirty    bool // written since the last fsync

	openSeg atomic.Pointer[string] // the open segment's name, for the converter
	wake    chan struct{}          // a segment was closed: convert it
	stop    chan struct{}
	done    chan struct{}

	statsMu  sync.Mutex
	appended int64
	errs     int64
	lastErr  error
	lastAt   time.Time
}

// batch is the records queued for one write; doneCh closes when it is
// written, offerCh when its callers are to write it themselves.
type batch struct {
	buf     []byte
	n       int
	done    bool
	err     error
	offered bool
	doneCh  chan struct{}
	offerCh chan struct{}
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("wal: closed")

// Open opens the log in opt.Dir, first converting every segment of its
// writer left by an earlier process (and any segment an earlier version
// left without a writer id) into Parquet. It returns how many records it
// recovered. The caller should hold the folder's lock (LockDir).
func Open[T any](opt Options) (*WAL[T], int, error) {
	if opt.Prefix == "" || opt.Dir == "" {
		return nil, 0, errors.New("wal: dir and prefix are required")
	}
	if opt.Writer == "" {
		opt.Writer = "local"
	}
	if err := ValidWriterID(opt.Writer); err != nil {
		return nil, 0, fmt.Errorf("wal: %w", err)
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
	w := &WAL[T]{opt: opt, walDir: filepath.Join(opt.Dir, "wal"), cur: newBatch(nil),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	if err := os.MkdirAll(w.walDir, 0o755); err != nil {
		return nil, 0, fmt.Errorf("wal: %w", err)
	}
	w.removeStaleTemporaries()
	segs, err := w.segments(true)
	if err != nil {
		return nil, 0, err
	}
	recovered := 0
	for _, seg := range segs {
		n, err := w.convert(seg)
		if err != nil {
			return nil, recovered, fmt.Errorf("wal: recover segment %s: %w", seg, err)
		}
		recovered += n
	}
	go w.loop()
	return w, recovered, nil
}

var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Append writes recs to the log and returns once they are on disk as
// Options.SyncEvery says. Records of one call are committed together.
func (w *WAL[T]) Append(recs ...T) error {
	sp := scratch.Get().(*[]byte)
	frames := (*sp)[:0]
	for i := range recs {
		var err error
		if frames, err = appendFrame(frames, &recs[i]); err != nil {
			scratch.Put(sp)
			return err
		}
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		scratch.Put(sp)
		return ErrClosed
	}
	b := w.cur
	b.buf = append(b.buf, frames...)
	b.n += len(recs)
	if cap(frames) <= 1<<20 {
		*sp = frames
		scratch.Put(sp)
	}
	offer := b.offerCh
	for {
		if b.done {
			err := b.err
			w.mu.Unlock()
			return err
		}
		if !w.writing {
			w.lead() // b is the queued batch: it returns with b written and the lock held
			continue
		}
		// Wait for this batch to be written, or to be handed the lead: only
		// this batch's callers wake, not every waiting one.
		w.mu.Unlock()
		select {
		case <-b.doneCh:
		case <-offer:
			offer = nil // offered once; from now on wait for the write
		}
		w.mu.Lock()
	}
}

// lead writes the queued batch while later callers queue theirs for the
// next write; it is called, and returns, with w.mu held.
func (w *WAL[T]) lead() {
	w.writing = true
	take := w.cur
	w.cur = newBatch(w.spare)
	w.spare = nil
	w.mu.Unlock()
	err := w.write(take.buf, take.n)
	w.mu.Lock()
	take.done, take.err = true, err
	close(take.doneCh)
	if cap(take.buf) <= 1<<20 {
		w.spare = take.buf[:0]
	}
	take.buf = nil
	w.handOff()
}

// handOff gives up the open segment (w.mu held) and, when records are
// queued, wakes their callers so that one of them writes them.
func (w *WAL[T]) handOff() {
	w.writing = false
	w.cond.Broadcast() // own() and Close wait on it; appenders do not
	if c := w.cur; c.n > 0 && !c.offered {
		c.offered = true
		close(c.offerCh)
	}
}

func newBatch(buf []byte) *batch {
	return &batch{buf: buf, doneCh: make(chan struct{}), offerCh: make(chan struct{})}
}

// appendFrame appends one framed record: length, CRC-32C, encoding.
func appendFrame[T any](b []byte, rec *T) ([]byte, error) {
	at := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	if r, ok := any(rec).(Record); ok {
		b = r.AppendWAL(b)
	} else {
		js, err := json.Marshal(rec)
		if err != nil {
			return b[:at], fmt.Errorf("wal: encode: %w", err)
		}
		b = append(b, js...)
	}
	body := b[at+8:]
	binary.LittleEndian.PutUint32(b[at:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[at+4:], crc32.Checksum(body, crcTable))
	return b, nil
}

func decodeRecord[T any](b []byte, rec *T) error {
	if r, ok := any(rec).(Record); ok {
		return r.DecodeWAL(b)
	}
	return json.Unmarshal(b, rec)
}

// own waits until no goroutine owns the open segment and takes it; it
// reports false, owning nothing, once the log is closing.
func (w *WAL[T]) own() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.writing && !w.closed {
		w.cond.Wait()
	}
	if w.closed {
		return false
	}
	w.writing = true
	return true
}

func (w *WAL[T]) release() {
	w.mu.Lock()
	w.handOff()
	w.mu.Unlock()
}

// write writes a batch of frames to the open segment (opening one if
// needed), and fsyncs it when every commit must be. The caller owns the
// segment.
func (w *WAL[T]) write(frames []byte, n int) error {
	if n == 0 {
		return nil
	}
	if w.seg == nil {
		if err := w.openSegment(); err != nil {
			w.noteErr(err)
			return err
		}
	}
	_, err := w.seg.Write(frames)
	if err == nil && w.opt.SyncEvery == 0 {
		err = w.seg.Sync()
	}
	if err != nil {
		// nothing of this batch is acknowledged; the segment may now end in
		// a torn record, so it is closed (its good records are converted
		// later) and the next batch starts a fresh one
		err = fmt.Errorf("wal: write %s: %w", w.segName, err)
		w.noteErr(err)
		w.abandonSegment()
		return err
	}
	w.dirty = w.opt.SyncEvery > 0
	w.segSize += int64(len(frames))
	w.statsMu.Lock()
	w.appended += int64(n)
	w.statsMu.Unlock()
	if w.segSize >= w.opt.MaxBytes {
		w.noteErr(w.rotate())
	}
	return nil
}

func (w *WAL[T]) openSegment() error {
	if err := os.MkdirAll(w.walDir, 0o755); err != nil { // the folder may have been lost and restored
		return fmt.Errorf("wal: %w", err)
	}
	for tries := 0; ; tries++ {
		w.seq++
		now := time.Now()
		name := datasets.LogFileName(w.opt.Prefix, now, w.opt.Writer, w.seq)
		w.openSeg.Store(&name) // before the file exists: the converter must never take it
		f, err := os.OpenFile(w.segPath(name), os.O_CREATE|os.O_EXCL|os.O_RDWR|os.O_APPEND, 0o644)
		if errors.Is(err, fs.ErrExist) && tries < 100 {
			continue // the same microsecond as an earlier process's segment
		}
		if err != nil {
			empty := ""
			w.openSeg.Store(&empty)
			return fmt.Errorf("wal: open segment: %w", err)
		}
		w.seg, w.segName, w.segSize, w.segStart, w.dirty = f, name, 0, now, false
		return syncDir(w.walDir)
	}
}

// loop fsyncs the open segment (with SyncEvery), closes it when it is old,
// checks that it is still where it was made, and converts closed segments.
func (w *WAL[T]) loop() {
	defer close(w.done)
	period := time.Second
	if s := w.opt.SyncEvery; s > 0 && s < period {
		period = s
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.wake:
		case <-tick.C:
			if w.own() {
				w.maintain()
				w.release()
			}
		}
		w.noteErr(w.convertClosed())
	}
}

// maintain runs on the owner's side every tick.
func (w *WAL[T]) maintain() {
	if w.seg == nil {
		return
	}
	if w.dirty {
		if err := w.seg.Sync(); err != nil {
			w.noteErr(fmt.Errorf("wal: sync %s: %w", w.segName, err))
		} else {
			w.dirty = false
		}
	}
	if !w.segAtPath() {
		w.noteErr(w.salvage())
		return
	}
	if time.Since(w.segStart) >= w.opt.MaxAge {
		w.noteErr(w.rotate())
	}
}

// segAtPath reports whether the open segment's path still names the open
// file (something else may have removed or moved the folder).
func (w *WAL[T]) segAtPath() bool {
	a, err := w.seg.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(w.segPath(w.segName))
	return err == nil && os.SameFile(a, b)
}

// salvage copies the open segment, which is no longer reachable by its
// path, into a new segment and closes it: what was acknowledged into it is
// not lost with the folder. Until that succeeds the old segment stays open
// and in use.
func (w *WAL[T]) salvage() error {
	old, oldName, size := w.seg, w.segName, w.segSize
	data := make([]byte, size)
	if _, err := old.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("wal: segment %s was removed or moved and cannot be read back: %w", oldName, err)
	}
	w.seg = nil
	err := w.openSegment()
	if err == nil {
		if _, err = w.seg.Write(data); err == nil {
			err = w.seg.Sync()
		}
		if err != nil {
			w.abandonSegment()
		}
	}
	if err != nil {
		w.seg, w.segName, w.segSize = old, oldName, size
		w.openSeg.Store(&oldName)
		return fmt.Errorf("wal: segment %s was removed or moved; keeping it open until its records can be written again: %w", oldName, err)
	}
	old.Close()
	w.segSize = size
	w.noteErr(fmt.Errorf("wal: segment %s was removed or moved by something else; its records were copied to %s", oldName, w.segName))
	return w.rotate()
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

// Stats returns the records appended and the write errors so far, and the
// last error.
func (w *WAL[T]) Stats() (appended, errs int64, last error) {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return w.appended, w.errs, w.lastErr
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
	segs, _ := w.segments(false)
	n := len(segs)
	if p := w.openSeg.Load(); p != nil && *p != "" && n > 0 {
		n--
	}
	return n
}

// Close waits for the appends in progress, refuses new ones, closes the
// open segment and converts every closed segment to Parquet. A segment that
// cannot be converted stays on disk for the next Open.
func (w *WAL[T]) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.cond.Broadcast()
	for w.writing || w.cur.n > 0 {
		w.cond.Wait()
	}
	w.writing = true // for good
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	err := w.rotate()
	return errors.Join(err, w.convertClosed())
}

// rotate fsyncs and closes the open segment and wakes the converter. The
// caller owns the segment.
func (w *WAL[T]) rotate() error {
	if w.seg == nil {
		return nil
	}
	err := w.seg.Sync()
	if cerr := w.seg.Close(); err == nil {
		err = cerr
	}
	name := w.segName
	w.seg, w.segName = nil, ""
	empty := ""
	w.openSeg.Store(&empty)
	select {
	case w.wake <- struct{}{}:
	default:
	}
	if err != nil {
		// the segment stays on disk; the converter takes it from there
		return fmt.Errorf("wal: close segment %s: %w", name, err)
	}
	return nil
}

// abandonSegment closes the open segment without converting it now.
func (w *WAL[T]) abandonSegment() {
	if w.seg != nil {
		_ = w.seg.Close()
	}
	w.seg, w.segName = nil, ""
	empty := ""
	w.openSeg.Store(&empty)
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func (w *WAL[T]) segPath(name string) string { return filepath.Join(w.walDir, name+".wal") }

// segments lists this writer's segments on disk, oldest first; with legacy,
// also those an earlier version named without a writer id.
func (w *WAL[T]) segments(legacy bool) ([]string, error) {
	ents, err := os.ReadDir(w.walDir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	var out []string
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".wal")
		if !ok || !strings.HasPrefix(name, w.opt.Prefix+"-") {
			continue
		}
		if w.ownName(name) || (legacy && isLegacyName(name, w.opt.Prefix)) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (w *WAL[T]) ownName(name string) bool {
	prefix, _, writer, _, ok := datasets.ParseLogFileName(name)
	return ok && prefix == w.opt.Prefix && writer == w.opt.Writer
}

// isLegacyName reports whether name is a segment of an earlier version:
// <prefix>-<run>-<seq>, digits only.
func isLegacyName(name, prefix string) bool {
	rest := strings.TrimPrefix(name, prefix+"-")
	run, seq, ok := strings.Cut(rest, "-")
	digits := func(s string) bool { return s != "" && strings.Trim(s, "0123456789x") == "" }
	return ok && digits(run) && digits(seq)
}

// convertClosed converts every closed segment of this writer.
func (w *WAL[T]) convertClosed() error {
	segs, err := w.segments(false)
	if err != nil {
		return err
	}
	open := w.openSeg.Load()
	for _, seg := range segs {
		if open != nil && seg == *open {
			continue
		}
		if _, err := w.convert(seg); err != nil {
			return err
		}
	}
	return nil
}

// convertRows is how many records conversion decodes between yields, and
// rowGroupRows how many make a row group: both bound what a conversion holds
// in memory and how long a request on a busy processor waits behind it.
const (
	convertRows  = 256
	rowGroupRows = 2048
)

// convert streams segment name's records into a Parquet file named after
// it, then removes the segment. A segment whose Parquet file already exists
// is only removed.
func (w *WAL[T]) convert(name string) (int, error) {
	seg := w.segPath(name)
	var dir string
	if _, t, _, _, ok := datasets.ParseLogFileName(name); ok {
		dir = filepath.Join(w.opt.Dir, Partition(t))
	} else { // an earlier version's segment: partitioned by its time of change
		st, err := os.Stat(seg)
		if err != nil {
			return 0, fmt.Errorf("wal: %w", err)
		}
		if existing, _ := filepath.Glob(filepath.Join(w.opt.Dir, "dt=*", "hour=*", name+".parquet")); len(existing) > 0 {
			return 0, removeSynced(seg)
		}
		dir = filepath.Join(w.opt.Dir, Partition(st.ModTime()))
	}
	path := filepath.Join(dir, name+".parquet")
	if _, err := os.Stat(path); err == nil {
		return 0, removeSynced(seg)
	}
	f, err := os.Open(seg)
	if err != nil {
		return 0, fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	var (
		pw      *datasets.Writer[T]
		n       int
		chunk   = make([]T, 0, convertRows)
		flushed int
	)
	defer func() {
		if pw != nil {
			pw.Abort()
		}
	}()
	put := func() error {
		if len(chunk) == 0 {
			return nil
		}
		if pw == nil {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("wal: %w", err)
			}
			if pw, err = datasets.NewWriter[T](path); err != nil {
				return err
			}
		}
		if err := pw.Write(chunk...); err != nil {
			return err
		}
		n += len(chunk)
		clear(chunk)
		chunk = chunk[:0]
		if n-flushed >= rowGroupRows {
			flushed = n
			if err := pw.Flush(); err != nil {
				return err
			}
		}
		runtime.Gosched()
		return nil
	}
	err = eachFrame(f, func(b []byte) error {
		var rec T
		if err := decodeRecord(b, &rec); err != nil {
			return fmt.Errorf("wal: %s: record %d: %w", seg, n+len(chunk)+1, err)
		}
		chunk = append(chunk, rec)
		if len(chunk) == convertRows {
			return put()
		}
		return nil
	})
	if err == nil {
		err = put()
	}
	if err != nil {
		return 0, err
	}
	if pw != nil {
		err = pw.Close()
		pw = nil
		if err != nil {
			return 0, err
		}
	}
	return n, removeSynced(seg)
}

// eachFrame calls fn with each record's bytes, stopping quietly at a torn
// or corrupt tail (records that were never acknowledged).
func eachFrame(r io.Reader, fn func([]byte) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	var b []byte
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil // end, or a torn header
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		if n > 64<<20 {
			return nil
		}
		if cap(b) < int(n) {
			b = make([]byte, n)
		}
		b = b[:n]
		if _, err := io.ReadFull(br, b); err != nil {
			return nil
		}
		if crc32.Checksum(b, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
			return nil
		}
		if err := fn(b); err != nil {
			return err
		}
	}
}

// removeStaleTemporaries deletes the temporary Parquet files of this
// writer's conversions that a killed process left: they were never
// complete, and their segments are still there to convert again.
func (w *WAL[T]) removeStaleTemporaries() {
	_ = filepath.WalkDir(w.opt.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		name := d.Name()
		if !strings.HasPrefix(name, "."+w.opt.Prefix+"-") || !strings.HasSuffix(name, ".tmp") {
			return nil
		}
		if w.ownName(strings.TrimPrefix(name, ".")) {
			if os.Remove(path) == nil {
				w.opt.Log.Warn("removed an incomplete Parquet file left by an earlier process", "file", path)
			}
		}
		return nil
	})
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
