package serving_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier"
	"switchyard/classifier/classifiertest"
	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/synthetic"
	"switchyard/features"
	"switchyard/serving"
	"switchyard/serving/servingtest"
)

// When ONNX Runtime fails at run time, requests are answered by the pure-Go
// scorer, /readyz says degraded and a metric counts the fallbacks.
func TestONNXRuntimeFailureFallsBackToGoScorer(t *testing.T) {
	cat := synthetic.DefaultCatalogue()
	m := classifiertest.New(t, classifiertest.Options{Models: cat.Names(), Hidden: 8})
	// an ONNX graph whose embedding table is too small for the ids the
	// extractor produces: ONNX Runtime's Gather fails on most requests
	bad := classifiertest.New(t, classifiertest.Options{Models: cat.Names(), Buckets: 1 << 6, Hidden: 8})
	raw, err := classifier.ExportONNX(bad)
	require.NoError(t, err)
	rt, err := classifier.OpenRuntime(classifier.FindRuntimeLibrary(""))
	require.NoError(t, err)
	ort, err := classifier.NewORTScorer(rt, raw, m.Meta)
	require.NoError(t, err)
	goScorer, err := classifier.NewGoScorer(m)
	require.NoError(t, err)
	ext, err := features.NewExtractor(m.Meta.FeatureSpec)
	require.NoError(t, err)
	ts := servingtest.Start(t, serving.Options{Config: serving.DefaultConfig(), Load: func(onFallback func()) (*serving.Routing, error) {
		router, err := policy.NewRouter(ext, classifier.NewFallbackScorer(ort, goScorer, onFallback), m.Meta, cat, policy.Config{Name: "p", QualityBar: 0.5})
		if err != nil {
			return nil, err
		}
		return serving.SingleRouting(router, cat), nil
	}})

	var rd serving.Readiness
	require.Equal(t, http.StatusOK, ts.Get(t, "/readyz", &rd))
	assert.Equal(t, "ready", rd.Status)
	for i := 0; i < 20; i++ {
		code, out := ts.Post(t, "/v1/route", `{"prompt":"an ordinary request that hashes to many ids"}`)
		require.Equal(t, http.StatusOK, code, out)
	}
	require.Equal(t, http.StatusOK, ts.Get(t, "/readyz", &rd))
	assert.Equal(t, "degraded", rd.Status)
	require.NotEmpty(t, rd.Reasons)
	assert.Contains(t, rd.Reasons[0], "onnx runtime failed")
	assert.Equal(t, 20.0, ts.Metric(t, "switchyard_scorer_fallbacks_total"))
	assert.Equal(t, 1.0, ts.Metric(t, "switchyard_degraded"))
}

// When the log folder becomes unwritable, routing goes on, feedback is
// refused rather than acknowledged, /readyz says degraded, and writing
// resumes when the folder comes back.
func TestUnwritableLogFolderDegradesAndRecovers(t *testing.T) {
	f := startServer(t, serving.DefaultConfig(), policy.ScorerGo)
	_, out := f.Post(t, "/v1/route", `{"prompt":"first"}`)
	id := out["decision_id"].(string)

	// the folder disappears and a file takes its place
	moved := f.logs + ".moved"
	require.NoError(t, os.Rename(f.logs, moved))
	require.NoError(t, os.WriteFile(f.logs, []byte("not a folder"), 0o644))

	for i := 0; i < 5; i++ {
		code, _ := f.Post(t, "/v1/route", `{"prompt":"routing goes on"}`)
		require.Equal(t, http.StatusOK, code)
	}
	code, body := f.Post(t, "/v1/feedback", `{"decision_id":"`+id+`","quality":1}`)
	assert.Equal(t, http.StatusServiceUnavailable, code, body)
	var rd serving.Readiness
	require.Equal(t, http.StatusOK, f.Get(t, "/readyz", &rd))
	assert.Equal(t, "degraded", rd.Status)
	assert.Contains(t, strings.Join(rd.Reasons, " "), "not a directory")

	// the folder comes back: the feedback is accepted and stored once
	require.NoError(t, os.Remove(f.logs))
	require.NoError(t, os.Rename(moved, f.logs))
	code, body = f.Post(t, "/v1/feedback", `{"decision_id":"`+id+`","quality":1}`)
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, f.Stop())
	_, outcomes, err := datasets.ReadLogDir(f.logs)
	require.NoError(t, err)
	require.Len(t, outcomes, 1)
	assert.Equal(t, id, outcomes[0].DecisionID)
}

// A bounded load of concurrent route + feedback + reload requests over
// loopback: no request fails and no acknowledged feedback is lost; a model
// file replaced by garbage is rejected on reload while the old one serves.
func TestLoadWithReloadsLosesNothing(t *testing.T) {
	cat := synthetic.DefaultCatalogue()
	dir := t.TempDir()
	modelPath := filepath.Join(dir, "predictor.onnx")
	good := writeModel(t, cat)
	raw, err := os.ReadFile(good)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(modelPath, raw, 0o644))
	cfg := serving.DefaultConfig()
	cfg.AdminKey = "admin-secret"
	ts := servingtest.Start(t, serving.Options{Config: cfg,
		Load: servingtest.Predictor(modelPath, cat, policy.ScorerONNX, policy.Config{Name: "p", QualityBar: 0.6})})

	var mu sync.Mutex
	acked := map[string]bool{}
	failures := 0
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 150; i++ {
				code, out := ts.Post(t, "/v1/route", fmt.Sprintf(`{"prompt":"worker %d request %d: translate this"}`, w, i))
				if code != http.StatusOK {
					mu.Lock()
					failures++
					mu.Unlock()
					continue
				}
				id := out["decision_id"].(string)
				code, _ = ts.Post(t, "/v1/feedback", `{"decision_id":"`+id+`","quality":0.5}`)
				mu.Lock()
				if code == http.StatusOK {
					acked[id] = true
				} else {
					failures++
				}
				mu.Unlock()
			}
		}(w)
	}
	reloads := 0
	reload := func() int { return ts.Reload(t, "admin-secret", nil) }
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
loop:
	for {
		select {
		case <-done:
			break loop
		case <-time.After(20 * time.Millisecond):
			require.Equal(t, http.StatusOK, reload())
			reloads++
		}
	}
	// garbage in place of the model: rejected, the old one keeps serving
	require.NoError(t, os.WriteFile(modelPath, []byte("garbage, not ONNX"), 0o644))
	assert.Equal(t, http.StatusUnprocessableEntity, reload())
	code, _ := ts.Post(t, "/v1/route", `{"prompt":"still served"}`)
	assert.Equal(t, http.StatusOK, code)

	assert.Zero(t, failures, "no request failed")
	assert.Greater(t, reloads, 0)
	require.NoError(t, ts.Stop())
	decisions, outcomes, err := datasets.ReadLogDir(ts.LogDir)
	require.NoError(t, err)
	count := map[string]int{}
	for _, o := range outcomes {
		count[o.DecisionID]++
	}
	for id := range acked {
		assert.Equal(t, 1, count[id], "acknowledged feedback %s", id)
	}
	assert.Len(t, outcomes, len(acked))
	assert.Len(t, decisions, 8*150+1)
	t.Logf("%d route+feedback pairs, %d reloads, %d outcomes stored", len(acked), reloads, len(outcomes))
}

func TestAuthAndAdminKeys(t *testing.T) {
	cfg := serving.DefaultConfig()
	cfg.APIKeys = []string{"client-a", "client-b"}
	f := startServer(t, cfg, policy.ScorerGo)
	sendAs := func(path, auth string) int {
		req, _ := http.NewRequest(http.MethodPost, f.url+path, strings.NewReader(`{"prompt":"x"}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	send := func(path, key string) int {
		if key == "" {
			return sendAs(path, "")
		}
		return sendAs(path, "Bearer "+key)
	}
	assert.Equal(t, http.StatusUnauthorized, send("/v1/route", ""))
	assert.Equal(t, http.StatusUnauthorized, send("/v1/route", "client-c"))
	assert.Equal(t, http.StatusOK, send("/v1/route", "client-b"))
	assert.Equal(t, http.StatusUnauthorized, send("/v1/feedback", ""))
	assert.Equal(t, http.StatusForbidden, send("/admin/reload", "client-a"), "admin endpoints are off without an admin key")
	assert.Equal(t, http.StatusOK, sendAs("/v1/route", "bearer  client-a"), "the scheme is case-insensitive")
	resp, err := http.Get(f.url + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "health needs no key")
}

func TestOverloadIsShedWith429(t *testing.T) {
	cfg := serving.DefaultConfig()
	cfg.MaxInFlight = 1
	f := startServer(t, cfg, policy.ScorerGo)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	retryAfter := ""
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				resp, err := http.Post(f.url+"/v1/route", "application/json", strings.NewReader(`{"prompt":"`+strings.Repeat("busy ", 2000)+`"}`))
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				if resp.StatusCode == http.StatusTooManyRequests {
					retryAfter = resp.Header.Get("Retry-After")
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	assert.Greater(t, codes[http.StatusOK], 0)
	assert.Greater(t, codes[http.StatusTooManyRequests], 0, "with one slot, concurrent requests are shed: %v", codes)
	assert.Equal(t, "1", retryAfter)
	assert.Equal(t, codes[http.StatusOK]+codes[http.StatusTooManyRequests], 16*20)
	assert.Greater(t, f.Metric(t, "switchyard_shed_requests_total"), 0.0)
}

func TestMetricsAndTracePassthrough(t *testing.T) {
	f := startServer(t, serving.DefaultConfig(), policy.ScorerGo)
	req, _ := http.NewRequest(http.MethodPost, f.url+"/v1/route", strings.NewReader(`{"prompt":"hello"}`))
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req.Header.Set("traceparent", tp)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, tp, resp.Header.Get("traceparent"))
	resp, err = http.Get(f.url + "/metrics")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"switchyard_decisions_total", "switchyard_decision_seconds", "switchyard_http_request_seconds",
		"switchyard_predicted_quality", "switchyard_expected_cost_usd", "switchyard_degraded"} {
		assert.Contains(t, string(b), name)
	}
}
