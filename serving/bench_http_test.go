package serving_test

import (
	"context"
	"encoding/json"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/datasets/synthetic"
	"switchyard/serving"
	"switchyard/serving/loadgen"
	"switchyard/serving/servingtest"
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
	cfg := serving.DefaultConfig()
	cfg.MaxInFlight = 0 // measure the stack, not the shedding
	ts := servingtest.Start(b, serving.Options{Config: cfg,
		Load: servingtest.Predictor(benchModel(b, cat), cat, policy.ScorerONNX, policy.Config{Name: "bench", QualityBar: 0.8})})
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
