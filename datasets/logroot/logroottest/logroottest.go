// Package logroottest runs an S3-compatible object store on loopback for
// tests (gofakes3, in memory), the way httptest runs an HTTP server.
package logroottest

import (
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
)

// S3 starts an S3-compatible server on 127.0.0.1 with an empty bucket and
// returns the bucket's URL for gocloud.dev/blob; the server stops when the
// test ends. It sets the AWS credentials the SDK asks for (the server takes
// any) for the test.
func S3(t testing.TB, bucket string) string {
	t.Helper()
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket(bucket))
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	if tt, ok := t.(*testing.T); ok {
		tt.Setenv("AWS_ACCESS_KEY_ID", "test")
		tt.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	}
	return URL(bucket, srv.URL)
}

// URL is the gocloud.dev/blob URL of a bucket on an S3-compatible server
// at endpoint.
func URL(bucket, endpoint string) string {
	q := url.Values{"endpoint": {endpoint}, "region": {"us-east-1"}, "use_path_style": {"true"}, "disable_https": {"true"}}
	return "s3://" + bucket + "?" + q.Encode()
}
