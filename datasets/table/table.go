// Package table is the training table: one row per example joined from the
// decision and outcome logs (prompt, task, the chosen model's observed
// quality, its inverse-propensity weight, cost and tokens, the decision's
// time, the shadow models' outcomes), in Parquet. datasets/join writes it
// on the embedded DuckDB; any engine that runs the SQL in docs/formats.md
// (Spark, Trino) can too. Read and Each check its version and schema.
package table

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// Version of the table's schema, in the file's key/value metadata under
// VersionKey.
const (
	Version    = "1"
	VersionKey = "switchyard.training_table_version"
)

// Row is one example of the training table.
type Row struct {
	DecisionID string `parquet:"decision_id"`
	// PromptKey is what the validation split hashes: "sha256:" and the
	// prompt's hash, or the decision id when the hash is unknown (the same
	// text asked twice never lands on both sides).
	PromptKey  string    `parquet:"prompt_key"`
	Prompt     string    `parquet:"prompt"`
	Task       string    `parquet:"task"`
	Time       time.Time `parquet:"time,timestamp(microsecond)"` // of the decision
	Model      string    `parquet:"model"`                       // the chosen model, whose outcome this is
	Quality    float64   `parquet:"quality"`
	Propensity float64   `parquet:"propensity"`
	// Weight is min(1/propensity, clip): training divides the weights of
	// the table's rows by their mean.
	Weight       float64   `parquet:"weight"`
	CostUSD      float64   `parquet:"cost_usd"`
	InputTokens  int64     `parquet:"input_tokens"`
	OutputTokens int64     `parquet:"output_tokens"`
	OutcomeTime  time.Time `parquet:"outcome_time,timestamp(microsecond)"`
	Shadows      []Shadow  `parquet:"shadows,list"` // outcomes of shadow copies, other models than Model
}

// Shadow is a shadow copy's outcome: its model observed at weight 1.
type Shadow struct {
	Model        string    `parquet:"model"`
	Quality      float64   `parquet:"quality"`
	CostUSD      float64   `parquet:"cost_usd"`
	OutputTokens int64     `parquet:"output_tokens"`
	Time         time.Time `parquet:"time,timestamp(microsecond)"`
}

// Read reads a training table, checking its version and schema first (a
// column missing or of another type is named, never read as zeros).
func Read(path string) ([]Row, error) {
	var rows []Row
	err := Each(path, func(batch []Row) error {
		rows = append(rows, batch...)
		return nil
	})
	return rows, err
}

// Each calls fn with the table's rows a row group at a time (the batch is
// reused), checking its version and schema first.
func Each(path string, fn func([]Row) error) error {
	r, err := NewReader(path)
	if err != nil {
		return err
	}
	defer r.Close()
	batch := make([]Row, 4096)
	for {
		n, err := r.Read(batch)
		if n > 0 {
			if ferr := fn(batch[:n]); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Reader reads a training table's rows.
type Reader struct {
	path string
	f    *os.File
	pf   *parquet.File
	r    *parquet.GenericReader[Row]
}

// NewReader opens a training table, checking its version and schema.
func NewReader(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("training table: %w", err)
	}
	pf, err := open(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Reader{path: path, f: f, pf: pf, r: parquet.NewGenericReader[Row](pf)}, nil
}

// File is the table's Parquet file (its row groups).
func (r *Reader) File() *parquet.File { return r.pf }

// SeekToRow moves to the row of that index (from 0, over all row groups).
func (r *Reader) SeekToRow(i int64) (err error) {
	defer r.recover(&err)
	if err := r.r.SeekToRow(i); err != nil {
		return fmt.Errorf("training table %s: %w", r.path, err)
	}
	return nil
}

// Read reads up to len(rows) rows; at the end it returns io.EOF.
func (r *Reader) Read(rows []Row) (n int, err error) {
	defer r.recover(&err)
	n, err = r.r.Read(rows)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("training table %s: %w", r.path, err)
	}
	return n, err
}

// recover turns a panic of the Parquet decoder on a corrupt file into an
// error naming the file.
func (r *Reader) recover(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("training table %s: corrupt Parquet file: %v", r.path, p)
	}
}

// Close closes the file.
func (r *Reader) Close() error {
	r.r.Close()
	return r.f.Close()
}

func open(path string, f *os.File) (pf *parquet.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("training table %s: corrupt Parquet file: %v", path, p)
		}
	}()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("training table: %w", err)
	}
	pf, err = parquet.OpenFile(f, info.Size())
	if err != nil {
		return nil, fmt.Errorf("training table %s: %w", path, err)
	}
	if v, ok := pf.Lookup(VersionKey); !ok || v != Version {
		return nil, fmt.Errorf("training table %s: version %q (metadata %s), want %q: not a training table of this Switchyard", path, v, VersionKey, Version)
	}
	if err := checkTable(pf.Schema()); err != nil {
		return nil, fmt.Errorf("training table %s: %w", path, err)
	}
	return pf, nil
}

// checkTable checks that every column of Row is in the file with its
// physical type (engines write every column as nullable; nulls are checked
// where they matter, by Validate).
func checkTable(file *parquet.Schema) error {
	want := parquet.SchemaOf(new(Row))
	var problems []string
	for _, path := range want.Columns() {
		name := strings.Join(path, ".")
		w, _ := want.Lookup(path...)
		f, ok := file.Lookup(path...)
		if !ok {
			problems = append(problems, fmt.Sprintf("column %q missing", name))
			continue
		}
		if f.Node.Type().Kind() != w.Node.Type().Kind() {
			problems = append(problems, fmt.Sprintf("column %q has type %s, want %s", name, f.Node.Type().Kind(), w.Node.Type().Kind()))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
