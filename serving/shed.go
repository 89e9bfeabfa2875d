package serving

import (
	"context"
	"errors"
	"math"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// schedLatencies is the runtime metric of how long goroutines waited,
// runnable, before they ran: the queueing delay inside the process.
const schedLatencies = "/sched/latencies:seconds"

// DelayShedder decides which routing requests to answer 429 because the
// server is overloaded. A bound on requests in flight does not see an
// overload on a few cores: the requests wait as runnable goroutines and in
// socket buffers before any handler counts them, and each handler, once it
// runs, finishes in microseconds. The Go scheduler does see that wait, so
// the shedder samples the scheduler's queueing delay (runtime/metrics
// /sched/latencies) every Interval and, while the window's 90th percentile is
// above Target, raises the share of requests it sheds; below half the target
// it lowers it again. Shedding is deterministic (error diffusion, no random
// draws): a share p sheds exactly every 1/p-th request.
type DelayShedder struct {
	Target   time.Duration // queueing delay above which it sheds
	Interval time.Duration // how often it samples the delay

	share atomic.Uint32 // shed share × shareOne
	acc   atomic.Uint64 // error-diffusion accumulator, in 1/shareOne units
	delay atomic.Int64  // the last window's 90th percentile, ns
}

const (
	shareOne = 1 << 16
	// maxShare keeps admitting one request in twenty, so an overloaded
	// server still answers some and sees when the overload ends.
	maxShare = 0.95
	// minWindow is the fewest scheduling events a window needs to judge.
	minWindow = 32
)

// NewDelayShedder returns a shedder with the given target queueing delay,
// sampled every 10 ms.
func NewDelayShedder(target time.Duration) *DelayShedder {
	return &DelayShedder{Target: target, Interval: 10 * time.Millisecond}
}

// errNoSchedMetric is returned by Run when the Go runtime does not report
// its scheduling latencies.
var errNoSchedMetric = errors.New("delay shedder: the Go runtime does not report " + schedLatencies + "; not shedding")

// Run samples the scheduler's queueing delay until ctx ends. The runtime
// records about one scheduling event in eight, so a window is extended,
// tick by tick up to ten ticks, until it holds minWindow events; a window
// that still holds fewer is a quiet server. Run returns at once with an
// error when the runtime does not report the metric (then nothing is shed).
func (d *DelayShedder) Run(ctx context.Context) error {
	sample := []metrics.Sample{{Name: schedLatencies}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return errNoSchedMetric
	}
	prev := append([]uint64(nil), sample[0].Value.Float64Histogram().Counts...)
	t := time.NewTicker(d.Interval)
	defer t.Stop()
	for ticks := 0; ; {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		ticks++
		metrics.Read(sample)
		h := sample[0].Value.Float64Histogram()
		q, n := windowQuantile(h.Buckets, h.Counts, prev, 0.9)
		if n < minWindow && ticks < maxWindowTicks {
			continue // a longer window
		}
		prev = append(prev[:0], h.Counts...)
		ticks = 0
		d.Observe(q, n)
	}
}

// maxWindowTicks is the longest window, in sampling intervals.
const maxWindowTicks = 10

// windowQuantile is the q-quantile of the events counted since prev
// (interpolated within its bucket; the lower bound of the unbounded top
// bucket), and how many events there were.
func windowQuantile(bounds []float64, counts, prev []uint64, q float64) (time.Duration, uint64) {
	var n uint64
	for i := range counts {
		if i < len(prev) {
			n += counts[i] - prev[i]
		}
	}
	if n == 0 {
		return 0, 0
	}
	rank := math.Ceil(q * float64(n))
	var seen uint64
	for i := range counts {
		if i >= len(prev) {
			break
		}
		in := counts[i] - prev[i]
		if in > 0 && float64(seen+in) >= rank {
			// counts[i] covers [bounds[i], bounds[i+1])
			lo, hi := max(0, bounds[i]), bounds[i+1]
			if math.IsInf(hi, 1) {
				return seconds(lo), n // all that is known: at least lo
			}
			return seconds(lo + (hi-lo)*(rank-float64(seen))/float64(in)), n
		}
		seen += in
	}
	return seconds(bounds[len(bounds)-2]), n // not reached: every count is accounted for above
}

func seconds(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }

// Observe feeds one window's queueing delay (its 90th percentile, over n
// recorded scheduling events) to the controller: above the target the shed
// share moves a quarter of the way to the maximum; below half the target,
// or in a window of fewer than minWindow events (a quiet server), it drops
// by 0.05; in between it holds.
func (d *DelayShedder) Observe(delay time.Duration, n uint64) {
	p := d.Share()
	if n >= minWindow {
		d.delay.Store(int64(delay))
	}
	switch {
	case n >= minWindow && delay > d.Target:
		p += (maxShare - p) / 4
	case n < minWindow || delay < d.Target/2:
		p = max(0, p-0.05)
	}
	d.share.Store(uint32(math.Round(p * shareOne)))
}

// Shed reports whether to answer this request 429: exactly the current
// share of calls, spread evenly.
func (d *DelayShedder) Shed() bool {
	p := uint64(d.share.Load())
	if p == 0 {
		return false
	}
	acc := d.acc.Add(p)
	return acc/shareOne != (acc-p)/shareOne
}

// Share is the share of requests being shed, in [0, 0.95].
func (d *DelayShedder) Share() float64 { return float64(d.share.Load()) / shareOne }

// Delay is the 90th percentile of the queueing delay in the last window
// with enough events to judge.
func (d *DelayShedder) Delay() time.Duration { return time.Duration(d.delay.Load()) }
