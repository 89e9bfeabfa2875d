package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkServe measures `switchyard serve` as deployed: the production-size
// predictor of `make run` behind the real server process, loaded over
// loopback by `switchyard loadgen` in another process. When taskset is
// available and the machine has two or more CPUs, the server is pinned to
// CPU 0 and the load generator to CPU 1, so the generator never takes the
// server's processor (each process then runs one Go processor). It runs
// once whatever b.N is and reports: the no-op endpoint's and /v1/route's
// closed-loop maximum (16 connections), /v1/route's p99 at half of its
// maximum and, at twice its maximum (256 connections), the share shed with
// 429 and the p99 of the admitted requests; and the server's resident
// memory at the end.
func BenchmarkServe(b *testing.B) {
	catalogue, model := benchPredictor(b)
	serverCPU, genCPU := pinning()
	srv, base := startServeUnder(b, serverCPU, "--model", model, "--catalogue", catalogue, "--logs", b.TempDir())
	load := func(path string, args ...string) []loadRow {
		argv := append(append(append([]string(nil), genCPU...), binary, "loadgen", "--url", base+path, "--duration", "5s"), args...)
		cmd := exec.Command(argv[0], argv[1:]...)
		out, err := cmd.CombinedOutput()
		require.NoError(b, err, string(out))
		fmt.Fprintf(os.Stderr, "loadgen %s %s:\n%s", path, strings.Join(args, " "), out) // b.Logf would truncate it
		return parseLoadTable(b, string(out))
	}

	b.ResetTimer()
	for i := 0; i < b.N && i < 1; i++ {
		// the maximum with a short queue (16 connections), so the server
		// works flat out without a standing queue for the shedder to see
		noop := load("/v1/noop", "--connections", "16")
		route := load("/v1/route", "--connections", "16")
		require.Len(b, noop, 1)
		require.Len(b, route, 1)
		max := route[0].throughput
		open := load("/v1/route", "--closed=false", "--connections", "256",
			"--rates", strconv.FormatFloat(max/2, 'f', 0, 64)+","+strconv.FormatFloat(2*max, 'f', 0, 64))
		require.Len(b, open, 2)
		for _, r := range append(append(noop, route...), open...) {
			require.Zero(b, r.errors, "transport errors: %+v", r)
		}
		half, over := open[0], open[1]
		b.ReportMetric(noop[0].throughput, "noop_req/s")
		b.ReportMetric(max, "route_req/s")
		b.ReportMetric(max/noop[0].throughput, "route/noop")
		b.ReportMetric(float64(route[0].shed+noop[0].shed), "max_runs_shed")
		b.ReportMetric(half.p99.Seconds()*1e3, "half_p99_ms")
		b.ReportMetric(float64(half.shed)/float64(half.sent), "half_shed_share")
		b.ReportMetric(over.p99.Seconds()*1e3, "overload_admitted_p99_ms")
		b.ReportMetric(float64(over.shed)/float64(over.sent), "overload_shed_share")
	}
	b.StopTimer()
	rss, hwm, err := procMemoryMB(srv.Process.Pid)
	if err != nil {
		b.Logf("server memory: %v", err)
	}
	b.ReportMetric(rss, "server_rss_MB")
	b.ReportMetric(hwm, "server_peak_rss_MB")
}

// pinning returns the command prefixes that pin the server and the load
// generator to different CPUs (0 and 1), or none (unpinned) when taskset is
// missing or cannot use those CPUs.
func pinning() (server, gen []string) {
	path, err := exec.LookPath("taskset")
	if err != nil || runtime.NumCPU() < 2 {
		return nil, nil
	}
	for _, cpu := range []string{"0", "1"} {
		if exec.Command(path, "-c", cpu, "true").Run() != nil {
			return nil, nil
		}
	}
	return []string{path, "-c", "0"}, []string{path, "-c", "1"}
}

type loadRow struct {
	mode, target     string
	sent, ok, errors int
	shed             int // answered 429
	throughput       float64
	p99              time.Duration
}

// parseLoadTable reads the rows of `switchyard loadgen`'s table.
func parseLoadTable(b *testing.B, out string) []loadRow {
	var rows []loadRow
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 10 || (f[0] != "closed" && f[0] != "open") {
			continue
		}
		// the target column is one field ("max", "5000/s") or three ("2x = 31000/s")
		k := 2
		if len(f) > 3 && f[2] == "=" {
			k = 4
		}
		var r loadRow
		var err error
		r.mode, r.target = f[0], strings.Join(f[1:k], " ")
		r.sent, err = strconv.Atoi(f[k])
		require.NoError(b, err, l)
		r.ok, _ = strconv.Atoi(f[k+1])
		r.errors, _ = strconv.Atoi(f[k+2])
		r.throughput, err = strconv.ParseFloat(strings.TrimSuffix(f[k+3], "/s"), 64)
		require.NoError(b, err, l)
		r.p99 = parseLatency(b, f[k+6])
		rows = append(rows, r)
	}
	// non-2xx answers are listed after the table, one line per run
	shed := regexp.MustCompile(`status_429=(\d+)`)
	for _, l := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(l, "non-2xx answers: ")
		if !ok {
			continue
		}
		for i := range rows {
			if strings.HasPrefix(rest, rows[i].mode+" "+rows[i].target+":") {
				if m := shed.FindStringSubmatch(rest); m != nil {
					rows[i].shed, _ = strconv.Atoi(m[1])
				}
			}
		}
	}
	return rows
}

func parseLatency(b *testing.B, s string) time.Duration {
	if s == "-" {
		return 0
	}
	s = strings.Replace(s, "µs", "us", 1)
	d, err := time.ParseDuration(s)
	require.NoError(b, err, s)
	return d
}
