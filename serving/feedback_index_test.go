package serving

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
	"switchyard/datasets/synthetic"
	"switchyard/experiments/rollout"
)

func TestDecisionIndexRemembersTheMostRecentAndForgetsTheRest(t *testing.T) {
	x := newDecisionIndex(100)
	exp := &rollout.Experiment{}
	for i := range 250 {
		if i%2 == 0 {
			x.addIn(fmt.Sprintf("d%d", i), fmt.Sprintf("m%d", i%3), exp, i%4)
		} else {
			x.add(fmt.Sprintf("d%d", i), fmt.Sprintf("m%d", i%3))
		}
	}
	x.add("d249", "other") // a repeated id keeps its first entry
	for i := range 250 {
		e, stored, done, err := x.claim(fmt.Sprintf("d%d", i))
		if i < 150 {
			require.ErrorIs(t, err, errUnknownDecision, "d%d was evicted", i)
			continue
		}
		require.NoError(t, err, "d%d", i)
		assert.Nil(t, stored)
		assert.Equal(t, fmt.Sprintf("m%d", i%3), e.model)
		if i%2 == 0 {
			assert.Same(t, exp, e.exp)
			assert.Equal(t, i%4, e.arm)
		} else {
			assert.Nil(t, e.exp)
		}
		done(&answer{quality: float64(i) / 250, costUSD: 1e-6 * float64(i)})
	}
	assert.Len(t, x.byID, 100)
	assert.Len(t, x.order, 100)
	assert.Len(t, x.inExp, 50)
	// stored answers are returned to repeated feedback, and forgotten with
	// their decisions
	e, stored, _, err := x.claim("d200")
	require.NoError(t, err)
	assert.Equal(t, "m2", e.model)
	require.NotNil(t, stored)
	i := 200
	assert.Equal(t, answer{quality: float64(i) / 250, costUSD: 1e-6 * float64(i)}, *stored)
	for i := range 100 {
		x.add(fmt.Sprintf("n%d", i), "m0")
	}
	assert.Empty(t, x.answers, "every answered decision was evicted")
	assert.Empty(t, x.inExp)
	assert.Empty(t, x.inflight)
}

func TestDecisionIndexFeedbackIsStoredOnce(t *testing.T) {
	x := newDecisionIndex(10)
	x.add("d", "m")
	x.markAnswered("unknown", answer{quality: 1}) // ignored: not remembered
	_, _, _, err := x.claim("unknown")
	require.ErrorIs(t, err, errUnknownDecision)

	// concurrent feedbacks: one claims, the others wait and get its answer;
	// a failed store (done(nil)) lets the next one claim
	_, _, done, err := x.claim("d")
	require.NoError(t, err)
	var wg sync.WaitGroup
	results := make(chan *answer, 8)
	for range 8 {
		wg.Go(func() {
			_, stored, done2, err := x.claim("d")
			if err != nil {
				results <- nil
				return
			}
			if done2 != nil {
				done2(&answer{quality: 0.5})
				results <- &answer{quality: 0.5}
				return
			}
			results <- stored
		})
	}
	done(nil) // the first store failed
	wg.Wait()
	close(results)
	n := 0
	for r := range results {
		require.NotNil(t, r)
		assert.Equal(t, 0.5, r.quality)
		n++
	}
	assert.Equal(t, 8, n)
	_, stored, done, err := x.claim("d")
	require.NoError(t, err)
	assert.Nil(t, done)
	assert.Equal(t, 0.5, stored.quality)
}

// At a restart, outcomes of decisions too old to remember must not push
// the recent decisions out of the index; answered recent decisions answer
// repeated feedback; an outcome stored after the oldest remembered decision
// file was opened is remembered even when its decision never reached the
// decision log.
func TestRememberOutcomesKeepsTheRecentDecisions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxRemembered = 100
	srv, err := New(cfg, Deps{Catalogue: synthetic.DefaultCatalogue()})
	require.NoError(t, err)
	since := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var recent []datasets.DecisionKey
	for i := range 100 {
		recent = append(recent, datasets.DecisionKey{DecisionID: fmt.Sprintf("new%d", i), Chosen: "mini"})
	}
	srv.RememberDecisions(recent)
	var outs []datasets.OutcomeRecord
	for i := range 150 { // decisions older than the remembered ones
		outs = append(outs, datasets.OutcomeRecord{DecisionID: fmt.Sprintf("old%d", i), Model: "flash", Quality: 1,
			Source: datasets.SourceOnline, Time: since.Add(-time.Hour)})
	}
	outs = append(outs,
		datasets.OutcomeRecord{DecisionID: "new7", Model: "mini", Quality: 0.25, CostUSD: 1e-4, Source: datasets.SourceOnline, Time: since.Add(time.Minute)},
		datasets.OutcomeRecord{DecisionID: "lost", Model: "flash", Quality: 0.5, Source: datasets.SourceOnline, Time: since.Add(2 * time.Minute)},
		datasets.OutcomeRecord{DecisionID: "benchmark", Model: "flash", Quality: 0.5, Source: datasets.SourceBenchmark, Time: since.Add(time.Hour)})
	srv.RememberOutcomes(outs, since)

	for i := range 150 {
		_, _, _, err := srv.index.claim(fmt.Sprintf("old%d", i))
		require.ErrorIs(t, err, errUnknownDecision, "old%d", i)
	}
	_, _, _, err = srv.index.claim("benchmark")
	require.ErrorIs(t, err, errUnknownDecision, "only online and shadow outcomes are feedback")
	e, stored, _, err := srv.index.claim("new7")
	require.NoError(t, err)
	assert.Equal(t, "mini", e.model)
	require.NotNil(t, stored, "answered before the restart")
	assert.Equal(t, answer{quality: 0.25, costUSD: 1e-4}, *stored)
	_, stored, _, err = srv.index.claim("lost")
	require.NoError(t, err, "its decision never reached the log, its outcome is recent")
	require.NotNil(t, stored)
	// "lost" took the oldest slot: new0 is forgotten, new1..new99 are not
	_, _, _, err = srv.index.claim("new0")
	require.ErrorIs(t, err, errUnknownDecision)
	for i := 1; i < 100; i++ {
		if i == 7 {
			continue
		}
		_, stored, done, err := srv.index.claim(fmt.Sprintf("new%d", i))
		require.NoError(t, err, "new%d", i)
		require.Nil(t, stored)
		done(nil)
	}
}
