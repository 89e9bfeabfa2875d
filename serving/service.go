package serving

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"switchyard/datasets"
	"switchyard/datasets/logstore"
	"switchyard/experiments/rollout"
	"switchyard/serving/budget"
	"switchyard/serving/fleet"
)

// Options are what a running service is made of: the handler's Config, where
// it listens, the log folder it owns, and how its routing is built.
type Options struct {
	Config
	// Addr is the listen address; ":0" ports are chosen by the system (see
	// Service.Addr). Empty: the service does not listen, and its Handler
	// serves in process (the simulator).
	Addr   string
	LogDir string // the decision and outcome logs (Parquet in dt=/hour= partitions)
	Writer string // writer id in the log files' names; default logstore.DefaultWriterID()
	// Load builds the routing at start and on every reload (POST
	// /admin/reload, SIGHUP); it must validate everything before returning.
	// onFallback is to be called for every scoring the pure-Go scorer
	// answered after ONNX Runtime failed (a metric).
	Load func(onFallback func()) (*Routing, error)
	// ShedDelay > 0 refuses routing requests at once while the Go
	// scheduler's queueing delay is above it (DelayShedder).
	ShedDelay time.Duration
	// ReloadOnSIGHUP reloads the routing when the process gets SIGHUP.
	ReloadOnSIGHUP bool
	Log            *slog.Logger
	// ShutdownTimeout bounds the graceful stop; 20 s when 0.
	ShutdownTimeout time.Duration
	// Redis, when set, is the URL of the Redis the replicas of a fleet
	// share decisions, the claims on their outcomes and the outcome counts
	// through (serving/fleet), and the rollouts' progress and the tenants'
	// spend.
	Redis string
	// Uploader, when set, puts finished log files where the fleet's logs
	// are kept (datasets/logroot: a bucket): LogDir is then a local staging
	// folder for the write-ahead logs and fresh Parquet files. The service
	// runs it every 30 seconds and once more at stop, and closes it.
	Uploader Uploader
	// Now is the clock of the tenants' budgets (time.Now when nil); a
	// simulation of a day of traffic sets its own.
	Now func() time.Time
}

// Uploader uploads a staging folder's finished log files (logroot.Uploader).
type Uploader interface {
	Upload(ctx context.Context) (int, error)
	Run(ctx context.Context, every time.Duration)
	Failing() error // the last upload's error
	Close() error
}

// Service is a Server with its whole lifecycle: the log folder's lock, the
// listener, the write-ahead logs, the warm start from earlier logs, the
// load shedder, reloads and the graceful stop.
type Service struct {
	opt         Options
	srv         *Server
	hs          *http.Server
	ln          net.Listener
	lock        io.Closer
	dlog        *logstore.DecisionLog
	outcomes    *logstore.WAL[datasets.OutcomeRecord]
	fleet       *fleet.Redis
	uploader    Uploader
	stopUpload  context.CancelFunc
	uploadDone  chan struct{}
	stopShedder context.CancelFunc
	stopSync    context.CancelFunc
	syncDone    chan struct{}
}

// Open takes the log folder's lock before anything in it is touched and
// the port before the logs are opened (a service that cannot run changes
// nothing), then builds the routing, opens the logs, remembers the
// decisions and outcomes of earlier runs, and starts the load shedder.
// Nothing is served until Run.
func Open(ctx context.Context, opt Options) (_ *Service, err error) {
	if opt.Load == nil {
		return nil, errors.New("serve: no routing to load")
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.Writer == "" {
		opt.Writer = logstore.DefaultWriterID()
	}
	if opt.ShutdownTimeout <= 0 {
		opt.ShutdownTimeout = 20 * time.Second
	}
	s := &Service{opt: opt}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()
	if s.lock, err = logstore.LockDir(opt.LogDir, opt.Writer); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if opt.Addr != "" {
		if s.ln, err = net.Listen("tcp", opt.Addr); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
	onFallback := func() {
		if s.srv != nil {
			s.srv.CountFallback()
		}
	}
	reload := func() (*Routing, error) { return opt.Load(onFallback) }
	routing, err := reload()
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if err := ctx.Err(); err != nil { // stopped while the predictors loaded
		routing.Close()
		return nil, fmt.Errorf("serve: %w", err)
	}
	defer func() {
		if err != nil && s.srv == nil {
			routing.Close()
		}
	}()
	var recovered int
	var unsettled []datasets.OutcomeRecord // recovered outcomes a killed process may not have told the fleet
	var onRecover func([]datasets.OutcomeRecord)
	if opt.Redis != "" {
		onRecover = func(recs []datasets.OutcomeRecord) { unsettled = append(unsettled, recs...) }
	}
	s.outcomes, recovered, err = logstore.OpenRecovering(logstore.Options{Dir: opt.LogDir, Prefix: datasets.OutcomeLogPrefix,
		Writer: opt.Writer, MaxBytes: 64 << 20, MaxAge: 10 * time.Minute, Log: opt.Log}, onRecover)
	if err != nil {
		return nil, fmt.Errorf("serve: outcome log: %w", err)
	}
	if recovered > 0 {
		opt.Log.Info("recovered outcomes from the write-ahead log", "records", recovered)
	}
	dcfg := logstore.DefaultDecisionLogConfig(opt.LogDir)
	dcfg.Writer = opt.Writer
	dcfg.RingBytes = max(dcfg.RingBytes, 4*opt.MaxTextBytes) // room for the largest decision twice over
	if s.dlog, err = logstore.NewDecisionLog(dcfg, opt.Log); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	maxRemembered := opt.MaxRemembered
	if maxRemembered <= 0 {
		maxRemembered = DefaultConfig().MaxRemembered
	}
	past, since, err := datasets.ReadRecentDecisions(opt.LogDir, maxRemembered)
	if err != nil {
		return nil, fmt.Errorf("serve: read earlier decisions: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	RegisterLogMetrics(reg, "decisions", s.dlog)
	RegisterLogMetrics(reg, "outcomes", s.outcomes)
	var shedder Shedder
	if opt.ShedDelay > 0 {
		d := NewDelayShedder(opt.ShedDelay)
		RegisterShedMetrics(reg, d)
		var shedCtx context.Context
		shedCtx, s.stopShedder = context.WithCancel(context.Background())
		go func() {
			if err := d.Run(shedCtx); err != nil {
				opt.Log.Warn("load shedding by queueing delay is off", "err", err)
			}
		}()
		shedder = d
	}
	dlog, outcomes := s.dlog, s.outcomes
	health := []func() error{
		func() error { return failing("decision log", dlog.Failing(time.Minute)) },
		func() error { return failing("outcome log", outcomes.Failing(time.Minute)) },
	}
	if opt.Uploader != nil {
		s.uploader = opt.Uploader
		health = append(health, s.uploader.Failing)
	}
	var shared Fleet
	var rollouts rollout.Store
	var budgets budget.Store
	if opt.Redis != "" {
		if s.fleet, err = fleet.Open(ctx, fleet.Options{URL: opt.Redis, Owner: opt.Writer, Log: opt.Log}); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
		shared = s.fleet
		if rollouts, err = s.fleet.Rollouts(); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
		if budgets, err = s.fleet.Budgets(); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
	s.srv, err = New(opt.Config, Deps{Routing: routing, Catalogue: routing.Catalogue, Decisions: dlog, Outcomes: outcomes, Log: opt.Log,
		Registry: reg, Reload: reload, Shedder: shedder, Health: health, Fleet: shared, Rollouts: rollouts, Budgets: budgets, Now: opt.Now})
	if err != nil {
		return nil, err
	}
	s.srv.RememberDecisions(past)
	var offered []datasets.DecisionKey // offered to the fleet below, once the outcomes are read
	if s.fleet != nil {
		offered = past
	}
	past = nil
	err = datasets.EachOutcomeFile(opt.LogDir, func(rows []datasets.OutcomeRecord) error {
		s.srv.RememberOutcomes(rows, since)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("serve: read earlier outcomes: %w", err)
	}
	if s.fleet != nil {
		s.srv.Unsettled(unsettled)
		if err := s.srv.SeedFleet(ctx, offered); err != nil {
			opt.Log.Warn("fleet: outcome counts not offered", "err", err)
		}
		s.srv.SyncFleet(ctx)
		var syncCtx context.Context
		syncCtx, s.stopSync = context.WithCancel(context.Background())
		s.syncDone = make(chan struct{})
		go func() {
			defer close(s.syncDone)
			// rollouts four times a second (replicas agree on a stage within
			// a second), the rest every second
			t := time.NewTicker(time.Second / 4)
			defer t.Stop()
			for tick := 1; ; tick++ {
				select {
				case <-syncCtx.Done():
					return
				case <-t.C:
					s.srv.SyncRollouts(syncCtx)
					s.srv.SyncBudgets(syncCtx)
					if tick%4 == 0 {
						s.srv.SyncFleet(syncCtx)
					}
				}
			}
		}()
	}
	if s.uploader != nil {
		var upCtx context.Context
		upCtx, s.stopUpload = context.WithCancel(context.Background())
		s.uploadDone = make(chan struct{})
		go func() {
			defer close(s.uploadDone)
			s.uploader.Run(upCtx, 30*time.Second)
		}()
	}
	debug.FreeOSMemory() // start-up garbage (the logs read, the predictor's bytes) is not kept resident
	s.hs = &http.Server{Handler: s.srv.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	router := routing.Default
	meta := router.Metadata()
	opt.Log.Info("serving", "addr", s.Addr(), "predictor", meta.Version, "models", strings.Join(router.Models(), ","),
		"feature_spec", meta.FeatureSpecID, "logs", opt.LogDir, "auth", len(opt.APIKeys) > 0, "admin", opt.AdminKey != "")
	return s, nil
}

func failing(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s failing: %w", what, err)
}

// Addr is the address the service listens on ("" when it does not listen).
func (s *Service) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Sync shares with the fleet now what the service shares with it four
// times a second (rollouts, spend) and every second (outcomes stored
// while Redis was unreachable, outcome counts); nothing without Redis.
func (s *Service) Sync(ctx context.Context) {
	if s.fleet == nil || s.srv == nil {
		return
	}
	s.srv.SyncRollouts(ctx)
	s.srv.SyncBudgets(ctx)
	s.srv.SyncFleet(ctx)
}

// Handler is the service's HTTP handler, for requests served in process.
func (s *Service) Handler() http.Handler { return s.hs.Handler }

// Run serves until ctx ends (or the listener fails), reloading on SIGHUP
// when asked to, then stops gracefully: requests in flight finish, the
// predictors close, and both logs are flushed and converted to Parquet.
func (s *Service) Run(ctx context.Context) error {
	if s.srv == nil {
		return errors.New("serve: the service is closed")
	}
	if s.ln == nil {
		return errors.New("serve: the service was opened without an address to listen on")
	}
	errc := make(chan error, 1)
	go func() { errc <- s.hs.Serve(s.ln) }()
	hup := make(chan os.Signal, 1)
	if s.opt.ReloadOnSIGHUP {
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	var serveErr error
	for running := true; running; {
		select {
		case err := <-errc:
			serveErr, running = fmt.Errorf("serve: %w", err), false
		case <-hup:
			_ = s.srv.Reload() // logged and counted; a rejected configuration leaves the old one serving
		case <-ctx.Done():
			running = false
		}
	}
	s.opt.Log.Info("shutting down: finishing requests in flight and flushing the logs")
	sctx, cancel := context.WithTimeout(context.Background(), s.opt.ShutdownTimeout)
	defer cancel()
	if err := s.hs.Shutdown(sctx); err != nil {
		s.opt.Log.Error("shutdown", "err", err)
	}
	err := s.stop(sctx)
	if serveErr != nil {
		return serveErr
	}
	return err
}

// Close stops a service that is not running (one served in process through
// Handler): the predictors close, both logs are flushed and converted to
// Parquet, and the log folder's lock is released. Closing twice, or after
// Run, does nothing.
func (s *Service) Close(ctx context.Context) error {
	if s == nil || s.srv == nil {
		return nil
	}
	return s.stop(ctx)
}

// stop closes the predictors and the logs, and releases the lock.
func (s *Service) stop(ctx context.Context) error {
	var errs []error
	s.stopFleetSync()
	if s.fleet != nil {
		s.srv.SyncFleet(ctx) // what is still unsettled, if Redis answers
		s.srv.SyncRollouts(ctx)
		s.srv.SyncBudgets(ctx)
	}
	if err := s.srv.Close(); err != nil {
		s.opt.Log.Error("close the predictors", "err", err)
	}
	if err := s.dlog.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.outcomes.Close(); err != nil {
		errs = append(errs, fmt.Errorf("serve: close outcome log: %w", err))
	}
	if s.uploader != nil { // the files the logs just finished
		s.stopUploads()
		if _, err := s.uploader.Upload(ctx); err != nil {
			errs = append(errs, fmt.Errorf("serve: %w (the files stay in %s and are uploaded at the next start)", err, s.opt.LogDir))
		}
	}
	written, dropped, werrs := s.dlog.Stats()
	s.opt.Log.Info("stopped", "decisions_logged", written, "decisions_dropped", dropped, "write_errors", werrs)
	s.dlog, s.outcomes, s.srv = nil, nil, nil
	s.closeAll()
	return errors.Join(errs...)
}

// closeAll releases what Open took, in reverse order (for a failed Open
// and after stop).
func (s *Service) closeAll() {
	if s.stopShedder != nil {
		s.stopShedder()
	}
	s.stopFleetSync()
	s.stopUploads()
	if s.uploader != nil {
		s.uploader.Close()
		s.uploader = nil
	}
	if s.srv != nil {
		s.srv.Close()
	}
	if s.dlog != nil {
		s.dlog.Close(context.Background())
	}
	if s.outcomes != nil {
		s.outcomes.Close()
	}
	if s.fleet != nil {
		s.fleet.Close()
		s.fleet = nil
	}
	if s.ln != nil {
		s.ln.Close()
	}
	if s.lock != nil {
		s.lock.Close()
	}
}

// stopFleetSync stops the fleet's sync loop and waits for it (once).
func (s *Service) stopFleetSync() {
	if s.stopSync != nil {
		s.stopSync()
		<-s.syncDone
		s.stopSync = nil
	}
}

// stopUploads stops the periodic log upload and waits for it (once).
func (s *Service) stopUploads() {
	if s.stopUpload != nil {
		s.stopUpload()
		<-s.uploadDone
		s.stopUpload = nil
	}
}
