package datasets

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// DecisionKey is what a server remembers of a past decision.
type DecisionKey struct{ DecisionID, Chosen string }

// The log file name prefixes: decision log files are named
// decisions-…parquet and outcome log files outcomes-…parquet.
const (
	DecisionLogPrefix = "decisions"
	OutcomeLogPrefix  = "outcomes"
)

// logFileTime is the layout of the time in a log file's name.
const logFileTime = "20060102T150405.000000Z"

// LogFileName is the base name (without extension) of the seq-th log file
// that writer started at t: <prefix>-<UTC time>-<writer>-<seq>. Names of one
// writer sort in the order its files were started; the writer id keeps
// several writers in one folder from ever making the same name.
func LogFileName(prefix string, t time.Time, writer string, seq int) string {
	return fmt.Sprintf("%s-%s-%s-%06d", prefix, t.UTC().Format(logFileTime), writer, seq)
}

// ParseLogFileName splits a name made by LogFileName (with or without a
// .parquet or .wal extension) into its parts; ok is false for any other
// name. A name of an earlier version has no writer id: writer is empty.
func ParseLogFileName(name string) (prefix string, t time.Time, writer string, seq int, ok bool) {
	if i := strings.Index(name, ".parquet"); i >= 0 {
		name = name[:i]
	}
	name = strings.TrimSuffix(name, ".wal")
	prefix, rest, found := strings.Cut(name, "-")
	if !found || len(rest) < len(logFileTime)+3 || rest[len(logFileTime)] != '-' {
		return "", time.Time{}, "", 0, false
	}
	t, err := time.Parse(logFileTime, rest[:len(logFileTime)])
	if err != nil {
		return "", time.Time{}, "", 0, false
	}
	rest = rest[len(logFileTime)+1:]
	i := strings.LastIndexByte(rest, '-') // -1: a name of an earlier version, without a writer id
	if i == 0 {
		return "", time.Time{}, "", 0, false
	}
	seq, err = strconv.Atoi(rest[i+1:])
	if i > 0 {
		writer = rest[:i]
	}
	if err != nil || seq < 0 {
		return "", time.Time{}, "", 0, false
	}
	return prefix, t, writer, seq, true
}

// ReadRecentDecisions reads what a server needs of its decision log at
// start-up: at most max decisions, the most recent (files in path order,
// which for the dt=/hour= partitions and DecisionLogName is the order they
// were opened), oldest first, reading only their decision_id and chosen
// columns, newest file first, and stopping once it has max. since is when
// the oldest file it read was opened (zero if it read none, or that file's
// name does not carry a time).
func ReadRecentDecisions(dir string, max int) (decisions []DecisionKey, since time.Time, err error) {
	dpaths, _, err := LogFiles(dir)
	if err != nil {
		return nil, time.Time{}, err
	}
	var files [][]DecisionKey // newest first
	n, oldest := 0, ""
	for i := len(dpaths) - 1; i >= 0 && n < max; i-- {
		rows, err := readPath(dpaths[i], decisionKeys)
		if err != nil {
			return nil, time.Time{}, err
		}
		if len(rows) > max-n {
			rows = rows[len(rows)-(max-n):]
		}
		files = append(files, rows)
		n += len(rows)
		oldest = filepath.Base(dpaths[i])
	}
	decisions = make([]DecisionKey, 0, n)
	for i := len(files) - 1; i >= 0; i-- {
		decisions = append(decisions, files[i]...)
	}
	if _, t, _, _, ok := ParseLogFileName(oldest); ok {
		since = t
	}
	return decisions, since, nil
}

// EachOutcomeFile calls fn with the rows of every outcome log file under
// dir, one file at a time in path order, so that reading a long history
// holds one file in memory, not all of it.
func EachOutcomeFile(dir string, fn func([]OutcomeRecord) error) error {
	_, opaths, err := LogFiles(dir)
	if err != nil {
		return err
	}
	for _, p := range opaths {
		rows, err := ReadOutcomes(p)
		if err != nil {
			return err
		}
		if err := fn(rows); err != nil {
			return err
		}
	}
	return nil
}

// decisionKeys reads the decision_id and chosen columns of a decision log
// from r. It never panics: parquet-go panics on some corrupt inputs, and
// those become errors.
func decisionKeys(r io.ReaderAt, size int64) (rows []DecisionKey, err error) {
	defer recoverCorrupt(&rows, &err)
	f, err := openVersioned(r, size)
	if err != nil {
		return nil, err
	}
	ids, err := readStringColumn(f, "decision_id")
	if err != nil {
		return nil, err
	}
	chosen, err := readStringColumn(f, "chosen")
	if err != nil {
		return nil, err
	}
	if len(ids) != len(chosen) || int64(len(ids)) != f.NumRows() {
		return nil, fmt.Errorf("corrupt Parquet file: %d ids, %d models, footer says %d rows", len(ids), len(chosen), f.NumRows())
	}
	rows = make([]DecisionKey, len(ids))
	for i := range rows {
		rows[i].DecisionID, rows[i].Chosen = ids[i], chosen[i]
	}
	return rows, nil
}

// readStringColumn reads one required top-level string column of every row
// group.
func readStringColumn(f *parquet.File, name string) ([]string, error) {
	col, ok := f.Schema().Lookup(name)
	if !ok {
		return nil, fmt.Errorf("no column %q", name)
	}
	var out []string
	buf := make([]parquet.Value, 1024)
	for _, rg := range f.RowGroups() {
		pages := rg.ColumnChunks()[col.ColumnIndex].Pages()
		for {
			p, err := pages.ReadPage()
			if err == io.EOF {
				break
			}
			if err != nil {
				pages.Close()
				return nil, err
			}
			vr := p.Values()
			for {
				k, err := vr.ReadValues(buf)
				for _, v := range buf[:k] {
					out = append(out, string(v.ByteArray()))
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					parquet.Release(p)
					pages.Close()
					return nil, err
				}
			}
			parquet.Release(p)
		}
		pages.Close()
	}
	return out, nil
}
