package join

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"switchyard/datasets/table"
)

// decision is the part of a logged decision the table takes.
type decision struct {
	DecisionID   string    `parquet:"decision_id"`
	Time         time.Time `parquet:"time,timestamp(microsecond),optional"`
	Prompt       string    `parquet:"prompt"`
	PromptSHA256 string    `parquet:"prompt_sha256"`
	Task         string    `parquet:"task"`
	Chosen       string    `parquet:"chosen"`
	Propensity   float64   `parquet:"propensity"`
}

// link is a row of the index the engine writes: which decision (file and
// row) joins which outcomes, in file and row order.
type link struct {
	File         int64          `parquet:"file"`
	Row          int64          `parquet:"row"`
	Quality      float64        `parquet:"quality"`
	Weight       float64        `parquet:"weight"`
	CostUSD      float64        `parquet:"cost_usd"`
	InputTokens  int64          `parquet:"input_tokens"`
	OutputTokens int64          `parquet:"output_tokens"`
	OutcomeTime  time.Time      `parquet:"outcome_time,timestamp(microsecond)"`
	Shadows      []table.Shadow `parquet:"shadows,list"`
}

// writeTable writes the training table: the decisions of dfiles, read in
// file and row order, merged with the index of their outcomes (in the same
// order), so that the same logs give the same table row for row. Rows
// whose prompt was not kept are left out.
func writeTable(ctx context.Context, dfiles []string, index, out string, rowGroup int) (rows int64, err error) {
	next, done, err := cursor[link](index)
	if err != nil {
		return 0, err
	}
	defer done()
	f, err := os.Create(out)
	if err != nil {
		return 0, fmt.Errorf("join: %w", err)
	}
	defer f.Close()
	w := parquet.NewGenericWriter[table.Row](f, parquet.Compression(&zstd.Codec{Level: zstd.SpeedFastest}),
		parquet.MaxRowsPerRowGroup(int64(rowGroup)), parquet.KeyValueMetadata(table.VersionKey, table.Version))
	l, more, err := next()
	if err != nil {
		return 0, err
	}
	buf := make([]table.Row, 0, Batch)
	flush := func() error {
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("join: write the table: %w", err)
		}
		rows += int64(len(buf))
		buf = buf[:0]
		return nil
	}
	for fi, path := range dfiles {
		if !more || l.File > int64(fi) {
			continue // no decision of this file has an outcome
		}
		err := eachBatch(ctx, path, Batch, func(ds []decision, first int) error {
			for k := range ds {
				if !more || l.File != int64(fi) || l.Row != int64(first+k) {
					continue
				}
				if d := &ds[k]; d.Prompt != "" {
					key := d.DecisionID
					if d.PromptSHA256 != "" {
						key = "sha256:" + d.PromptSHA256
					}
					buf = append(buf, table.Row{DecisionID: d.DecisionID, PromptKey: key, Prompt: d.Prompt, Task: d.Task,
						Time: d.Time, Model: d.Chosen, Quality: l.Quality, Propensity: d.Propensity, Weight: l.Weight,
						CostUSD: l.CostUSD, InputTokens: l.InputTokens, OutputTokens: l.OutputTokens,
						OutcomeTime: l.OutcomeTime, Shadows: slices.Clone(l.Shadows)})
				}
				prev := l
				var err error
				if l, more, err = next(); err != nil {
					return err
				}
				if more && (l.File < prev.File || l.File == prev.File && l.Row <= prev.Row) {
					return fmt.Errorf("join: the outcome index is out of order (file %d row %d after file %d row %d)", l.File, l.Row, prev.File, prev.Row)
				}
			}
			if len(buf) >= Batch {
				return flush()
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		if more && l.File == int64(fi) {
			return 0, fmt.Errorf("join: the outcome index names row %d of %s, which has fewer rows", l.Row, path)
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, fmt.Errorf("join: write the table: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("join: write the table: %w", err)
	}
	return rows, f.Close()
}
