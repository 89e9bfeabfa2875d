package serving

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
)

type countingCloser struct{ n atomic.Int32 }

func (c *countingCloser) Close() error { c.n.Add(1); return nil }

// A replaced routing is closed when the last request that routes with it
// finishes, not before and not a fixed time later; the current one when the
// server closes.
func TestAReplacedRoutingClosesWithItsLastRequest(t *testing.T) {
	cat, err := datasets.NewCatalogue([]datasets.ModelPrice{{Name: "m", InputUSDPerMTok: 1, OutputUSDPerMTok: 1}})
	require.NoError(t, err)
	var a, b countingCloser
	ra, rb := &Routing{Catalogue: cat}, &Routing{Catalogue: cat}
	ra.Own(&a)
	rb.Own(&b)
	s, err := New(DefaultConfig(), Deps{Routing: ra, Catalogue: cat})
	require.NoError(t, err)

	inFlight := s.acquireRouting()
	require.Same(t, ra, inFlight)
	s.store(rb)
	assert.Zero(t, a.n.Load(), "a request still routes with it")
	assert.Same(t, rb, s.acquireRouting())
	s.retire(rb)
	s.retire(inFlight)
	assert.Equal(t, int32(1), a.n.Load(), "closed with its last request")
	assert.Zero(t, b.n.Load())
	require.NoError(t, s.Close())
	assert.Equal(t, int32(1), b.n.Load())
	assert.Nil(t, s.acquireRouting(), "a closed server routes nothing")
}

// Routing requests beyond MaxRouting wait for a turn, and are refused only
// after QueueTimeout (or when their own deadline ends first).
func TestRoutingRequestsWaitForATurnThenTimeOut(t *testing.T) {
	cat, err := datasets.NewCatalogue([]datasets.ModelPrice{{Name: "m", InputUSDPerMTok: 1, OutputUSDPerMTok: 1}})
	require.NoError(t, err)
	cfg := DefaultConfig()
	cfg.MaxRouting, cfg.QueueTimeout = 1, 200*time.Millisecond
	s, err := New(cfg, Deps{Catalogue: cat})
	require.NoError(t, err)
	ctx := context.Background()
	require.True(t, s.admitWait(ctx), "a free turn")

	got := make(chan bool)
	go func() { got <- s.admitWait(ctx) }()
	time.Sleep(20 * time.Millisecond)
	<-s.admit // the first request finishes
	assert.True(t, <-got, "the waiting request gets the freed turn")

	assert.False(t, s.admitWait(ctx), "no turn frees within the queue timeout")
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	assert.False(t, s.admitWait(short))
	assert.True(t, errors.Is(short.Err(), context.DeadlineExceeded))
}

// Outcomes waiting for Redis are bounded: in a long outage the oldest are
// given up, the newest kept.
func TestUnsettledOutcomesAreBounded(t *testing.T) {
	var u unsettled
	dropped := 0
	for i := range maxUnsettled + 5 {
		dropped += u.add(settlement{key: strconv.Itoa(i)})
	}
	assert.Equal(t, maxUnsettled/10, dropped)
	assert.Equal(t, maxUnsettled+5-maxUnsettled/10, u.len())
	assert.Equal(t, strconv.Itoa(maxUnsettled/10), u.head()[0].key, "the oldest went")
}
