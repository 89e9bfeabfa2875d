package datasets

import (
	"fmt"
	"io"
	"os"

	"github.com/parquet-go/parquet-go"
)

// DecisionKey is what a server remembers of a past decision.
type DecisionKey struct{ DecisionID, Chosen string }

// ReadRecentDecisions is ReadLogDir for a server's start-up: it returns at
// most max decisions, the most recent (by file name, which starts with the
// time the file was opened), reading only their DecisionID and Chosen
// columns, newest file first, and stops once it has max. The outcomes are
// every outcome log's rows, as ReadLogDir returns them.
func ReadRecentDecisions(dir string, max int) ([]DecisionKey, []OutcomeRecord, error) {
	dpaths, opaths, err := logFiles(dir)
	if err != nil {
		return nil, nil, err
	}
	var files [][]DecisionKey // newest first
	n := 0
	for i := len(dpaths) - 1; i >= 0 && n < max; i-- {
		rows, err := readDecisionKeys(dpaths[i])
		if err != nil {
			return nil, nil, err
		}
		if len(rows) > max-n {
			rows = rows[len(rows)-(max-n):]
		}
		files = append(files, rows)
		n += len(rows)
	}
	decisions := make([]DecisionKey, 0, n)
	for i := len(files) - 1; i >= 0; i-- {
		decisions = append(decisions, files[i]...)
	}
	outcomes, err := readOutcomeFiles(opaths)
	if err != nil {
		return nil, nil, err
	}
	return decisions, outcomes, nil
}

// readDecisionKeys reads the decision_id and chosen columns of a decision log.
func readDecisionKeys(path string) (rows []DecisionKey, err error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer func() {
		if p := recover(); p != nil {
			rows, err = nil, fmt.Errorf("read %s: corrupt Parquet file: %v", path, p)
		}
	}()
	f, err := openParquet(fh, st.Size())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := checkSchemaVersion(f); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	ids, err := readStringColumn(f, "decision_id")
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	chosen, err := readStringColumn(f, "chosen")
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(ids) != len(chosen) || int64(len(ids)) != f.NumRows() {
		return nil, fmt.Errorf("read %s: corrupt Parquet file: %d ids, %d models, footer says %d rows", path, len(ids), len(chosen), f.NumRows())
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
