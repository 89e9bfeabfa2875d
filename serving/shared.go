package serving

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"switchyard/datasets"
	"switchyard/experiments/rollout"
	"switchyard/serving/fleet"
)

// Fleet is the state shared with the other replicas (fleet.Redis); a
// server without one keeps it all in its own memory.
type Fleet interface {
	PutDecision(id string, d fleet.Decision)
	Decision(ctx context.Context, id string, wait time.Duration) (fleet.Decision, bool, error)
	Claim(ctx context.Context, key string) (*fleet.Answer, error)
	Settle(ctx context.Context, key string, a fleet.Answer, model string, versions []string, onlyNew bool) (bool, error)
	Release(ctx context.Context, key string) error
	Offer(ctx context.Context, ids []string, ds []fleet.Decision) error
	Observations(ctx context.Context, version string) (map[string]int64, error)
	SeedObservations(ctx context.Context, version string, counts map[string]int64) error
	Health() error
}

// Waits of the feedback path on the fleet: for a decision another replica
// made and has not shared yet (decisions are shared in batches, a
// millisecond apart), and for another replica's claim on the same outcome.
const (
	sharedDecisionWait = 250 * time.Millisecond
	pendingClaimWait   = 2 * time.Second
)

// errFleetUnreachable answers feedback this server cannot take while the
// fleet's shared state is unreachable: nothing is acknowledged, the
// gateway retries.
var errFleetUnreachable = errors.New("fleet state unreachable")

// unsettled are outcomes stored and acknowledged while Redis could not be
// told, to tell it when it answers again.
type unsettled struct {
	mu   sync.Mutex
	list []settlement
}

type settlement struct {
	key, model string
	answer     fleet.Answer
	versions   []string
}

// maxUnsettled bounds the outcomes kept for telling Redis (about 30 MB):
// in a longer outage the oldest are given up (they stay stored in the log;
// only their fleet-wide answer is missing, so a repeat of their feedback
// through another replica could be stored a second time).
const maxUnsettled = 200_000

// add keeps s for telling Redis; it returns how many of the oldest it gave
// up to stay within maxUnsettled.
func (u *unsettled) add(s settlement) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.list = append(u.list, s)
	if len(u.list) <= maxUnsettled {
		return 0
	}
	n := maxUnsettled / 10
	u.list = append(u.list[:0], u.list[n:]...)
	return n
}

func (u *unsettled) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.list)
}

// head returns the oldest outcomes to tell Redis of; they stay unsettled
// (and the server degraded) until drop removes them once told.
func (u *unsettled) head() []settlement {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]settlement(nil), u.list...)
}

func (u *unsettled) drop(n int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.list = append(u.list[:0], u.list[n:]...)
}

// shareDecision tells the fleet of a decision, for feedback through
// another replica.
func (s *Server) shareDecision(id string, d fleet.Decision) {
	if s.fleet == nil {
		return
	}
	s.fleet.PutDecision(id, d)
}

// adoptShared looks up a decision another replica made and remembers it
// here; false when no replica shared it.
func (s *Server) adoptShared(ctx context.Context, id string) (bool, error) {
	d, ok, err := s.fleet.Decision(ctx, id, sharedDecisionWait)
	if err != nil || !ok {
		if err != nil {
			err = errFleetUnreachable
		}
		return false, err
	}
	var exp *rollout.Experiment
	arm := 0
	if d.Experiment != "" {
		if rt := s.routing.Load(); rt != nil {
			for _, e := range rt.Experiments {
				if e.Spec.Name != d.Experiment {
					continue
				}
				for i, a := range e.Spec.Arms {
					if a.Name == d.Arm {
						exp, arm = e, i
					}
				}
			}
		}
	}
	s.index.addIn(id, d.Model, exp, arm)
	if d.Tenant != "" {
		s.index.charged(id, charge{tenant: d.Tenant, expected: d.ExpectedCostUSD})
	}
	if d.Shadow != "" {
		s.index.add(id+shadowSuffix, d.Shadow)
	}
	return true, nil
}

// claimShared takes the fleet-wide claim on an outcome. It returns the
// answer another replica stored, whether this server now holds the claim,
// and errFleetUnreachable-free errors only for a claim still pending
// elsewhere; with Redis unreachable it claims nothing and the outcome is
// settled later (reconcile).
func (s *Server) claimShared(ctx context.Context, key string) (stored *fleet.Answer, claimed bool, err error) {
	deadline := time.Now().Add(pendingClaimWait)
	for {
		a, err := s.fleet.Claim(ctx, key)
		switch {
		case a != nil:
			return a, false, nil
		case err == nil:
			return nil, true, nil
		case !errors.Is(err, fleet.ErrPending):
			return nil, false, nil // unreachable: store locally, settle later
		case time.Now().After(deadline):
			return nil, false, err
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// settleShared records a stored outcome fleet-wide (or remembers to).
func (s *Server) settleShared(ctx context.Context, key, model string, a fleet.Answer, claimed bool) {
	set := settlement{key: key, model: model, answer: a, versions: s.predictorVersions()}
	if claimed {
		if _, err := s.fleet.Settle(ctx, set.key, set.answer, set.model, set.versions, false); err == nil {
			return
		}
	}
	if n := s.unsettled.add(set); n > 0 {
		s.log.Warn("fleet: Redis unreachable for long; the oldest outcomes not yet told to it are given up (they stay in the log)", "count", n)
	}
}

// predictorVersions are the distinct predictor versions of the routing
// served now (the keys of the fleet's outcome counts).
func (s *Server) predictorVersions() []string {
	var vs []string
	for _, r := range s.routers() {
		if v := r.Metadata().Version; !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	return vs
}

// Unsettled marks outcomes stored by this replica's writer but perhaps not
// told to the fleet (recovered from the write-ahead log of a killed
// process): the next SyncFleet tells it, replacing this replica's own
// left-over claims, so that the fleet answers their feedback with them.
func (s *Server) Unsettled(outcomes []datasets.OutcomeRecord) {
	versions := s.predictorVersions()
	for _, o := range outcomes {
		key, ok := outcomeKey(o)
		if !ok {
			continue
		}
		s.unsettled.add(settlement{key: key, model: o.Model, answer: fleet.Answer{Quality: o.Quality, CostUSD: o.CostUSD}, versions: versions})
	}
}

// fleetHealth is nil while Redis answers and every outcome acknowledged
// during an outage has been told to it.
func (s *Server) fleetHealth() error {
	if err := s.fleet.Health(); err != nil {
		return err
	}
	if n := s.unsettled.len(); n > 0 {
		return fmt.Errorf("%d outcomes stored while Redis was unreachable (or before a restart) are not yet told to it", n)
	}
	return nil
}

// SyncFleet tells the fleet of the outcomes stored while it was unreachable
// or recovered at start (an outcome another replica stored meanwhile is
// counted as a conflict and keeps the first answer), and takes the fleet's outcome
// counts for the predictors served. The service calls it every second.
func (s *Server) SyncFleet(ctx context.Context) {
	if s.fleet == nil {
		return
	}
	pending := s.unsettled.head()
	for i, p := range pending {
		stored, err := s.fleet.Settle(ctx, p.key, p.answer, p.model, p.versions, true)
		if err != nil {
			s.unsettled.drop(i)
			return
		}
		if !stored {
			s.log.Warn("fleet: an outcome stored here while Redis was unreachable, or before a restart, was also stored by another replica; the first stays",
				"key", p.key)
			if m := s.metrics; m != nil {
				m.FleetConflicts.Inc()
			}
		}
	}
	s.unsettled.drop(len(pending))
	for _, v := range s.predictorVersions() {
		counts, err := s.fleet.Observations(ctx, v)
		if err != nil {
			return
		}
		for _, r := range s.routers() {
			if r.Metadata().Version != v {
				continue
			}
			for model, n := range counts {
				r.SetObserved(model, n)
			}
		}
	}
}

// SeedFleet offers the fleet the decisions this server found in the logs
// at start (a replica killed before sharing its last decisions shares them
// now; what is shared is not replaced) and the outcome counts (kept unless
// a replica offered them first).
func (s *Server) SeedFleet(ctx context.Context, decisions []datasets.DecisionKey) error {
	if s.fleet == nil {
		return nil
	}
	ids := make([]string, len(decisions))
	ds := make([]fleet.Decision, len(decisions))
	for i, d := range decisions {
		ids[i], ds[i] = d.DecisionID, fleet.Decision{Model: d.Chosen}
	}
	if err := s.fleet.Offer(ctx, ids, ds); err != nil {
		return err
	}
	for _, r := range s.routers() {
		counts := map[string]int64{}
		meta := r.Metadata()
		for _, m := range r.Models() {
			if n := r.Observations(m) - int64(meta.Observations[m]); n > 0 {
				counts[m] = n
			}
		}
		if err := s.fleet.SeedObservations(ctx, meta.Version, counts); err != nil {
			return err
		}
	}
	return nil
}

// rolloutSyncTimeout bounds the first sync of a routing's rollouts with the
// fleet, so that a replica starts (or reloads) at the fleet's stage.
const rolloutSyncTimeout = time.Second

// shareRollouts keeps rt's rollouts in the fleet's store and takes their
// progress from it now.
func (s *Server) shareRollouts(rt *Routing) {
	if s.rollouts == nil {
		return
	}
	for _, x := range rt.Experiments {
		if err := x.Share(s.rollouts); err != nil {
			s.log.Error("fleet: rollout not shared", "err", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), rolloutSyncTimeout)
	defer cancel()
	s.syncRollouts(ctx, rt)
}

// SyncRollouts adds the outcomes this replica observed to the fleet's
// rollouts and takes their stages from it (each transition is made once,
// by whichever replica first sees its cause). The service calls it four
// times a second.
func (s *Server) SyncRollouts(ctx context.Context) {
	if rt := s.acquireRouting(); rt != nil {
		defer s.retire(rt)
		s.syncRollouts(ctx, rt)
	}
}

func (s *Server) syncRollouts(ctx context.Context, rt *Routing) {
	for _, x := range rt.Experiments {
		if err := x.Sync(ctx); err != nil {
			s.log.Debug("fleet: rollout not synced; it holds its stage until Redis answers", "err", err)
		}
	}
}
