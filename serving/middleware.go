package serving

import (
	"context"
	"crypto/subtle"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// statusWriter remembers the status code a handler wrote and the decision
// it answered, for the metrics and the access log.
type statusWriter struct {
	http.ResponseWriter
	code     int
	decision string
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// noteDecision tells the access log which decision a request concerns.
func noteDecision(w http.ResponseWriter, id string) {
	if sw, ok := w.(*statusWriter); ok {
		sw.decision = id
	}
}

// api wraps an API endpoint: trace-id passthrough, authentication, load
// shedding (routing requests by queueing delay, every API request by the
// bound on requests in flight), a deadline, timing and recovery from panics.
func (s *Server) api(endpoint string, admin bool, h http.HandlerFunc) http.HandlerFunc {
	queued := s.admit != nil && (endpoint == "route" || endpoint == "noop")
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic", "endpoint", endpoint, "panic", fmt.Sprint(p))
				writeError(sw, http.StatusInternalServerError, &fieldError{msg: "internal error"})
			}
			elapsed := time.Since(start)
			if s.metrics != nil {
				s.metrics.RequestSeconds.WithLabelValues(endpoint, strconv.Itoa(sw.code)).Observe(elapsed.Seconds())
			}
			if s.cfg.AccessLog {
				s.log.Info("request", "endpoint", endpoint, "method", r.Method, "path", r.URL.Path, "code", sw.code,
					"elapsed", elapsed, "decision_id", sw.decision, "request_id", r.Header.Get("X-Request-Id"),
					"trace", sw.Header().Get("traceparent"))
			}
		}()
		if tp := r.Header.Get("traceparent"); tp != "" && len(tp) <= 128 {
			sw.Header().Set("traceparent", tp) // OpenTelemetry-style trace id passthrough
		}
		if admin && s.cfg.AdminKey == "" {
			writeError(sw, http.StatusForbidden, &fieldError{msg: "admin endpoints are off: start the server with --admin-key-file or $SWITCHYARD_ADMIN_KEY"})
			return
		}
		if !s.authorised(r, admin) {
			sw.Header().Set("WWW-Authenticate", `Bearer realm="switchyard"`)
			writeError(sw, http.StatusUnauthorized, &fieldError{msg: "missing or unknown API key: send Authorization: Bearer KEY"})
			return
		}
		if s.inflight != nil {
			select {
			case s.inflight <- struct{}{}:
				defer func() { <-s.inflight }()
			default:
				s.shed(sw, "in_flight", "too many requests in flight; retry after 1 s")
				return
			}
		}
		if s.metrics != nil {
			s.metrics.InFlight.Inc()
			defer s.metrics.InFlight.Dec()
		}
		if s.cfg.RequestTimeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if queued {
			if !s.admitWait(r.Context()) {
				s.shed(sw, "queue_timeout", "the server is overloaded; retry after 1 s")
				return
			}
			defer func() { <-s.admit }()
		}
		h(sw, r)
	}
}

// admitWait takes one of the slots of requests being routed at once,
// waiting for one in arrival order for at most QueueTimeout. A request that
// waits is blocked, not runnable: under overload the excess queues without
// taking processor time from the requests being served (and a client with
// a fixed number of connections cannot send more than the server answers),
// which keeps the work admitted near capacity; only a request that would
// wait longer than QueueTimeout is refused.
func (s *Server) admitWait(ctx context.Context) bool {
	select {
	case s.admit <- struct{}{}:
		return true
	default:
	}
	if s.cfg.QueueTimeout <= 0 {
		return false
	}
	t := time.NewTimer(s.cfg.QueueTimeout)
	defer t.Stop()
	select {
	case s.admit <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// shed answers 429 with Retry-After and counts why.
func (s *Server) shed(w http.ResponseWriter, reason, msg string) {
	if s.metrics != nil {
		s.metrics.Shed.WithLabelValues(reason).Inc()
	}
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusTooManyRequests, &fieldError{msg: msg})
}

// authorised checks the bearer token: any client key for the API (when keys
// are configured), the admin key for admin endpoints (which are off without
// one). Keys are compared in constant time and never logged.
func (s *Server) authorised(r *http.Request, admin bool) bool {
	keys := s.cfg.APIKeys
	if admin {
		if s.cfg.AdminKey == "" {
			return false
		}
		keys = []string{s.cfg.AdminKey}
	} else if len(keys) == 0 {
		return true
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") { // the scheme is case-insensitive (RFC 9110)
		return false
	}
	tok = strings.TrimSpace(tok)
	found := 0
	for _, k := range keys { // no early exit: the time does not depend on which key matched
		found |= subtle.ConstantTimeCompare([]byte(tok), []byte(k))
	}
	return found == 1
}

// frontDoor answers the routing requests the shedder refuses before
// anything else is done for them (no routing table, middleware or JSON
// encoding): under overload every refusal takes processor time from the
// requests being served, so it must cost as little as possible.
func (s *Server) frontDoor(next http.Handler) http.Handler {
	if s.shedder == nil {
		return next
	}
	var count prometheus.Counter
	var observe map[string]prometheus.Observer
	if m := s.metrics; m != nil {
		count = m.Shed.WithLabelValues("queue_delay")
		observe = map[string]prometheus.Observer{}
		for path, endpoint := range shedPaths {
			observe[path] = m.RequestSeconds.WithLabelValues(endpoint, "429")
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := shedPaths[r.URL.Path]; !ok || !s.shedder.Shed() {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		h := w.Header()
		h["Content-Type"] = jsonContentType
		h["Retry-After"] = retryAfter
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write(overloadedBody)
		if count != nil {
			count.Inc()
			observe[r.URL.Path].Observe(time.Since(start).Seconds())
		}
		if s.cfg.AccessLog {
			s.log.Info("request", "endpoint", shedPaths[r.URL.Path], "method", r.Method, "path", r.URL.Path,
				"code", http.StatusTooManyRequests, "elapsed", time.Since(start))
		}
	})
}

// shedPaths are the endpoints the shedder refuses under overload, with
// their endpoint names: routing (a gateway that is refused routes by its
// own default) and the no-op endpoint that benchmarks it; never feedback.
var shedPaths = map[string]string{"/v1/route": "route", "/route": "route", "/v1/noop": "noop"}

var (
	jsonContentType = []string{"application/json"}
	retryAfter      = []string{"1"}
	overloadedBody  = []byte(`{"error":{"message":"the server is overloaded; retry after 1 s"}}` + "\n")
)
