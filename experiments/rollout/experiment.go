package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync/atomic"

	"switchyard/datasets"
)

// Unit keys an experiment can assign by.
const (
	UnitUser    = "user"
	UnitTenant  = "tenant"
	UnitSession = "session"
	UnitRequest = "request"
)

// ExperimentSpec is an experiment of the configuration.
type ExperimentSpec struct {
	Name string    `json:"name"`
	Unit string    `json:"unit"` // user, tenant, session or request
	Salt string    `json:"salt"`
	Arms []ArmSpec `json:"arms"`
	// Rollout, when set, decides the split instead of the weights: the
	// treatment's share grows stage by stage and falls to 0 on a breach.
	Rollout *Spec `json:"rollout,omitempty"`
}

// ArmSpec is one arm: a policy and its share of the units.
type ArmSpec struct {
	Name   string  `json:"name"`
	Policy string  `json:"policy"`
	Weight float64 `json:"weight"`
}

// Experiment is a running experiment with its live per-arm counts.
type Experiment struct {
	Spec   ExperimentSpec
	bounds []float64 // cumulative weights
	counts []atomic.Int64
	ro     *Rollout
}

// Arm assigns a unit to an arm (by index): a hash of the salt and the unit,
// so a unit stays in its arm across requests, restarts and replicas.
func (e *Experiment) Arm(unit string) int {
	u := datasets.UnitDraw(e.Spec.Salt, unit)
	if e.ro != nil {
		return e.ro.Arm(u)
	}
	for i, b := range e.bounds {
		if u < b {
			return i
		}
	}
	return len(e.bounds) - 1
}

// Resume continues old in e when both have the same specification (a
// reloaded configuration that left the experiment alone): the rollout's
// state and the arms' counts carry over, and feedback for decisions made
// before the reload reaches the same rollout. It reports whether it did.
func (e *Experiment) Resume(old *Experiment) bool {
	if !reflect.DeepEqual(old.Spec, e.Spec) {
		return false
	}
	e.ro = old.ro
	for i := range e.counts {
		e.counts[i].Store(old.counts[i].Load())
	}
	return true
}

// Assign is Arm for a request: it also counts the decision in the arm.
func (e *Experiment) Assign(unit string) int {
	i := e.Arm(unit)
	e.counts[i].Add(1)
	return i
}

// Observe reports an outcome of a decision in arm i to the experiment's
// rollout, if it has one.
func (e *Experiment) Observe(i int, quality, cost float64, failed bool) {
	if e.ro != nil {
		e.ro.Observe(i, quality, cost, failed)
	}
}

// Share keeps the experiment's rollout, if it has one, in store (Rollout.Share),
// under the experiment's name and a hash of its specification: replicas
// with the same experiment share one rollout, which a restart resumes,
// and a changed experiment starts a new one.
func (e *Experiment) Share(store Store) error {
	if e.ro == nil {
		return nil
	}
	spec, err := json.Marshal(e.Spec)
	if err != nil {
		return fmt.Errorf("experiment %q: %w", e.Spec.Name, err)
	}
	sum := sha256.Sum256(spec)
	e.ro.Share(store, e.Spec.Name+":"+hex.EncodeToString(sum[:8]))
	return nil
}

// Sync brings the experiment's shared rollout up to date (Rollout.Sync).
func (e *Experiment) Sync(ctx context.Context) error {
	if e.ro == nil {
		return nil
	}
	if err := e.ro.Sync(ctx); err != nil {
		return fmt.Errorf("experiment %q: %w", e.Spec.Name, err)
	}
	return nil
}

// Watch calls log with every transition of the experiment's rollout.
func (e *Experiment) Watch(log func(exp string, t Transition)) {
	if e.ro != nil {
		name := e.Spec.Name
		e.ro.Watch(func(t Transition) { log(name, t) })
	}
}

// State is the experiment now, with each arm's policy version as
// version gives it.
func (e *Experiment) State(version func(policy string) string) ExperimentState {
	st := ExperimentState{Name: e.Spec.Name, Unit: e.Spec.Unit, State: "running"}
	if e.ro != nil {
		rs := e.ro.State()
		st.Rollout, st.State = &rs, rs.State
	}
	for i, a := range e.Spec.Arms {
		st.Arms = append(st.Arms, ArmState{Name: a.Name, Policy: a.Policy, PolicyVersion: version(a.Policy),
			Weight: a.Weight, Decisions: e.counts[i].Load()})
	}
	return st
}

// NewExperiment validates an experiment of the configuration; isPolicy
// says which policy names are defined.
func NewExperiment(e ExperimentSpec, isPolicy func(name string) bool) (*Experiment, error) {
	switch {
	case e.Name == "":
		return nil, errors.New("an experiment has no name")
	case e.Salt == "":
		return nil, fmt.Errorf("experiment %q: salt is empty", e.Name)
	case len(e.Arms) < 2:
		return nil, fmt.Errorf("experiment %q: needs at least two arms", e.Name)
	}
	switch e.Unit {
	case UnitUser, UnitTenant, UnitSession, UnitRequest:
	default:
		return nil, fmt.Errorf("experiment %q: unit %q is not one of user, tenant, session, request", e.Name, e.Unit)
	}
	x := &Experiment{Spec: e, counts: make([]atomic.Int64, len(e.Arms))}
	var sum float64
	arms := map[string]bool{}
	for _, a := range e.Arms {
		if a.Name == "" || arms[a.Name] {
			return nil, fmt.Errorf("experiment %q: arm names must be present and distinct (%q)", e.Name, a.Name)
		}
		arms[a.Name] = true
		if !isPolicy(a.Policy) {
			return nil, fmt.Errorf("experiment %q: arm %q names policy %q, which is not defined", e.Name, a.Name, a.Policy)
		}
		if math.IsNaN(a.Weight) || a.Weight < 0 {
			return nil, fmt.Errorf("experiment %q: arm %q: weight %v must be non-negative", e.Name, a.Name, a.Weight)
		}
		sum += a.Weight
		x.bounds = append(x.bounds, sum)
	}
	if e.Rollout != nil {
		ro, err := New(*e.Rollout, e.Arms)
		if err != nil {
			return nil, fmt.Errorf("experiment %q: %w", e.Name, err)
		}
		x.ro = ro
		return x, nil // the rollout decides the split
	}
	if math.Abs(sum-1) > 1e-9 {
		return nil, fmt.Errorf("experiment %q: arm weights sum to %v, not 1", e.Name, sum)
	}
	return x, nil
}

// ExperimentState is an experiment as the server shows it (GET /v1/experiments).
type ExperimentState struct {
	Name    string     `json:"name"`
	Unit    string     `json:"unit"`
	State   string     `json:"state"`
	Arms    []ArmState `json:"arms"`
	Rollout *State     `json:"rollout,omitempty"`
}

// ArmState is an arm with its live count of decisions.
type ArmState struct {
	Name          string  `json:"name"`
	Policy        string  `json:"policy"`
	PolicyVersion string  `json:"policy_version"`
	Weight        float64 `json:"weight"`
	Decisions     int64   `json:"decisions"`
}
