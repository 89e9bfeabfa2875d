package fleet_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/experiments/rollout"
	"switchyard/serving/fleet"
	"switchyard/serving/fleet/fleettest"
)

func open(t *testing.T, url, owner string) *fleet.Redis {
	t.Helper()
	r, err := fleet.Open(context.Background(), fleet.Options{URL: url, Owner: owner})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

func TestDecisionsSharedInBatchesAreSeenByEveryReplica(t *testing.T) {
	srv := fleettest.Start(t)
	a, b := open(t, srv.URL, "a"), open(t, srv.URL, "b")
	ctx := context.Background()
	for i := range 1000 {
		a.PutDecision(fmt.Sprint("d-", i), fleet.Decision{Model: "mini", Propensity: 0.9, Policy: "p", Experiment: "e", Arm: "control", Shadow: "opus"})
	}
	for _, i := range []int{0, 500, 999} {
		d, ok, err := b.Decision(ctx, fmt.Sprint("d-", i), time.Second)
		require.NoError(t, err)
		require.True(t, ok, "decision %d", i)
		assert.Equal(t, fleet.Decision{Model: "mini", Propensity: 0.9, Policy: "p", Experiment: "e", Arm: "control", Shadow: "opus"}, d)
	}
	_, ok, err := b.Decision(ctx, "never", 10*time.Millisecond)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Zero(t, a.Dropped())
}

func TestTheFirstClaimOnAnOutcomeWinsFleetWide(t *testing.T) {
	srv := fleettest.Start(t)
	a, b := open(t, srv.URL, "a"), open(t, srv.URL, "b")
	ctx := context.Background()

	stored, err := a.Claim(ctx, "d-1")
	require.NoError(t, err)
	assert.Nil(t, stored, "a holds the claim")
	_, err = b.Claim(ctx, "d-1")
	assert.ErrorIs(t, err, fleet.ErrPending)
	require.NoError(t, b.Release(ctx, "d-1"), "b's release of a's claim does nothing")
	_, err = b.Claim(ctx, "d-1")
	assert.ErrorIs(t, err, fleet.ErrPending)

	ok, err := a.Settle(ctx, "d-1", fleet.Answer{Quality: 0.7, CostUSD: 0.01}, "mini", []string{"p-1"}, false)
	require.NoError(t, err)
	assert.True(t, ok)
	got, err := b.Claim(ctx, "d-1")
	require.NoError(t, err)
	assert.Equal(t, &fleet.Answer{Quality: 0.7, CostUSD: 0.01}, got)

	// a claim given up can be taken by another replica
	_, err = a.Claim(ctx, "d-2")
	require.NoError(t, err)
	require.NoError(t, a.Release(ctx, "d-2"))
	got, err = b.Claim(ctx, "d-2")
	require.NoError(t, err)
	assert.Nil(t, got, "b holds it now")

	// reconciling keeps the first answer
	ok, err = b.Settle(ctx, "d-1", fleet.Answer{Quality: 0.1}, "mini", []string{"p-1"}, true)
	require.NoError(t, err)
	assert.False(t, ok)
	got, err = a.Claim(ctx, "d-1")
	require.NoError(t, err)
	assert.Equal(t, 0.7, got.Quality)
}

func TestConcurrentClaimsLeaveOneWinner(t *testing.T) {
	srv := fleettest.Start(t)
	replicas := []*fleet.Redis{open(t, srv.URL, "a"), open(t, srv.URL, "b"), open(t, srv.URL, "c")}
	ctx := context.Background()
	for k := range 50 {
		key := fmt.Sprint("k-", k)
		var mu sync.Mutex
		winners := 0
		var wg sync.WaitGroup
		for _, r := range replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stored, err := r.Claim(ctx, key)
				if err == nil && stored == nil {
					mu.Lock()
					winners++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		require.Equal(t, 1, winners, key)
	}
}

func TestObservationsAreCountedPerPredictorAndSeededOnce(t *testing.T) {
	srv := fleettest.Start(t)
	a, b := open(t, srv.URL, "a"), open(t, srv.URL, "b")
	ctx := context.Background()
	require.NoError(t, a.SeedObservations(ctx, "p-1", map[string]int64{"mini": 5}))
	require.NoError(t, b.SeedObservations(ctx, "p-1", map[string]int64{"mini": 9, "opus": 2}), "mini was seeded first by a")
	for i := range 3 {
		_, err := a.Settle(ctx, fmt.Sprint("o-", i), fleet.Answer{Quality: 1}, "mini", []string{"p-1", "p-2"}, false)
		require.NoError(t, err)
	}
	n, err := b.Observations(ctx, "p-1")
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"mini": 8, "opus": 2}, n)
	n, err = b.Observations(ctx, "p-2")
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"mini": 3}, n)
}

func TestHealthFollowsRedis(t *testing.T) {
	srv := fleettest.Start(t)
	a := open(t, srv.URL, "a")
	ctx := context.Background()
	_, err := a.Claim(ctx, "x")
	require.NoError(t, err)
	require.NoError(t, a.Health())
	srv.Stop()
	_, err = a.Claim(ctx, "y")
	require.Error(t, err)
	assert.ErrorContains(t, a.Health(), "redis unreachable")
	srv.Restart(t)
	_, err = a.Claim(ctx, "y")
	require.NoError(t, err)
	assert.NoError(t, a.Health())

	// a replica started while Redis is down opens, degraded
	srv.Stop()
	down, err := fleet.Open(ctx, fleet.Options{URL: srv.URL, Owner: "late"})
	require.NoError(t, err)
	defer down.Close()
	assert.Error(t, down.Health())
	_, err = fleet.Open(ctx, fleet.Options{URL: "http://nope"})
	assert.ErrorContains(t, err, "redis")
}

// The rollout store: a batch of outcomes counts once however often it is
// sent, a stage moves once however many replicas ask, the first mixing
// variance stays, and all of it survives a restart of Redis.
func TestRolloutProgressIsAddedOnceAndMovedOnce(t *testing.T) {
	srv := fleettest.Start(t)
	ctx := context.Background()
	store := func(owner string) *fleet.Rollouts {
		s, err := open(t, srv.URL, owner).Rollouts()
		require.NoError(t, err)
		return s
	}
	a, b := store("a"), store("b")
	var delta [2]rollout.Sums
	delta[0].Add(1, 0.002, false)
	delta[0].Add(0.5, 0.004, true)
	delta[1].Add(0.25, 0.001, false)
	for range 3 { // a retry of a batch whose answer was lost
		_, err := a.Add(ctx, "exp:1", 1, delta)
		require.NoError(t, err)
	}
	p, err := b.Add(ctx, "exp:1", 1, delta) // b's first batch: counts
	require.NoError(t, err)
	assert.Equal(t, int64(4), p.Arms[0].N)
	assert.InDelta(t, 3.0, p.Arms[0].Q, 1e-12)
	assert.InDelta(t, 2.5, p.Arms[0].QQ, 1e-12)
	assert.InDelta(t, 0.012, p.Arms[0].C, 1e-12)
	assert.InDelta(t, 2.0, p.Arms[0].Err, 1e-12)
	assert.Equal(t, int64(2), p.Arms[1].N)
	assert.Equal(t, 0, p.Stage)

	tr := rollout.Transition{Time: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC), From: 0.1, To: 0.5, Reason: "held"}
	p, err = a.Move(ctx, "exp:1", 0, 1, tr)
	require.NoError(t, err)
	assert.Equal(t, 1, p.Stage)
	assert.Equal(t, int64(4), p.StageStart)
	p, err = b.Move(ctx, "exp:1", 0, 1, rollout.Transition{Reason: "held too"})
	require.NoError(t, err)
	assert.Equal(t, []rollout.Transition{tr}, p.Transitions, "the second move from stage 0 does nothing")

	v, err := a.Fix(ctx, "exp:1", 1, 0.25)
	require.NoError(t, err)
	assert.Equal(t, 0.25, v)
	v, err = b.Fix(ctx, "exp:1", 1, 0.5)
	require.NoError(t, err)
	assert.Equal(t, 0.25, v, "the first variance stays")

	srv.Restart(t)
	p, err = store("c").Add(ctx, "exp:1", 0, [2]rollout.Sums{})
	require.NoError(t, err)
	assert.Equal(t, 1, p.Stage)
	assert.Equal(t, []float64{0, 0.25}, p.Tau2)
	assert.Equal(t, []rollout.Transition{tr}, p.Transitions)
	other, err := a.Add(ctx, "exp:2", 0, [2]rollout.Sums{})
	require.NoError(t, err)
	assert.Equal(t, rollout.Progress{}, other, "another rollout starts at its first stage")
}

// A rollout reverted fleet-wide stays reverted when Redis loses its data
// (restarted without its append-only file): the next sync puts back what
// the replica knew, and a replica starting afterwards reads it.
func TestARevertedRolloutSurvivesRedisLosingIt(t *testing.T) {
	srv := fleettest.Start(t)
	ctx := context.Background()
	spec := rollout.ExperimentSpec{Name: "r", Unit: rollout.UnitUser, Salt: "s",
		Arms: []rollout.ArmSpec{{Name: "control", Policy: "p"}, {Name: "treatment", Policy: "q"}},
		Rollout: &rollout.Spec{Treatment: "treatment", Control: "control", Stages: []float64{0.1, 0.5, 1}, MinOutcomes: 50,
			Guardrails: []rollout.Guardrail{{Metric: rollout.MetricQuality, Tolerance: 0.05}}}}
	known := func(string) bool { return true }
	replica := func(owner string) *rollout.Experiment {
		x, err := rollout.NewExperiment(spec, known)
		require.NoError(t, err)
		store, err := open(t, srv.URL, owner).Rollouts()
		require.NoError(t, err)
		require.NoError(t, x.Share(store))
		return x
	}
	version := func(string) string { return "1" }
	a := replica("a")
	for i := 0; i < 400; i++ {
		arm := i % 2
		q := 1.0
		if arm == 1 && i%4 == 1 {
			q = 0 // the treatment is clearly worse
		}
		a.Observe(arm, q, 0.001, false)
		if i%50 == 49 {
			require.NoError(t, a.Sync(ctx))
		}
	}
	require.NoError(t, a.Sync(ctx))
	st := a.State(version)
	require.Equal(t, "reverted", st.State, "%+v", st.Rollout)

	rdb := goredis.NewClient(&goredis.Options{Addr: strings.TrimPrefix(srv.URL, "redis://")})
	defer rdb.Close()
	require.NoError(t, rdb.FlushAll(ctx).Err())
	require.NoError(t, a.Sync(ctx))
	assert.Equal(t, st.Rollout.Transitions, a.State(version).Rollout.Transitions, "the replica's state is kept")
	b := replica("b")
	require.NoError(t, b.Sync(ctx))
	assert.Equal(t, "reverted", b.State(version).State, "put back in Redis for the others")
	assert.Equal(t, st.Rollout.Transitions, b.State(version).Rollout.Transitions)
}
