// Package serving is Switchyard's HTTP service: POST /v1/route (also served
// as /route) decides a request through the routing policy and logs the
// decision; /healthz, /readyz and /v1/models describe the service. Handlers
// are thin: decode, call the router, encode.
package serving

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"switchyard/classifier/policy"
	"switchyard/datasets"
)

// Config holds the server's settings.
type Config struct {
	MaxBodyBytes  int64  // request bodies above this answer 413
	KeepPrompts   bool   // write prompt text to the decision log (else only its SHA-256)
	ExploreSeed   uint64 // exploration draws are a hash of this seed and the decision id
	MaxRemembered int    // decisions remembered for feedback (the most recent)
	// InstanceID prefixes decision ids; empty: random at start (unique per
	// process). The simulator sets it so that runs reproduce.
	InstanceID string
}

// DefaultConfig returns the server defaults.
func DefaultConfig() Config {
	return Config{MaxBodyBytes: 4 << 20, KeepPrompts: true, MaxRemembered: 1 << 20}
}

// DecisionSink receives every decision the server makes.
type DecisionSink interface {
	Log(rec datasets.DecisionRecord)
}

// Server answers routing requests.
type Server struct {
	cfg      Config
	router   atomic.Pointer[policy.Router]
	cat      *datasets.Catalogue
	sink     DecisionSink
	outcomes OutcomeSink
	index    *decisionIndex
	log      *slog.Logger
	instance string
	counter  atomic.Uint64
}

// New returns a server. router may be nil until a model is loaded (then
// /readyz answers 503 and /v1/route 503).
func New(cfg Config, router *policy.Router, cat *datasets.Catalogue, sink DecisionSink, outcomes OutcomeSink, log *slog.Logger) (*Server, error) {
	var nonce [6]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("server: instance id: %w", err)
	}
	if cfg.MaxRemembered <= 0 {
		cfg.MaxRemembered = DefaultConfig().MaxRemembered
	}
	instance := cfg.InstanceID
	if instance == "" {
		instance = hex.EncodeToString(nonce[:])
	}
	s := &Server{cfg: cfg, cat: cat, sink: sink, outcomes: outcomes, log: log, instance: instance,
		index: newDecisionIndex(cfg.MaxRemembered)}
	if router != nil {
		s.router.Store(router)
	}
	return s, nil
}

// SetRouter replaces the router used for new requests.
func (s *Server) SetRouter(r *policy.Router) { s.router.Store(r) }

// Handler returns the HTTP routes.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/v1/route", s.handleRoute).Methods(http.MethodPost)
	r.HandleFunc("/route", s.handleRoute).Methods(http.MethodPost)
	r.HandleFunc("/v1/feedback", s.handleFeedback).Methods(http.MethodPost)
	r.HandleFunc("/healthz", s.handleHealth).Methods(http.MethodGet)
	r.HandleFunc("/readyz", s.handleReady).Methods(http.MethodGet)
	r.HandleFunc("/v1/models", s.handleModels).Methods(http.MethodGet)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, &fieldError{msg: "no such endpoint: see /v1/route, /v1/feedback, /v1/models, /healthz, /readyz"})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, &fieldError{msg: "method " + req.Method + " not allowed here"})
	})
	return r
}

func (s *Server) handleRoute(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	router := s.router.Load()
	if router == nil {
		writeError(w, http.StatusServiceUnavailable, &fieldError{msg: "no predictor loaded yet"})
		return
	}
	body, pr, err := decodeRoute(http.MaxBytesReader(w, req.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		if errors.Is(err, errTooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, &fieldError{msg: fmt.Sprintf("request body larger than %d bytes", s.cfg.MaxBodyBytes)})
			return
		}
		writeError(w, http.StatusBadRequest, err)
		return
	}
	id := s.newDecisionID()
	pr.Draw = Draw(s.cfg.ExploreSeed, id)
	d, err := router.Route(pr)
	if err != nil {
		var unknown *policy.UnknownModelError
		switch {
		case errors.As(err, &unknown):
			writeError(w, http.StatusBadRequest, &fieldError{field: "candidates", msg: err.Error()})
		case errors.Is(err, policy.ErrNoCandidate):
			writeError(w, http.StatusBadRequest, &fieldError{field: "max_cost_usd", msg: err.Error()})
		default:
			s.log.Error("route", "err", err)
			writeError(w, http.StatusInternalServerError, &fieldError{msg: "routing failed: " + err.Error()})
		}
		return
	}
	resp := RouteResponse{
		DecisionID: id, RequestID: body.RequestID, Model: d.Chosen, Cleared: d.Cleared, QualityBar: d.QualityBar,
		Candidates: d.Options, Fallbacks: make([]string, len(d.Fallbacks)), Propensity: d.Propensity, Explored: d.Explored,
		InputTokens: d.InputTokens, Policy: d.Policy, PolicyVersion: d.PolicyVersion,
		PredictorVersion: d.PredictorVersion, FeatureSpecID: d.FeatureSpecID,
	}
	for i, k := range d.Fallbacks {
		resp.Fallbacks[i] = d.Options[k].Model
	}
	s.index.add(id, d.Chosen)
	writeJSON(w, http.StatusOK, resp)
	if s.sink != nil {
		s.sink.Log(s.record(id, start, body, pr.Input.Prompt, d))
	}
	s.log.Debug("route", "decision_id", id, "model", d.Chosen, "elapsed", time.Since(start))
}

// record builds the decision-log row of a decision.
func (s *Server) record(id string, at time.Time, body *RouteRequest, prompt string, d policy.Decision) datasets.DecisionRecord {
	text := prompt
	for _, m := range body.Messages {
		if text != "" {
			text += "\n"
		}
		text += m.Content
	}
	sum := sha256.Sum256([]byte(text))
	rec := datasets.DecisionRecord{
		DecisionID: id, Time: at.UTC(), RequestID: body.RequestID, PromptID: body.PromptID,
		PromptSHA256: hex.EncodeToString(sum[:]), Task: body.Task,
		FeatureSpecID: d.FeatureSpecID, PredictorVersion: d.PredictorVersion,
		Policy: d.Policy, PolicyVersion: d.PolicyVersion, QualityBar: d.QualityBar,
		Candidates: make([]datasets.Candidate, len(d.Options)), Chosen: d.Chosen, Propensity: d.Propensity,
		InputTokens: int64(d.InputTokens),
	}
	if s.cfg.KeepPrompts {
		rec.Prompt = text
	}
	for i, o := range d.Options {
		rec.Candidates[i] = datasets.Candidate{Model: o.Model, PredictedQuality: o.PredictedQuality, ExpectedCostUSD: o.ExpectedCostUSD, Probability: d.Probs[i]}
	}
	return rec
}

// Draw is the uniform number in [0,1) that exploration uses for a decision:
// a hash of the seed and the decision id, so a decision reproduces.
func Draw(seed uint64, decisionID string) float64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	h.Write([]byte(decisionID))
	x := h.Sum64() // FNV mixes the last bytes into the low bits only: finish with splitmix64
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

func (s *Server) newDecisionID() string {
	n := s.counter.Add(1)
	return s.instance + "-" + strconv.FormatUint(n, 36)
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	r := s.router.Load()
	if r == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "no predictor loaded"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "predictor_version": r.Metadata().Version, "policy": r.Config().Name})
}

// ModelInfo is one entry of GET /v1/models.
type ModelInfo struct {
	Model                string   `json:"model"`
	InputUSDPerMTok      float64  `json:"input_usd_per_mtok"`
	OutputUSDPerMTok     float64  `json:"output_usd_per_mtok"`
	ContextWindow        int      `json:"context_window,omitempty"`
	Routable             bool     `json:"routable"` // the predictor scores it
	ExpectedOutputTokens float64  `json:"expected_output_tokens,omitempty"`
	ValidationAUC        *float64 `json:"validation_auc,omitempty"`
}

func (s *Server) handleModels(w http.ResponseWriter, _ *http.Request) {
	r := s.router.Load()
	out := struct {
		Models []ModelInfo `json:"models"`
	}{}
	for _, m := range s.cat.Models {
		info := ModelInfo{Model: m.Name, InputUSDPerMTok: m.InputUSDPerMTok, OutputUSDPerMTok: m.OutputUSDPerMTok, ContextWindow: m.ContextWindow}
		if r != nil {
			meta := r.Metadata()
			for _, name := range meta.Models {
				if name == m.Name {
					info.Routable = true
					info.ExpectedOutputTokens = meta.OutputTokens[name]
					if v, ok := meta.Validation[name]; ok {
						auc := v.AUC
						info.ValidationAUC = &auc
					}
				}
			}
		}
		out.Models = append(out.Models, info)
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	body := ErrorBody{Message: err.Error()}
	var fe *fieldError
	if errors.As(err, &fe) {
		body = ErrorBody{Message: fe.Error(), Field: fe.field}
	}
	writeJSON(w, status, ErrorResponse{Error: body})
}
