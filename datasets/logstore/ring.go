package logstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// ring is the first stage of a write-ahead log: a fixed-size circular
// buffer in a memory-mapped file, by default on /dev/shm (tmpfs). A record
// copied into it belongs to the kernel at once, so it survives the process
// being killed, at the cost of a memory copy: no system call, and on tmpfs
// no page fault once the ring's pages exist, unlike a file on disk, whose
// mapped pages fault on the first write after every writeback. A power cut
// or a reboot empties it; the flusher writes it to the segment files on
// disk within milliseconds and fsyncs them every SyncEvery.
//
// Positions are byte offsets in the endless stream of frames; the bytes of
// position p live at data[p % size]. The header keeps head (the end of the
// last record copied in) and tail (the end of the last record written to a
// segment file); [tail, head) is what a restart must recover from the ring.
type ring struct {
	f    *os.File
	path string
	mem  []byte
	data []byte
}

const (
	ringMagic  = "SWYRING1"
	ringHeader = 4096 // magic, head, tail, the log folder's path; padded to a page
	maxRingDir = ringHeader - 32
)

// ringPath is where the ring of a log (its folder's absolute path, prefix
// and writer) lives: in dir, named after a hash of the folder's path.
func ringPath(dir, absLogDir, prefix, writer string) string {
	sum := sha256.Sum256([]byte(absLogDir))
	return filepath.Join(dir, "switchyard-"+hex.EncodeToString(sum[:8])+"-"+prefix+"-"+writer+".ring")
}

// openRing maps the ring at path, making it (size bytes of data, every page
// touched once so that later copies never fault) when it does not exist or
// is not a ring of that size. logDir is recorded in it, so that a ring
// whose log folder is gone can be found and removed. It reports whether it
// was made anew.
func openRing(path, logDir string, size int, log *slog.Logger) (r *ring, fresh bool, err error) {
	if len(logDir) > maxRingDir {
		return nil, false, fmt.Errorf("ring: log folder path longer than %d bytes", maxRingDir)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("ring %s: %w", path, err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() != int64(ringHeader+size) {
		var magic [len(ringMagic)]byte
		if n, _ := f.ReadAt(magic[:], 0); n == len(magic) && string(magic[:]) == ringMagic && st.Size() > ringHeader {
			// a ring of another size still holds what a killed process left:
			// it keeps its size until a clean close removes it
			log.Warn("the ring keeps the size it was made with until the log is closed cleanly", "ring", path,
				"size", st.Size()-ringHeader, "asked", size)
			size = int(st.Size() - ringHeader)
		} else {
			fresh = true
			err = f.Truncate(int64(ringHeader + size))
		}
	}
	var mem []byte
	if err == nil {
		mem, err = syscall.Mmap(int(f.Fd()), 0, ringHeader+size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("ring %s: %w", path, err)
	}
	r = &ring{f: f, path: path, mem: mem, data: mem[ringHeader:]}
	if string(mem[:len(ringMagic)]) != ringMagic {
		fresh = true
	}
	if fresh {
		clear(mem) // touches every page now, not on the routing path
		copy(mem, ringMagic)
		binary.LittleEndian.PutUint16(mem[24:], uint16(len(logDir)))
		copy(mem[26:], logDir)
	}
	return r, fresh, nil
}

// removeOrphanRings removes the rings in dir whose log folder no longer
// exists (a test's temporary folder, a deleted deployment): nothing can
// recover them, and on /dev/shm they hold memory.
func removeOrphanRings(dir string, log func(path string)) {
	paths, _ := filepath.Glob(filepath.Join(dir, "switchyard-*.ring"))
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		var hdr [ringHeader]byte
		n, _ := f.ReadAt(hdr[:], 0)
		f.Close()
		if n < 26 || string(hdr[:len(ringMagic)]) != ringMagic {
			continue
		}
		l := int(binary.LittleEndian.Uint16(hdr[24:]))
		if l == 0 || 26+l > n {
			continue
		}
		if _, err := os.Stat(string(hdr[26 : 26+l])); errors.Is(err, os.ErrNotExist) {
			if os.Remove(p) == nil {
				log(p)
			}
		}
	}
}

func (r *ring) size() uint64 { return uint64(len(r.data)) }

func (r *ring) head() uint64     { return binary.LittleEndian.Uint64(r.mem[8:]) }
func (r *ring) tail() uint64     { return binary.LittleEndian.Uint64(r.mem[16:]) }
func (r *ring) setHead(p uint64) { binary.LittleEndian.PutUint64(r.mem[8:], p) }
func (r *ring) setTail(p uint64) { binary.LittleEndian.PutUint64(r.mem[16:], p) }

// put copies b to position p (the caller made room).
func (r *ring) put(p uint64, b []byte) {
	at := int(p % r.size())
	n := copy(r.data[at:], b)
	copy(r.data, b[n:])
}

// span returns the bytes of [from, to) as one or two slices of the ring.
func (r *ring) span(from, to uint64) (a, b []byte) {
	if to <= from {
		return nil, nil
	}
	at, n := from%r.size(), to-from
	if at+n <= r.size() {
		return r.data[at : at+n], nil
	}
	return r.data[at:], r.data[:n-(r.size()-at)]
}

// close unmaps the ring; with remove, its file goes too (nothing in it is
// unwritten).
func (r *ring) close(remove bool) error {
	err := syscall.Munmap(r.mem)
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if remove {
		if rerr := os.Remove(r.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = rerr
		}
	}
	return err
}

// defaultRingDir is where rings live: /dev/shm when it is there and
// writable, else the log's own wal folder (correct, but each mapped page
// then faults on its first write after every writeback).
func defaultRingDir(walDir string) string {
	const shm = "/dev/shm"
	if st, err := os.Stat(shm); err == nil && st.IsDir() {
		if f, err := os.CreateTemp(shm, ".switchyard-probe-*"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return shm
		}
	}
	return walDir
}
