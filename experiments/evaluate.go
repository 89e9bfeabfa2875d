package experiments

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/experiments/ope"
)

// Logs are decision and outcome logs as the off-policy estimates read
// them: one pass over the joined decisions, and the outcome counts. The
// logs in memory (InMemory) are one implementation; a reader that joins the
// log files out of core (datasets/join) is the other, for logs that do not
// fit in memory.
type Logs interface {
	// Decisions calls fn with consecutive batches of the logged decisions,
	// in log order, each joined with the outcome of its chosen model as
	// datasets.JoinDecisions joins them with datasets.JoinOptions{} (the
	// last logged, of any source but shadow; shadow outcomes are not
	// needed). fn owns each batch. An error of fn stops the pass and is
	// returned.
	Decisions(ctx context.Context, fn func([]datasets.Joined) error) error
	// Links counts how the outcomes link to the decisions
	// (datasets.CountOutcomeLinks).
	Links(ctx context.Context) (datasets.OutcomeLinks, error)
}

// InMemory are logs read into memory (datasets.ReadLogDir).
func InMemory(decisions []datasets.DecisionRecord, outcomes []datasets.OutcomeRecord) Logs {
	return memoryLogs{decisions, outcomes}
}

type memoryLogs struct {
	decisions []datasets.DecisionRecord
	outcomes  []datasets.OutcomeRecord
}

// memoryBatch is the batch size of the logs in memory.
const memoryBatch = 1024

func (m memoryLogs) Decisions(ctx context.Context, fn func([]datasets.Joined) error) error {
	joined := datasets.JoinDecisions(m.decisions, m.outcomes, datasets.JoinOptions{})
	for len(joined) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(joined), memoryBatch)
		if err := fn(joined[:n:n]); err != nil {
			return err
		}
		joined = joined[n:]
	}
	return nil
}

func (m memoryLogs) Links(context.Context) (datasets.OutcomeLinks, error) {
	return datasets.CountOutcomeLinks(m.decisions, m.outcomes), nil
}

// NoRecordsError says that not one logged decision could be evaluated:
// none had an outcome, a prompt and candidates the target scores. When
// every outcome lacks its decision it wraps the
// *datasets.MissingDecisionsError that says so.
type NoRecordsError struct {
	Arm   string // the arm whose policy was evaluated (ArmTarget); "" for others
	Links datasets.OutcomeLinks
}

// Error implements error.
func (e *NoRecordsError) Error() string {
	msg := "no usable logged decisions"
	if e.Arm != "" {
		msg = fmt.Sprintf("arm %s: no usable decisions of the other arms", e.Arm)
	}
	if e.Links.AllWithoutDecision() {
		msg += ": " + e.Links.Err().Error()
	}
	return msg
}

// Unwrap is the *datasets.MissingDecisionsError when every outcome lacks
// its decision, nil otherwise.
func (e *NoRecordsError) Unwrap() error {
	if e.Links.AllWithoutDecision() {
		return e.Links.Err()
	}
	return nil
}

// Target is a routing policy to evaluate off-policy, on which logged
// decisions, with which settings.
type Target struct {
	Router *policy.Router
	// Use picks the logged decisions to evaluate on; nil picks all.
	Use    func(*datasets.DecisionRecord) bool
	Config ope.Config
	arm    string // the arm whose policy it is (ArmTarget), for errors
}

// ArmTarget is the target that evaluates the policy of one arm of an
// experiment on the decisions the experiment's other arms logged (with
// their exploration propensities), so that the A/B result and the
// off-policy estimate can be compared.
func ArmTarget(experiment, arm string, router *policy.Router, cfg ope.Config) Target {
	return Target{Router: router, Config: cfg, arm: arm, Use: func(d *datasets.DecisionRecord) bool {
		return d.Experiment == experiment && d.Arm != arm
	}}
}

// Estimate is the off-policy evaluation of one Target.
type Estimate struct {
	Report *ope.Report // nil with Err
	Stats  JoinStats   // its outcome counts are over all the logged decisions
	// Err says why there is no Report: a decision no record can be built
	// from (the first in log order), an invalid record, or no usable
	// decision at all (a *NoRecordsError).
	Err error
}

// Evaluate estimates the value of every target from one pass over the
// logs, as OffPolicyRecords and ope.Value do, in memory that does not grow
// with the logs: the records are added to an ope.Accumulator as they are
// built and not kept. The targets route the logged prompts on workers
// goroutines (0: one per CPU); the records reach the accumulators in log
// order, so the estimates do not depend on the number of workers. The
// error is the logs' (reading them, or counting the outcomes); what goes
// wrong with one target is its Estimate's Err, and the others go on.
func Evaluate(ctx context.Context, logs Logs, targets []Target, workers int) ([]Estimate, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	evs := make([]evaluation, len(targets))
	live := 0
	for i, t := range targets {
		evs[i].scores = scoredModels(t.Router)
		acc, err := ope.NewAccumulator(t.Config)
		evs[i].acc, evs[i].err = acc, err
		if err == nil {
			live++
		} else {
			evs[i].failed.Store(true)
		}
	}
	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if live == 0 {
		cancel() // nothing to evaluate: no need to read
	}

	// the logs' batches, numbered, to the workers; their results back to
	// this goroutine, which adds them in order
	type job struct {
		seq   int
		batch []datasets.Joined
	}
	jobs := make(chan job, workers)
	results := make(chan batchResult, workers)
	read := make(chan error, 1)
	go func() {
		seq := 0
		read <- logs.Decisions(readCtx, func(b []datasets.Joined) error {
			select {
			case jobs <- job{seq, b}:
				seq++
				return nil
			case <-readCtx.Done():
				return readCtx.Err()
			}
		})
		close(jobs)
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				results <- buildBatch(targets, evs, j.seq, j.batch)
			}
		})
	}
	go func() { wg.Wait(); close(results) }()

	pending := map[int]batchResult{}
	next := 0
	for r := range results { // drained to the end, so no worker blocks
		pending[r.seq] = r
		for live > 0 {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if live -= addBatch(evs, r); live == 0 {
				cancel() // every target has failed: stop reading
			}
		}
	}
	if err := <-read; err != nil && live > 0 {
		return nil, err
	}
	links, err := logs.Links(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Estimate, len(targets))
	for i := range evs {
		out[i] = evs[i].estimate(targets[i], links)
	}
	return out, nil
}

// evaluation is one target's state during Evaluate.
type evaluation struct {
	scores map[string]bool
	acc    *ope.Accumulator
	st     JoinStats
	err    error
	// failed is set with err, for the workers to stop routing for the
	// target; they may see it late, and add ignores what they made after.
	failed atomic.Bool
}

// batchResult is what the targets made of one batch: per target, the kind
// of each decision it uses and its record (or the error on it).
type batchResult struct {
	seq   int
	batch []datasets.Joined
	items [][]item
}

type item struct {
	k    int // index of the decision in the batch
	rec  ope.Record
	kind recordKind
	err  error
}

// buildBatch builds the records of one batch for every target still going.
func buildBatch(targets []Target, evs []evaluation, seq int, batch []datasets.Joined) batchResult {
	r := batchResult{seq: seq, batch: batch, items: make([][]item, len(targets))}
	for i, t := range targets {
		if evs[i].failed.Load() {
			continue
		}
		for k := range batch {
			if t.Use != nil && !t.Use(&batch[k].Decision) {
				continue
			}
			rec, kind, err := offPolicyRecord(t.Router, evs[i].scores, &batch[k])
			r.items[i] = append(r.items[i], item{k: k, rec: rec, kind: kind, err: err})
			if err != nil {
				break // the target fails on its first error
			}
		}
	}
	return r
}

// addBatch adds one batch's records to the targets in log order and
// returns the number of targets that failed on it.
func addBatch(evs []evaluation, r batchResult) (failed int) {
	for i := range evs {
		ev := &evs[i]
		if ev.err != nil {
			continue
		}
		for _, it := range r.items[i] {
			ev.st.Decisions++
			if it.err == nil && ev.st.count(it.kind, &r.batch[it.k]) {
				it.err = ev.acc.Add(&it.rec)
			}
			if it.err != nil {
				ev.err = it.err
				ev.failed.Store(true)
				failed++
				break
			}
		}
	}
	return failed
}

// estimate is the evaluation's result for target, with the outcome counts
// links.
func (ev *evaluation) estimate(target Target, links datasets.OutcomeLinks) Estimate {
	ev.st.average()
	ev.st.setLinks(links)
	e := Estimate{Stats: ev.st, Err: ev.err}
	switch {
	case e.Err != nil:
	case ev.st.Used == 0:
		e.Err = &NoRecordsError{Arm: target.arm, Links: ev.st.Links()}
	default:
		e.Report, e.Err = ev.acc.Report()
	}
	return e
}
