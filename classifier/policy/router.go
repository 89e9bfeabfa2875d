package policy

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"switchyard/classifier"
	"switchyard/datasets"
	"switchyard/features"
)

// Config is a named, versioned routing policy.
type Config struct {
	Name        string      `json:"name"`
	Version     string      `json:"version"`
	QualityBar  float64     `json:"quality_bar"`      // default bar when a request names none
	Lambda      *float64    `json:"lambda,omitempty"` // when set, the trade-off rule argmax quality − λ·cost, unless a request names a bar
	Exploration Exploration `json:"exploration"`
	NewModels   *NewModels  `json:"new_models,omitempty"` // route to catalogue models without a predictor head
	Candidates  []string    `json:"candidates"`           // default candidates; empty means every model of the predictor
	// ContextOverflow says what to do with a prompt that fits no
	// candidate's context window (see Option.Fits): OverflowReject (the
	// default) returns a *ContextWindowError, OverflowLargest routes to the
	// candidate with the largest window. Candidates the prompt does not fit
	// are never chosen, explored or listed as fallbacks otherwise.
	ContextOverflow ContextOverflow `json:"context_overflow,omitempty"`
}

// Validate is the one check of a policy's settings, wherever they come
// from (flags, a policy file, a configuration file): a name, a bar in
// [0,1], a non-negative λ, and valid exploration, new-model and
// context-overflow settings.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("policy: name is empty")
	case math.IsNaN(c.QualityBar) || c.QualityBar < 0 || c.QualityBar > 1:
		return fmt.Errorf("policy %s: quality_bar %v outside [0,1]", c.Name, c.QualityBar)
	}
	if c.Lambda != nil {
		if err := checkLambda(*c.Lambda); err != nil {
			return fmt.Errorf("policy %s: %w", c.Name, err)
		}
	}
	for _, err := range []error{c.Exploration.Validate(), c.NewModels.Validate(), c.ContextOverflow.Validate()} {
		if err != nil {
			return fmt.Errorf("policy %s: %w", c.Name, err)
		}
	}
	return nil
}

// Request is one routing request as the router sees it.
type Request struct {
	Input      features.Input
	QualityBar *float64 // nil: the policy's bar
	Candidates []string // nil: the policy's candidates
	MaxCostUSD float64  // 0: no limit
	// CostWeight is the extra weight on cost a tenant's budget puts on the
	// request (Rule.CostWeight; 0: none).
	CostWeight float64
	// NoExplore decides by the rule alone (a budget past its cap sends the
	// request to the cheapest model, not to an explored one).
	NoExplore bool
	// Draw is a uniform number in [0,1) that exploration samples with; the
	// caller derives it from a seed, so decisions reproduce.
	Draw float64
}

// Decision is the router's answer for one request.
type Decision struct {
	Options          []Option  // every candidate considered, in candidate order
	Choice                     // the pick among Options (after exploration)
	Probs            []float64 // probability of each option under the policy; Probs[Index] is the propensity
	Greedy           int       // the rule's own pick before exploration
	Explored         bool      // Index differs from Greedy
	Chosen           string
	Rule             Rule // the setting of the rule the decision was made by
	QualityBar       float64
	InputTokens      int
	Policy           string
	PolicyVersion    string
	PredictorVersion string
	FeatureSpecID    string
}

// FallbackModels names the fallbacks, best first.
func (d Decision) FallbackModels() []string {
	out := make([]string, len(d.Fallbacks))
	for i, k := range d.Fallbacks {
		out[i] = d.Options[k].Model
	}
	return out
}

// UnknownModelError is returned for a candidate the router cannot score.
type UnknownModelError struct {
	Model  string
	Reason string
}

func (e *UnknownModelError) Error() string {
	return fmt.Sprintf("unknown candidate %q: %s", e.Model, e.Reason)
}

// Router decides requests: features, then the scorer, then the rule. It is
// safe for concurrent use.
type Router struct {
	ext        *features.Extractor
	scorer     classifier.Scorer
	meta       classifier.Metadata
	cfg        Config
	index      map[string]int // predictor output index by model
	prices     []datasets.ModelPrice
	outTokens  []float64
	defaultIdx []int
	pool       sync.Pool
	models     []string                 // predictor models, then new models
	observed   map[string]*atomic.Int64 // outcomes seen per new model
}

type workspace struct {
	vec    features.Vector
	scores []float32
}

// NewRouter wires a router. The extractor's spec must be the one the
// predictor was trained with, and every model the predictor scores must be in
// the catalogue (its prices make the expected cost). A model without learned
// output tokens uses the mean of the others.
func NewRouter(ext *features.Extractor, scorer classifier.Scorer, meta classifier.Metadata, cat *datasets.Catalogue, cfg Config) (*Router, error) {
	if ext.SpecID() != meta.FeatureSpecID {
		return nil, fmt.Errorf("router: predictor was built with feature spec %s, the extractor computes %s", meta.FeatureSpecID, ext.SpecID())
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	r := &Router{ext: ext, scorer: scorer, meta: meta, cfg: cfg, index: map[string]int{}}
	var tokSum float64
	var tokN int
	for _, t := range meta.OutputTokens {
		if t > 0 {
			tokSum += t
			tokN++
		}
	}
	for i, name := range meta.Models {
		p, ok := cat.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("router: predictor model %q is not in the catalogue", name)
		}
		r.index[name] = i
		r.prices = append(r.prices, p)
		t := meta.OutputTokens[name]
		if t <= 0 && tokN > 0 {
			t = tokSum / float64(tokN)
		}
		r.outTokens = append(r.outTokens, t)
	}
	r.models = append([]string(nil), meta.Models...)
	r.observed = map[string]*atomic.Int64{}
	for _, m := range meta.Models {
		r.observed[m] = new(atomic.Int64)
	}
	if cfg.NewModels != nil {
		for _, p := range cat.Models {
			if _, ok := r.index[p.Name]; ok {
				continue
			}
			r.index[p.Name] = len(r.models)
			r.models = append(r.models, p.Name)
			r.prices = append(r.prices, p)
			t := 0.0
			if tokN > 0 {
				t = tokSum / float64(tokN)
			}
			r.outTokens = append(r.outTokens, t)
			r.observed[p.Name] = new(atomic.Int64)
		}
	}
	names := cfg.Candidates
	if len(names) == 0 {
		names = r.models
	}
	idx, err := r.resolve(names)
	if err != nil {
		return nil, fmt.Errorf("router: policy %s: %w", cfg.Name, err)
	}
	r.defaultIdx = idx
	n := len(meta.Models)
	r.pool.New = func() any { return &workspace{scores: make([]float32, n)} }
	return r, nil
}

func (r *Router) resolve(names []string) ([]int, error) {
	idx := make([]int, 0, len(names))
	seen := make(map[int]bool, len(names))
	for _, n := range names {
		i, ok := r.index[n]
		if !ok {
			known := append([]string(nil), r.models...)
			sort.Strings(known)
			return nil, &UnknownModelError{Model: n, Reason: "the predictor scores " + strings.Join(known, ", ")}
		}
		if !seen[i] {
			seen[i] = true
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil, ErrNoCandidate
	}
	return idx, nil
}

// Models returns the models the router can choose: the predictor's, in
// output order, then new catalogue models (with NewModels).
func (r *Router) Models() []string { return r.models }

// IsNew reports whether model is a new model, scored by the prior.
func (r *Router) IsNew(model string) bool {
	i, ok := r.index[model]
	return ok && i >= len(r.meta.Models)
}

// Observe counts an outcome of model (the server calls it on feedback): a
// new model stops being forced once it has enough, and the optimism bonus
// shrinks.
func (r *Router) Observe(model string) {
	if c, ok := r.observed[model]; ok {
		c.Add(1)
	}
}

// SetObserved sets the outcomes of model counted since the predictor's data
// to n: the count a fleet of replicas shares (serving's Fleet), which
// replaces this router's own.
func (r *Router) SetObserved(model string, n int64) {
	if c, ok := r.observed[model]; ok {
		c.Store(n)
	}
}

// KeepObserved takes the outcome counts of old, a router over the same
// predictor that this one replaces.
func (r *Router) KeepObserved(old *Router) {
	for m, c := range r.observed {
		if o, ok := old.observed[m]; ok {
			c.Store(o.Load())
		}
	}
}

// Observations returns the outcomes of model known to the router: those
// the predictor was trained on plus those counted since.
func (r *Router) Observations(model string) int64 {
	n := int64(r.meta.Observations[model])
	if c, ok := r.observed[model]; ok {
		n += c.Load()
	}
	return n
}

// ScorerHealth is nil while the scorer works as configured, and says why
// not otherwise (ONNX Runtime failed and the pure-Go scorer answers).
func (r *Router) ScorerHealth() error {
	if h, ok := r.scorer.(interface{ Health() error }); ok {
		return h.Health()
	}
	return nil
}

// Close releases the router's scorer.
func (r *Router) Close() error { return r.scorer.Close() }

// Config returns the policy configuration.
func (r *Router) Config() Config { return r.cfg }

// Metadata returns the predictor's metadata.
func (r *Router) Metadata() classifier.Metadata { return r.meta }

// ExpectedCostUSD is the expected cost of answering a prompt of the given
// input tokens with predictor model i: input tokens at the input price plus
// the model's expected output tokens at the output price.
func (r *Router) ExpectedCostUSD(i int, inputTokens int) float64 {
	return r.prices[i].CostUSD(float64(inputTokens), r.outTokens[i])
}

// TokensNeeded is what a prompt of the given input tokens needs in the
// context window of model i: the input tokens (the estimate the expected
// cost uses) plus the model's expected output tokens, rounded up, since the
// window must hold both.
func (r *Router) TokensNeeded(i int, inputTokens int) int {
	return inputTokens + int(math.Ceil(r.outTokens[i]))
}

// Route decides one request. Candidates whose context window the request
// does not fit are neither chosen (also not by exploration: their
// probability is 0) nor listed as fallbacks; when it fits none, the policy's
// ContextOverflow decides.
func (r *Router) Route(req Request) (Decision, error) {
	d, err := r.Score(req)
	if err != nil {
		return Decision{}, err
	}
	rule := Rule{QualityBar: d.QualityBar, Lambda: r.cfg.Lambda, ContextOverflow: r.cfg.ContextOverflow, CostWeight: req.CostWeight}
	if req.QualityBar != nil {
		rule.Lambda = nil // a request's own bar wins over the policy's trade-off
	}
	d.Rule = rule
	seen := d.Options
	if e := r.cfg.Exploration; e.Strategy == ExploreOptimism {
		seen = make([]Option, len(d.Options))
		for k, o := range d.Options {
			o.PredictedQuality += e.Bonus / math.Sqrt(1+float64(r.Observations(o.Model)))
			seen[k] = o
		}
	}
	c, err := rule.Choose(seen, req.MaxCostUSD)
	if err != nil {
		return Decision{}, err
	}
	c.Cleared = d.Options[c.Index].PredictedQuality >= d.QualityBar
	d.Greedy = c.Index
	if req.NoExplore {
		d.Probs = Exploration{}.Distribution(d.Options, c, nil)
	} else {
		d.Probs = r.cfg.Exploration.Distribution(d.Options, c, rule.Tradeoff())
		r.forceNew(d, c)
	}
	if pick := Sample(d.Probs, req.Draw); pick != c.Index {
		// the explored option leads; the rule's order follows for fallbacks
		fb := []int{c.Index}
		for _, i := range c.Fallbacks {
			if i != pick {
				fb = append(fb, i)
			}
		}
		c.Index, c.Fallbacks, c.Cleared = pick, fb, d.Options[pick].PredictedQuality >= d.QualityBar
		d.Explored = true
	}
	c.Propensity = d.Probs[c.Index]
	d.Choice = c
	d.Chosen = d.Options[c.Index].Model
	return d, nil
}

// Score computes a request's options (every candidate's predicted quality,
// expected cost, context window and the tokens the request needs in it) and
// the bar that applies, without choosing.
func (r *Router) Score(req Request) (Decision, error) {
	idx := r.defaultIdx
	if req.Candidates != nil {
		var err error
		if idx, err = r.resolve(req.Candidates); err != nil {
			return Decision{}, err
		}
	}
	bar := r.cfg.QualityBar
	if req.QualityBar != nil {
		bar = *req.QualityBar
		if math.IsNaN(bar) || bar < 0 || bar > 1 {
			return Decision{}, fmt.Errorf("quality_bar %v outside [0,1]", bar)
		}
	}
	if req.MaxCostUSD < 0 || math.IsNaN(req.MaxCostUSD) {
		return Decision{}, fmt.Errorf("max_cost_usd %v must be non-negative", req.MaxCostUSD)
	}
	if !(req.Draw >= 0 && req.Draw < 1) {
		return Decision{}, fmt.Errorf("draw %v outside [0,1)", req.Draw)
	}
	ws := r.pool.Get().(*workspace)
	defer r.pool.Put(ws)
	r.ext.Extract(req.Input, &ws.vec)
	if err := r.scorer.Score(&ws.vec, ws.scores); err != nil {
		return Decision{}, fmt.Errorf("route: %w", err)
	}
	for i, q := range ws.scores {
		if math.IsNaN(float64(q)) || q < 0 || q > 1 {
			return Decision{}, fmt.Errorf("route: the predictor scored model %q %v, outside [0,1]", r.meta.Models[i], q)
		}
	}
	in := InputTokens(req.Input)
	d := Decision{
		Options:          make([]Option, len(idx)),
		QualityBar:       bar,
		InputTokens:      in,
		Policy:           r.cfg.Name,
		PolicyVersion:    r.cfg.Version,
		PredictorVersion: r.meta.Version,
		FeatureSpecID:    r.meta.FeatureSpecID,
	}
	var prior float64 // the new models' prior: the mean of the predictor's outputs
	for _, s := range ws.scores {
		prior += float64(s)
	}
	prior /= float64(len(ws.scores))
	for k, i := range idx {
		q := prior
		if i < len(ws.scores) {
			q = float64(ws.scores[i])
		}
		d.Options[k] = Option{Model: r.models[i], PredictedQuality: q, ExpectedCostUSD: r.ExpectedCostUSD(i, in),
			ContextWindow: r.prices[i].ContextWindow, TokensNeeded: r.TokensNeeded(i, in)}
	}
	return d, nil
}

// forceNew mixes the bounded exploration of new models into d.Probs: with
// probability Share the choice is drawn uniformly among the allowed new
// models that have fewer than MinObservations outcomes.
func (r *Router) forceNew(d Decision, c Choice) {
	nm := r.cfg.NewModels
	if nm == nil || nm.Share == 0 {
		return
	}
	var under []int
	for _, i := range append([]int{c.Index}, c.Fallbacks...) {
		m := d.Options[i].Model
		if r.IsNew(m) && r.Observations(m) < int64(nm.MinObservations) {
			under = append(under, i)
		}
	}
	if len(under) == 0 {
		return
	}
	for i := range d.Probs {
		d.Probs[i] *= 1 - nm.Share
	}
	for _, i := range under {
		d.Probs[i] += nm.Share / float64(len(under))
	}
}

// InputTokens estimates the input tokens of a request with the project's one
// estimator over the prompt and every message's content.
func InputTokens(in features.Input) int {
	n := datasets.EstimateInputTokens(in.Prompt)
	for _, m := range in.Messages {
		n += datasets.EstimateInputTokens(m.Content)
	}
	return n
}
