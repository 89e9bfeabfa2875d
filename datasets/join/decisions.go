package join

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/parquet-go/parquet-go"

	"switchyard/datasets"
)

// LogOptions say which logs a LogReader reads and how the engine is
// bounded.
type LogOptions struct {
	Logs []string // log folders (every writer's files in each, any sub-folders)
	// SkipBad leaves out log files that cannot be read (named in
	// Stats.Skipped) instead of failing.
	SkipBad bool
	// MemoryMB bounds the engine's memory (it spills beyond); 0: 1024.
	// Threads: 0 uses every core.
	MemoryMB int
	Threads  int
	// TempDir is where the reader keeps the engine's spill and results
	// until Close; "": the system's temporary folder.
	TempDir string
}

// LogReader reads a fleet's decision and outcome logs for what evaluates
// policies on them (the off-policy estimates of experiments.Evaluate,
// experiment analysis) the way the logs in memory are read, but out of
// core: the engine joins each decision with its outcome into a temporary
// Parquet file without the prompts, and the decisions, prompts included,
// are streamed from the log files batch by batch beside it. Memory stays
// bounded by the engine's limit and a few batches, however long the logs.
//
// Log order is the order of the files (as checkedFiles lists them: folder
// by folder, in path order) and of the rows in each; a decision's outcome
// is the last logged one of its chosen model, as datasets.JoinDecisions
// takes it. A LogReader is not safe for concurrent use.
type LogReader struct {
	opt            LogOptions
	dfiles, ofiles []string
	stats          Stats
	dir            string // the reader's temporary folder
	links          *datasets.OutcomeLinks
}

// OpenLogs lists and checks the log files under opt.Logs (framing, schema
// version, columns and types): a file that fails is named in the error,
// or with SkipBad left out and named in Stats().Skipped. Logs with
// outcome files but no decision file at all (every decision log lost) are
// read as logs without decisions whose outcomes all lack theirs.
func OpenLogs(opt LogOptions) (*LogReader, error) {
	if len(opt.Logs) == 0 {
		return nil, errors.New("read logs: no log folder")
	}
	r := &LogReader{opt: opt}
	var err error
	if r.dfiles, r.ofiles, err = checkedLogs(opt.Logs, opt.SkipBad, &r.stats); err != nil {
		return nil, err
	}
	if r.dir, err = os.MkdirTemp(opt.TempDir, "switchyard-logs-"); err != nil {
		return nil, fmt.Errorf("read logs: %w", err)
	}
	return r, nil
}

// checkedLogs is checkedFiles, except that logs without a single decision
// file but with outcome files give the checked outcome files alone.
func checkedLogs(dirs []string, skipBad bool, st *Stats) (dfiles, ofiles []string, err error) {
	dfiles, ofiles, err = checkedFiles(dirs, skipBad, st)
	if err == nil {
		return dfiles, ofiles, nil
	}
	var listed []string
	for _, dir := range dirs {
		d, o, lerr := datasets.LogFiles(dir)
		if lerr != nil || len(d) > 0 {
			return nil, nil, err
		}
		listed = append(listed, o...)
	}
	*st = Stats{}
	for _, f := range listed {
		if cerr := datasets.CheckFile[datasets.OutcomeRecord](f); cerr != nil {
			if !skipBad {
				return nil, nil, fmt.Errorf("join: %w (leave such files out with --skip-bad)", cerr)
			}
			st.Skipped = append(st.Skipped, cerr.Error())
			continue
		}
		ofiles = append(ofiles, f)
	}
	if len(ofiles) == 0 {
		return nil, nil, err
	}
	st.OutcomeFiles = len(ofiles)
	return nil, ofiles, nil
}

// Stats are the log files read and left out.
func (r *LogReader) Stats() Stats { return r.stats }

// Close removes the reader's temporary files.
func (r *LogReader) Close() error {
	if err := os.RemoveAll(r.dir); err != nil {
		return fmt.Errorf("read logs: %w", err)
	}
	return nil
}

// engine calls fn with the embedded engine, bounded by the reader's
// options, and closes it after, so that its memory is free for what
// follows.
func (r *LogReader) engine(ctx context.Context, fn func(db *sql.DB) error) error {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return fmt.Errorf("read logs: open the engine: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection: the settings hold for the queries
	if err := configure(ctx, db, Options{MemoryMB: r.opt.MemoryMB, Threads: r.opt.Threads, TempDir: filepath.Join(r.dir, "spill")}); err != nil {
		return err
	}
	return fn(db)
}

// step is a statement for the engine, with what it does for errors.
type step struct{ what, sql string }

// run runs steps on db one after the other.
func run(ctx context.Context, db *sql.DB, steps ...step) error {
	for _, s := range steps {
		if _, err := db.ExecContext(ctx, s.sql); err != nil {
			return fmt.Errorf("read logs: %s: %w", s.what, err)
		}
	}
	return nil
}

// copyTo is the end of a statement that writes a query's result to a
// Parquet file: small row groups, since the engine buffers one per thread
// as it writes (with 122,880 rows, the default, they dominate the memory a
// join of a million decisions needs).
const copyTo = "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384)"

// rowKey is a log row's place in log order: the index of its file in the
// reader's list above the row's index in the file.
const rowKey = "(file_index::BIGINT << 40) + file_row_number"

func key(file, row int) int64 { return int64(file)<<40 + int64(row) }

// lastOutcomes is the statement that writes to out, per decision and
// model, the last logged outcome (of the sources where says) of the
// files: the numbers a join needs, without the strings, so that the
// aggregate stays small and spills.
func lastOutcomes(ofiles []string, where, out string) string {
	return fmt.Sprintf(`COPY (
SELECT decision_id, model,
       arg_max_null(quality, k) AS quality, arg_max_null(cost_usd, k) AS cost_usd,
       arg_max_null(latency_ms, k) AS latency_ms, arg_max_null(input_tokens, k) AS input_tokens,
       arg_max_null(output_tokens, k) AS output_tokens, arg_max_null(time, k) AS time
FROM (
  SELECT decision_id, model, quality, cost_usd, latency_ms, input_tokens, output_tokens, time, %s AS k
  FROM read_parquet(%s, hive_partitioning = false)
  WHERE decision_id <> '' AND %s
)
GROUP BY decision_id, model
) TO %s `+copyTo, rowKey, fileList(ofiles), where, quote(out))
}

// Links counts how the outcomes link to the decisions, as
// datasets.CountOutcomeLinks does (the count is kept for the next call).
func (r *LogReader) Links(ctx context.Context) (datasets.OutcomeLinks, error) {
	if r.links != nil {
		return *r.links, nil
	}
	q := linksQuery(r.dfiles, r.ofiles)
	var l datasets.OutcomeLinks
	err := r.engine(ctx, func(db *sql.DB) error {
		var linked, without int64
		if err := db.QueryRowContext(ctx, q).Scan(&linked, &without); err != nil {
			return fmt.Errorf("read logs: count the outcomes: %w", err)
		}
		l = datasets.OutcomeLinks{Linked: int(linked), WithoutDecision: int(without)}
		return nil
	})
	if err != nil {
		return l, err
	}
	r.links = &l
	return l, nil
}

// joinedOutcome is a decision's outcome as the engine joins it: the
// decision's place in log order and the outcome's numbers.
type joinedOutcome struct {
	Key          int64     `parquet:"key"`
	Quality      float64   `parquet:"quality"`
	CostUSD      float64   `parquet:"cost_usd"`
	LatencyMS    float64   `parquet:"latency_ms"`
	InputTokens  int64     `parquet:"input_tokens"`
	OutputTokens int64     `parquet:"output_tokens"`
	Time         time.Time `parquet:"time,timestamp(microsecond),optional"`
}

// Batch is the number of decisions Decisions hands over at a time.
const Batch = 1024

// Decisions calls fn with consecutive batches of the logged decisions, in
// log order, each joined with the last logged outcome of its chosen model
// of any source but shadow (datasets.JoinDecisions with
// datasets.JoinOptions{}): its DecisionID, Model, numbers and Time; its
// Source, PromptID and Error are left empty, and shadow outcomes are not
// joined. fn owns each batch. An error of fn stops the pass and is
// returned.
func (r *LogReader) Decisions(ctx context.Context, fn func([]datasets.Joined) error) error {
	if len(r.dfiles) == 0 {
		return nil
	}
	outcomes, joined := filepath.Join(r.dir, "outcomes.parquet"), filepath.Join(r.dir, "joined.parquet")
	defer os.Remove(outcomes)
	defer os.Remove(joined)
	err := r.engine(ctx, func(db *sql.DB) error {
		return run(ctx, db, step{"the last outcome of each decision", lastOutcomes(r.ofiles, "source <> 'shadow'", outcomes)},
			step{"the decisions joined with their outcomes", fmt.Sprintf(`COPY (
SELECT d.key, o.quality, o.cost_usd, o.latency_ms, o.input_tokens, o.output_tokens, o.time
FROM (SELECT decision_id, chosen, %s AS key FROM read_parquet(%s, hive_partitioning = false)) AS d
JOIN read_parquet(%s) AS o ON o.decision_id = d.decision_id AND o.model = d.chosen
ORDER BY d.key
) TO %s `+copyTo, rowKey, fileList(r.dfiles), quote(outcomes), quote(joined))})
	})
	if err != nil {
		return err
	}
	os.Remove(outcomes)
	next, done, err := cursor[joinedOutcome](joined)
	if err != nil {
		return err
	}
	defer done()
	o, more, err := next()
	if err != nil {
		return err
	}
	last := int64(-1)
	for fi, path := range r.dfiles {
		ferr := eachBatch(ctx, path, Batch, func(rows []datasets.DecisionRecord, first int) error {
			batch := make([]datasets.Joined, len(rows))
			for k := range rows {
				batch[k].Decision = rows[k]
				at := key(fi, first+k)
				if !more || o.Key != at {
					continue
				}
				d := &rows[k]
				batch[k].Outcome = &datasets.OutcomeRecord{DecisionID: d.DecisionID, Model: d.Chosen, Quality: o.Quality,
					CostUSD: o.CostUSD, LatencyMS: o.LatencyMS, InputTokens: o.InputTokens, OutputTokens: o.OutputTokens, Time: o.Time}
				last = o.Key
				var nerr error
				if o, more, nerr = next(); nerr != nil {
					return nerr
				}
				if more && o.Key <= last {
					return fmt.Errorf("read logs: the joined outcomes are out of log order (%d after %d)", o.Key, last)
				}
			}
			return fn(batch)
		})
		if ferr != nil {
			return ferr
		}
	}
	if more {
		return fmt.Errorf("read logs: a joined outcome (%d) matches no decision read", o.Key)
	}
	return nil
}

// eachBatch calls fn with the rows of a decision log file (as T: all of a
// decision record, or some of its columns), n at a time,
// each batch fresh, with the index of its first row in the file. A file
// the decoder cannot read is named in the error.
func eachBatch[T any](ctx context.Context, path string, n int, fn func(rows []T, first int) error) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read logs: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read logs: %w", err)
	}
	defer func() { // parquet-go panics on some corrupt inputs
		if p := recover(); p != nil {
			err = fmt.Errorf("read %s: corrupt Parquet file: %v", path, p)
		}
	}()
	pf, err := parquet.OpenFile(f, info.Size())
	if err != nil {
		return fmt.Errorf("read %s: corrupt Parquet file: %w", path, err)
	}
	pr := parquet.NewGenericReader[T](pf)
	defer pr.Close()
	read := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rows := make([]T, n)
		k, rerr := pr.Read(rows)
		if k > 0 {
			if err := fn(rows[:k:k], read); err != nil {
				return err
			}
			read += k
		}
		if errors.Is(rerr, io.EOF) || (rerr == nil && k == 0) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read %s: %w", path, rerr)
		}
	}
	if int64(read) != pf.NumRows() {
		return fmt.Errorf("read %s: corrupt Parquet file: read %d rows, footer says %d", path, read, pf.NumRows())
	}
	return nil
}

// cursor opens a Parquet file the engine wrote for reading row by row:
// next returns the next row and whether there was one; done closes the
// file.
func cursor[T any](path string) (next func() (T, bool, error), done func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read logs: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read logs: %w", err)
	}
	pf, err := parquet.OpenFile(f, info.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read logs: the engine's result %s: %w", path, err)
	}
	pr := parquet.NewGenericReader[T](pf)
	buf := make([]T, 4096)
	var at, n int
	var end bool
	next = func() (T, bool, error) {
		var zero T
		for at == n {
			if end {
				return zero, false, nil
			}
			k, err := pr.Read(buf)
			at, n = 0, k
			switch {
			case errors.Is(err, io.EOF) || (err == nil && k == 0):
				end = true
			case err != nil:
				return zero, false, fmt.Errorf("read logs: the engine's result %s: %w", path, err)
			}
		}
		at++
		return buf[at-1], true, nil
	}
	return next, func() { pr.Close(); f.Close() }, nil
}

// ExperimentArm is one arm of an experiment as its logs show it, reduced
// to what the analysis of the experiment needs (abtest.ArmLogs, which has
// the same fields, so one converts to the other): each
// decision of the arm with the last logged online outcome of its chosen
// model (datasets.JoinDecisions with OnlineOnly), per unit (UnitHash, or
// the decision when it has none).
type ExperimentArm struct {
	Name          string
	FirstDecision string // the arm's first decision in log order
	Units         int
	Requests      int
	// Quality, Cost and Outcomes hold, per unit with outcomes, the sums of
	// its outcomes' quality and cost and their number.
	Quality, Cost, Outcomes []float64
	Latencies               []float64 // of the outcomes with a latency (> 0)
}

// unitRow and latencyRow are the engine's per-unit sums and latencies.
type unitRow struct {
	Arm      int32   `parquet:"arm"`
	Requests int64   `parquet:"requests"`
	Outcomes int64   `parquet:"outcomes"`
	Quality  float64 `parquet:"quality"`
	CostUSD  float64 `parquet:"cost_usd"`
}

type latencyRow struct {
	Arm       int32   `parquet:"arm"`
	LatencyMS float64 `parquet:"latency_ms"`
}

// Experiment reads the arms of the experiment called name, in the order
// they first appear in the logs; none when the logs have no decision of
// it. The engine sums per unit; only the per-unit sums and the latencies
// come into memory.
func (r *LogReader) Experiment(ctx context.Context, name string) ([]ExperimentArm, error) {
	if len(r.dfiles) == 0 {
		return nil, nil
	}
	online, exp := filepath.Join(r.dir, "online.parquet"), filepath.Join(r.dir, "experiment.parquet")
	units, lat := filepath.Join(r.dir, "units.parquet"), filepath.Join(r.dir, "latencies.parquet")
	for _, f := range []string{online, exp, units, lat} {
		defer os.Remove(f)
	}
	var arms []ExperimentArm
	err := r.engine(ctx, func(db *sql.DB) error {
		err := run(ctx, db, step{"the last online outcome of each decision", lastOutcomes(r.ofiles, "source = 'online'", online)},
			step{"experiment " + name + ": its decisions joined with their outcomes", fmt.Sprintf(`COPY (
SELECT d.arm, CASE WHEN d.unit_hash <> '' THEN d.unit_hash ELSE d.decision_id END AS unit, d.key, d.decision_id,
       o.decision_id IS NOT NULL AS answered, o.quality, o.cost_usd, o.latency_ms
FROM (SELECT decision_id, chosen, arm, unit_hash, %s AS key FROM read_parquet(%s, hive_partitioning = false)
      WHERE experiment = %s) AS d
LEFT JOIN read_parquet(%s) AS o ON o.decision_id = d.decision_id AND o.model = d.chosen
) TO %s `+copyTo, rowKey, fileList(r.dfiles), quote(name), quote(online), quote(exp))})
		if err != nil {
			return err
		}
		rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT arm, arg_min(decision_id, key) FROM read_parquet(%s) GROUP BY arm ORDER BY min(key)`, quote(exp)))
		if err != nil {
			return fmt.Errorf("read logs: experiment %s: its arms: %w", name, err)
		}
		defer rows.Close()
		for rows.Next() {
			var a ExperimentArm
			if err := rows.Scan(&a.Name, &a.FirstDecision); err != nil {
				return fmt.Errorf("read logs: experiment %s: %w", name, err)
			}
			arms = append(arms, a)
		}
		if err := rows.Err(); err != nil || len(arms) == 0 {
			return err
		}
		names := make([]string, len(arms))
		for i, a := range arms {
			names[i] = a.Name
		}
		index := fmt.Sprintf("list_position(%s, arm) - 1", fileList(names))
		return run(ctx, db, step{"experiment " + name + ": its units", fmt.Sprintf(`COPY (
SELECT %s AS arm, count(*) AS requests, count(*) FILTER (WHERE answered) AS outcomes,
       coalesce(sum(quality), 0) AS quality, coalesce(sum(cost_usd), 0) AS cost_usd
FROM read_parquet(%s) GROUP BY arm, unit
) TO %s `+copyTo, index, quote(exp), quote(units))},
			step{"experiment " + name + ": its latencies", fmt.Sprintf(`COPY (SELECT %s AS arm, latency_ms FROM read_parquet(%s) WHERE answered AND latency_ms > 0) TO %s `+copyTo,
				index, quote(exp), quote(lat))})
	})
	if err != nil || len(arms) == 0 {
		return nil, err
	}
	if err := each(units, func(u unitRow) {
		a := &arms[u.Arm]
		a.Units++
		a.Requests += int(u.Requests)
		if u.Outcomes > 0 {
			a.Quality, a.Cost, a.Outcomes = append(a.Quality, u.Quality), append(a.Cost, u.CostUSD), append(a.Outcomes, float64(u.Outcomes))
		}
	}); err != nil {
		return nil, err
	}
	if err := each(lat, func(l latencyRow) { arms[l.Arm].Latencies = append(arms[l.Arm].Latencies, l.LatencyMS) }); err != nil {
		return nil, err
	}
	return arms, nil
}

// each calls fn with every row of a Parquet file the engine wrote.
func each[T any](path string, fn func(T)) error {
	next, done, err := cursor[T](path)
	if err != nil {
		return err
	}
	defer done()
	for {
		row, ok, err := next()
		if err != nil || !ok {
			return err
		}
		fn(row)
	}
}
