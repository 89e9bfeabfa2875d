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
func Each(path string, fn func([]Row) error) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("training table: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("training table: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("training table %s: corrupt Parquet file: %v", path, p)
		}
	}()
	pf, err := parquet.OpenFile(f, info.Size())
	if err != nil {
		return fmt.Errorf("training table %s: %w", path, err)
	}
	if v, ok := pf.Lookup(VersionKey); !ok || v != Version {
		return fmt.Errorf("training table %s: version %q (metadata %s), want %q: not a training table of this Switchyard", path, v, VersionKey, Version)
	}
	if err := checkTable(pf.Schema()); err != nil {
		return fmt.Errorf("training table %s: %w", path, err)
	}
	r := parquet.NewGenericReader[Row](pf)
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
			return fmt.Errorf("training table %s: %w", path, err)
		}
	}
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
