// Package servingtest starts real Switchyard services for tests, the way
// net/http/httptest starts servers: serving.Open and Run on a loopback port
// chosen by the system, with a log folder of the test's own, stopped (and
// both logs flushed to Parquet) when the test ends.
package servingtest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/serving"
)

// Server is a running service.
type Server struct {
	URL     string // http://127.0.0.1:port
	LogDir  string // its decision and outcome logs
	Service *serving.Service
	stop    context.CancelFunc
	done    chan error
	err     error
	stopped bool
}

// Start opens a service with opt and runs it until the test ends. Fields
// left zero are filled for a test: Addr 127.0.0.1:0, LogDir a temporary
// folder, Writer "test", Log discarded. Config is used as given (start from
// serving.DefaultConfig()); Load is required (see Predictor and
// Configuration).
func Start(t testing.TB, opt serving.Options) *Server {
	t.Helper()
	if opt.Addr == "" {
		opt.Addr = "127.0.0.1:0"
	}
	if opt.LogDir == "" {
		opt.LogDir = t.TempDir()
	}
	if opt.Writer == "" {
		opt.Writer = "test"
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	svc, err := serving.Open(context.Background(), opt)
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{URL: "http://" + svc.Addr(), LogDir: opt.LogDir, Service: svc, stop: stop, done: make(chan error, 1)}
	go func() { s.done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop the service: %v", err)
		}
	})
	return s
}

// Stop ends the service as a SIGTERM would: requests in flight finish and
// both logs are flushed to Parquet in LogDir. Stopping twice returns the
// first stop's error. A service that has not stopped after a minute is
// reported as an error and left running.
func (s *Server) Stop() error {
	if s.stopped {
		return s.err
	}
	s.stopped = true
	s.stop()
	select {
	case s.err = <-s.done:
	case <-time.After(time.Minute):
		s.err = context.DeadlineExceeded
	}
	return s.err
}

// Predictor is a serving.Options.Load for one policy over the predictor
// file at path and the catalogue, scored by scorer (policy.ScorerONNX or
// policy.ScorerGo).
func Predictor(path string, cat *datasets.Catalogue, scorer string, cfg policy.Config) func(func()) (*serving.Routing, error) {
	return func(onFallback func()) (*serving.Routing, error) {
		r, _, err := policy.LoadRouter(policy.LoadOptions{ModelPath: path, Catalogue: cat, Scorer: scorer, Policy: cfg, OnFallback: onFallback})
		if err != nil {
			return nil, err
		}
		return serving.SingleRouting(r, cat), nil
	}
}

// Configuration is a serving.Options.Load for the configuration file at
// path, scored by the pure-Go forward pass.
func Configuration(path string) func(func()) (*serving.Routing, error) {
	return func(onFallback func()) (*serving.Routing, error) {
		return serving.ReadConfig(path, policy.LoadOptions{Scorer: policy.ScorerGo, OnFallback: onFallback})
	}
}

// Routing is a serving.Options.Load for a configuration held in memory,
// scored by the pure-Go forward pass.
func Routing(fc serving.FileConfig) func(func()) (*serving.Routing, error) {
	return func(onFallback func()) (*serving.Routing, error) {
		return serving.BuildRouting(fc, policy.LoadOptions{Scorer: policy.ScorerGo, OnFallback: onFallback})
	}
}

// Post sends body as JSON to the path and decodes the JSON answer into a
// map; the test fails when the answer is not JSON.
func (s *Server) Post(t testing.TB, path, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(s.URL+path, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer drain(resp.Body)
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out), "the answer of %s is JSON", path)
	return resp.StatusCode, out
}

// Route sends a routing request (a value encoding to the JSON of
// /v1/route) and returns the decision; the test fails unless it is
// answered 200.
func (s *Server) Route(t testing.TB, req any) serving.RouteResponse {
	t.Helper()
	var out serving.RouteResponse
	require.Equal(t, http.StatusOK, s.Do(t, http.MethodPost, "/v1/route", req, &out))
	return out
}

// Feedback sends feedback (a value encoding to the JSON of /v1/feedback)
// and returns the status.
func (s *Server) Feedback(t testing.TB, fb any) int {
	t.Helper()
	return s.Do(t, http.MethodPost, "/v1/feedback", fb, nil)
}

// Reload asks the service to reload (POST /admin/reload with the admin
// key), decodes the JSON answer into out (which may be nil) and returns the
// status.
func (s *Server) Reload(t testing.TB, adminKey string, out any) int {
	t.Helper()
	return s.do(t, http.MethodPost, "/admin/reload", adminKey, nil, out)
}

// Do sends body as JSON to the path and decodes the JSON answer into out
// (which may be nil).
func (s *Server) Do(t testing.TB, method, path string, body any, out any) int {
	t.Helper()
	return s.do(t, method, path, "", body, out)
}

func (s *Server) do(t testing.TB, method, path, key string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer drain(resp.Body)
	if out != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}

// Get decodes the JSON answer of GET path into out (which may be nil).
func (s *Server) Get(t testing.TB, path string, out any) int {
	t.Helper()
	return s.Do(t, http.MethodGet, path, nil, out)
}

// Metric is the sum over its label sets of a counter or gauge as /metrics
// shows it; the test fails when /metrics does not have it.
func (s *Server) Metric(t testing.TB, name string) float64 {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	mf, ok := mfs[name]
	require.True(t, ok, "metric %s not on /metrics", name)
	var v float64
	for _, m := range mf.GetMetric() {
		if c := m.GetCounter(); c != nil {
			v += c.GetValue()
		}
		if g := m.GetGauge(); g != nil {
			v += g.GetValue()
		}
	}
	return v
}

// drain reads the rest of an answer and closes it, so that its connection
// is kept for the next request.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, body)
	body.Close()
}
