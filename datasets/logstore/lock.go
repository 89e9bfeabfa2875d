package logstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// Lock is an exclusive hold on a log folder for one writer id, taken with
// flock(2) on a lock file in the folder. The kernel releases it when the
// process dies, so a killed server never leaves a stale lock behind.
type Lock struct {
	f    *os.File
	path string
}

// ErrLocked is wrapped by LockDir's error when another process holds the lock.
var ErrLocked = errors.New("log folder is in use")

// LockDir takes the exclusive lock of writer on dir, creating dir if needed.
// It must be called before anything in the folder is read or written: with it
// held, no other process with the same writer id touches the folder, and
// processes with other writer ids only ever touch their own files. It fails
// at once (it does not wait) with an error naming the holder's process id.
func LockDir(dir, writer string) (*Lock, error) {
	if err := ValidWriterID(writer); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock log folder %s: %w", dir, err)
	}
	path := filepath.Join(dir, ".switchyard-"+writer+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock log folder %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
					holder = "process " + strconv.Itoa(pid)
				}
			}
			return nil, fmt.Errorf("%w: %s holds %s for writer id %q; stop it, or give this process another folder or writer id",
				ErrLocked, holder, dir, writer)
		}
		return nil, fmt.Errorf("lock log folder %s: %w", dir, err)
	}
	// The file locked must still be the one at the path: a lock file
	// removed (with its folder, say) and made again by another process is
	// another lock, which would let two processes hold the same writer id.
	if a, err := f.Stat(); err == nil {
		if b, err := os.Stat(path); err != nil || !os.SameFile(a, b) {
			f.Close()
			return nil, fmt.Errorf("%w: the lock file %s was replaced while it was being taken; try again", ErrLocked, path)
		}
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f, path: path}, nil
}

// Close releases the lock. The lock file stays (removing it would race with
// a process that has just opened it).
func (l *Lock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

var writerIDPattern = regexp.MustCompile(`^[a-z0-9_]{1,48}$`)

// ValidWriterID checks a writer id: 1 to 48 characters of a-z, 0-9 and _
// (it is part of every file name the writer makes).
func ValidWriterID(id string) error {
	if !writerIDPattern.MatchString(id) {
		return fmt.Errorf("writer id %q: use 1 to 48 characters of a-z, 0-9 and _", id)
	}
	return nil
}

// DefaultWriterID is a writer id made from the host name (lower case, other
// characters than a-z and 0-9 as _), stable across restarts so that a
// restarted server recovers its own files; "local" when the host has no name.
func DefaultWriterID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "local"
	}
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 48 {
			break
		}
	}
	return b.String()
}
