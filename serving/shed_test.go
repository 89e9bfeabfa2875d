package serving

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets/synthetic"
)

func TestDelayShedderShedsExactlyItsShareEvenly(t *testing.T) {
	d := NewDelayShedder(2 * time.Millisecond)
	for range 1000 {
		require.False(t, d.Shed(), "nothing is shed before any overload")
	}
	// three windows above the target: 0.95·(1 − 0.75³) ≈ 0.549
	for range 3 {
		d.Observe(10*time.Millisecond, 1000)
	}
	p := d.Share()
	assert.InDelta(t, 0.95*(1-math.Pow(0.75, 3)), p, 1e-4)
	shed, run, longest := 0, 0, 0
	for range 10000 {
		if d.Shed() {
			shed++
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	assert.InDelta(t, p*10000, float64(shed), 2, "exactly the share")
	assert.LessOrEqual(t, longest, 2, "spread evenly, not in bursts")
}

func TestDelayShedderControllerRisesHoldsAndFalls(t *testing.T) {
	d := NewDelayShedder(2 * time.Millisecond)
	for range 40 {
		d.Observe(50*time.Millisecond, 500)
	}
	assert.InDelta(t, maxShare, d.Share(), 1e-3, "a lasting overload sheds at most 95%")
	assert.Equal(t, 50*time.Millisecond, d.Delay())
	high := d.Share()
	d.Observe(1500*time.Microsecond, 500) // between half the target and the target: hold
	assert.Equal(t, high, d.Share())
	d.Observe(10*time.Millisecond, 5) // too few events to judge: fall
	assert.InDelta(t, high-0.05, d.Share(), 1e-4)
	for range 25 {
		d.Observe(100*time.Microsecond, 500)
	}
	assert.Zero(t, d.Share(), "back to admitting everything once the delay is gone")
}

func TestWindowQuantileCountsOnlyTheNewEvents(t *testing.T) {
	bounds := []float64{math.Inf(-1), 1e-3, 2e-3, 4e-3, math.Inf(1)}
	prev := []uint64{100, 0, 0, 0}
	counts := []uint64{100 + 50, 30, 15, 5} // new: 50 below 1ms, 30 in [1,2)ms, 15 in [2,4)ms, 5 above 4ms
	q, n := windowQuantile(bounds, counts, prev, 0.9)
	assert.Equal(t, uint64(100), n)
	assert.InDelta(t, float64(2*time.Millisecond+2*time.Millisecond*10/15), float64(q), 1e3,
		"the 90th event is the 10th of 15 in [2, 4) ms")
	q, _ = windowQuantile(bounds, counts, prev, 0.5)
	assert.InDelta(t, float64(time.Millisecond), float64(q), 1e3, "the 50th is the last below 1 ms")
	q, _ = windowQuantile(bounds, counts, prev, 0.99)
	assert.Equal(t, 4*time.Millisecond, q, "in the unbounded top bucket: its lower bound")
	q, n = windowQuantile(bounds, prev, prev, 0.9)
	assert.Zero(t, n)
	assert.Zero(t, q)
}

// The shedder samples the real runtime metric: with every goroutine kept
// waiting behind busy ones, the measured delay rises above a small target
// and the shedder starts shedding; the server answers those routing
// requests 429 with Retry-After and counts them by reason, and never sheds
// feedback.
func TestDelayShedderSeesARealOverloadAndTheServerSheds(t *testing.T) {
	d := NewDelayShedder(500 * time.Microsecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { assert.NoError(t, d.Run(ctx)) }()
	// many more runnable goroutines than processors, each working a little
	// and yielding, like request handlers queueing for the CPU
	stop := make(chan struct{})
	for range 64 {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
					for i := 0; i < 1e5; i++ {
						_ = math.Sqrt(float64(i))
					}
					runtime.Gosched()
				}
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.Share() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	require.Positive(t, d.Share(), "the shedder saw the queueing delay (last delay %v)", d.Delay())
	assert.Greater(t, d.Delay(), time.Duration(0))

	reg := prometheus.NewRegistry()
	srv, err := New(DefaultConfig(), Deps{Catalogue: synthetic.DefaultCatalogue(), Registry: reg, Shedder: alwaysShed{}})
	require.NoError(t, err)
	h := srv.Handler()
	for _, path := range []string{"/v1/route", "/route", "/v1/noop"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{"prompt":"hi"}`)))
		assert.Equal(t, http.StatusTooManyRequests, rec.Code, path)
		assert.Equal(t, "1", rec.Header().Get("Retry-After"))
		assert.Contains(t, rec.Body.String(), "overloaded")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/feedback", strings.NewReader(`{"decision_id":"x","quality":1}`)))
	assert.NotEqual(t, http.StatusTooManyRequests, rec.Code, "feedback is never shed for queueing delay")
	shed, err := reg.Gather()
	require.NoError(t, err)
	byReason := map[string]float64{}
	for _, mf := range shed {
		if mf.GetName() == "switchyard_shed_requests_total" {
			for _, m := range mf.GetMetric() {
				byReason[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	assert.Equal(t, map[string]float64{"queue_delay": 3, "in_flight": 0, "queue_timeout": 0}, byReason)
}

type alwaysShed struct{}

func (alwaysShed) Shed() bool { return true }
