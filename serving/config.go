package serving

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"switchyard/classifier"
	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/experiments/rollout"
	"switchyard/serving/budget"
)

// FileConfig is the server's configuration file: named, versioned policies
// and the experiments that split traffic between them. See docs/experiments.md for
// a complete example.
type FileConfig struct {
	Catalogue     string                   `json:"catalogue"`      // model catalogue CSV
	DefaultPolicy string                   `json:"default_policy"` // serves requests no experiment takes
	Policies      []PolicySpec             `json:"policies"`
	Experiments   []rollout.ExperimentSpec `json:"experiments"`
	Budgets       *budget.Config           `json:"budgets,omitempty"` // per-tenant spending budgets
	Note          string                   `json:"note,omitempty"`    // for people; not read
}

// PolicySpec is one policy of the configuration (policy.PolicySpec).
type PolicySpec = policy.PolicySpec

// Routing is a validated configuration, ready to serve: a router per
// policy and the experiments. The server swaps it atomically on reload.
type Routing struct {
	Catalogue   *datasets.Catalogue
	Default     *policy.Router
	Policies    map[string]*policy.Router
	Shadows     map[string]string // policy name -> shadow model
	Experiments []*rollout.Experiment
	Budgets     *budget.Config // nil: no budgets
	scorers     []classifier.Scorer
	closers     []io.Closer

	// refs counts the requests routing with it, plus one while it is a
	// server's current routing; at zero it is closed (see Server.store).
	refs    atomic.Int64
	closing sync.Once
}

// Own makes c part of the routing: closed with it.
func (r *Routing) Own(c io.Closer) { r.closers = append(r.closers, c) }

// acquire takes a reference for a request; release gives it back and
// closes the routing after its last one.
func (r *Routing) acquire() { r.refs.Add(1) }

func (r *Routing) release() (closed bool, err error) {
	if r.refs.Add(-1) == 0 {
		return true, r.Close()
	}
	return false, nil
}

// SingleRouting serves one policy, without experiments.
func SingleRouting(r *policy.Router, cat *datasets.Catalogue) *Routing {
	return &Routing{Catalogue: cat, Default: r, Policies: map[string]*policy.Router{r.Config().Name: r}, Shadows: map[string]string{}}
}

// all are the routing's routers, one per policy (none for a nil routing).
func (r *Routing) all() []*policy.Router {
	if r == nil {
		return nil
	}
	out := make([]*policy.Router, 0, len(r.Policies))
	for _, p := range r.Policies {
		out = append(out, p)
	}
	return out
}

// Close releases the routers' scorers and what the routing owns (once).
func (r *Routing) Close() error {
	var errs []error
	r.closing.Do(func() {
		for _, s := range r.scorers {
			errs = append(errs, s.Close())
		}
		for _, c := range r.closers {
			errs = append(errs, c.Close())
		}
	})
	return errors.Join(errs...)
}

// ReadConfig reads and validates a configuration file, loading every
// predictor; relative paths are relative to the file's folder. Nothing is
// returned unless everything is valid.
func ReadConfig(path string, opts policy.LoadOptions) (*Routing, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var fc FileConfig
	if policy.IsConfiguration(b) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fc); err != nil {
			return nil, fmt.Errorf("read config %s: %w", path, err)
		}
	} else { // a policy file of the earlier form: a configuration with its one policy
		f, err := policy.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		fc = FileConfig{Catalogue: f.Catalogue, DefaultPolicy: f.Name, Policies: []PolicySpec{{Config: f.Config, Predictor: f.Predictor}}}
	}
	dir := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	fc.Catalogue = abs(fc.Catalogue)
	for i := range fc.Policies {
		fc.Policies[i].Predictor = abs(fc.Policies[i].Predictor)
	}
	r, err := BuildRouting(fc, opts)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return r, nil
}

// BuildRouting validates fc and loads its predictors.
func BuildRouting(fc FileConfig, opts policy.LoadOptions) (*Routing, error) {
	if fc.Catalogue == "" {
		return nil, errors.New("catalogue is empty")
	}
	cat, err := datasets.ReadCatalogue(fc.Catalogue)
	if err != nil {
		return nil, err
	}
	if len(fc.Policies) == 0 {
		return nil, errors.New("no policies")
	}
	r := &Routing{Catalogue: cat, Policies: map[string]*policy.Router{}, Shadows: map[string]string{}}
	ok := false
	defer func() {
		if !ok {
			r.Close()
		}
	}()
	for _, p := range fc.Policies {
		if _, dup := r.Policies[p.Name]; dup {
			return nil, fmt.Errorf("policy %q defined twice", p.Name)
		}
		if p.Predictor == "" {
			return nil, fmt.Errorf("policy %q: predictor is empty", p.Name)
		}
		o := opts
		o.ModelPath, o.Catalogue, o.Policy = p.Predictor, cat, p.Config
		router, sc, err := policy.LoadRouter(o)
		if err != nil {
			return nil, fmt.Errorf("policy %q: %w", p.Name, err)
		}
		r.scorers = append(r.scorers, sc)
		if p.Shadow != "" {
			if _, known := cat.Lookup(p.Shadow); !known {
				return nil, fmt.Errorf("policy %q: shadow model %q is not in the catalogue", p.Name, p.Shadow)
			}
			r.Shadows[p.Name] = p.Shadow
		}
		r.Policies[p.Name] = router
	}
	def := fc.DefaultPolicy
	if def == "" {
		def = fc.Policies[0].Name
	}
	if r.Default = r.Policies[def]; r.Default == nil {
		return nil, fmt.Errorf("default policy %q is not defined", def)
	}
	if err := fc.Budgets.Validate(); err != nil {
		return nil, err
	}
	r.Budgets = fc.Budgets
	names := map[string]bool{}
	for _, e := range fc.Experiments {
		x, err := rollout.NewExperiment(e, func(name string) bool { return r.Policies[name] != nil })
		if err != nil {
			return nil, err
		}
		if names[e.Name] {
			return nil, fmt.Errorf("experiment %q defined twice", e.Name)
		}
		names[e.Name] = true
		r.Experiments = append(r.Experiments, x)
	}
	ok = true
	return r, nil
}

// unitOf returns the request's value of an experiment's unit key.
func unitOf(unit string, req *RouteRequest, decisionID string) string {
	switch unit {
	case rollout.UnitUser:
		return req.User
	case rollout.UnitTenant:
		return req.Tenant
	case rollout.UnitSession:
		return req.Session
	default:
		if req.RequestID != "" {
			return req.RequestID
		}
		return decisionID
	}
}

// pick chooses the router for a request: the first experiment whose unit
// the request carries assigns it to an arm; otherwise the default policy.
// picked is the outcome of pick.
type picked struct {
	router  *policy.Router
	exp     *rollout.Experiment
	arm     int
	unit    string
	shadow  string
	expName string
	armName string
}

func (r *Routing) pick(req *RouteRequest, decisionID string) picked {
	for _, x := range r.Experiments {
		u := unitOf(x.Spec.Unit, req, decisionID)
		if u == "" {
			continue
		}
		i := x.Assign(u)
		a := x.Spec.Arms[i]
		return picked{router: r.Policies[a.Policy], exp: x, arm: i, unit: u, shadow: r.Shadows[a.Policy], expName: x.Spec.Name, armName: a.Name}
	}
	p := r.Default
	return picked{router: p, shadow: r.Shadows[p.Config().Name]}
}

// watch logs every rollout transition.
func (r *Routing) watch(log func(exp string, t rollout.Transition)) {
	for _, x := range r.Experiments {
		x.Watch(log)
	}
}

// unitHash is what the decision log keeps of an experiment unit: a prefix
// of its SHA-256, enough to count units without storing who they are.
func unitHash(unit string) string {
	if unit == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(unit))
	return hex.EncodeToString(sum[:8])
}

func (r *Routing) experimentStates() []rollout.ExperimentState {
	out := make([]rollout.ExperimentState, 0, len(r.Experiments))
	version := func(p string) string { return r.Policies[p].Config().Version }
	for _, x := range r.Experiments {
		out = append(out, x.State(version))
	}
	return out
}
