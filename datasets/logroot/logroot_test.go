package logroot_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets/logroot"
	"switchyard/datasets/logroot/logroottest"
)

func write(t *testing.T, path, body string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
}

// Two replicas' staging folders upload into one bucket on an S3-compatible
// server on loopback; a reader fetches every finished file, and nothing
// else (temporary files, write-ahead logs).
func TestReplicasUploadIntoOneBucketAndReadersFetchAll(t *testing.T) {
	root := logroottest.S3(t, "logs")
	ctx := context.Background()
	a, b := t.TempDir(), t.TempDir()
	write(t, filepath.Join(a, "dt=2026-12-02", "hour=09", "decisions-r0-1.parquet"), "a-decisions")
	write(t, filepath.Join(a, "dt=2026-12-02", "hour=09", ".decisions-r0-2.parquet-x.tmp"), "partial")
	write(t, filepath.Join(a, "wal", "outcomes-r0-3.wal"), "wal")
	write(t, filepath.Join(b, "dt=2026-12-02", "hour=09", "decisions-r1-1.parquet"), "b-decisions")
	write(t, filepath.Join(b, "dt=2026-12-02", "hour=10", "outcomes-r1-2.parquet"), "b-outcomes")
	for dir, want := range map[string]int{a: 1, b: 2} {
		u, err := logroot.NewUploader(ctx, root, dir, nil)
		require.NoError(t, err)
		n, err := u.Upload(ctx)
		require.NoError(t, err)
		assert.Equal(t, want, n)
		n, err = u.Upload(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "uploaded once")
		require.NoError(t, u.Close())
	}
	cache := t.TempDir()
	got, err := logroot.Local(ctx, root, cache)
	require.NoError(t, err)
	assert.Equal(t, cache, got)
	var files []string
	require.NoError(t, filepath.WalkDir(cache, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(cache, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	}))
	assert.ElementsMatch(t, []string{"dt=2026-12-02/hour=09/decisions-r0-1.parquet", "dt=2026-12-02/hour=09/decisions-r1-1.parquet",
		"dt=2026-12-02/hour=10/outcomes-r1-2.parquet"}, files)
	body, err := os.ReadFile(filepath.Join(cache, "dt=2026-12-02", "hour=10", "outcomes-r1-2.parquet"))
	require.NoError(t, err)
	assert.Equal(t, "b-outcomes", string(body))

	// an uploaded file past Keep leaves the staging folder
	old := filepath.Join(a, "dt=2026-12-02", "hour=09", "decisions-r0-1.parquet")
	require.NoError(t, os.Chtimes(old, time.Now().Add(-72*time.Hour), time.Now().Add(-72*time.Hour)))
	u, err := logroot.NewUploader(ctx, root, a, nil)
	require.NoError(t, err)
	defer u.Close()
	_, err = u.Upload(ctx)
	require.NoError(t, err)
	assert.NoFileExists(t, old)

	local, err := logroot.Local(ctx, "some/folder", "")
	require.NoError(t, err)
	assert.Equal(t, "some/folder", local, "a folder is read where it is")
}

// A bucket that cannot be reached is an error that names it, without the
// URL's query.
func TestUnreachableBucketIsNamed(t *testing.T) {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	url := logroottest.URL("missing", srv.URL)
	srv.Close()
	_, err := logroot.Fetch(context.Background(), url, t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "log root s3://missing")
	assert.NotContains(t, err.Error(), "endpoint=")
}
