package loadgen

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testBody = []byte(`{"prompt":"Summarise the following paragraph in two sentences."}`)

// countingServer answers every request after reading its body, optionally
// sleeping first, and counts the answers it wrote.
func countingServer(t *testing.T, sleep time.Duration, status func(n int64) int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var answered atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if sleep > 0 {
			select {
			case <-time.After(sleep):
			case <-r.Context().Done():
				return
			}
		}
		n := answered.Add(1)
		code := http.StatusOK
		if status != nil {
			code = status(n)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"model":"small"}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &answered
}

func requireOrdered(t *testing.T, res *Result) {
	t.Helper()
	assert.Positive(t, res.P50)
	assert.LessOrEqual(t, res.P50, res.P90)
	assert.LessOrEqual(t, res.P90, res.P99)
	assert.LessOrEqual(t, res.P99, res.P999)
	assert.LessOrEqual(t, res.P999, res.Max)
}

func TestClosedLoopCountsEveryAnsweredRequest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sleep time.Duration
	}{{"fast handler", 0}, {"2ms handler", 2 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, answered := countingServer(t, tc.sleep, nil)
			const conns, dur = 4, 300 * time.Millisecond
			res, err := Run(context.Background(), Config{
				URL: srv.URL + "/v1/route", Bodies: [][]byte{testBody}, Connections: conns,
				Duration: dur, Timeout: time.Second,
			})
			require.NoError(t, err)
			require.Positive(t, res.OK)
			assert.Zero(t, res.Errors)
			assert.Equal(t, res.OK, res.Status[http.StatusOK])
			assert.Len(t, res.Status, 1)
			// With no warmup every request is measured: each answered one is
			// OK, except at most one per connection cut off at the end.
			assert.LessOrEqual(t, int64(res.OK), answered.Load())
			assert.LessOrEqual(t, answered.Load(), int64(res.Sent))
			assert.LessOrEqual(t, res.Sent-res.OK, conns)
			assert.InDelta(t, dur, res.Duration, float64(20*time.Millisecond))
			assert.InDelta(t, float64(res.OK)/res.Duration.Seconds(), res.Throughput, 1e-9)
			requireOrdered(t, res)
			if tc.sleep > 0 {
				assert.GreaterOrEqual(t, res.P50, tc.sleep)
				assert.LessOrEqual(t, res.Throughput, 1.05*conns/tc.sleep.Seconds())
			}
		})
	}
}

func TestWarmupIsSentButNotMeasured(t *testing.T) {
	srv, answered := countingServer(t, time.Millisecond, nil)
	res, err := Run(context.Background(), Config{
		URL: srv.URL, Bodies: [][]byte{testBody}, Connections: 2,
		Duration: 200 * time.Millisecond, Warmup: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	require.Positive(t, res.OK)
	// Half the run is warmup, so the server answered about twice the measured count.
	assert.Greater(t, answered.Load(), int64(res.OK)*3/2)
	assert.InDelta(t, 200*time.Millisecond, res.Duration, float64(20*time.Millisecond))
}

func TestOpenLoopSendsAtTheConfiguredRate(t *testing.T) {
	srv, answered := countingServer(t, 0, nil)
	const rate, dur, warmup = 400.0, 500 * time.Millisecond, 100 * time.Millisecond
	bodies := [][]byte{testBody, []byte(`{"prompt":"Write a haiku about routers."}`)}
	res, err := Run(context.Background(), Config{
		URL: srv.URL + "/v1/route", Bodies: bodies, Connections: 8, Rate: rate,
		Duration: dur, Warmup: warmup, Timeout: time.Second,
	})
	require.NoError(t, err)
	want := rate * dur.Seconds()
	assert.InEpsilon(t, want, float64(res.Sent), 0.2)
	assert.InEpsilon(t, want, float64(res.OK), 0.2)
	assert.InEpsilon(t, rate*(dur+warmup).Seconds(), float64(answered.Load()), 0.2)
	assert.InEpsilon(t, rate, res.Throughput, 0.2)
	assert.Zero(t, res.Errors)
	requireOrdered(t, res)
	assert.Positive(t, res.TimerLateP99, "the generator's own timer delay is measured")
	assert.Less(t, res.TimerLateP99, 500*time.Millisecond)
}

func TestOpenLoopChargesQueueingToLatency(t *testing.T) {
	// One connection to a 40ms server at 100 req/s: requests queue, and
	// their latency must include the wait since their scheduled time.
	srv, _ := countingServer(t, 40*time.Millisecond, nil)
	res, err := Run(context.Background(), Config{
		URL: srv.URL, Bodies: [][]byte{testBody}, Connections: 1, Rate: 100,
		Duration: 300 * time.Millisecond,
	})
	require.NoError(t, err)
	require.GreaterOrEqual(t, res.OK, 4)
	assert.Less(t, res.Sent, 20, "a busy single connection cannot send on schedule")
	assert.GreaterOrEqual(t, res.P50, 40*time.Millisecond)
	assert.GreaterOrEqual(t, res.Max, 150*time.Millisecond, "the last answered request waited behind the others")
	assert.Less(t, res.TimerLateP99, 30*time.Millisecond, "waiting 40 ms for the busy connection is not the timer's lateness")
}

func TestNon2xxStatusesAreCountedButNotOK(t *testing.T) {
	srv, _ := countingServer(t, 0, func(n int64) int {
		if n%3 == 0 {
			return http.StatusTooManyRequests
		}
		if n%3 == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	res, err := Run(context.Background(), Config{
		URL: srv.URL, Bodies: [][]byte{testBody}, Connections: 2, Rate: 300,
		Duration: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	assert.Positive(t, res.Status[http.StatusTooManyRequests])
	assert.Positive(t, res.Status[http.StatusInternalServerError])
	assert.Equal(t, res.Status[http.StatusOK], res.OK)
	total := 0
	for _, n := range res.Status {
		total += n
	}
	assert.Greater(t, total, res.OK)
	assert.LessOrEqual(t, total+res.Errors, res.Sent)
	assert.Contains(t, res.String(), "status_429=")
}

func TestTransportErrorsAreCounted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens: every dial is refused
	res, err := Run(context.Background(), Config{
		URL: "http://" + addr + "/v1/route", Bodies: [][]byte{testBody}, Connections: 2, Rate: 200,
		Duration: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	assert.Zero(t, res.OK)
	assert.Positive(t, res.Errors)
	assert.Empty(t, res.Status)
	assert.Zero(t, res.P50)
}

func TestRunStopsOnTimeAgainstAStalledServer(t *testing.T) {
	stall := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stall) })
	for _, rate := range []float64{0, 1000} {
		begin := time.Now()
		res, err := Run(context.Background(), Config{
			URL: srv.URL, Bodies: [][]byte{testBody}, Connections: 4, Rate: rate,
			Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond,
		})
		took := time.Since(begin)
		require.NoError(t, err)
		assert.Less(t, took, 500*time.Millisecond, "rate %v", rate)
		assert.Zero(t, res.OK)
		assert.Zero(t, res.Errors, "requests cut off by the end are not errors")
	}
}

func TestCancelReturnsPartialResult(t *testing.T) {
	srv, _ := countingServer(t, 0, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	begin := time.Now()
	res, err := Run(ctx, Config{URL: srv.URL, Bodies: [][]byte{testBody}, Connections: 2, Duration: time.Minute})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(begin), time.Second)
	require.NotNil(t, res)
	assert.Positive(t, res.OK)
	assert.Less(t, res.Duration, time.Second)
}

func TestNonLoopbackURLIsRefused(t *testing.T) {
	for _, raw := range []string{
		"http://example.com/v1/route",
		"http://10.0.0.1:8080/v1/route",
		"http://0.0.0.0:8080/v1/route",
		"http://localhost.example.com/v1/route",
		"http://[2001:db8::1]:8080/",
		"ftp://127.0.0.1/v1/route",
		"127.0.0.1:8080/v1/route",
		"",
	} {
		t.Run(raw, func(t *testing.T) {
			_, err := Run(context.Background(), Config{URL: raw, Bodies: [][]byte{testBody}, Connections: 1, Duration: time.Second})
			require.Error(t, err)
		})
	}
	for _, raw := range []string{"http://127.0.0.1:8080/v1/route", "http://127.1.2.3/", "http://localhost:1/x", "https://[::1]:8443/", "http://LOCALHOST/"} {
		_, err := checkURL(raw)
		assert.NoError(t, err, raw)
	}
}

func TestBadConfigIsRefused(t *testing.T) {
	ok := Config{URL: "http://127.0.0.1:1/", Bodies: [][]byte{testBody}, Connections: 1, Duration: time.Second}
	for name, mutate := range map[string]func(*Config){
		"no bodies":        func(c *Config) { c.Bodies = nil },
		"no connections":   func(c *Config) { c.Connections = 0 },
		"too many conns":   func(c *Config) { c.Connections = MaxConnections + 1 },
		"negative rate":    func(c *Config) { c.Rate = -1 },
		"rate too high":    func(c *Config) { c.Rate = 2 * MaxRate },
		"zero duration":    func(c *Config) { c.Duration = 0 },
		"negative warmup":  func(c *Config) { c.Warmup = -time.Second },
		"negative timeout": func(c *Config) { c.Timeout = -time.Second },
	} {
		t.Run(name, func(t *testing.T) {
			c := ok
			mutate(&c)
			_, err := checkConfig(c)
			require.Error(t, err)
		})
	}
	_, err := checkConfig(ok)
	require.NoError(t, err)
}

func TestHistogramPercentilesWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h histogram
	vals := make([]time.Duration, 100000)
	for i := range vals {
		// Log-uniform from 100ns to 10s covers the exact and the log-linear buckets.
		vals[i] = time.Duration(100 * math.Pow(10, rng.Float64()*8))
		h.record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0, 0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		rank := max(int(math.Ceil(q*float64(len(vals)))), 1)
		want := vals[rank-1]
		assert.InEpsilon(t, float64(want), float64(h.quantile(q)), 0.01, "q=%v", q)
	}
	assert.Equal(t, vals[len(vals)-1], h.maximum())
	for v := range uint64(1 << 12) {
		assert.Equal(t, bucketOf(v), bucketOf(bucketValue(bucketOf(v))), "value %d", v)
	}
	assert.Equal(t, numBuckets-1, bucketOf(1<<62))
	var empty histogram
	assert.Zero(t, empty.quantile(0.5))
}

func TestResultStringIsOneLine(t *testing.T) {
	r := &Result{Sent: 10, OK: 9, Status: map[int]int{200: 9, 503: 1}, Throughput: 9, P50: time.Millisecond, Duration: time.Second}
	s := r.String()
	assert.NotContains(t, s, "\n")
	assert.Contains(t, s, "sent=10 ok=9 errors=0 status_503=1")
}

func TestTransportRefusesToDialNonLoopback(t *testing.T) {
	// Control runs before connect, so nothing leaves the machine.
	tr := newTransport(1)
	_, err := tr.DialContext(context.Background(), "tcp", "192.0.2.1:80")
	require.ErrorContains(t, err, "not a loopback address")
	conn, err := tr.DialContext(context.Background(), "tcp", "[::ffff:192.0.2.1]:80")
	if conn != nil {
		conn.Close()
	}
	require.Error(t, err)
}

// BenchmarkSend measures the generator's own cost per request against a
// trivial loopback server, so it can be told apart from the server's.
func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte(`{"model":"small"}`))
	}))
	defer srv.Close()
	u, err := checkURL(srv.URL)
	require.NoError(b, err)
	cfg := Config{URL: srv.URL, Bodies: [][]byte{testBody}, Connections: 1, Duration: time.Second}
	reqs, err := buildRequests(u, cfg)
	require.NoError(b, err)
	tr := newTransport(1)
	defer tr.CloseIdleConnections()
	r := &run{tr: tr, reqs: reqs, bodies: cfg.Bodies, hist: &histogram{}}
	w := newWorker()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.send(ctx, w, 0, time.Now(), true)
	}
	b.ReportMetric(float64(w.ok)/b.Elapsed().Seconds(), "requests/s")
	require.Equal(b, w.sent, w.ok)
}
