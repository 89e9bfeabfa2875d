package join

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
func writeTable(ctx context.Context, dfiles []string, index, out string) (rows int64, err error) {
	links, err := openLinks(index)
	if err != nil {
		return 0, err
	}
	defer links.close()
	f, err := os.Create(out)
	if err != nil {
		return 0, fmt.Errorf("join: %w", err)
	}
	defer f.Close()
	w := parquet.NewGenericWriter[table.Row](f, parquet.Compression(&zstd.Codec{Level: zstd.SpeedFastest}),
		parquet.MaxRowsPerRowGroup(65536), parquet.KeyValueMetadata(table.VersionKey, table.Version))
	next, ok, err := links.next()
	if err != nil {
		return 0, err
	}
	batch := make([]decision, 1024)
	rowsOut := make([]table.Row, 0, 1024)
	for fi, path := range dfiles {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if !ok || next.File > int64(fi) {
			continue // no decision of this file has an outcome
		}
		if err := eachDecision(path, batch, func(row int64, d *decision) error {
			for ok && next.File == int64(fi) && next.Row < row {
				return fmt.Errorf("join: the outcome index names row %d of %s out of order", next.Row, path)
			}
			if !ok || next.File != int64(fi) || next.Row != row {
				return nil
			}
			if d.Prompt != "" {
				key := d.DecisionID
				if d.PromptSHA256 != "" {
					key = "sha256:" + d.PromptSHA256
				}
				rowsOut = append(rowsOut, table.Row{DecisionID: d.DecisionID, PromptKey: key, Prompt: d.Prompt, Task: d.Task,
					Time: d.Time, Model: d.Chosen, Quality: next.Quality, Propensity: d.Propensity, Weight: next.Weight,
					CostUSD: next.CostUSD, InputTokens: next.InputTokens, OutputTokens: next.OutputTokens,
					OutcomeTime: next.OutcomeTime, Shadows: next.Shadows})
				if len(rowsOut) == cap(rowsOut) {
					if _, err := w.Write(rowsOut); err != nil {
						return fmt.Errorf("join: write the table: %w", err)
					}
					rows += int64(len(rowsOut))
					rowsOut = rowsOut[:0]
				}
			}
			var err error
			next, ok, err = links.next()
			return err
		}); err != nil {
			return 0, err
		}
		if ok && next.File == int64(fi) {
			return 0, fmt.Errorf("join: the outcome index names row %d of %s, which has fewer rows", next.Row, path)
		}
	}
	if _, err := w.Write(rowsOut); err != nil {
		return 0, fmt.Errorf("join: write the table: %w", err)
	}
	rows += int64(len(rowsOut))
	if err := w.Close(); err != nil {
		return 0, fmt.Errorf("join: write the table: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("join: write the table: %w", err)
	}
	return rows, f.Close()
}

// eachDecision calls fn with each decision of a log file and its row
// number (from 0). The file was checked before the join.
func eachDecision(path string, batch []decision, fn func(row int64, d *decision) error) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	defer f.Close()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("join: %s: corrupt Parquet file: %v", path, p)
		}
	}()
	r := parquet.NewGenericReader[decision](f)
	defer r.Close()
	var row int64
	for {
		n, err := r.Read(batch)
		for i := range n {
			if ferr := fn(row, &batch[i]); ferr != nil {
				return ferr
			}
			row++
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("join: %s: %w", path, err)
		}
	}
}

// links reads the outcome index in order.
type links struct {
	f     *os.File
	r     *parquet.GenericReader[link]
	batch []link
	n, i  int
	done  bool
}

func openLinks(path string) (*links, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	return &links{f: f, r: parquet.NewGenericReader[link](f), batch: make([]link, 4096)}, nil
}

func (l *links) next() (link, bool, error) {
	for l.i == l.n {
		if l.done {
			return link{}, false, nil
		}
		n, err := l.r.Read(l.batch)
		l.n, l.i = n, 0
		if errors.Is(err, io.EOF) {
			l.done = true
		} else if err != nil {
			return link{}, false, fmt.Errorf("join: the outcome index: %w", err)
		}
	}
	x := l.batch[l.i]
	x.Shadows = append([]table.Shadow(nil), x.Shadows...)
	l.i++
	return x, true, nil
}

func (l *links) close() {
	l.r.Close()
	l.f.Close()
}
