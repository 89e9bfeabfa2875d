// Package logstore keeps Switchyard's logs durable: an append-only
// write-ahead log whose records are safe before Append returns, and which is
// turned into Parquet files in Hive-style partitions (dt=YYYY-MM-DD/hour=HH)
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
	// SyncEvery is how durable an acknowledged Append is. 0: its records
	// are written to a segment file and fsynced before it returns (they
	// survive a power cut); concurrent appends share the fsync. Positive:
	// Append returns once its records are in the ring (see RingBytes), where
	// they survive a killed process; a background flusher writes the ring to
	// the segment files every few milliseconds and fsyncs them at least this
	// often, so a power cut loses at most about that much.
	SyncEvery time.Duration
	// RingBytes is the size of the ring that holds records between Append
	// and the flusher (with SyncEvery > 0; default 16 MiB); a record
	// larger than half of it is refused. RingDir is where the ring's file
	// lives (default /dev/shm when writable, else Dir/wal).
	RingBytes int
	RingDir   string
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
// Frames are [length][CRC-32C][position][record]: the position (a byte
// offset in the log's stream) identifies a record, so that one recovered
// from the ring after a crash is not written twice.
type WAL[T any] struct {
	opt Options
	// recovered is given the records converted while Open recovers
	// (OpenRecovering); recovering is true until then
	recovered  func([]T)
	recovering bool
	walDir     string
	ring       *ring // nil with SyncEvery 0

	mu      sync.Mutex
	cond    *sync.Cond // ring space freed
	closed  bool
	pos     uint64 // position of the next record
	flushed uint64 // ring mode: records before it are in a segment file
	cur     *batch // direct mode: frames waiting for the next commit
	live    map[string]bool

	// segment state, owned by whoever holds commitMu: the committing
	// append (direct mode) or the flusher
	commitMu   sync.Mutex
	seg        *os.File
	segName    string
	segSize    int64
	segStart   time.Time
	seq        int
	dirty      bool
	lastSync   time.Time
	closedSome bool // a segment was closed: convert it

	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{} // loop ended
	convWake chan struct{} // a segment was closed: convert it
	convDone chan struct{} // converter ended

	aborted  atomic.Bool // tests: stop as a killed process would, writing nothing more
	appended atomic.Int64
	statsMu  sync.Mutex
	errs     int64
	lastErr  error
	lastAt   time.Time
}

// batch is the frames of the appends waiting for one commit (direct mode).
type batch struct {
	buf  []byte
	n    int
	done bool // under commitMu
	err  error
}

// maxSegmentBytes bounds Options.MaxBytes.
const maxSegmentBytes = 1 << 30

// frameHeader is a frame's length, CRC-32C and position.
const frameHeader = 16

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("wal: closed")

// Open opens the log in opt.Dir, first converting every segment of its
// writer left by an earlier process (and any segment an earlier version
// left without a writer id) into Parquet, and then the records left in the
// ring that never reached a segment. It returns how many records it
// recovered. The caller should hold the folder's lock (LockDir).
func Open[T any](opt Options) (*WAL[T], int, error) { return OpenRecovering[T](opt, nil) }

// OpenRecovering is Open that gives onRecover the records it recovers
// (written by a process killed before it converted them), a chunk at a
// time; the slice is reused after the call.
func OpenRecovering[T any](opt Options, onRecover func(recs []T)) (*WAL[T], int, error) {
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
	if opt.MaxBytes > maxSegmentBytes {
		return nil, 0, fmt.Errorf("wal: segments of %d bytes are more than the %d allowed", opt.MaxBytes, maxSegmentBytes)
	}
	if opt.MaxAge <= 0 {
		opt.MaxAge = 10 * time.Minute
	}
	if opt.RingBytes <= 0 {
		opt.RingBytes = 16 << 20
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w := &WAL[T]{opt: opt, recovered: onRecover, recovering: true, walDir: filepath.Join(opt.Dir, "wal"), live: map[string]bool{}, cur: &batch{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), lastSync: time.Now(),
		convWake: make(chan struct{}, 1), convDone: make(chan struct{})}
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
	var next uint64 // past the highest position of a recovered record
	if opt.SyncEvery > 0 {
		// The ring is moved past what the segments hold before they are
		// converted and removed: a crash in between must not replay it.
		for _, seg := range segs {
			end, err := w.lastPosition(seg)
			if err != nil {
				return nil, 0, err
			}
			next = max(next, end)
		}
		if err := w.mapRing(next); err != nil {
			return nil, 0, err
		}
	}
	for _, seg := range segs {
		n, end, err := w.convert(seg)
		if err != nil {
			return nil, recovered, fmt.Errorf("wal: recover segment %s: %w", seg, err)
		}
		recovered += n
		next = max(next, end)
	}
	if w.ring != nil {
		n, err := w.replayRing(next)
		if err != nil {
			return nil, recovered, err
		}
		recovered += n
	} else {
		w.pos = next
	}
	w.recovering = false
	go w.loop()
	go w.converter()
	return w, recovered, nil
}

// lastPosition is the position just past the highest one in segment name.
func (w *WAL[T]) lastPosition(name string) (uint64, error) {
	if _, _, _, _, ok := datasets.ParseLogFileName(name); !ok {
		return 0, nil // an earlier version's segment: no positions
	}
	f, err := os.Open(w.segPath(name))
	if err != nil {
		return 0, fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	var next uint64
	err = eachFrame(f, false, func(pos uint64, _ []byte) error { next = max(next, pos+1); return nil })
	return next, err
}

// mapRing maps the ring and moves its tail past the records that are
// already in a segment (before next).
func (w *WAL[T]) mapRing(next uint64) error {
	dir := w.opt.RingDir
	if dir == "" {
		dir = defaultRingDir(w.walDir)
	}
	abs, err := filepath.Abs(w.opt.Dir)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	removeOrphanRings(dir, func(p string) { w.opt.Log.Info("removed the ring of a log folder that no longer exists", "ring", p) })
	r, fresh, err := openRing(ringPath(dir, abs, w.opt.Prefix, w.opt.Writer), abs, w.opt.RingBytes, w.opt.Log)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	w.ring = r
	tail, head := r.tail(), r.head()
	switch {
	case fresh:
		r.setHead(0)
		r.setTail(0)
	case head < tail || head-tail > r.size():
		w.opt.Log.Warn("wal: ring header is inconsistent; starting a new ring", "ring", r.path)
		r.setHead(0)
		r.setTail(0)
	default:
		a, b := r.span(tail, head)
		start, _ := frameRange(append(append([]byte(nil), a...), b...), next)
		r.setTail(tail + uint64(start))
	}
	return nil
}

// replayRing writes the records a killed process left in the ring, that
// are not in a segment (at next or after), to a segment of their own and
// converts it.
func (w *WAL[T]) replayRing(next uint64) (int, error) {
	r := w.ring
	tail, head := r.tail(), r.head()
	n := 0
	if head > tail {
		a, b := r.span(tail, head)
		frames := append(append([]byte(nil), a...), b...)
		start, end := frameRange(frames, next)
		if end > start {
			if err := w.writeSegment(frames[start:end]); err != nil {
				return 0, err
			}
			name := w.segName
			if err := w.closeSegment(); err != nil {
				return 0, err
			}
			r.setTail(head) // in a segment now: a crash from here on must not replay them
			var err error
			if n, _, err = w.convert(name); err != nil {
				return 0, fmt.Errorf("wal: recover ring: %w", err)
			}
		}
	}
	w.pos = max(next, head)
	w.flushed = w.pos
	r.setHead(w.pos)
	r.setTail(w.pos)
	return n, nil
}

// frameRange returns where in frames the whole frames whose position is
// next or later start and end (the earlier ones are already in a segment),
// up to the first torn or corrupt frame or the first whose position is not
// where it lies.
func frameRange(frames []byte, next uint64) (start, end int) {
	start = -1
	var first uint64
	for end+frameHeader <= len(frames) {
		n := int(binary.LittleEndian.Uint32(frames[end:]))
		if n < 8 || end+8+n > len(frames) || crc32.Checksum(frames[end+8:end+8+n], crcTable) != binary.LittleEndian.Uint32(frames[end+4:]) {
			break
		}
		pos := binary.LittleEndian.Uint64(frames[end+8:])
		if end == 0 {
			first = pos
		} else if pos != first+uint64(end) { // a stale frame of an earlier lap
			break
		}
		if start < 0 && pos >= next {
			start = end
		}
		end += 8 + n
	}
	if start < 0 {
		return end, end
	}
	return start, end
}

var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Append writes recs to the log and returns once they are safe as
// Options.SyncEvery says. Records of one call are committed together.
func (w *WAL[T]) Append(recs ...T) error {
	sp := scratch.Get().(*[]byte)
	frames := (*sp)[:0]
	defer func() {
		if cap(frames) <= 1<<20 {
			*sp = frames[:0]
			scratch.Put(sp)
		}
	}()
	for i := range recs {
		var err error
		if frames, err = appendFrame(frames, &recs[i]); err != nil {
			return err
		}
	}
	if w.ring == nil {
		return w.commit(frames, len(recs))
	}
	need := uint64(len(frames))
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if need > w.ring.size()/2 {
		return fmt.Errorf("wal: a record of %d bytes is larger than half of the %d-byte ring", need, w.ring.size())
	}
	for w.pos+need-w.flushed > w.ring.size() {
		if err := w.Failing(time.Second); err != nil {
			return fmt.Errorf("wal: the ring is full and cannot be written out: %w", err)
		}
		w.poke()
		w.cond.Wait()
		if w.closed {
			return ErrClosed
		}
	}
	stamp(frames, w.pos)
	w.ring.put(w.pos, frames)
	w.pos += need
	w.ring.setHead(w.pos)
	w.appended.Add(int64(len(recs)))
	if w.pos-w.flushed > w.ring.size()/4 {
		w.poke()
	}
	return nil
}

// stamp writes each frame's position (from pos on) and its checksum.
func stamp(frames []byte, pos uint64) {
	for at := 0; at < len(frames); {
		n := int(binary.LittleEndian.Uint32(frames[at:]))
		binary.LittleEndian.PutUint64(frames[at+8:], pos+uint64(at))
		binary.LittleEndian.PutUint32(frames[at+4:], crc32.Checksum(frames[at+8:at+8+n], crcTable))
		at += 8 + n
	}
}

// commit writes frames to the segment file and fsyncs (direct mode). The
// appends waiting meanwhile queue theirs; the first of them to get the
// commit lock writes them all with one fsync.
func (w *WAL[T]) commit(frames []byte, n int) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	b := w.cur
	b.buf = append(b.buf, frames...)
	b.n += n
	w.mu.Unlock()
	w.commitMu.Lock()
	defer w.commitMu.Unlock()
	if !b.done {
		w.commitQueued()
	}
	return b.err
}

// commitQueued writes and fsyncs every queued frame. The caller holds
// commitMu.
func (w *WAL[T]) commitQueued() {
	w.mu.Lock()
	take := w.cur
	w.cur = &batch{}
	stamp(take.buf, w.pos)
	w.pos += uint64(len(take.buf))
	w.mu.Unlock()
	if take.n == 0 {
		return
	}
	err := w.writeSegment(take.buf)
	if err == nil {
		if err = w.seg.Sync(); err != nil {
			err = fmt.Errorf("wal: sync %s: %w", w.segName, err)
			w.noteErr(err)
			w.abandonSegment()
		}
	}
	take.done, take.err = true, err
	if err == nil {
		w.appended.Add(int64(take.n))
		w.dirty = false
	}
}

// writeSegment appends frames to the open segment, opening one (and
// rotating a full one) as needed. A failed write is cut off again, so the
// segment never ends in a torn frame that later ones would follow. The
// caller holds commitMu.
func (w *WAL[T]) writeSegment(frames []byte) error {
	if w.seg != nil && w.segSize >= w.opt.MaxBytes {
		w.noteErr(w.closeSegment())
	}
	if w.seg == nil {
		if err := w.newSegment(); err != nil {
			w.noteErr(err)
			return err
		}
	}
	if _, err := w.seg.Write(frames); err != nil {
		err = fmt.Errorf("wal: write %s: %w", w.segName, err)
		w.noteErr(err)
		if terr := w.seg.Truncate(w.segSize); terr != nil {
			w.abandonSegment()
		} else if _, serr := w.seg.Seek(w.segSize, io.SeekStart); serr != nil {
			w.abandonSegment()
		}
		return err
	}
	w.segSize += int64(len(frames))
	w.dirty = true
	return nil
}

func (w *WAL[T]) newSegment() error {
	if err := os.MkdirAll(w.walDir, 0o755); err != nil { // the folder may have been lost and restored
		return fmt.Errorf("wal: %w", err)
	}
	for tries := 0; ; tries++ {
		w.seq++
		now := time.Now()
		name := datasets.LogFileName(w.opt.Prefix, now, w.opt.Writer, w.seq)
		w.mu.Lock()
		w.live[name] = true // before the file exists: the converter must never take it
		w.mu.Unlock()
		f, err := os.OpenFile(w.segPath(name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			w.mu.Lock()
			delete(w.live, name)
			w.mu.Unlock()
			if errors.Is(err, fs.ErrExist) && tries < 100 {
				continue // the same microsecond as an earlier process's segment
			}
			return fmt.Errorf("wal: open segment: %w", err)
		}
		w.seg, w.segName, w.segSize, w.segStart = f, name, 0, now
		return syncDir(w.walDir)
	}
}

// closeSegment fsyncs and closes the open segment and wakes the converter.
// The caller holds commitMu.
func (w *WAL[T]) closeSegment() error {
	if w.seg == nil {
		return nil
	}
	err := w.seg.Sync()
	if cerr := w.seg.Close(); err == nil {
		err = cerr
	}
	name := w.segName
	w.seg, w.segName, w.dirty, w.closedSome = nil, "", false, true
	w.mu.Lock()
	delete(w.live, name)
	w.mu.Unlock()
	w.poke()
	if err != nil {
		// the segment stays on disk; the converter takes it from there
		return fmt.Errorf("wal: close segment %s: %w", name, err)
	}
	return nil
}

// abandonSegment closes the open segment without trusting it further; what
// it holds is converted later from disk.
func (w *WAL[T]) abandonSegment() {
	if w.seg == nil {
		return
	}
	_ = w.seg.Close()
	w.mu.Lock()
	delete(w.live, w.segName)
	w.mu.Unlock()
	w.seg, w.segName, w.dirty = nil, "", false
}

func (w *WAL[T]) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// flushEvery is how often the flusher writes the ring out.
const flushEvery = 5 * time.Millisecond

// loop is the WAL's background work: writing the ring out (every
// flushEvery, or when poked), fsyncing every SyncEvery, closing old
// segments and checking that the open one is still where it was made.
func (w *WAL[T]) loop() {
	defer close(w.done)
	period := time.Second
	if w.ring != nil {
		period = flushEvery
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	var maintained time.Time
	for {
		stopping := false
		select {
		case <-w.stop:
			if w.aborted.Load() {
				return
			}
			stopping = true
		case <-w.wake:
		case <-tick.C:
		}
		w.commitMu.Lock()
		if w.ring != nil {
			w.flushRing()
			if w.dirty && (stopping || time.Since(w.lastSync) >= w.opt.SyncEvery) {
				w.syncOpen()
			}
		}
		if stopping || time.Since(maintained) >= time.Second {
			maintained = time.Now()
			w.maintain()
		}
		closed := w.closedSome
		w.closedSome = false
		w.commitMu.Unlock()
		if stopping {
			return
		}
		if closed {
			select {
			case w.convWake <- struct{}{}:
			default:
			}
		}
	}
}

// converter turns closed segments into Parquet files, on its own goroutine:
// converting a segment takes seconds, and the ring must go on being written
// out (and fsynced) meanwhile.
func (w *WAL[T]) converter() {
	defer close(w.convDone)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.convWake:
		case <-tick.C:
		}
		w.noteErr(w.convertClosed())
	}
}

// flushRing writes the ring's unwritten records to the open segment and
// frees their space. The caller holds commitMu.
func (w *WAL[T]) flushRing() {
	w.mu.Lock()
	from, to := w.flushed, w.pos
	w.mu.Unlock()
	if to == from {
		return
	}
	a, b := w.ring.span(from, to) // stable: appends write only past to
	buf := a
	if len(b) > 0 {
		buf = append(append(make([]byte, 0, len(a)+len(b)), a...), b...)
	}
	if err := w.writeSegment(buf); err != nil {
		w.mu.Lock()
		w.cond.Broadcast() // appends waiting for room see the failure and give up
		w.mu.Unlock()
		return // kept in the ring; tried again on the next tick
	}
	w.mu.Lock()
	w.flushed = to
	w.ring.setTail(to)
	w.cond.Broadcast()
	w.mu.Unlock()
}

// syncOpen fsyncs the open segment. The caller holds commitMu.
func (w *WAL[T]) syncOpen() {
	if w.seg == nil {
		return
	}
	if err := w.seg.Sync(); err != nil {
		w.noteErr(fmt.Errorf("wal: sync %s: %w", w.segName, err))
		return
	}
	w.dirty, w.lastSync = false, time.Now()
}

// maintain closes an old segment and salvages one that is no longer where
// it was made. The caller holds commitMu.
func (w *WAL[T]) maintain() {
	if w.seg == nil {
		return
	}
	if !w.segAtPath() {
		w.noteErr(w.salvage())
		return
	}
	if time.Since(w.segStart) >= w.opt.MaxAge {
		w.noteErr(w.closeSegment())
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
// path, into a new segment and closes that: what was written into it is
// not lost with the folder. Until that succeeds the old segment stays open
// and in use. The caller holds commitMu.
func (w *WAL[T]) salvage() error {
	old, oldName, size := w.seg, w.segName, w.segSize
	data := make([]byte, size)
	if _, err := old.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		// opened write-only: read it back through /proc, which still reaches it
		f, perr := os.Open(fmt.Sprintf("/proc/self/fd/%d", old.Fd()))
		if perr != nil {
			return fmt.Errorf("wal: segment %s was removed or moved and cannot be read back: %w", oldName, err)
		}
		_, err = f.ReadAt(data, 0)
		f.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("wal: segment %s was removed or moved and cannot be read back: %w", oldName, err)
		}
	}
	w.seg = nil
	err := w.newSegment()
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
		w.mu.Lock()
		w.live[oldName] = true
		w.mu.Unlock()
		return fmt.Errorf("wal: segment %s was removed or moved; keeping it open until its records can be written again: %w", oldName, err)
	}
	old.Close()
	w.segSize = size
	w.mu.Lock()
	delete(w.live, oldName)
	w.mu.Unlock()
	w.noteErr(fmt.Errorf("wal: segment %s was removed or moved by something else; its records were copied to %s", oldName, w.segName))
	return w.closeSegment()
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
	return w.appended.Load(), w.errs, w.lastErr
}

// Health is what a log reports for metrics and readiness, the same for
// every log: the records (or segments) waiting to be written, the records
// dropped, the write errors so far and the last one.
type Health struct {
	Backlog, Dropped, Errors int64
	Last                     error
}

// Health reports the segments waiting for conversion, 0 dropped (an append
// either is safe or fails), the write errors and the last error.
func (w *WAL[T]) Health() Health {
	pending := int64(w.Pending()) // lists the folder: outside the lock
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return Health{Backlog: pending, Errors: w.errs, Last: w.lastErr}
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
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range segs {
		if !w.live[s] {
			n++
		}
	}
	return n
}

// Close refuses new appends, writes out the ring, closes the open segment
// and converts every closed segment to Parquet. A segment that cannot be
// converted stays on disk for the next Open, and so do records that could
// not leave the ring.
func (w *WAL[T]) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.cond.Broadcast()
	w.mu.Unlock()
	close(w.stop)
	<-w.done // its last round wrote the ring out
	<-w.convDone
	w.commitMu.Lock()
	if w.ring == nil {
		w.commitQueued() // appends that queued before the close
	}
	err := w.closeSegment()
	w.commitMu.Unlock()
	if w.ring != nil {
		w.mu.Lock()
		empty := w.flushed == w.pos
		w.mu.Unlock()
		if !empty {
			err = errors.Join(err, fmt.Errorf("wal: %d bytes of records could not be written out; they stay in %s for the next start", w.pos-w.flushed, w.ring.path))
		}
		err = errors.Join(err, w.ring.close(empty))
	}
	return errors.Join(err, w.convertClosed())
}

// appendFrame appends one frame for rec, its position and checksum left
// for stamp.
func appendFrame[T any](b []byte, rec *T) ([]byte, error) {
	at := len(b)
	b = append(b, make([]byte, frameHeader)...)
	if r, ok := any(rec).(Record); ok {
		b = r.AppendWAL(b)
	} else {
		js, err := json.Marshal(rec)
		if err != nil {
			return b[:at], fmt.Errorf("wal: encode: %w", err)
		}
		b = append(b, js...)
	}
	binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-8))
	return b, nil
}

func decodeRecord[T any](b []byte, rec *T) error {
	if r, ok := any(rec).(Record); ok {
		return r.DecodeWAL(b)
	}
	return json.Unmarshal(b, rec)
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
	for _, seg := range segs {
		w.mu.Lock()
		live := w.live[seg]
		w.mu.Unlock()
		if live {
			continue
		}
		if _, _, err := w.convert(seg); err != nil {
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
// is only removed. It returns the records converted and the position just
// past the highest one read.
func (w *WAL[T]) convert(name string) (n int, next uint64, err error) {
	seg := w.segPath(name)
	var dir string
	_, t, _, _, ok := datasets.ParseLogFileName(name)
	legacy := !ok
	if ok {
		dir = filepath.Join(w.opt.Dir, Partition(t))
	} else { // an earlier version's segment: partitioned by its time of change
		st, err := os.Stat(seg)
		if err != nil {
			return 0, 0, fmt.Errorf("wal: %w", err)
		}
		if existing, _ := filepath.Glob(filepath.Join(w.opt.Dir, "dt=*", "hour=*", name+".parquet")); len(existing) > 0 {
			return 0, 0, removeSynced(seg)
		}
		dir = filepath.Join(w.opt.Dir, Partition(st.ModTime()))
	}
	f, err := os.Open(seg)
	if err != nil {
		return 0, 0, fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	path := filepath.Join(dir, name+".parquet")
	if _, err := os.Stat(path); err == nil {
		// converted before a crash: only its positions are wanted
		err = eachFrame(f, legacy, func(pos uint64, _ []byte) error { next = max(next, pos+1); return nil })
		if err == nil {
			err = removeSynced(seg)
		}
		return 0, next, err
	}
	var (
		pw      *datasets.Writer[T]
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
		if w.recovering && w.recovered != nil {
			w.recovered(chunk)
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
	err = eachFrame(f, legacy, func(pos uint64, b []byte) error {
		next = max(next, pos+1)
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
		return 0, 0, err
	}
	if pw != nil {
		err = pw.Close()
		pw = nil
		if err != nil {
			return 0, 0, err
		}
	}
	return n, next, removeSynced(seg)
}

// eachFrame calls fn with each frame's position and record bytes,
// stopping quietly at a torn or corrupt tail (records that were never
// acknowledged). Frames of an earlier version (legacy) have no position.
func eachFrame(r io.Reader, legacy bool, fn func(pos uint64, rec []byte) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	var b []byte
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil // end, or a torn header
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		if n == 0 || n > 1<<30 || (!legacy && n < 8) {
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
		var pos uint64
		rec := b
		if !legacy {
			pos, rec = binary.LittleEndian.Uint64(b), b[8:]
		}
		if err := fn(pos, rec); err != nil {
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
