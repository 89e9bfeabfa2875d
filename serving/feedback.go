package serving

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"switchyard/datasets"
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
type decisionIndex struct {
	mu    sync.Mutex
	max   int
	order []string // ring of decision ids, oldest first at head
	head  int
	byID  map[string]*indexed
}

type indexed struct {
	model    string
	exp      *Experiment // the experiment the decision was in, if any
	arm      int
	answer   *FeedbackResponse // set once feedback is stored
	inflight chan struct{}     // closed when a pending feedback finishes
}

func newDecisionIndex(max int) *decisionIndex {
	return &decisionIndex{max: max, byID: make(map[string]*indexed)}
}

func (x *decisionIndex) add(id, model string) { x.addIn(id, model, nil, 0) }

// addIn remembers a decision made in an arm of an experiment.
func (x *decisionIndex) addIn(id, model string, exp *Experiment, arm int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.byID[id]; ok {
		return
	}
	if len(x.order) < x.max {
		x.order = append(x.order, id)
	} else {
		delete(x.byID, x.order[x.head])
		x.order[x.head] = id
		x.head = (x.head + 1) % x.max
	}
	x.byID[id] = &indexed{model: model, exp: exp, arm: arm}
}

// markAnswered records that id has stored feedback (used at start-up).
func (x *decisionIndex) markAnswered(id string, resp FeedbackResponse) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e, ok := x.byID[id]; ok {
		e.answer = &resp
	}
}

var errUnknownDecision = errors.New("unknown decision")

// claim returns the decision's model and either the stored answer, or a
// claim to store it (done must then be called). Concurrent feedbacks for one
// decision wait for the first.
func (x *decisionIndex) claim(id string) (e *indexed, answer *FeedbackResponse, done func(*FeedbackResponse), err error) {
	for {
		x.mu.Lock()
		e, ok := x.byID[id]
		if !ok {
			x.mu.Unlock()
			return nil, nil, nil, errUnknownDecision
		}
		if e.answer != nil {
			a := *e.answer
			x.mu.Unlock()
			return e, &a, nil, nil
		}
		if e.inflight != nil {
			ch := e.inflight
			x.mu.Unlock()
			<-ch
			continue
		}
		ch := make(chan struct{})
		e.inflight = ch
		x.mu.Unlock()
		return e, nil, func(a *FeedbackResponse) {
			x.mu.Lock()
			e.answer, e.inflight = a, nil
			x.mu.Unlock()
			close(ch)
		}, nil
	}
}

func (r *FeedbackRequest) validate() error {
	if r.DecisionID == "" {
		return &fieldError{field: "decision_id", msg: "is required"}
	}
	if strings.Contains(r.DecisionID, "#") {
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
		if c.v != nil && *c.v < 0 {
			return &fieldError{field: c.name, msg: fmt.Sprintf("%d must not be negative", *c.v)}
		}
	}
	for _, c := range []struct {
		name string
		v    *float64
	}{{"cost_usd", r.CostUSD}, {"latency_ms", r.LatencyMS}} {
		if c.v != nil && (math.IsNaN(*c.v) || math.IsInf(*c.v, 0) || *c.v < 0) {
			return &fieldError{field: c.name, msg: fmt.Sprintf("%v must be a non-negative number", *c.v)}
		}
	}
	return nil
}

func (s *Server) handleFeedback(w http.ResponseWriter, req *http.Request) {
	if s.outcomes == nil {
		writeError(w, http.StatusServiceUnavailable, &fieldError{msg: "feedback is not stored by this server (no outcome log)"})
		return
	}
	var fb FeedbackRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<20))
	if err := dec.Decode(&fb); err != nil {
		err = jsonError(err)
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
	key, source := fb.DecisionID, datasets.SourceOnline
	if fb.Shadow {
		key, source = fb.DecisionID+shadowSuffix, datasets.SourceShadow
	}
	entry, answer, done, err := s.index.claim(key)
	if err != nil && fb.Shadow {
		s.countFeedback("", "unknown")
		writeError(w, http.StatusNotFound, &fieldError{field: "decision_id", msg: fmt.Sprintf("decision %q had no shadow model", fb.DecisionID)})
		return
	}
	if err != nil {
		s.countFeedback("", "unknown")
		writeError(w, http.StatusNotFound, &fieldError{field: "decision_id", msg: fmt.Sprintf("no decision %q is known to this server", fb.DecisionID)})
		return
	}
	model := entry.model
	if answer != nil {
		s.countFeedback(model, "repeated")
		writeJSON(w, http.StatusOK, answer)
		return
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
		s.countFeedback(model, "failed")
		s.log.Error("feedback: outcome log", "decision_id", fb.DecisionID, "err", err)
		writeError(w, http.StatusServiceUnavailable, &fieldError{msg: "the outcome log cannot be written now; retry later"})
		return
	}
	resp := &FeedbackResponse{DecisionID: fb.DecisionID, Model: model, Quality: rec.Quality, CostUSD: rec.CostUSD, Recorded: true}
	done(resp)
	for _, r := range s.routers() {
		r.Observe(model)
	}
	s.countFeedback(model, "stored")
	if !fb.Shadow && entry.exp != nil && entry.exp.ro != nil {
		entry.exp.ro.observe(entry.arm, rec.Quality, rec.CostUSD, rec.Error != "")
	}
	if m := s.metrics; m != nil {
		m.RealisedQuality.WithLabelValues(model).Observe(rec.Quality)
		m.RealisedCost.WithLabelValues(model).Observe(rec.CostUSD)
	}
	writeJSON(w, http.StatusOK, resp)
}

// RememberDecisions loads decisions made before a restart (from the
// decision log) and the feedback they already have (from the outcome log),
// so that feedback for them is accepted once and only once.
func (s *Server) RememberDecisions(decisions []datasets.DecisionRecord, outcomes []datasets.OutcomeRecord) {
	for _, d := range decisions {
		s.index.add(d.DecisionID, d.Chosen)
	}
	for _, o := range outcomes {
		if o.DecisionID != "" && o.Source == datasets.SourceShadow {
			s.index.add(o.DecisionID+shadowSuffix, o.Model)
			s.index.markAnswered(o.DecisionID+shadowSuffix, FeedbackResponse{DecisionID: o.DecisionID, Model: o.Model, Quality: o.Quality, CostUSD: o.CostUSD, Recorded: true})
		}
		if o.DecisionID != "" && o.Source == datasets.SourceOnline {
			s.index.add(o.DecisionID, o.Model) // stored, though its decision may not have been flushed
			for _, r := range s.routers() {
				r.Observe(o.Model)
			}
			s.index.markAnswered(o.DecisionID, FeedbackResponse{DecisionID: o.DecisionID, Model: o.Model, Quality: o.Quality, CostUSD: o.CostUSD, Recorded: true})
		}
	}
}

func (s *Server) countFeedback(model, result string) {
	if s.metrics != nil {
		s.metrics.Feedback.WithLabelValues(model, result).Inc()
	}
}

// shadowSuffix keys a decision's shadow copy in the decision index.
const shadowSuffix = "#shadow"
