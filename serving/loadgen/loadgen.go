// Package loadgen sends HTTP load to a Switchyard server on this machine and
// measures how it answers: counts per status, throughput and latency
// percentiles. It backs `switchyard loadgen`, which measures the router's
// POST /v1/route endpoint.
//
// Two modes are offered. Closed loop (Config.Rate == 0) keeps every
// connection busy: each sends its next request as soon as the previous one
// is answered, which finds the maximum throughput. Open loop (Rate > 0) sends
// on a fixed schedule whatever the server does, and measures each request's
// latency from its scheduled send time, so a server that stalls is charged for
// the requests that queued behind the stall (no coordinated omission).
//
// The generator only ever connects to loopback addresses: it refuses other
// hosts when the run is configured, and again when a connection is dialled.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits that keep a run bounded whatever it is configured with.
const (
	// MaxConnections is the largest Config.Connections accepted.
	MaxConnections = 4096
	// MaxRate is the largest Config.Rate accepted, in requests per second.
	MaxRate = 1e6
)

// Config describes one load run.
type Config struct {
	URL         string        // full URL, e.g. http://127.0.0.1:8080/v1/route; the host must be loopback
	Bodies      [][]byte      // request bodies (POSTed as JSON), used round-robin
	Header      http.Header   // extra headers, e.g. Authorization
	Connections int           // keep-alive connections, and the number of requests in flight at most
	Rate        float64       // > 0: open loop at this many requests/s; 0: closed loop
	Duration    time.Duration // how long to send and measure, after the warmup
	Warmup      time.Duration // how long to send first without measuring
	Timeout     time.Duration // per request; 0: bounded only by the end of the run
}

// Result is what one run measured. Only requests sent in the measured window
// (for open loop: scheduled in it) count. Requests still in flight when the
// run ends are cut off: they count in Sent but in neither OK, Status nor
// Errors, so Sent - sum(Status) - Errors is the number cut off.
type Result struct {
	Sent   int         // requests sent in the measured window
	OK     int         // answers with a 2xx status
	Errors int         // transport errors: refused or reset connections, per-request timeouts
	Status map[int]int // answers per HTTP status, 2xx included

	// Throughput is OK answers per second over the measured window.
	Throughput float64

	// Latency percentiles of the 2xx answers, within 0.5%, and the exact
	// maximum. Closed loop measures from the send; open loop from the
	// scheduled send time, so time spent waiting for a free connection counts.
	P50, P90, P99, P999, Max time.Duration

	// Duration is the measured window: Config.Duration, or less if the run
	// was cancelled.
	Duration time.Duration

	// TimerLateP99 (open loop only) is the 99th percentile of how late the
	// generator's own timer fired for the slots it had to wait for, not
	// counting any wait for a free connection: a part of the latency that is
	// the generator's, not the server's. (Go wakes an idle process from a
	// timer with millisecond granularity.)
	TimerLateP99 time.Duration
}

// String summarises the result on one line.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent=%d ok=%d errors=%d", r.Sent, r.OK, r.Errors)
	codes := make([]int, 0, len(r.Status))
	for c := range r.Status {
		if c < 200 || c > 299 {
			codes = append(codes, c)
		}
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, " status_%d=%d", c, r.Status[c])
	}
	fmt.Fprintf(&b, " throughput=%.1f/s p50=%v p90=%v p99=%v p99.9=%v max=%v over %v",
		r.Throughput, r.P50, r.P90, r.P99, r.P999, r.Max, r.Duration)
	if r.TimerLateP99 > 0 {
		fmt.Fprintf(&b, " (generator timer late p99=%v)", r.TimerLateP99)
	}
	return b.String()
}

// Run sends the configured load and returns what it measured. It returns
// after Warmup + Duration at the latest (plus the moment it takes to cut off
// requests in flight). If ctx is cancelled first, Run returns the partial
// result together with the context's error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	u, err := checkConfig(cfg)
	if err != nil {
		return nil, err
	}
	tmpls, err := buildRequests(u, cfg)
	if err != nil {
		return nil, err
	}
	tr := newTransport(cfg.Connections)
	defer tr.CloseIdleConnections()

	hist, late := &histogram{}, &histogram{}
	workers := make([]*worker, cfg.Connections)
	start := time.Now()
	r := &run{
		tr: tr, reqs: tmpls, bodies: cfg.Bodies, timeout: cfg.Timeout, rate: cfg.Rate, hist: hist, late: late,
		start: start, warmupEnd: start.Add(cfg.Warmup), end: start.Add(cfg.Warmup + cfg.Duration),
	}
	runCtx, cancel := context.WithDeadline(ctx, r.end)
	defer cancel()

	var wg sync.WaitGroup
	if cfg.Rate > 0 {
		// The queue only decouples the scheduler from the workers; when it is
		// full the scheduler waits, and the requests it then releases carry
		// their original scheduled times.
		jobs := make(chan uint64, cfg.Connections)
		for i := range workers {
			workers[i] = newWorker()
			w := workers[i]
			wg.Go(func() { r.openLoop(runCtx, w, jobs) })
		}
		wg.Go(func() { r.schedule(runCtx, jobs) })
	} else {
		for i := range workers {
			workers[i] = newWorker()
			w, first := workers[i], i%len(cfg.Bodies)
			wg.Go(func() { r.closedLoop(runCtx, w, first) })
		}
	}
	wg.Wait()
	stopped := time.Now()

	res := &Result{Status: map[int]int{}}
	for _, w := range workers {
		res.Sent += w.sent
		res.OK += w.ok
		res.Errors += w.errors
		for c, n := range w.status {
			res.Status[c] += n
		}
	}
	if stopped.After(r.end) {
		stopped = r.end
	}
	if res.Duration = stopped.Sub(r.warmupEnd); res.Duration < 0 {
		res.Duration = 0
	}
	if res.Duration > 0 {
		res.Throughput = float64(res.OK) / res.Duration.Seconds()
	}
	res.P50, res.P90, res.P99, res.P999 = hist.quantile(0.50), hist.quantile(0.90), hist.quantile(0.99), hist.quantile(0.999)
	res.Max = hist.maximum()
	res.TimerLateP99 = late.quantile(0.99)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("load run on %s stopped early: %w", u.Redacted(), err)
	}
	return res, nil
}

func checkConfig(cfg Config) (*url.URL, error) {
	u, err := checkURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	switch {
	case len(cfg.Bodies) == 0:
		return nil, errors.New("load config: give at least one request body")
	case cfg.Connections < 1 || cfg.Connections > MaxConnections:
		return nil, fmt.Errorf("load config: connections %d outside [1, %d]", cfg.Connections, MaxConnections)
	case math.IsNaN(cfg.Rate) || cfg.Rate < 0 || cfg.Rate > MaxRate:
		return nil, fmt.Errorf("load config: rate %g outside [0, %g] requests/s (0 means closed loop)", cfg.Rate, MaxRate)
	case cfg.Duration <= 0:
		return nil, fmt.Errorf("load config: duration %v must be positive", cfg.Duration)
	case cfg.Warmup < 0:
		return nil, fmt.Errorf("load config: warmup %v must not be negative", cfg.Warmup)
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("load config: timeout %v must not be negative (0 means none)", cfg.Timeout)
	}
	return u, nil
}

// checkURL parses raw and refuses anything but http(s) to a loopback host.
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("load url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("load url %q: scheme must be http or https", u.Redacted())
	}
	if !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("load url %q: host %q is not loopback; loadgen only sends to 127.0.0.0/8, ::1 or localhost",
			u.Redacted(), u.Hostname())
	}
	return u, nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// newTransport returns a transport that holds conns keep-alive connections
// and refuses to dial anything but loopback, whatever a name resolves to.
func newTransport(conns int) *http.Transport {
	d := &net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, err)
			}
			if ip, err := netip.ParseAddr(host); err != nil || !ip.Unmap().IsLoopback() {
				return fmt.Errorf("dial %s: not a loopback address, refused", address)
			}
			return nil
		},
	}
	return &http.Transport{
		Proxy:               nil, // never route through a proxy: traffic stays on loopback
		DialContext:         d.DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// buildRequests prepares one request per body; each send only attaches a
// context and a fresh reader over the shared body bytes.
func buildRequests(u *url.URL, cfg Config) ([]*http.Request, error) {
	reqs := make([]*http.Request, len(cfg.Bodies))
	for i, b := range cfg.Bodies {
		req, err := http.NewRequest(http.MethodPost, u.String(), http.NoBody)
		if err != nil {
			return nil, fmt.Errorf("build request %d: %w", i, err)
		}
		for k, vs := range cfg.Header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		if req.Header.Get("Content-Type") == "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.ContentLength = int64(len(b))
		reqs[i] = req
	}
	return reqs, nil
}

// run is the shared, read-only state of one Run (the histogram is safe for
// concurrent use).
type run struct {
	tr                    *http.Transport
	reqs                  []*http.Request
	bodies                [][]byte
	timeout               time.Duration
	rate                  float64 // requests/s in open loop
	hist                  *histogram
	late                  *histogram // open loop: how late the timer released each measured slot
	start, warmupEnd, end time.Time
}

// worker owns one connection's worth of requests and its own counters, so
// the hot path takes no locks.
type worker struct {
	sent, ok, errors int
	status           map[int]int
}

func newWorker() *worker { return &worker{status: make(map[int]int, 4)} }

// reqBody is a request body over shared bytes; Close is a no-op so the
// transport may close it whenever it likes.
type reqBody struct{ bytes.Reader }

func (*reqBody) Close() error { return nil }

// closedLoop sends back to back until the run ends.
func (r *run) closedLoop(ctx context.Context, w *worker, k int) {
	for ctx.Err() == nil {
		now := time.Now()
		r.send(ctx, w, k, now, !now.Before(r.warmupEnd))
		if k++; k == len(r.reqs) {
			k = 0
		}
	}
}

// openLoop sends the scheduled slots it receives until the run ends.
func (r *run) openLoop(ctx context.Context, w *worker, jobs <-chan uint64) {
	for {
		select {
		case <-ctx.Done():
			return
		case i, ok := <-jobs:
			if !ok {
				return
			}
			at := r.start.Add(slotOffset(i, r.rate))
			r.send(ctx, w, int(i%uint64(len(r.reqs))), at, !at.Before(r.warmupEnd))
		}
	}
}

// slotOffset is when slot i is due, after the start of the run.
func slotOffset(i uint64, rate float64) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / rate)
}

// schedule releases slot i at start + i/rate, until the end of the run. It
// never skips a slot: when the queue is full it waits, so the slots it then
// releases are late and their latency shows it.
func (r *run) schedule(ctx context.Context, jobs chan<- uint64) {
	defer close(jobs)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for i := uint64(0); ; i++ {
		at := r.start.Add(slotOffset(i, r.rate))
		if !at.Before(r.end) {
			return
		}
		if d := time.Until(at); d > 0 {
			t.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if !at.Before(r.warmupEnd) {
				r.late.record(time.Since(at))
			}
		}
		select {
		case <-ctx.Done():
			return
		case jobs <- i:
		}
	}
}

// send issues request k, whose latency counts from since, and records the
// outcome if measured.
func (r *run) send(ctx context.Context, w *worker, k int, since time.Time, measured bool) {
	if ctx.Err() != nil {
		return
	}
	reqCtx := ctx
	if r.timeout > 0 {
		var cancel context.CancelFunc
		reqCtx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	req := r.reqs[k].WithContext(reqCtx)
	body := &reqBody{}
	body.Reset(r.bodies[k])
	req.Body = body
	if measured {
		w.sent++
	}
	resp, err := r.tr.RoundTrip(req)
	if err == nil {
		// Read to the end so the connection goes back to the pool.
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	done := time.Now()
	if !measured {
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			w.errors++
		} // else: cut off by the end of the run
		return
	}
	w.status[resp.StatusCode]++
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		w.ok++
		r.hist.record(done.Sub(since))
	}
}

// histogram is a log-linear latency histogram in nanoseconds, like HDR
// histograms: values below 2*subCount are exact, above that every doubling
// is split into subCount buckets, so a bucket's midpoint is within
// 1/(2*subCount) of any value in it. It is safe for concurrent use.
type histogram struct {
	counts [numBuckets]atomic.Uint64
	max    atomic.Int64
}

const (
	subBits    = 7
	subCount   = 1 << subBits // buckets per doubling: midpoints within 0.4%
	maxShift   = 30           // values up to 2^(maxShift+subBits+1) ns ≈ 275 s; larger ones land in the last bucket
	numBuckets = 2*subCount + maxShift*subCount
)

func bucketOf(v uint64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1 // v>>shift is in [subCount, 2*subCount)
	if shift > maxShift {
		return numBuckets - 1
	}
	return 2*subCount + (shift-1)*subCount + int(v>>shift) - subCount
}

// bucketValue is the midpoint of bucket i.
func bucketValue(i int) uint64 {
	if i < 2*subCount {
		return uint64(i)
	}
	j := i - 2*subCount
	shift := j/subCount + 1
	low := uint64(j%subCount+subCount) << shift
	return low + (uint64(1)<<shift)/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))].Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (h *histogram) maximum() time.Duration { return time.Duration(h.max.Load()) }

// quantile returns the nearest-rank q-quantile: the smallest recorded value
// that at least q of the values do not exceed (0 if none were recorded).
func (h *histogram) quantile(q float64) time.Duration {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		if seen += h.counts[i].Load(); seen >= rank {
			return min(time.Duration(bucketValue(i)), h.maximum())
		}
	}
	return h.maximum()
}
