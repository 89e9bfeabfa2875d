// Package logroot keeps the logs of a fleet's replicas in one place: a
// local or network folder, which every replica writes its own files into
// (its writer id is in their names), or an object store bucket through
// gocloud.dev/blob (s3://, gs://, azblob://, file://). With a bucket, each
// replica keeps its write-ahead log and fresh Parquet files in a local
// staging folder and an Uploader puts every finished Parquet file in the
// bucket under the same relative path; readers (train, ope, experiment
// analyze) Fetch the bucket's Parquet files into a local cache first.
package logroot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob://
	_ "gocloud.dev/blob/fileblob"  // file://
	_ "gocloud.dev/blob/gcsblob"   // gs://
	_ "gocloud.dev/blob/s3blob"    // s3://
	"gocloud.dev/gcerrors"
)

// IsBucket reports whether root names an object store bucket rather than a
// folder.
func IsBucket(root string) bool {
	u, err := url.Parse(root)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "s3", "gs", "azblob", "file":
		return true
	}
	return false
}

// open opens the bucket of a URL, naming the URL (without its query,
// which may hold credentials' settings) in errors.
func open(ctx context.Context, root string) (*blob.Bucket, error) {
	b, err := blob.OpenBucket(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("log root %s: %w", redact(root), err)
	}
	return b, nil
}

func redact(root string) string {
	if u, err := url.Parse(root); err == nil {
		u.RawQuery, u.User = "", nil
		return u.String()
	}
	return "(unparsable URL)"
}

// finished reports whether a staging folder's file is a finished log file
// (temporary files start with a dot; the write-ahead log's are not Parquet).
func finished(d fs.DirEntry) bool {
	name := d.Name()
	return !d.IsDir() && !strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".parquet")
}

// Uploader puts a staging folder's finished Parquet files in a bucket.
type Uploader struct {
	bucket *blob.Bucket
	root   string
	dir    string
	log    *slog.Logger
	mu     sync.Mutex
	done   map[string]int64 // uploaded: relative path -> size
	errMu  sync.Mutex       // the health check reads err while an upload runs
	err    error            // of the last Upload
	// Keep is how long an uploaded file stays in the staging folder (the
	// server reads its recent decisions from there at start); 48 hours
	// when 0.
	Keep time.Duration
}

// NewUploader opens the bucket at root for the staging folder dir.
func NewUploader(ctx context.Context, root, dir string, log *slog.Logger) (*Uploader, error) {
	b, err := open(ctx, root)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Uploader{bucket: b, root: redact(root), dir: dir, log: log, done: map[string]int64{}}, nil
}

// Upload puts every finished file not yet in the bucket there (a file the
// bucket holds with the same size is not sent again) and removes uploaded
// files older than Keep from the staging folder. It returns how many it
// uploaded; an error leaves the rest for the next call.
func (u *Uploader) Upload(ctx context.Context) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	keep := u.Keep
	if keep <= 0 {
		keep = 48 * time.Hour
	}
	n := 0
	err := filepath.WalkDir(u.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !finished(d) {
			return nil
		}
		rel, err := filepath.Rel(u.dir, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if u.done[key] != info.Size() {
			if attr, err := u.bucket.Attributes(ctx, key); err == nil && attr.Size == info.Size() {
				u.done[key] = info.Size()
			} else if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
				return fmt.Errorf("log root %s: %s: %w", u.root, key, err)
			} else {
				if err := u.put(ctx, key, path); err != nil {
					return err
				}
				u.done[key] = info.Size()
				n++
			}
		}
		if time.Since(info.ModTime()) > keep {
			if err := os.Remove(path); err != nil {
				return err
			}
			delete(u.done, key)
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("upload logs to %s: %w", u.root, err)
	}
	u.errMu.Lock()
	u.err = err
	u.errMu.Unlock()
	return n, err
}

// Failing is the last upload's error, nil when it succeeded. It does not
// wait for an upload in progress.
func (u *Uploader) Failing() error {
	u.errMu.Lock()
	defer u.errMu.Unlock()
	return u.err
}

func (u *Uploader) put(ctx context.Context, key, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := u.bucket.NewWriter(ctx, key, &blob.WriterOptions{ContentType: "application/vnd.apache.parquet"})
	if err != nil {
		return fmt.Errorf("log root %s: %s: %w", u.root, key, err)
	}
	if _, err := io.Copy(w, f); err != nil {
		w.Close()
		return fmt.Errorf("log root %s: %s: %w", u.root, key, err)
	}
	if err := w.Close(); err != nil { // the object exists only once Close succeeds
		return fmt.Errorf("log root %s: %s: %w", u.root, key, err)
	}
	return nil
}

// Run uploads every interval until ctx ends, logging failures.
func (u *Uploader) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := u.Upload(ctx); err != nil {
				u.log.Warn("log upload failed; the files stay in the staging folder and are sent at the next try", "root", u.root, "err", err)
			} else if n > 0 {
				u.log.Info("logs uploaded", "root", u.root, "files", n)
			}
		}
	}
}

// Close closes the bucket.
func (u *Uploader) Close() error { return u.bucket.Close() }

// Fetch copies the bucket's Parquet log files at root into the folder
// cache (relative paths kept; files already there with the same size are
// not fetched again) and returns the folder, for the log readers.
func Fetch(ctx context.Context, root, cache string) (string, error) {
	b, err := open(ctx, root)
	if err != nil {
		return "", err
	}
	defer b.Close()
	listed := map[string]bool{}
	it := b.List(nil)
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("log root %s: list: %w", redact(root), err)
		}
		name := obj.Key[strings.LastIndex(obj.Key, "/")+1:]
		if obj.IsDir || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".parquet") {
			continue
		}
		rel := filepath.FromSlash(obj.Key)
		if !filepath.IsLocal(rel) {
			return "", fmt.Errorf("log root %s: object %q would be written outside the cache", redact(root), obj.Key)
		}
		path := filepath.Join(cache, rel)
		listed[path] = true
		if st, err := os.Stat(path); err == nil && st.Size() == obj.Size {
			continue
		}
		if err := fetch(ctx, b, obj.Key, path); err != nil {
			return "", fmt.Errorf("log root %s: %w", redact(root), err)
		}
	}
	// files the bucket no longer holds (removed by its retention) leave the cache
	err = filepath.WalkDir(cache, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if finished(d) && !listed[path] {
			return os.Remove(path)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("log root %s: cache %s: %w", redact(root), cache, err)
	}
	return cache, nil
}

// fetch writes an object to path through a temporary file, so that a
// failed fetch leaves no partial file behind.
func fetch(ctx context.Context, b *blob.Bucket, key, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	r, err := b.NewReader(ctx, key, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	defer r.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Local returns a folder holding the logs at root: root itself when it is
// a folder, else the bucket's files fetched into cache (a folder of the
// user's cache named for the bucket's URL when cache is empty: under
// $XDG_CACHE_HOME, or ~/.cache).
func Local(ctx context.Context, root, cache string) (string, error) {
	if !IsBucket(root) {
		return root, nil
	}
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("log root %s: no cache folder: %w", redact(root), err)
		}
		sum := sha256.Sum256([]byte(root)) // the whole URL: another endpoint is another bucket
		name := strings.NewReplacer("://", "-", "/", "-", ":", "-").Replace(redact(root)) + "-" + hex.EncodeToString(sum[:4])
		cache = filepath.Join(base, "switchyard", "logs", name)
	}
	return Fetch(ctx, root, cache)
}
