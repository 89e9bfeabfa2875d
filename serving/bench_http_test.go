package serving_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"switchyard/classifier"
	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/logstore"
	"switchyard/datasets/synthetic"
	"switchyard/features"
	"switchyard/serving"
	"switchyard/serving/loadgen"
	"switchyard/training"
)

// BenchmarkHTTP measures POST /v1/route over loopback against the no-op
// endpoint of the same server (same router, middleware and JSON decoding,
// no decision), with the load generator in the same process sharing every
// CPU: closed loop at maximum for both, then open loop at half of the route
// maximum. It runs once whatever b.N is; it reports throughput, the
// route/no-op ratio, p99 latencies and the process's memory. (The server
// process on its own, overload included: BenchmarkServe in cmd/switchyard.)
func BenchmarkHTTP(b *testing.B) {
	cat := synthetic.DefaultCatalogue()
	def := training.DefaultSettings() // the production-size predictor, as in BenchmarkDecision
	m, err := classifier.NewModel(features.DefaultSpec(), cat.Names(), def.EmbeddingDim, def.Hidden)
	require.NoError(b, err)
	m.Init(rand.New(rand.NewSource(1)))
	m.Meta.Version = "bench"
	path := filepath.Join(b.TempDir(), "p.onnx")
	require.NoError(b, classifier.WriteONNX(path, m))
	router, sc, err := policy.LoadRouter(policy.LoadOptions{ModelPath: path, Catalogue: cat, Scorer: policy.ScorerONNX,
		Policy: policy.Config{Name: "bench", QualityBar: 0.8}})
	require.NoError(b, err)
	defer sc.Close()
	logs := b.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	wal, _, err := logstore.Open[datasets.OutcomeRecord](logstore.Options{Dir: logs, Prefix: datasets.OutcomeLogPrefix, Log: quiet})
	require.NoError(b, err)
	defer wal.Close()
	dlog, err := logstore.NewDecisionLog(logstore.DefaultDecisionLogConfig(logs), quiet)
	require.NoError(b, err)
	defer dlog.Close(context.Background())
	cfg := serving.DefaultConfig()
	cfg.MaxInFlight = 0 // measure the stack, not the shedding
	srv, err := serving.New(cfg, serving.Deps{Router: router, Catalogue: cat, Decisions: dlog, Outcomes: wal, Log: quiet,
		Registry: prometheus.NewRegistry()})
	require.NoError(b, err)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	body, _ := json.Marshal(map[string]string{"prompt": benchPrompt(1 << 10)})
	run := func(path string, rate float64, d time.Duration) *loadgen.Result {
		res, err := loadgen.Run(context.Background(), loadgen.Config{URL: ts.URL + path, Bodies: [][]byte{body}, Connections: 64,
			Rate: rate, Duration: d, Warmup: time.Second, Timeout: 10 * time.Second})
		require.NoError(b, err)
		require.Zero(b, res.Errors, "transport errors: %s", res)
		return res
	}
	b.ResetTimer()
	for i := 0; i < b.N && i < 1; i++ {
		noop := run("/v1/noop", 0, 4*time.Second)
		route := run("/v1/route", 0, 4*time.Second)
		half := run("/v1/route", route.Throughput/2, 4*time.Second)
		b.Logf("no-op closed loop:  %s", noop)
		b.Logf("route closed loop:  %s", route)
		b.Logf("route at half max:  %s", half)
		b.ReportMetric(noop.Throughput, "noop_req/s")
		b.ReportMetric(route.Throughput, "route_req/s")
		b.ReportMetric(route.Throughput/noop.Throughput, "route/noop")
		b.ReportMetric(float64(route.P99.Microseconds()), "route_max_p99_µs")
		b.ReportMetric(float64(half.P50.Microseconds()), "half_p50_µs")
		b.ReportMetric(float64(half.P99.Microseconds()), "half_p99_µs")
		b.ReportMetric(rssMB(), "rss_MB")
	}
}

// rssMB is the process's resident memory (server and load generator).
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return float64(ms.Sys) / (1 << 20)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
