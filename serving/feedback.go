package serving

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"switchyard/datasets"
	"switchyard/experiments/rollout"
	"switchyard/serving/fleet"
)

// FeedbackRequest is the body of POST /v1/feedback: what the gateway
// observed for the answer of a routed request.
type FeedbackRequest struct {
	DecisionID   string   `json:"decision_id"`
	Quality      *float64 `json:"quality"` // in [0,1], required
	InputTokens  *int64   `json:"input_tokens"`
	OutputTokens *int64   `json:"output_tokens"`
	CostUSD      *float64 `json:"cost_usd"` // default: the tokens at the chosen model's prices
	LatencyMS    *float64 `json:"latency_ms"`
	Error        string   `json:"error"`
	// Shadow marks the outcome of the shadow copy of the request (the
	// route response's "shadow" model): stored with source shadow, never
	// counted as served traffic.
	Shadow bool `json:"shadow"`
}

// FeedbackResponse is the answer of POST /v1/feedback. A repeated feedback
// for a decision gets the same answer and is not stored again.
type FeedbackResponse struct {
	DecisionID string  `json:"decision_id"`
	Model      string  `json:"model"`
	Quality    float64 `json:"quality"`
	CostUSD    float64 `json:"cost_usd"`
	Recorded   bool    `json:"recorded"`
}

// OutcomeSink stores outcomes durably: Append returns once they are on disk.
type OutcomeSink interface {
	Append(recs ...datasets.OutcomeRecord) error
}

// decisionIndex remembers recent decisions (for feedback) and which of them
// already have feedback, bounded to the most recent max decisions.
//
// It is sized for hundreds of thousands of decisions: a decision id is kept
// as a 128-bit hash (two maphash seeds; a false match needs a collision in
// 128 bits) instead of its string, and the common entry is a model number,
// so an entry is a 16-byte ring slot plus a 24-byte map slot with no
// pointers for the garbage collector to scan. The stored answers (quality
// and cost, also without pointers) and the rare parts (the experiment arm,
// feedbacks in progress) live in side maps keyed the same way.
type decisionIndex struct {
	mu       sync.Mutex
	max      int
	order    []idKey // ring of decisions, oldest first at head
	head     int
	byID     map[idKey]uint32 // model number, in models
	models   []string
	modelNum map[string]uint32
	inExp    map[idKey]expArm
	charges  map[idKey]charge // decisions of tenants with a budget
	answers  map[idKey]answer
	inflight map[idKey]chan struct{} // closed when a pending feedback finishes
	seeds    [2]maphash.Seed
}

type idKey [2]uint64

// answer is stored feedback: what a repeated feedback is answered with.
type answer struct{ quality, costUSD float64 }

// charge is what a budget needs of a decision to correct its tenant's
// spend by the actual cost.
type charge struct {
	tenant   string
	expected float64
}

type expArm struct {
	exp *rollout.Experiment
	arm int
}

// indexed is what claim returns about a decision.
type indexed struct {
	model string
	exp   *rollout.Experiment // the experiment the decision was in, if any
	arm   int
	// the decision's charge to its tenant's budget, if it had one
	budgeted bool
	charge   charge
}

func newDecisionIndex(max int) *decisionIndex {
	return &decisionIndex{max: max, byID: make(map[idKey]uint32), modelNum: make(map[string]uint32),
		inExp: make(map[idKey]expArm), charges: make(map[idKey]charge), answers: make(map[idKey]answer), inflight: make(map[idKey]chan struct{}),
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
}

func (x *decisionIndex) key(id string) idKey {
	return idKey{maphash.String(x.seeds[0], id), maphash.String(x.seeds[1], id)}
}

func (x *decisionIndex) add(id, model string) { x.addIn(id, model, nil, 0) }

// addIn remembers a decision made in an arm of an experiment.
func (x *decisionIndex) addIn(id, model string, exp *rollout.Experiment, arm int) {
	k := x.key(id)
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.byID[k]; ok {
		return
	}
	if len(x.order) < x.max {
		x.order = append(x.order, k)
	} else {
		old := x.order[x.head]
		delete(x.byID, old)
		if len(x.inExp) > 0 {
			delete(x.inExp, old)
		}
		if len(x.charges) > 0 {
			delete(x.charges, old)
		}
		if len(x.answers) > 0 {
			delete(x.answers, old)
		}
		x.order[x.head] = k
		x.head = (x.head + 1) % x.max
	}
	n, ok := x.modelNum[model]
	if !ok {
		n = uint32(len(x.models))
		x.models = append(x.models, model)
		x.modelNum[model] = n
	}
	x.byID[k] = n
	if exp != nil {
		x.inExp[k] = expArm{exp: exp, arm: arm}
	}
}

// charged remembers a decision's charge to its tenant's budget.
func (x *decisionIndex) charged(id string, c charge) {
	k := x.key(id)
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.byID[k]; ok {
		x.charges[k] = c
	}
}

// markAnswered records that id has stored feedback (used at start-up); it
// reports whether id is remembered.
func (x *decisionIndex) markAnswered(id string, a answer) bool {
	k := x.key(id)
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.byID[k]; !ok {
		return false
	}
	x.answers[k] = a
	return true
}

var errUnknownDecision = errors.New("unknown decision")

// claim returns the decision's model and either the stored answer, or a
// claim to store it (done must then be called). Concurrent feedbacks for one
// decision wait for the first.
func (x *decisionIndex) claim(id string) (e *indexed, stored *answer, done func(*answer), err error) {
	k := x.key(id)
	for {
		x.mu.Lock()
		n, ok := x.byID[k]
		if !ok {
			x.mu.Unlock()
			return nil, nil, nil, errUnknownDecision
		}
		ea := x.inExp[k]
		e := &indexed{model: x.models[n], exp: ea.exp, arm: ea.arm}
		e.charge, e.budgeted = x.charges[k]
		if a, ok := x.answers[k]; ok {
			x.mu.Unlock()
			return e, &a, nil, nil
		}
		if ch := x.inflight[k]; ch != nil {
			x.mu.Unlock()
			<-ch
			continue
		}
		ch := make(chan struct{})
		x.inflight[k] = ch
		x.mu.Unlock()
		return e, nil, func(a *answer) {
			x.mu.Lock()
			delete(x.inflight, k)
			if _, still := x.byID[k]; still && a != nil {
				x.answers[k] = *a
			}
			x.mu.Unlock()
			close(ch)
		}, nil
	}
}

func (r *FeedbackRequest) validate() error {
	if r.DecisionID == "" {
		return &fieldError{field: "decision_id", msg: "is required"}
	}
	if len(r.DecisionID) > maxDecisionIDBytes || strings.Contains(r.DecisionID, "#") {
		return &fieldError{field: "decision_id", msg: "is not a decision id of this server"}
	}
	if r.Quality == nil {
		return &fieldError{field: "quality", msg: "is required (a number in [0,1])"}
	}
	if q := *r.Quality; math.IsNaN(q) || q < 0 || q > 1 {
		return &fieldError{field: "quality", msg: fmt.Sprintf("%v is outside [0,1]", q)}
	}
	for _, c := range []struct {
		name string
		v    *int64
	}{{"input_tokens", r.InputTokens}, {"output_tokens", r.OutputTokens}} {
		if c.v != nil && (*c.v < 0 || *c.v > maxFeedbackTokens) {
			return &fieldError{field: c.name, msg: fmt.Sprintf("%d must be between 0 and %d", *c.v, maxFeedbackTokens)}
		}
	}
	for _, c := range []struct {
		name string
		v    *float64
		max  float64
	}{{"cost_usd", r.CostUSD, maxFeedbackCostUSD}, {"latency_ms", r.LatencyMS, maxFeedbackLatencyMS}} {
		if c.v != nil && (math.IsNaN(*c.v) || *c.v < 0 || *c.v > c.max) {
			return &fieldError{field: c.name, msg: fmt.Sprintf("%v must be a number between 0 and %g", *c.v, c.max)}
		}
	}
	if len(r.Error) > maxFeedbackErrorBytes {
		return &fieldError{field: "error", msg: fmt.Sprintf("is %d bytes, more than %d", len(r.Error), maxFeedbackErrorBytes)}
	}
	return nil
}

// Bounds of a feedback's fields: values beyond them are mistakes (a cost
// of 1e308 would poison every cost metric and estimate), refused with 400.
const (
	maxDecisionIDBytes    = 256
	maxFeedbackTokens     = 100_000_000
	maxFeedbackCostUSD    = 10_000        // one request
	maxFeedbackLatencyMS  = 24 * 3600_000 // a day
	maxFeedbackErrorBytes = 4096
)

// quoteID quotes a decision id for an error message, shortened when long.
func quoteID(id string) string {
	if len(id) > 64 {
		return strconv.Quote(id[:64]) + "…"
	}
	return strconv.Quote(id)
}

func (s *Server) handleFeedback(w http.ResponseWriter, req *http.Request) {
	if s.outcomes == nil {
		writeError(w, http.StatusServiceUnavailable, &fieldError{msg: "feedback is not stored by this server (no outcome log)"})
		return
	}
	var fb FeedbackRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<20))
	if err := dec.Decode(&fb); err != nil {
		err = jsonError(err, "send a JSON object with decision_id and quality")
		if errors.Is(err, errTooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, &fieldError{msg: "feedback body larger than 1 MiB"})
			return
		}
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if err := fb.validate(); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	noteDecision(w, fb.DecisionID)
	key, source := fb.DecisionID, datasets.SourceOnline
	if fb.Shadow {
		key, source = fb.DecisionID+shadowSuffix, datasets.SourceShadow
	}
	entry, stored, done, err := s.index.claim(key)
	if errors.Is(err, errUnknownDecision) && s.fleet != nil {
		// made by another replica?
		if ok, ferr := s.adoptShared(req.Context(), fb.DecisionID); ferr != nil {
			s.countFeedback("", "unreachable")
			writeError(w, http.StatusServiceUnavailable, &fieldError{field: "decision_id",
				msg: fmt.Sprintf("decision %s was not made by this replica and the fleet's shared state is unreachable; retry later", quoteID(fb.DecisionID))})
			return
		} else if ok {
			entry, stored, done, err = s.index.claim(key)
		}
	}
	if err != nil && fb.Shadow {
		s.countFeedback("", "unknown")
		writeError(w, http.StatusNotFound, &fieldError{field: "decision_id", msg: fmt.Sprintf("decision %s had no shadow model", quoteID(fb.DecisionID))})
		return
	}
	if err != nil {
		s.countFeedback("", "unknown")
		writeError(w, http.StatusNotFound, &fieldError{field: "decision_id", msg: fmt.Sprintf("no decision %s is known to this server", quoteID(fb.DecisionID))})
		return
	}
	model := entry.model
	if stored != nil {
		s.countFeedback(model, "repeated")
		writeJSON(w, http.StatusOK, &FeedbackResponse{DecisionID: fb.DecisionID, Model: model, Quality: stored.quality,
			CostUSD: stored.costUSD, Recorded: true})
		return
	}
	claimed := false
	if s.fleet != nil {
		shared, held, err := s.claimShared(req.Context(), key)
		if err != nil {
			done(nil)
			s.countFeedback(model, "pending")
			writeError(w, http.StatusServiceUnavailable, &fieldError{msg: "another replica is storing the feedback of this decision; retry later"})
			return
		}
		if shared != nil {
			a := answer{quality: shared.Quality, costUSD: shared.CostUSD}
			done(&a)
			s.countFeedback(model, "repeated")
			writeJSON(w, http.StatusOK, &FeedbackResponse{DecisionID: fb.DecisionID, Model: model, Quality: a.quality, CostUSD: a.costUSD, Recorded: true})
			return
		}
		claimed = held
	}
	rec := datasets.OutcomeRecord{DecisionID: fb.DecisionID, Model: model, Quality: *fb.Quality,
		Source: source, Time: time.Now().UTC(), Error: fb.Error}
	if fb.InputTokens != nil {
		rec.InputTokens = *fb.InputTokens
	}
	if fb.OutputTokens != nil {
		rec.OutputTokens = *fb.OutputTokens
	}
	if fb.LatencyMS != nil {
		rec.LatencyMS = *fb.LatencyMS
	}
	if fb.CostUSD != nil {
		rec.CostUSD = *fb.CostUSD
	} else if p, ok := s.catalogue().Lookup(model); ok {
		rec.CostUSD = p.CostUSD(float64(rec.InputTokens), float64(rec.OutputTokens))
	}
	if err := s.outcomes.Append(rec); err != nil {
		done(nil)
		if claimed {
			_ = s.fleet.Release(context.WithoutCancel(req.Context()), key)
		}
		s.countFeedback(model, "failed")
		s.log.Error("feedback: outcome log", "decision_id", fb.DecisionID, "err", err)
		writeError(w, http.StatusServiceUnavailable, &fieldError{msg: "the outcome log cannot be written now; retry later"})
		return
	}
	resp := &FeedbackResponse{DecisionID: fb.DecisionID, Model: model, Quality: rec.Quality, CostUSD: rec.CostUSD, Recorded: true}
	done(&answer{quality: rec.Quality, costUSD: rec.CostUSD})
	if s.fleet != nil {
		s.settleShared(context.WithoutCancel(req.Context()), key, model, fleet.Answer{Quality: rec.Quality, CostUSD: rec.CostUSD}, claimed)
	}
	for _, r := range s.routers() {
		r.Observe(model)
	}
	s.countFeedback(model, "stored")
	if !fb.Shadow && entry.exp != nil {
		entry.exp.Observe(entry.arm, rec.Quality, rec.CostUSD, rec.Error != "")
	}
	if !fb.Shadow && entry.budgeted && (fb.CostUSD != nil || (fb.InputTokens != nil && fb.OutputTokens != nil)) {
		s.budgets.Correct(entry.charge.tenant, rec.CostUSD-entry.charge.expected) // the actual cost replaces the expected
	}
	if m := s.metrics; m != nil {
		m.RealisedQuality.WithLabelValues(model).Observe(rec.Quality)
		m.RealisedCost.WithLabelValues(model).Observe(rec.CostUSD)
	}
	writeJSON(w, http.StatusOK, resp)
}

// RememberDecisions loads the decisions made before a restart (from the
// decision log, oldest first), so that feedback for them is accepted. Call
// RememberOutcomes after it.
func (s *Server) RememberDecisions(decisions []datasets.DecisionKey) {
	for _, d := range decisions {
		s.index.add(d.DecisionID, d.Chosen)
	}
}

// RememberOutcomes loads feedback stored before a restart (from the
// outcome log, oldest first), so that feedback is accepted once and only
// once: a remembered decision with an outcome answers repeated feedback
// with it. An outcome whose decision is not remembered is remembered itself
// (with its answer) when it was stored at or after since — its decision was
// recent but never reached the decision log, which is written
// asynchronously — and otherwise belongs to a decision too old to remember.
// Every online or shadow outcome counts for the per-model outcome counts of
// the routers whose predictor was not trained on it: stored after its
// ObservedUntil (an outcome without a time, only when the predictor was
// not trained on logs).
func (s *Server) RememberOutcomes(outcomes []datasets.OutcomeRecord, since time.Time) {
	routers := s.routers()
	until := make([]time.Time, len(routers))
	for i, r := range routers {
		until[i] = r.Metadata().ObservedUntil
	}
	for _, o := range outcomes {
		key, ok := outcomeKey(o)
		if !ok {
			continue
		}
		for i, r := range routers {
			if until[i].IsZero() || o.Time.After(until[i]) {
				r.Observe(o.Model)
			}
		}
		a := answer{quality: o.Quality, costUSD: o.CostUSD}
		if !s.index.markAnswered(key, a) && !o.Time.IsZero() && !o.Time.Before(since) {
			s.index.add(key, o.Model)
			s.index.markAnswered(key, a)
		}
	}
}

func (s *Server) countFeedback(model, result string) {
	if s.metrics != nil {
		s.metrics.Feedback.WithLabelValues(model, result).Inc()
	}
}

// outcomeKey is where an outcome's answer is kept: its decision id, with
// shadowSuffix for a shadow outcome; false for an outcome of neither
// source, or without a decision.
func outcomeKey(o datasets.OutcomeRecord) (string, bool) {
	switch {
	case o.DecisionID == "":
		return "", false
	case o.Source == datasets.SourceShadow:
		return o.DecisionID + shadowSuffix, true
	case o.Source == datasets.SourceOnline:
		return o.DecisionID, true
	}
	return "", false
}

// shadowSuffix keys a decision's shadow copy in the decision index.
const shadowSuffix = "#shadow"
