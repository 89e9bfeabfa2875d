// Package serving is Switchyard's HTTP service: POST /v1/route (also served
// as /route) decides a request through the routing policy and logs the
// decision; /healthz, /readyz and /v1/models describe the service. Handlers
// are thin: decode, call the router, encode.
package serving

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/experiments/rollout"
	"switchyard/serving/budget"
	"switchyard/serving/fleet"
)

// Config holds the server's settings.
type Config struct {
	MaxBodyBytes  int64  // request bodies above this answer 413
	KeepPrompts   bool   // write prompt text to the decision log (else only its SHA-256)
	ExploreSeed   uint64 // exploration draws are a hash of this seed and the decision id
	MaxRemembered int    // decisions remembered for feedback (the most recent)
	// InstanceID prefixes decision ids; empty: random at start (unique per
	// process). The simulator sets it so that runs reproduce.
	InstanceID     string
	MaxInFlight    int           // API requests served at once; beyond, 429 with Retry-After (0: no limit)
	RequestTimeout time.Duration // deadline of an API request (0: none)
	APIKeys        []string      // bearer tokens accepted on /v1/route, /route, /v1/feedback (empty: no auth)
	AdminKey       string        // bearer token of the admin endpoints; empty: they are off
	AccessLog      bool          // log every API request (slog, with the decision id)
	MaxMessages    int           // chat messages in one routing request; beyond, 413 (0: no limit)
	MaxTextBytes   int           // prompt and message text of one routing request; beyond, 413 (0: no limit)
	// MaxRouting is how many routing requests are decided at once; the
	// others wait for a turn, in arrival order, up to QueueTimeout, and are
	// then answered 429 (0: no bound).
	MaxRouting   int
	QueueTimeout time.Duration
}

// DefaultConfig returns the server defaults.
func DefaultConfig() Config {
	return Config{MaxBodyBytes: 4 << 20, KeepPrompts: true, MaxRemembered: 1 << 18, MaxInFlight: 1024, RequestTimeout: 2 * time.Second,
		MaxMessages: 10_000, MaxTextBytes: 4 << 20, MaxRouting: 2 * runtime.GOMAXPROCS(0), QueueTimeout: 100 * time.Millisecond}
}

// DecisionSink receives every decision the server makes.
type DecisionSink interface {
	Log(rec datasets.DecisionRecord)
}

// Deps are what a server works with.
type Deps struct {
	Router    *policy.Router // a single policy; or Routing for policies and experiments; neither: /readyz and /v1/route answer 503
	Routing   *Routing
	Catalogue *datasets.Catalogue
	Decisions DecisionSink // may be nil
	Outcomes  OutcomeSink  // nil: /v1/feedback answers 503
	Log       *slog.Logger
	// Registry, when set, gets the metrics and is served on /metrics.
	Registry *prometheus.Registry
	// Reload, when set, builds new routing from the configuration (for
	// POST /admin/reload and SIGHUP); it must validate everything before
	// returning it.
	Reload func() (*Routing, error)
	// Health lists checks whose errors make /readyz report "degraded".
	Health []func() error
	// Shedder, when set, decides which routing requests (/v1/route, /route,
	// /v1/noop) to answer 429 because the server is overloaded.
	Shedder Shedder
	// Fleet, when set, shares decisions, the claims on their outcomes and
	// the outcome counts with the other replicas.
	Fleet Fleet
	// Rollouts, when set, keeps the rollouts' progress where every replica
	// of the fleet sees it; each replica syncs with it (SyncRollouts).
	Rollouts rollout.Store
	// Budgets, when set, shares the tenants' spend with the other
	// replicas (SyncBudgets); without it each server counts its own.
	Budgets budget.Store
	// Now is the budgets' clock (time.Now when nil; a simulation sets its
	// own).
	Now func() time.Time
}

// Shedder decides, request by request, whether to answer 429 because the
// server is overloaded (DelayShedder).
type Shedder interface {
	Shed() bool
}

// Server answers routing requests.
type Server struct {
	cfg       Config
	routing   atomic.Pointer[Routing]
	cat       *datasets.Catalogue
	sink      DecisionSink
	outcomes  OutcomeSink
	index     *decisionIndex
	log       *slog.Logger
	instance  string
	counter   atomic.Uint64
	metrics   *Metrics
	registry  *prometheus.Registry
	inflight  chan struct{}
	admit     chan struct{} // slots of routing requests being decided (Config.MaxRouting)
	shedder   Shedder
	reload    func() (*Routing, error)
	health    []func() error
	fleet     Fleet
	rollouts  rollout.Store
	budgets   *budget.Ledger
	unsettled unsettled
	reloadMu  sync.Mutex
	// reload coalescing: tickets asked, the last ticket a finished reload
	// covered, and its result (under reloadMu)
	reloadAsked atomic.Uint64
	reloadDone  uint64
	reloadErr   error
}

// New returns a server.
func New(cfg Config, d Deps) (*Server, error) {
	var nonce [6]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("server: instance id: %w", err)
	}
	if cfg.MaxRemembered <= 0 {
		cfg.MaxRemembered = DefaultConfig().MaxRemembered
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultConfig().MaxBodyBytes
	}
	if d.Log == nil {
		d.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.Catalogue == nil {
		return nil, errors.New("server: no catalogue")
	}
	instance := cfg.InstanceID
	if instance == "" {
		instance = hex.EncodeToString(nonce[:])
	}
	s := &Server{cfg: cfg, cat: d.Catalogue, sink: d.Decisions, outcomes: d.Outcomes, log: d.Log, instance: instance,
		index: newDecisionIndex(cfg.MaxRemembered), registry: d.Registry, reload: d.Reload, health: d.Health,
		shedder: d.Shedder, fleet: d.Fleet, rollouts: d.Rollouts, budgets: budget.NewLedger(nil, d.Now, d.Budgets)}
	if d.Fleet != nil {
		s.health = append(slices.Clip(s.health), s.fleetHealth) // not into the caller's array
	}
	if cfg.MaxInFlight > 0 {
		s.inflight = make(chan struct{}, cfg.MaxInFlight)
	}
	if cfg.MaxRouting > 0 {
		s.admit = make(chan struct{}, cfg.MaxRouting)
	}
	if d.Registry != nil {
		s.metrics = NewMetrics(d.Registry)
		d.Registry.MustRegister(budgetCollector{s.budgets})
		d.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_degraded",
			Help: "1 while the server serves in a degraded mode (see /readyz)."}, func() float64 {
			if len(s.degraded()) > 0 {
				return 1
			}
			return 0
		}))
	}
	switch {
	case d.Routing != nil:
		s.store(d.Routing)
	case d.Router != nil:
		s.setRouter(d.Router)
	}
	return s, nil
}

// setRouter serves a single policy (no experiments) from now on.
func (s *Server) setRouter(r *policy.Router) { s.store(SingleRouting(r, s.cat)) }

// store serves rt from now on, logging its rollouts' transitions. An
// experiment whose specification did not change keeps its rollout state
// and counts across the reload (feedback for decisions made before it
// reaches the same rollout). A router over the same predictor as one it
// replaces keeps its outcome counts.
func (s *Server) store(rt *Routing) {
	if old := s.routing.Load(); old != nil {
		for _, x := range rt.Experiments {
			for _, o := range old.Experiments {
				if x.Resume(o) {
					break
				}
			}
		}
		for _, r := range rt.all() {
			for _, o := range old.all() {
				if o.Metadata().Version == r.Metadata().Version {
					r.KeepObserved(o)
					break
				}
			}
		}
	}
	rt.watch(func(exp string, t rollout.Transition) {
		s.log.Warn("rollout transition", "experiment", exp, "from", t.From, "to", t.To, "reason", t.Reason)
	})
	s.shareRollouts(rt)
	s.budgets.Configure(rt.Budgets)
	rt.acquire() // the server's own reference, while it is current
	if old := s.routing.Swap(rt); old != nil {
		s.retire(old)
	}
}

// retire gives up the server's reference to a routing that no longer
// serves: it is closed (its predictors' memory released) as soon as the
// last request routing with it finishes, not later.
func (s *Server) retire(rt *Routing) {
	closed, err := rt.release()
	if err != nil {
		s.log.Error("close the replaced routing", "err", err)
	}
	if closed {
		// A predictor's tens of megabytes are garbage now: collect them and
		// give the memory back at once, off the request's path, instead of
		// letting the heap grow towards its goal reload after reload.
		go debug.FreeOSMemory()
	}
}

// acquireRouting returns the current routing with a reference taken for
// the caller, who must release it; nil when there is none.
func (s *Server) acquireRouting() *Routing {
	for {
		rt := s.routing.Load()
		if rt == nil {
			return nil
		}
		rt.acquire()
		if s.routing.Load() == rt {
			return rt
		}
		s.retire(rt) // replaced meanwhile: the reference may be the last one
	}
}

// Close stops routing (later requests answer 503) and closes the current
// routing once the requests in flight are done with it.
func (s *Server) Close() error {
	if old := s.routing.Swap(nil); old != nil {
		_, err := old.release()
		return err
	}
	return nil
}

// catalogue is the current configuration's catalogue.
func (s *Server) catalogue() *datasets.Catalogue {
	if rt := s.routing.Load(); rt != nil && rt.Catalogue != nil {
		return rt.Catalogue
	}
	return s.cat
}

// routers returns every router of the current routing.
func (s *Server) routers() []*policy.Router {
	return s.routing.Load().all()
}

// Handler returns the HTTP routes.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	allow := map[string]string{} // path -> its method, for 405's Allow header
	handle := func(path, method string, h http.Handler) {
		r.Handle(path, h).Methods(method)
		allow[path] = method
	}
	handle("/v1/route", http.MethodPost, s.api("route", false, s.handleRoute))
	handle("/route", http.MethodPost, s.api("route", false, s.handleRoute))
	handle("/v1/feedback", http.MethodPost, s.api("feedback", false, s.handleFeedback))
	handle("/v1/noop", http.MethodPost, s.api("noop", false, s.handleNoop))
	handle("/admin/reload", http.MethodPost, s.api("reload", true, s.handleReload))
	if s.registry != nil {
		handle("/metrics", http.MethodGet, promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	}
	handle("/healthz", http.MethodGet, http.HandlerFunc(s.handleHealth))
	handle("/readyz", http.MethodGet, http.HandlerFunc(s.handleReady))
	handle("/v1/models", http.MethodGet, http.HandlerFunc(s.handleModels))
	handle("/v1/experiments", http.MethodGet, http.HandlerFunc(s.handleExperiments))
	handle("/v1/budgets/{tenant}", http.MethodGet, s.api("budgets", false, s.handleBudget))
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, &fieldError{msg: "no such endpoint: see /v1/route, /v1/feedback, /v1/models, /v1/experiments, /v1/budgets/{tenant}, /healthz, /readyz"})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		m := allow[req.URL.Path]
		if strings.HasPrefix(req.URL.Path, "/v1/budgets/") {
			m = http.MethodGet
		}
		w.Header().Set("Allow", m)
		writeError(w, http.StatusMethodNotAllowed, &fieldError{msg: "method " + req.Method + " not allowed here; use " + m})
	})
	return s.frontDoor(r)
}

func (s *Server) handleRoute(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	rt := s.acquireRouting()
	if rt == nil {
		writeError(w, http.StatusServiceUnavailable, &fieldError{msg: "no predictor loaded yet"})
		return
	}
	defer s.retire(rt)
	body, pr, ok := s.decodeRoute(w, req)
	if !ok {
		return
	}
	id := s.newDecisionID()
	pr.Draw = datasets.Draw(s.cfg.ExploreSeed, id) // a decision reproduces
	pk := rt.pick(body, id)
	router, exp, arm, unit, shadow := pk.router, pk.expName, pk.armName, pk.unit, pk.shadow
	sh, budgeted := s.budgets.Shape(body.Tenant)
	if budgeted && sh.Reject {
		s.refuseOverBudget(w, sh)
		return
	}
	pr.CostWeight, pr.NoExplore = sh.CostWeight, sh.Exhausted
	decideStart := time.Now()
	d, err := router.Route(pr)
	decided := time.Since(decideStart)
	if err == nil && budgeted {
		d, sh, err = s.charge(req.Context(), router, pr, d, sh)
		if errors.Is(err, budget.ErrExhausted) {
			s.refuseOverBudget(w, sh)
			return
		}
	}
	if err != nil {
		s.routeError(w, err)
		return
	}
	resp := DecisionResponse(d)
	resp.DecisionID, resp.RequestID, resp.Experiment, resp.Arm, resp.Shadow = id, body.RequestID, exp, arm, shadow
	s.index.addIn(id, d.Chosen, pk.exp, pk.arm)
	if shadow != "" {
		s.index.add(id+shadowSuffix, shadow)
	}
	shared := fleet.Decision{Model: d.Chosen, Propensity: d.Propensity, Policy: d.Policy, Experiment: exp, Arm: arm, Shadow: shadow}
	if budgeted {
		c := charge{tenant: body.Tenant, expected: d.Options[d.Index].ExpectedCostUSD}
		s.index.charged(id, c)
		shared.Tenant, shared.ExpectedCostUSD = c.tenant, c.expected
		resp.Budget = budgetNote(sh)
	}
	s.shareDecision(id, shared)
	// The decision is in the log before its answer leaves: an answered
	// decision survives a killed process.
	if s.sink != nil {
		rec := DecisionRecord(id, start, body, d, s.cfg.KeepPrompts)
		rec.Experiment, rec.Arm, rec.UnitHash = exp, arm, unitHash(unit)
		s.sink.Log(rec)
	}
	noteDecision(w, id)
	writeRoute(w, &resp)
	if m := s.metrics; m != nil {
		m.DecisionSeconds.Observe(decided.Seconds())
		m.Decisions.WithLabelValues(d.Chosen, d.Policy, arm).Inc()
		m.PredictedQuality.WithLabelValues(d.Chosen).Observe(d.Options[d.Index].PredictedQuality)
		m.ExpectedCost.WithLabelValues(d.Chosen).Observe(d.Options[d.Index].ExpectedCostUSD)
		if d.Explored {
			m.Explored.WithLabelValues(d.Policy).Inc()
		}
	}
}

// routeError answers a request the router could not decide.
func (s *Server) routeError(w http.ResponseWriter, err error) {
	var unknown *policy.UnknownModelError
	var window *policy.ContextWindowError
	switch {
	case errors.As(err, &window):
		writeError(w, http.StatusBadRequest, &fieldError{field: "prompt", msg: err.Error()})
	case errors.As(err, &unknown):
		writeError(w, http.StatusBadRequest, &fieldError{field: "candidates", msg: err.Error()})
	case errors.Is(err, policy.ErrNoCandidate):
		writeError(w, http.StatusBadRequest, &fieldError{field: "max_cost_usd", msg: err.Error()})
	default:
		s.log.Error("route", "err", err)
		writeError(w, http.StatusInternalServerError, &fieldError{msg: "routing failed: " + err.Error()})
	}
}

// decodeRoute reads, decodes and checks a routing request against the
// server's limits, answering the error itself when it fails. Reading the
// body is bounded by the request's deadline.
func (s *Server) decodeRoute(w http.ResponseWriter, req *http.Request) (*RouteRequest, policy.Request, bool) {
	if dl, ok := req.Context().Deadline(); ok {
		_ = http.NewResponseController(w).SetReadDeadline(dl)
	}
	body, pr, err := decodeRoute(http.MaxBytesReader(w, req.Body, s.cfg.MaxBodyBytes))
	if err == nil {
		err = s.checkLimits(body)
	}
	switch {
	case err == nil:
	case errors.Is(err, errTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, &fieldError{msg: fmt.Sprintf("request body larger than %d bytes (--max-body-bytes)", s.cfg.MaxBodyBytes)})
		return nil, pr, false
	case isLimit(err):
		writeError(w, http.StatusRequestEntityTooLarge, err)
		return nil, pr, false
	case req.Context().Err() != nil:
		writeError(w, http.StatusServiceUnavailable, &fieldError{msg: fmt.Sprintf("the request body did not arrive within the request timeout (%s)", s.cfg.RequestTimeout)})
		return nil, pr, false
	default:
		writeError(w, http.StatusBadRequest, err)
		return nil, pr, false
	}
	if err := req.Context().Err(); err != nil {
		writeError(w, http.StatusServiceUnavailable, &fieldError{msg: "request deadline exceeded before routing"})
		return nil, pr, false
	}
	return body, pr, true
}

// checkLimits refuses requests with more messages or text than the server
// is configured to route; the error names the limit and its flag.
func (s *Server) checkLimits(r *RouteRequest) error {
	if n, max := len(r.Messages), s.cfg.MaxMessages; max > 0 && n > max {
		return &limitError{fieldError{field: "messages", msg: fmt.Sprintf("%d messages are more than the limit of %d (--max-messages)", n, max)}}
	}
	if max := s.cfg.MaxTextBytes; max > 0 {
		n := 0
		if r.Prompt != nil {
			n = len(*r.Prompt)
		}
		for _, m := range r.Messages {
			n += len(m.Content)
		}
		if n > max {
			return &limitError{fieldError{field: "prompt", msg: fmt.Sprintf("%d bytes of prompt and message text are more than the limit of %d (--max-text-bytes)", n, max)}}
		}
	}
	return nil
}

// limitError is a request over one of the server's size limits (413).
type limitError struct{ fieldError }

func isLimit(err error) bool {
	var le *limitError
	return errors.As(err, &le)
}

// DecisionRecord builds the decision-log row of decision d, made at at for
// request body (whose prompt and messages it joins, one per line, in linear
// time); the prompt text is kept only with keepPrompt, its SHA-256 always.
func DecisionRecord(id string, at time.Time, body *RouteRequest, d policy.Decision, keepPrompt bool) datasets.DecisionRecord {
	var text string
	if body.Prompt != nil {
		text = *body.Prompt
	}
	if len(body.Messages) > 0 {
		n := len(text)
		for _, m := range body.Messages {
			n += len(m.Content) + 1
		}
		var sb strings.Builder
		sb.Grow(n)
		sb.WriteString(text)
		for _, m := range body.Messages {
			if sb.Len() > 0 {
				sb.WriteByte('\n')
			}
			sb.WriteString(m.Content)
		}
		text = sb.String()
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
	if keepPrompt {
		rec.Prompt = text
	}
	for i, o := range d.Options {
		rec.Candidates[i] = datasets.Candidate{Model: o.Model, PredictedQuality: o.PredictedQuality, ExpectedCostUSD: o.ExpectedCostUSD, Probability: d.Probs[i]}
	}
	return rec
}

func (s *Server) newDecisionID() string {
	n := s.counter.Add(1)
	return s.instance + "-" + strconv.FormatUint(n, 36)
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Readiness is the body of GET /readyz.
type Readiness struct {
	Status           string   `json:"status"` // ready, degraded (still serving), not ready
	Reasons          []string `json:"reasons,omitempty"`
	PredictorVersion string   `json:"predictor_version,omitempty"`
	Policy           string   `json:"policy,omitempty"`
}

// degraded lists why the server is serving in a degraded mode.
func (s *Server) degraded() []string {
	var out []string
	for _, r := range s.routers() {
		if err := r.ScorerHealth(); err != nil {
			out = append(out, "policy "+r.Config().Name+": "+err.Error())
		}
	}
	for _, h := range s.health {
		if err := h(); err != nil {
			out = append(out, err.Error())
		}
	}
	return out
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	rt := s.routing.Load()
	if rt == nil {
		writeJSON(w, http.StatusServiceUnavailable, Readiness{Status: "not ready", Reasons: []string{"no predictor loaded"}})
		return
	}
	r := rt.Default
	rd := Readiness{Status: "ready", PredictorVersion: r.Metadata().Version, Policy: r.Config().Name, Reasons: s.degraded()}
	if len(rd.Reasons) > 0 {
		rd.Status = "degraded" // still routing: a load balancer should keep it, an operator should look
	}
	writeJSON(w, http.StatusOK, rd)
}

func (s *Server) handleExperiments(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Experiments []rollout.ExperimentState `json:"experiments"`
	}{Experiments: []rollout.ExperimentState{}}
	if rt := s.routing.Load(); rt != nil {
		out.Experiments = rt.experimentStates()
	}
	writeJSON(w, http.StatusOK, out)
}

// CountFallback counts a scoring answered by the pure-Go scorer after ONNX
// Runtime failed.
func (s *Server) CountFallback() {
	if s.metrics != nil {
		s.metrics.ScorerFallbacks.Inc()
	}
}

// handleNoop goes through the same middleware and JSON decoding as
// /v1/route but makes no decision: the HTTP stack's own cost, for
// benchmarks.
func (s *Server) handleNoop(w http.ResponseWriter, req *http.Request) {
	if _, _, ok := s.decodeRoute(w, req); ok {
		writeJSON(w, http.StatusOK, noopAnswer)
	}
}

var noopAnswer = map[string]string{"status": "ok"}

// Reload rebuilds the router from the configuration. An invalid
// configuration is rejected and the current router keeps serving. Reloads
// asked for while one is running are coalesced: they all wait for, and
// share the result of, one reload that starts after they asked.
func (s *Server) Reload() error {
	if s.reload == nil {
		return errNoReload
	}
	ticket := s.reloadAsked.Add(1)
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.reloadDone >= ticket { // a reload that started after this one was asked for has finished
		if s.metrics != nil {
			s.metrics.Reloads.WithLabelValues("coalesced").Inc()
		}
		return s.reloadErr
	}
	upTo := s.reloadAsked.Load()
	debug.FreeOSMemory() // load on the smallest heap: the last reload's garbage goes first
	rt, err := s.reload()
	s.reloadDone, s.reloadErr = upTo, err
	if err != nil {
		if s.metrics != nil {
			s.metrics.Reloads.WithLabelValues("rejected").Inc()
		}
		s.log.Error("reload rejected; the current configuration keeps serving", "err", err)
		return err
	}
	s.store(rt)
	// retire returns the replaced predictor's memory, and the loading's
	// garbage with it, when the routing closes (here or with its last request)
	if s.metrics != nil {
		s.metrics.Reloads.WithLabelValues("ok").Inc()
	}
	s.log.Info("reloaded", "policies", len(rt.Policies), "experiments", len(rt.Experiments),
		"default_policy", rt.Default.Config().Name, "predictor", rt.Default.Metadata().Version)
	return nil
}

var errNoReload = errors.New("reload: this server has no configuration to reload")

func (s *Server) handleReload(w http.ResponseWriter, _ *http.Request) {
	if err := s.Reload(); err != nil {
		if errors.Is(err, errNoReload) {
			writeError(w, http.StatusNotImplemented, &fieldError{msg: err.Error()})
			return
		}
		writeError(w, http.StatusUnprocessableEntity, &fieldError{msg: "reload rejected, the current configuration keeps serving: " + err.Error()})
		return
	}
	r := s.routing.Load().Default
	writeJSON(w, http.StatusOK, Readiness{Status: "reloaded", PredictorVersion: r.Metadata().Version, Policy: r.Config().Name})
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
	// Observations are the outcomes of the model the default policy
	// counts: its predictor's training examples plus those stored since.
	Observations int64 `json:"observations"`
}

func (s *Server) handleModels(w http.ResponseWriter, _ *http.Request) {
	var r *policy.Router
	if rt := s.routing.Load(); rt != nil {
		r = rt.Default
	}
	out := struct {
		Models []ModelInfo `json:"models"`
	}{}
	for _, m := range s.catalogue().Models {
		info := ModelInfo{Model: m.Name, InputUSDPerMTok: m.InputUSDPerMTok, OutputUSDPerMTok: m.OutputUSDPerMTok, ContextWindow: m.ContextWindow}
		if r != nil {
			info.Observations = r.Observations(m.Name)
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
