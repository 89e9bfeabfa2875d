// Package rollout is experiment assignment and the staged-rollout engine,
// without HTTP: an Experiment assigns a unit (a user, a tenant, a session
// or a request) to an arm by a salted hash, and a Rollout grows the
// treatment's share stage by stage, watching guardrails with an
// always-valid sequential test and returning all traffic to control on a
// breach. The server assigns each request through it and reports each
// outcome to it.
package rollout

import (
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

// armStats are running sums of one arm's outcomes in the current stage.
type armStats struct {
	n                int
	q, qq, c, cc, er float64
}

func (a *armStats) add(q, c float64, failed bool) {
	a.n++
	a.q += q
	a.qq += q * q
	a.c += c
	a.cc += c * c
	if failed {
		a.er++
	}
}

func (a *armStats) mean(sum float64) float64 { return sum / float64(a.n) }

func (a *armStats) variance(sum, sumsq float64) float64 {
	if a.n < 2 {
		return 0.25
	}
	m := sum / float64(a.n)
	return math.Max((sumsq-float64(a.n)*m*m)/float64(a.n-1), 1e-12)
}

// Rollout is the live state of a staged rollout. It is safe for
// concurrent use.
type Rollout struct {
	spec        Spec
	treat, ctrl int // arm indices
	mu          sync.Mutex
	stage       int // index into spec.Stages; -1 when reverted
	share       float64
	since       [2]armStats // treatment, control outcomes since the rollout began
	stageN      int         // treatment outcomes in the current stage
	transitions []Transition
	logf        func(t Transition)
	tau2        []float64 // per guardrail, fixed at its first test
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
	r.share = spec.Stages[0]
	return r, nil
}

// Arm assigns a unit draw u: treatment below the current share, else control.
func (r *Rollout) Arm(u float64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u < r.share {
		return r.treat
	}
	return r.ctrl
}

// Observe adds an outcome of an arm (by index) and advances or reverts the
// rollout; outcomes of other arms, or after a revert, are ignored.
func (r *Rollout) Observe(arm int, q, c float64, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stage < 0 {
		return
	}
	switch arm {
	case r.treat:
		r.since[0].add(q, c, failed)
		r.stageN++
	case r.ctrl:
		r.since[1].add(q, c, failed)
	default:
		return
	}
	if breach := r.breached(); breach != "" {
		r.move(-1, 0, "guardrail breached: "+breach)
		return
	}
	// advance only once the guardrails can judge (both arms have enough outcomes)
	if r.stageN >= r.spec.MinOutcomes && r.since[0].n >= minGuardrailN && r.since[1].n >= minGuardrailN && r.stage+1 < len(r.spec.Stages) {
		r.move(r.stage+1, r.spec.Stages[r.stage+1], fmt.Sprintf("stage held for %d treatment outcomes with no guardrail breached", r.stageN))
	}
}

func (r *Rollout) move(stage int, share float64, reason string) {
	t := Transition{Time: time.Now().UTC(), From: r.share, To: share, Reason: reason}
	r.stage, r.share, r.stageN = stage, share, 0
	r.transitions = append(r.transitions, t)
	if r.logf != nil {
		r.logf(t)
	}
}

// breached runs the always-valid test of every guardrail on the outcomes
// since the rollout began. Each is a mixture sequential probability ratio
// test (normal mixture, Johari et al.) of H0: the difference treatment −
// control equals the tolerated change, against the two-sided alternative;
// it rejects when the likelihood ratio exceeds 1/alpha, which keeps the
// false-alarm rate at alpha however often it is checked, and breaches when
// the difference lies beyond the tolerance.
func (r *Rollout) breached() string {
	t, c := &r.since[0], &r.since[1]
	if t.n < minGuardrailN || c.n < minGuardrailN {
		return ""
	}
	if r.tau2 == nil {
		r.tau2 = make([]float64, len(r.spec.Guardrails))
	}
	for i, g := range r.spec.Guardrails {
		// d is the excess over the tolerated change: a breach is d > 0 with
		// confidence, for "higher is worse" metrics (quality is negated)
		var d, v, scale float64
		switch g.Metric {
		case MetricQuality:
			d = (c.mean(c.q) - t.mean(t.q)) - g.Tolerance
			v = t.variance(t.q, t.qq)/float64(t.n) + c.variance(c.q, c.qq)/float64(c.n)
			scale = math.Max(g.Tolerance, 0.01)
		case MetricCost:
			k := 1 + g.Tolerance // treatment may cost up to k times control
			d = t.mean(t.c) - k*c.mean(c.c)
			v = t.variance(t.c, t.cc)/float64(t.n) + k*k*c.variance(c.c, c.cc)/float64(c.n)
			scale = math.Max(g.Tolerance, 0.01) * math.Abs(c.mean(c.c))
		case MetricErrorRate:
			pt, pc := t.mean(t.er), c.mean(c.er)
			d = (pt - pc) - g.Tolerance
			v = math.Max(pt*(1-pt), 1e-4)/float64(t.n) + math.Max(pc*(1-pc), 1e-4)/float64(c.n)
			scale = math.Max(g.Tolerance, 0.01)
		}
		if d <= 0 || !(v > 0) {
			continue
		}
		if r.tau2[i] == 0 {
			// the mixing variance is fixed once, on the scale of the effects
			// that matter, so the likelihood ratio stays a martingale
			r.tau2[i] = math.Max(scale*scale, 1e-12)
		}
		tau2 := r.tau2[i]
		logLambda := 0.5*math.Log(v/(v+tau2)) + tau2*d*d/(2*v*(v+tau2))
		if logLambda >= math.Log(1/r.spec.Alpha) {
			return fmt.Sprintf("%s: treatment exceeds the tolerated change by %.4g (%d and %d outcomes)", g.Metric, d, t.n, c.n)
		}
	}
	return ""
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
	st := State{Share: r.share, Stage: r.stage, State: "rolling out", Transitions: append([]Transition(nil), r.transitions...)}
	switch {
	case r.stage < 0:
		st.State = "reverted"
	case r.stage == len(r.spec.Stages)-1:
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
