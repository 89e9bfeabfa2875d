package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkGoodput measures what the server does under overload with its
// defaults, the server process and `switchyard loadgen` sharing the
// machine's cores (no pinning): capacity C is /v1/route's closed-loop
// maximum with shedding off (16 connections); then, with the defaults, an
// open-loop run at C/2 reports its p99, and an open-loop run at 2C (256
// connections) the goodput: routing requests the server answered 200 per
// second, counted by the server itself (switchyard_http_request_seconds)
// over the run — the generator's own count misses the requests still
// queued in it when the run ends. It runs once whatever b.N is.
func BenchmarkGoodput(b *testing.B) {
	catalogue, model := benchPredictor(b)
	serve := func(args ...string) (*exec.Cmd, string) {
		return startServeUnder(b, nil, append([]string{"--model", model, "--catalogue", catalogue,
			"--logs", b.TempDir()}, args...)...)
	}
	load := func(base string, args ...string) []loadRow {
		argv := append([]string{"loadgen", "--url", base + "/v1/route", "--duration", "5s"}, args...)
		out, err := run(b, argv...)
		require.NoError(b, err, out)
		fmt.Fprintf(os.Stderr, "loadgen %s:\n%s", strings.Join(args, " "), out)
		return parseLoadTable(b, out)
	}
	b.ResetTimer()
	for i := 0; i < b.N && i < 1; i++ {
		unshed, base := serve("--shed-queue-delay", "0")
		capRun := load(base, "--connections", "16")
		stopServe(b, unshed)
		require.Len(b, capRun, 1)
		c := capRun[0].throughput

		srv, base := serve(strings.Fields(os.Getenv("GOODPUT_SERVE_ARGS"))...)
		half := load(base, "--closed=false", "--connections", "256", "--rates", strconv.FormatFloat(c/2, 'f', 0, 64))
		before := routed(b, base)
		t0 := time.Now()
		over := load(base, "--closed=false", "--connections", "256", "--rates", strconv.FormatFloat(2*c, 'f', 0, 64))
		goodput := (routed(b, base) - before) / time.Since(t0).Seconds()
		stopServe(b, srv)
		require.Len(b, half, 1)
		require.Len(b, over, 1)
		for _, r := range append(append(capRun, half...), over...) {
			require.Zero(b, r.errors, "transport errors: %+v", r)
		}
		b.ReportMetric(c, "capacity_req/s")
		b.ReportMetric(goodput, "goodput_at_2C_req/s")
		b.ReportMetric(goodput/c, "goodput_at_2C/C")
		b.ReportMetric(float64(over[0].shed)/float64(over[0].sent), "shed_share_at_2C")
		b.ReportMetric(half[0].p99.Seconds()*1e3, "p99_at_C/2_ms")
		b.ReportMetric(float64(half[0].shed)/float64(half[0].sent), "shed_share_at_C/2")
	}
}

// routed is how many routing requests the server at base has answered 200,
// from its metrics.
func routed(b *testing.B, base string) float64 {
	resp, err := http.Get(base + "/metrics")
	require.NoError(b, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b, err)
	re := regexp.MustCompile(`(?m)^switchyard_http_request_seconds_count\{code="200",endpoint="route"\} (\S+)$`)
	m := re.FindSubmatch(body)
	require.NotNil(b, m, "no routed-request count in /metrics")
	v, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(b, err)
	return v
}
