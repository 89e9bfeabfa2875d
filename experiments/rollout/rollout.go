// Package rollout is experiment assignment and the staged-rollout engine,
// without HTTP: an Experiment assigns a unit (a user, a tenant, a session
// or a request) to an arm by a salted hash, and a Rollout grows the
// treatment's share stage by stage, watching guardrails with an
// always-valid sequential test and returning all traffic to control on a
// breach. The server assigns each request through it and reports each
// outcome to it.
package rollout

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// Spec stages an experiment's treatment: its share of the units
// grows through Stages, each held until the treatment has MinOutcomes
// outcomes in it, and all traffic returns to control when a guardrail is
// breached with confidence.
type Spec struct {
	Treatment   string      `json:"treatment"` // arm that is rolled out
	Control     string      `json:"control"`   // arm everything else goes to
	Stages      []float64   `json:"stages"`    // increasing shares of units, e.g. [0.1, 0.25, 0.5, 1]
	MinOutcomes int         `json:"min_outcomes"`
	Guardrails  []Guardrail `json:"guardrails"`
	Alpha       float64     `json:"alpha"` // false-alarm rate of each guardrail over the whole rollout (default 0.05)
}

// Guardrail metrics.
const (
	MetricQuality   = "quality"    // average quality: a drop beyond Tolerance breaches
	MetricCost      = "cost"       // average cost per request: a relative rise beyond Tolerance breaches
	MetricErrorRate = "error_rate" // share of feedback with an error: a rise beyond Tolerance breaches
)

// Guardrail is one outcome metric compared with control.
type Guardrail struct {
	Metric    string  `json:"metric"`
	Tolerance float64 `json:"tolerance"` // quality and error rate: absolute; cost: relative to control
}

// Transition is one change of a rollout's stage, logged and shown in
// GET /v1/experiments.
type Transition struct {
	Time   time.Time `json:"time"`
	From   float64   `json:"from_share"`
	To     float64   `json:"to_share"`
	Reason string    `json:"reason"`
}

// Sums are running sums of one arm's outcomes.
type Sums struct {
	N                 int64
	Q, QQ, C, CC, Err float64 // quality, its square, cost, its square, errors
}

// Add adds one outcome.
func (a *Sums) Add(q, c float64, failed bool) {
	a.N++
	a.Q += q
	a.QQ += q * q
	a.C += c
	a.CC += c * c
	if failed {
		a.Err++
	}
}

// Merge adds the sums of b.
func (a *Sums) Merge(b Sums) {
	a.N += b.N
	a.Q += b.Q
	a.QQ += b.QQ
	a.C += b.C
	a.CC += b.CC
	a.Err += b.Err
}

func (a *Sums) mean(sum float64) float64 { return sum / float64(a.N) }

func (a *Sums) variance(sum, sumsq float64) float64 {
	if a.N < 2 {
		return 0.25
	}
	m := sum / float64(a.N)
	return math.Max((sumsq-float64(a.N)*m*m)/float64(a.N-1), 1e-12)
}

// Progress is where a rollout stands: what the replicas of a fleet share
// through a Store.
type Progress struct {
	Stage       int          // index into the spec's Stages; -1 when reverted
	StageStart  int64        // treatment outcomes when the stage began
	Arms        [2]Sums      // treatment, control: outcomes since the rollout began
	Tau2        []float64    // per guardrail, fixed at its first test (0: not yet)
	Transitions []Transition // oldest first
}

// Store keeps the progress of rollouts where every replica of a fleet
// sees it (serving/fleet keeps it in Redis). Outcomes are added in
// batches; a stage changes only by Move, a compare-and-set, so each
// transition happens once however many replicas see its cause.
type Store interface {
	// Add adds delta (treatment, control) to the rollout's sums once:
	// a batch this process already added under seq is not added again
	// (seq 0 adds nothing). It returns the rollout's progress.
	Add(ctx context.Context, key string, seq int64, delta [2]Sums) (Progress, error)
	// Move makes the transition t from stage from to stage to if the
	// rollout is still at from, and returns its progress either way.
	Move(ctx context.Context, key string, from, to int, t Transition) (Progress, error)
	// Fix sets a guardrail's mixing variance unless one is set already
	// and returns the one set.
	Fix(ctx context.Context, key string, guardrail int, tau2 float64) (float64, error)
	// Restore puts p back as the rollout's progress when the store holds
	// fewer transitions than p (it lost them: restarted without its data,
	// or expired) and returns the progress it holds then.
	Restore(ctx context.Context, key string, p Progress) (Progress, error)
}

// Rollout is the live state of a staged rollout. It is safe for
// concurrent use. On its own it keeps its progress in memory and moves
// as outcomes arrive; shared (Share), it adds outcomes to the store's
// progress and moves on what all replicas observed, at each Sync.
type Rollout struct {
	spec        Spec
	treat, ctrl int // arm indices
	mu          sync.Mutex
	p           Progress
	logf        func(t Transition)

	store    Store
	key      string
	syncMu   sync.Mutex // one Sync at a time
	pending  [2]Sums    // outcomes not yet added to the store
	inflight *batch     // outcomes being added (again, if the last try failed)
	seq      int64
	synced   bool // the store's progress has been read once
}

type batch struct {
	seq   int64
	delta [2]Sums
}

// minGuardrailN is the outcomes each arm needs before the guardrails are
// tested and before a stage may advance.
const minGuardrailN = 30

// New validates spec against the experiment's arms and starts the rollout
// at its first stage.
func New(spec Spec, arms []ArmSpec) (*Rollout, error) {
	r := &Rollout{spec: spec, treat: -1, ctrl: -1}
	for i, a := range arms {
		switch a.Name {
		case spec.Treatment:
			r.treat = i
		case spec.Control:
			r.ctrl = i
		}
	}
	if r.treat < 0 || r.ctrl < 0 || r.treat == r.ctrl {
		return nil, fmt.Errorf("rollout: treatment %q and control %q must be two different arms of the experiment", spec.Treatment, spec.Control)
	}
	if len(spec.Stages) == 0 {
		return nil, fmt.Errorf("rollout: no stages")
	}
	prev := 0.0
	for _, s := range spec.Stages {
		if !(s > prev && s <= 1) {
			return nil, fmt.Errorf("rollout: stages must increase within (0,1], got %v", spec.Stages)
		}
		prev = s
	}
	if spec.MinOutcomes < 1 {
		return nil, fmt.Errorf("rollout: min_outcomes %d must be positive", spec.MinOutcomes)
	}
	if r.spec.Alpha == 0 {
		r.spec.Alpha = 0.05
	}
	if !(r.spec.Alpha > 0 && r.spec.Alpha < 1) {
		return nil, fmt.Errorf("rollout: alpha %v must be in (0,1)", spec.Alpha)
	}
	for _, g := range spec.Guardrails {
		switch g.Metric {
		case MetricQuality, MetricCost, MetricErrorRate:
		default:
			return nil, fmt.Errorf("rollout: unknown guardrail metric %q (want quality, cost or error_rate)", g.Metric)
		}
		if !(g.Tolerance >= 0) {
			return nil, fmt.Errorf("rollout: guardrail %s: tolerance %v must be non-negative", g.Metric, g.Tolerance)
		}
	}
	r.p.Tau2 = make([]float64, len(spec.Guardrails))
	return r, nil
}

// share is the treatment's share of the units at a stage.
func (r *Rollout) share(stage int) float64 {
	if stage < 0 {
		return 0
	}
	return r.spec.Stages[stage]
}

// Arm assigns a unit draw u: treatment below the current share, else control.
func (r *Rollout) Arm(u float64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u < r.share(r.p.Stage) {
		return r.treat
	}
	return r.ctrl
}

// Observe adds an outcome of an arm (by index); outcomes of other arms,
// or after a revert, are ignored. On its own the rollout advances or
// reverts at once; shared, the outcome waits for the next Sync.
func (r *Rollout) Observe(arm int, q, c float64, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p.Stage < 0 {
		return
	}
	i := 0
	switch arm {
	case r.treat:
	case r.ctrl:
		i = 1
	default:
		return
	}
	if r.store != nil {
		r.pending[i].Add(q, c, failed)
		return
	}
	r.p.Arms[i].Add(q, c, failed)
	fix := func(g int, tau2 float64) float64 {
		if r.p.Tau2[g] == 0 {
			r.p.Tau2[g] = tau2
		}
		return r.p.Tau2[g]
	}
	if to, reason, ok := r.next(r.p, fix); ok {
		t := Transition{Time: time.Now().UTC(), From: r.share(r.p.Stage), To: r.share(to), Reason: reason}
		r.p.Stage, r.p.StageStart = to, r.p.Arms[0].N
		r.p.Transitions = append(r.p.Transitions, t)
		if r.logf != nil {
			r.logf(t)
		}
	}
}

// next decides the transition the progress p calls for, if any: a revert
// when a guardrail is breached, else the next stage once the current one
// has held for MinOutcomes treatment outcomes and the guardrails can
// judge (both arms have enough outcomes). fix fixes a guardrail's mixing
// variance (0: not now).
func (r *Rollout) next(p Progress, fix func(g int, tau2 float64) float64) (to int, reason string, ok bool) {
	if p.Stage < 0 {
		return 0, "", false
	}
	if breach := r.breached(p, fix); breach != "" {
		return -1, "guardrail breached: " + breach, true
	}
	t, c := p.Arms[0], p.Arms[1]
	if n := t.N - p.StageStart; n >= int64(r.spec.MinOutcomes) && t.N >= minGuardrailN && c.N >= minGuardrailN && p.Stage+1 < len(r.spec.Stages) {
		return p.Stage + 1, fmt.Sprintf("stage held for %d treatment outcomes with no guardrail breached", n), true
	}
	return 0, "", false
}

// breached runs the always-valid test of every guardrail on the outcomes
// since the rollout began. Each is a mixture sequential probability ratio
// test (normal mixture, Johari et al.) of H0: the difference treatment −
// control equals the tolerated change, against the two-sided alternative;
// it rejects when the likelihood ratio exceeds 1/alpha, which keeps the
// false-alarm rate at alpha however often it is checked, and breaches when
// the difference lies beyond the tolerance.
func (r *Rollout) breached(p Progress, fix func(g int, tau2 float64) float64) string {
	t, c := &p.Arms[0], &p.Arms[1]
	if t.N < minGuardrailN || c.N < minGuardrailN {
		return ""
	}
	for i, g := range r.spec.Guardrails {
		// d is the excess over the tolerated change: a breach is d > 0 with
		// confidence, for "higher is worse" metrics (quality is negated)
		var d, v, scale float64
		switch g.Metric {
		case MetricQuality:
			d = (c.mean(c.Q) - t.mean(t.Q)) - g.Tolerance
			v = t.variance(t.Q, t.QQ)/float64(t.N) + c.variance(c.Q, c.QQ)/float64(c.N)
			scale = math.Max(g.Tolerance, 0.01)
		case MetricCost:
			k := 1 + g.Tolerance // treatment may cost up to k times control
			d = t.mean(t.C) - k*c.mean(c.C)
			v = t.variance(t.C, t.CC)/float64(t.N) + k*k*c.variance(c.C, c.CC)/float64(c.N)
			scale = math.Max(g.Tolerance, 0.01) * math.Abs(c.mean(c.C))
		case MetricErrorRate:
			pt, pc := t.mean(t.Err), c.mean(c.Err)
			d = (pt - pc) - g.Tolerance
			v = math.Max(pt*(1-pt), 1e-4)/float64(t.N) + math.Max(pc*(1-pc), 1e-4)/float64(c.N)
			scale = math.Max(g.Tolerance, 0.01)
		}
		if d <= 0 || !(v > 0) {
			continue
		}
		// the mixing variance is fixed once, on the scale of the effects
		// that matter, so the likelihood ratio stays a martingale
		tau2 := p.Tau2[i]
		if tau2 == 0 {
			if tau2 = fix(i, math.Max(scale*scale, 1e-12)); tau2 == 0 {
				continue
			}
		}
		logLambda := 0.5*math.Log(v/(v+tau2)) + tau2*d*d/(2*v*(v+tau2))
		if logLambda >= math.Log(1/r.spec.Alpha) {
			return fmt.Sprintf("%s: treatment exceeds the tolerated change by %.4g (%d and %d outcomes)", g.Metric, d, t.N, c.N)
		}
	}
	return ""
}

// Share keeps the rollout's progress in store under key from now on (the
// outcomes it observed on its own are added at the first Sync). Sharing
// again in the same store does nothing.
func (r *Rollout) Share(store Store, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.store != nil {
		return
	}
	r.store, r.key = store, key
	r.pending = r.p.Arms
	// batches are numbered from the clock: a rollout shared again in the
	// same process (a configuration changed and changed back) numbers
	// above every batch of the earlier one
	r.seq = time.Now().UnixMicro() // exact in Lua's doubles, unlike nanoseconds
}

// Sync adds the outcomes observed here since the last Sync to the shared
// progress, makes the transition the fleet's outcomes call for (once,
// fleet-wide) and takes the shared progress as this replica's. When the
// store cannot be reached the rollout holds its last known stage and
// keeps its outcomes for the next Sync.
func (r *Rollout) Sync(ctx context.Context) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.mu.Lock()
	if r.store == nil {
		r.mu.Unlock()
		return nil
	}
	if r.inflight == nil && r.pending != ([2]Sums{}) {
		r.seq++
		r.inflight = &batch{seq: r.seq, delta: r.pending}
		r.pending = [2]Sums{}
	}
	b := batch{}
	if r.inflight != nil {
		b = *r.inflight
	}
	r.mu.Unlock()
	p, err := r.store.Add(ctx, r.key, b.seq, b.delta)
	if err != nil {
		return fmt.Errorf("rollout: add outcomes: %w", err)
	}
	r.mu.Lock()
	r.inflight = nil
	known := r.p
	synced := r.synced
	r.mu.Unlock()
	if synced && len(p.Transitions) < len(known.Transitions) {
		// the store lost the rollout: what this replica knew goes back
		if p, err = r.store.Restore(ctx, r.key, known); err != nil {
			return fmt.Errorf("rollout: restore: %w", err)
		}
	}
	if p.Stage < -1 || p.Stage >= len(r.spec.Stages) {
		return fmt.Errorf("rollout: the store holds stage %d, outside the %d stages", p.Stage, len(r.spec.Stages))
	}
	p.Tau2 = append(p.Tau2, make([]float64, max(0, len(r.spec.Guardrails)-len(p.Tau2)))...)
	fix := func(g int, tau2 float64) float64 {
		v, err := r.store.Fix(ctx, r.key, g, tau2)
		if err != nil {
			return 0
		}
		return v
	}
	for range 3 { // a transition, and another replica's at the same time
		to, reason, ok := r.next(p, fix)
		if !ok {
			break
		}
		t := Transition{Time: time.Now().UTC(), From: r.share(p.Stage), To: r.share(to), Reason: reason}
		from := p.Stage
		if p, err = r.store.Move(ctx, r.key, from, to, t); err != nil {
			return fmt.Errorf("rollout: move from stage %d: %w", from, err)
		}
		if p.Stage < -1 || p.Stage >= len(r.spec.Stages) {
			return fmt.Errorf("rollout: the store holds stage %d, outside the %d stages", p.Stage, len(r.spec.Stages))
		}
		p.Tau2 = append(p.Tau2, make([]float64, max(0, len(r.spec.Guardrails)-len(p.Tau2)))...)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.synced && r.logf != nil {
		for _, t := range p.Transitions[min(len(r.p.Transitions), len(p.Transitions)):] {
			r.logf(t)
		}
	}
	r.p, r.synced = p, true
	return nil
}

// State is a rollout as the server shows it (GET /v1/experiments).
type State struct {
	Share       float64      `json:"treatment_share"`
	Stage       int          `json:"stage"` // -1: reverted
	State       string       `json:"state"` // rolling out, complete, reverted
	Transitions []Transition `json:"transitions"`
}

// State is the rollout now: its share, stage and transitions.
func (r *Rollout) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := State{Share: r.share(r.p.Stage), Stage: r.p.Stage, State: "rolling out", Transitions: append([]Transition(nil), r.p.Transitions...)}
	switch {
	case r.p.Stage < 0:
		st.State = "reverted"
	case r.p.Stage == len(r.spec.Stages)-1:
		st.State = "complete"
	}
	return st
}

// Watch calls log with every later transition of the rollout.
func (r *Rollout) Watch(log func(t Transition)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logf = log
}
