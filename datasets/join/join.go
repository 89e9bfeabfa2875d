// Package join joins a fleet's decision and outcome logs on DuckDB
// embedded in the binary: out of core, memory-bounded, straight over the
// log folders of every replica, with no extension downloaded or loaded at
// run time (Parquet is built in). Logs writes the training table
// (datasets/table) that training streams; LogReader reads the decisions
// joined with their outcomes, and an experiment's arms, for off-policy
// estimates and experiment analysis. Every log file is checked first;
// none is read as zeros. Both take the decisions' prompts from the log
// files in file and row order, merged with what the engine joined, so the
// same logs give the same rows in the same order.
package join

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" database/sql driver

	"switchyard/datasets"
)

// Options select and shape the examples.
type Options struct {
	Logs         []string  // log folders (every writer's files in each, any sub-folders)
	Since, Until time.Time // decisions in [Since, Until); zero: unbounded
	// Sample keeps this share of the decisions, chosen by a hash of the
	// seed and the decision id (the same share on every run); 0 or 1: all.
	Sample float64
	Seed   int64
	Clip   float64 // largest weight; 0: 20
	// SkipBad leaves out log files that cannot be read (counted in Stats)
	// instead of failing.
	SkipBad bool
	// MemoryMB bounds the engine's memory (it spills to TempDir beyond);
	// 0: 1024. Threads: 0 uses every core.
	MemoryMB int
	Threads  int
	TempDir  string
	// RowGroup is the rows in each of the table's row groups (the unit
	// training shuffles between); 0: 65,536.
	RowGroup int
}

// Stats say what Join did.
type Stats struct {
	DecisionFiles, OutcomeFiles int
	Skipped                     []string // files left out (SkipBad), each with the reason
	Rows                        int64
	// Outcomes counts the logged outcomes that name a decision, and
	// OutcomesWithoutDecision those of them whose decision is in no
	// decision file (feedback that cannot be used: see
	// datasets.OutcomeLinks).
	Outcomes, OutcomesWithoutDecision int64
}

// Logs joins the logs under opt.Logs into a training table at out. Each
// log file is checked first (framing, schema version, columns and types):
// a file that fails is named in the error, or left out and counted with
// SkipBad; nothing is read as zeros. A decision becomes a row when its
// prompt was kept and an outcome of its chosen model is logged (the
// latest when there are several); its shadow outcomes of other models
// (the latest per model) come along. Decision ids are unique in a fleet's
// logs (a server's instance id and a counter): decisions are not
// deduplicated, and the rows are in no particular order (a sort of the
// prompts would not fit the memory bound), so that no operator has to hold
// the prompts in memory; training orders them.
func Logs(ctx context.Context, opt Options, out string) (Stats, error) {
	var st Stats
	if opt.Clip == 0 {
		opt.Clip = 20
	}
	switch {
	case !(opt.Clip >= 1):
		return st, fmt.Errorf("join: clip %v must be at least 1", opt.Clip)
	case opt.RowGroup < 0:
		return st, fmt.Errorf("join: row group of %d rows must not be negative", opt.RowGroup)
	case math.IsNaN(opt.Sample) || opt.Sample < 0 || opt.Sample > 1:
		return st, fmt.Errorf("join: sample %v must be in (0,1]", opt.Sample)
	case len(opt.Logs) == 0:
		return st, errors.New("join: no log folder")
	case !opt.Until.IsZero() && !opt.Since.Before(opt.Until):
		return st, fmt.Errorf("join: since %s is not before until %s", opt.Since.Format(time.RFC3339), opt.Until.Format(time.RFC3339))
	}
	dfiles, ofiles, err := checkedLogs(opt.Logs, opt.SkipBad, &st)
	if err != nil {
		return st, err
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return st, fmt.Errorf("join: open the engine: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection: the settings below hold for the query
	if err := configure(ctx, db, opt); err != nil {
		return st, err
	}
	if err := db.QueryRowContext(ctx, linksQuery(dfiles, ofiles)).Scan(&st.Outcomes, &st.OutcomesWithoutDecision); err != nil {
		return st, fmt.Errorf("join: count the outcomes without decision: %w", err)
	}
	if len(dfiles) == 0 { // outcomes only: every one of them has lost its decision
		links := datasets.OutcomeLinks{Linked: int(st.Outcomes), WithoutDecision: int(st.OutcomesWithoutDecision)}
		if err := links.Err(); err != nil {
			return st, fmt.Errorf("join: no examples: %w", err)
		}
		return st, fmt.Errorf("join: no decision log files under %s", strings.Join(opt.Logs, ", "))
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return st, fmt.Errorf("join: %w", err)
	}
	tmp := filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".tmp")
	defer os.Remove(tmp)
	// the outcomes are aggregated first, each into a file of its own, so
	// that the join of the prompts holds no aggregate in memory: one query
	// with the aggregates and both joins runs out of memory at ten million
	// decisions under a 1 GB engine limit (measured; docs/formats.md)
	chosen, shadows, index := tmp+".chosen", tmp+".shadows", tmp+".index"
	defer os.Remove(chosen)
	defer os.Remove(shadows)
	defer os.Remove(index)
	for _, q := range joinQueries(dfiles, ofiles, opt, chosen, shadows, index) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return st, fmt.Errorf("join: %w", err)
		}
	}
	db.Close() // the engine's memory is given back before the merge
	if st.Rows, err = writeTable(ctx, dfiles, index, tmp, cmp.Or(opt.RowGroup, 1<<16)); err != nil {
		return st, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return st, fmt.Errorf("join: %w", err)
	}
	return st, nil
}

// configure bounds the engine: memory, spill folder, threads, and no
// extension is installed or loaded at run time (Parquet is built in).
func configure(ctx context.Context, db *sql.DB, opt Options) error {
	mem := opt.MemoryMB
	if mem <= 0 {
		mem = 1024
	}
	settings := []string{
		fmt.Sprintf("SET memory_limit = '%dMB'", mem),
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET preserve_insertion_order = false",
		"SET TimeZone = 'UTC'",
	}
	if opt.Threads > 0 {
		settings = append(settings, fmt.Sprintf("SET threads = %d", opt.Threads))
	}
	if opt.TempDir != "" {
		settings = append(settings, "SET temp_directory = "+quote(opt.TempDir))
	}
	for _, s := range settings {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("join: %s: %w", s, err)
		}
	}
	return nil
}

// quote is a SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func fileList(files []string) string {
	q := make([]string, len(files))
	for i, f := range files {
		q[i] = quote(f)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// fileValues are the decision files numbered in order, as SQL VALUES rows.
func fileValues(files []string) string {
	rows := make([]string, len(files))
	for i, f := range files {
		rows[i] = fmt.Sprintf("(%s, %d::BIGINT)", quote(f), i)
	}
	return strings.Join(rows, ", ")
}

// linksQuery counts the outcomes that name a decision, and those of them
// whose decision is in no decision file (all of them when there is none),
// as datasets.CountOutcomeLinks does: by an aggregate over both, which
// spills (an anti-join ran out of memory at ten million decisions).
func linksQuery(dfiles, ofiles []string) string {
	if len(dfiles) == 0 {
		return fmt.Sprintf(`SELECT count(*), count(*) FROM read_parquet(%s, hive_partitioning = false) WHERE decision_id <> ''`, fileList(ofiles))
	}
	return fmt.Sprintf(`SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (WHERE NOT decided), 0) FROM (
  SELECT decision_id, bool_or(decision) AS decided, count(*) FILTER (WHERE NOT decision) AS n
  FROM (SELECT decision_id, true AS decision FROM read_parquet(%s, hive_partitioning = false)
        UNION ALL
        SELECT decision_id, false FROM read_parquet(%s, hive_partitioning = false) WHERE decision_id <> '')
  GROUP BY decision_id
)`, fileList(dfiles), fileList(ofiles))
}

// joinQueries are the join on the engine as three COPY statements
// (docs/formats.md has it as one query for other engines): the latest
// outcome of each decision's served model into chosen, the latest outcome
// of each of its shadow models, as one list per decision, into shadows,
// and the decisions (all but their prompts) joined with both into index,
// ordered by decision file and row: writeTable merges the decisions'
// prompts in, so that the rows come in the same order on every run.
func joinQueries(dfiles, ofiles []string, opt Options, chosen, shadows, index string) []string {
	var where []string
	where = append(where, "decision_id <> ''")
	if !opt.Since.IsZero() {
		where = append(where, "time >= "+quote(opt.Since.UTC().Format("2006-01-02 15:04:05.999999")+"+00")+"::TIMESTAMPTZ")
	}
	if !opt.Until.IsZero() {
		where = append(where, "time < "+quote(opt.Until.UTC().Format("2006-01-02 15:04:05.999999")+"+00")+"::TIMESTAMPTZ")
	}
	if opt.Sample > 0 && opt.Sample < 1 {
		where = append(where, fmt.Sprintf("md5_number(%s || decision_id) %% 1000000 < %d",
			quote(fmt.Sprint(opt.Seed, ":")), int64(math.Round(opt.Sample*1e6))))
	}
	outcomes := fileList(ofiles)
	return []string{
		fmt.Sprintf(`COPY (
SELECT decision_id, model,
       arg_max(quality, time) AS quality, arg_max(cost_usd, time) AS cost_usd,
       arg_max(input_tokens, time) AS input_tokens, arg_max(output_tokens, time) AS output_tokens,
       max(time) AS time
FROM read_parquet(%s, hive_partitioning = false)
WHERE decision_id <> '' AND source <> 'shadow'
GROUP BY ALL
) TO %s `+copyTo, outcomes, quote(chosen)),
		fmt.Sprintf(`COPY (
SELECT decision_id,
       list_sort(list({'model': model, 'quality': quality, 'cost_usd': cost_usd,
                       'output_tokens': output_tokens, 'time': time})) AS shadows
FROM (
  SELECT decision_id, model,
         arg_max(quality, time) AS quality, arg_max(cost_usd, time) AS cost_usd,
         arg_max(output_tokens, time) AS output_tokens, max(time) AS time
  FROM read_parquet(%s, hive_partitioning = false)
  WHERE decision_id <> '' AND source = 'shadow'
  GROUP BY ALL
)
GROUP BY decision_id
) TO %s `+copyTo, outcomes, quote(shadows)),
		fmt.Sprintf(`COPY (
WITH f(filename, file) AS (VALUES %[1]s),
d AS (
  SELECT f.file, file_row_number AS row, decision_id, chosen, propensity
  FROM read_parquet(%[2]s, hive_partitioning = false, filename = true, file_row_number = true) JOIN f USING (filename)
  WHERE %[3]s
)
SELECT d.file, d.row, c.quality, least(1.0 / d.propensity, %[4]g) AS weight,
       c.cost_usd, c.input_tokens, c.output_tokens, c.time AS outcome_time,
       list_filter(coalesce(s.shadows, []), x -> x.model <> d.chosen) AS shadows
FROM d
JOIN read_parquet(%[5]s) AS c ON c.decision_id = d.decision_id AND c.model = d.chosen
LEFT JOIN read_parquet(%[6]s) AS s ON s.decision_id = d.decision_id
ORDER BY d.file, d.row
) TO %[7]s `+copyTo,
			fileValues(dfiles), fileList(dfiles), strings.Join(where, " AND "), opt.Clip,
			quote(chosen), quote(shadows), quote(index)),
	}
}

// checkedFiles lists the decision and outcome log files under dirs and
// checks each (framing, schema version, columns and types): a file that
// fails is named in the error, or with skipBad left out and recorded in
// st.Skipped. It fails when no decision or no outcome file is left.
func checkedFiles(dirs []string, skipBad bool, st *Stats) (dfiles, ofiles []string, err error) {
	for _, dir := range dirs {
		if _, err := os.Stat(dir); err != nil {
			return nil, nil, fmt.Errorf("join: %w", err)
		}
		d, o, err := datasets.LogFiles(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("join: %w", err)
		}
		for _, f := range d {
			if err := datasets.CheckFile[datasets.DecisionRecord](f); err != nil {
				if !skipBad {
					return nil, nil, fmt.Errorf("join: %w (leave such files out with --skip-bad)", err)
				}
				st.Skipped = append(st.Skipped, err.Error())
				continue
			}
			dfiles = append(dfiles, f)
		}
		for _, f := range o {
			if err := datasets.CheckFile[datasets.OutcomeRecord](f); err != nil {
				if !skipBad {
					return nil, nil, fmt.Errorf("join: %w (leave such files out with --skip-bad)", err)
				}
				st.Skipped = append(st.Skipped, err.Error())
				continue
			}
			ofiles = append(ofiles, f)
		}
	}
	st.DecisionFiles, st.OutcomeFiles = len(dfiles), len(ofiles)
	if len(dfiles) == 0 {
		return nil, nil, fmt.Errorf("join: no decision log files under %s", strings.Join(dirs, ", "))
	}
	if len(ofiles) == 0 {
		return nil, nil, fmt.Errorf("join: no outcome log files under %s", strings.Join(dirs, ", "))
	}
	return dfiles, ofiles, nil
}
