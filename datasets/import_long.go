package datasets

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// Columns of the long outcome format read by ImportLong.
const (
	colPromptID     = "prompt_id"
	colPrompt       = "prompt"
	colTask         = "task"
	colModel        = "model"
	colQuality      = "quality"
	colInputTokens  = "input_tokens"
	colOutputTokens = "output_tokens"
	colCostUSD      = "cost_usd"
)

// numLongColumns is the number of long-format columns.
const numLongColumns = 8

// longColumns lists the long-format columns in longRow field order.
func longColumns() [numLongColumns]string {
	return [...]string{colPromptID, colPrompt, colTask, colModel, colQuality, colInputTokens, colOutputTokens, colCostUSD}
}

// longRequired is a bit set of the longColumns an input must have.
const longRequired = 1<<0 | 1<<1 | 1<<3 | 1<<4

// longRow is one row of a long table as text, in longColumns order; "" is an
// empty cell (or a null).
type longRow [numLongColumns]string

// ImportLong imports a long-format outcome table, one row per prompt × model,
// with columns prompt_id, prompt, task, model, quality, input_tokens,
// output_tokens and cost_usd. The format follows the extension: .csv (with a
// header), .jsonl (one object a line) or .parquet (any writer; numbers may be
// INT32, INT64, FLOAT or DOUBLE, strings BYTE_ARRAY, any column nullable).
// prompt_id, prompt, model and quality are required; task, input_tokens,
// output_tokens and cost_usd may be absent or empty, and other columns are
// ignored.
//
// An empty input_tokens is estimated with EstimateInputTokens(prompt); an
// empty output_tokens is that model's median over the file (as in
// ImportBenchmark); an empty cost_usd is computed with the catalogue's
// ModelPrice.CostUSD. Rows are reported and left out when their model is not
// in cat, their quality is not a number in [0,1], a count or cost is negative
// or not a number, their prompt id repeats with a different prompt text or
// task, or their prompt × model pair was seen before. The dataset's catalogue
// is cat; outcomes get Source SourceBenchmark.
func ImportLong(path string, cat *Catalogue) (*Dataset, *ImportReport, error) {
	if cat == nil {
		return nil, nil, fmt.Errorf("import %s: no catalogue", path)
	}
	// Rebuild the index so a Catalogue literal works as well as a read one.
	cat, err := NewCatalogue(cat.Models)
	if err != nil {
		return nil, nil, fmt.Errorf("import %s: %w", path, err)
	}
	var read func(*os.File, *longBuilder) error
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".csv":
		read = func(f *os.File, b *longBuilder) error { return readLongCSV(f, b) }
	case ".jsonl", ".ndjson":
		read = func(f *os.File, b *longBuilder) error { return readLongJSONL(f, b) }
	case ".parquet":
		read = func(f *os.File, b *longBuilder) error {
			st, err := f.Stat()
			if err != nil {
				return err
			}
			return readLongParquet(f, st.Size(), b)
		}
	default:
		return nil, nil, fmt.Errorf("import %s: unknown extension %q, want .csv, .jsonl or .parquet", path, ext)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	rep := &ImportReport{Files: []string{path}}
	b := newLongBuilder(path, cat, rep)
	if err := read(f, b); err != nil {
		return nil, nil, fmt.Errorf("import %s: %w", path, err)
	}
	return b.finish(), rep, nil
}

// Flags of an outcome whose values ImportLong fills in after reading.
const (
	needOutputTokens = 1 << iota
	needCost
)

// longBuilder turns long rows into a Dataset, checking them one by one.
type longBuilder struct {
	file      string
	cat       *Catalogue
	rep       *ImportReport
	prompts   []PromptRecord
	promptIdx map[string]int
	firstLine []int // line where each prompt was first seen
	pairs     map[[2]int]int
	outcomes  []OutcomeRecord
	need      []uint8   // per outcome: needOutputTokens | needCost
	counts    [][]int64 // per catalogue model: the known output token counts
}

func newLongBuilder(file string, cat *Catalogue, rep *ImportReport) *longBuilder {
	return &longBuilder{
		file:      file,
		cat:       cat,
		rep:       rep,
		promptIdx: map[string]int{},
		pairs:     map[[2]int]int{},
		counts:    make([][]int64, len(cat.Models)),
	}
}

// add checks one row and keeps it or reports it. The caller has counted it
// in RowsRead.
func (b *longBuilder) add(line int, r *longRow) {
	skip := func(format string, args ...any) { b.rep.skip(b.file, line, format, args...) }
	id := strings.TrimSpace(r[0])
	if id == "" {
		skip("empty prompt_id")
		return
	}
	prompt, task := r[1], r[2]
	name := strings.TrimSpace(r[3])
	m, ok := b.cat.index[name]
	if !ok {
		skip("model %q is not in the catalogue", name)
		return
	}
	if strings.TrimSpace(r[4]) == "" {
		skip("empty quality")
		return
	}
	q, err := parseQuality(r[4])
	if err != nil {
		skip("quality %q: %v", r[4], err)
		return
	}
	var need uint8
	in := int64(EstimateInputTokens(prompt))
	if s := strings.TrimSpace(r[5]); s != "" {
		if in, err = parseCount(s); err != nil {
			skip("input_tokens %q: %v", s, err)
			return
		}
	}
	var out int64
	if s := strings.TrimSpace(r[6]); s != "" {
		if out, err = parseCount(s); err != nil {
			skip("output_tokens %q: %v", s, err)
			return
		}
	} else {
		need |= needOutputTokens
	}
	var cost float64
	if s := strings.TrimSpace(r[7]); s != "" {
		cost, err = strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(cost) || math.IsInf(cost, 0) || cost < 0 {
			skip("cost_usd %q: not a non-negative number", s)
			return
		}
	} else {
		need |= needCost
	}

	p, known := b.promptIdx[id]
	if known {
		have := &b.prompts[p]
		if have.Prompt != prompt {
			skip("prompt id %q has a different prompt text than on line %d", id, b.firstLine[p])
			return
		}
		if task != "" && have.Task != "" && task != have.Task {
			skip("prompt id %q has task %q, but %q on line %d", id, task, have.Task, b.firstLine[p])
			return
		}
	} else {
		p = len(b.prompts)
	}
	pair := [2]int{p, m}
	if first, dup := b.pairs[pair]; dup {
		skip("duplicate outcome for prompt %q and model %q (first on line %d)", id, name, first)
		return
	}
	if !known {
		b.promptIdx[id] = p
		b.prompts = append(b.prompts, PromptRecord{PromptID: id, Prompt: prompt, Task: task})
		b.firstLine = append(b.firstLine, line)
	} else if b.prompts[p].Task == "" {
		b.prompts[p].Task = task
	}
	b.pairs[pair] = line
	if need&needOutputTokens == 0 {
		b.counts[m] = append(b.counts[m], out)
	}
	price := b.cat.Models[m]
	b.outcomes = append(b.outcomes, OutcomeRecord{
		PromptID:     b.prompts[p].PromptID,
		Model:        price.Name,
		Quality:      q,
		InputTokens:  in,
		OutputTokens: out,
		CostUSD:      cost,
		Source:       SourceBenchmark,
	})
	b.need = append(b.need, need)
}

// finish fills in output tokens and costs left empty and returns the dataset.
func (b *longBuilder) finish() *Dataset {
	medians := make([]int64, len(b.counts))
	for m, c := range b.counts {
		if len(c) > 0 {
			medians[m] = median(c)
		}
	}
	warned := make([]bool, len(b.counts))
	for i := range b.outcomes {
		o := &b.outcomes[i]
		m := b.cat.index[o.Model]
		if b.need[i]&needOutputTokens != 0 {
			o.OutputTokens = medians[m]
			if len(b.counts[m]) == 0 && !warned[m] {
				warned[m] = true
				b.rep.problem(b.file, b.pairs[[2]int{b.promptIdx[o.PromptID], m}],
					"model %q has no output token counts in the file; using 0, so its cost counts input tokens only", o.Model)
			}
		}
		if b.need[i]&needCost != 0 {
			o.CostUSD = b.cat.Models[m].CostUSD(float64(o.InputTokens), float64(o.OutputTokens))
		}
	}
	b.rep.Prompts, b.rep.Outcomes = len(b.prompts), len(b.outcomes)
	return &Dataset{Catalogue: b.cat, Prompts: b.prompts, Outcomes: b.outcomes}
}

// readLongCSV reads a long table in CSV with a header naming the columns.
func readLongCSV(r io.Reader, b *longBuilder) error {
	cr := newCSVReader(r)
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return errors.New("empty file, want a header naming the columns")
	}
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	names := longColumns()
	cols := [numLongColumns]int{}
	for i := range cols {
		cols[i] = -1
	}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		for j, c := range names {
			if h == c && cols[j] < 0 {
				cols[j] = i
			}
		}
	}
	if err := checkRequired(func(j int) bool { return cols[j] >= 0 }); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	var row longRow
	return csvRows(cr, b.file, len(header), b.rep, func(line int, rec []string) {
		for j, c := range cols {
			row[j] = ""
			if c >= 0 {
				row[j] = rec[c]
			}
		}
		b.add(line, &row)
	})
}

// checkRequired names the required long columns for which has is false.
func checkRequired(has func(j int) bool) error {
	var missing []string
	for j, name := range longColumns() {
		if longRequired&(1<<j) != 0 && !has(j) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing column(s) %s (need %s, %s, %s and %s)", strings.Join(missing, ", "),
			colPromptID, colPrompt, colModel, colQuality)
	}
	return nil
}

// longJSON is one line of a long JSONL table. Numbers may be JSON numbers,
// numeric strings or null.
type longJSON struct {
	PromptID     json.RawMessage `json:"prompt_id"`
	Prompt       *string         `json:"prompt"`
	Task         *string         `json:"task"`
	Model        *string         `json:"model"`
	Quality      json.RawMessage `json:"quality"`
	InputTokens  json.RawMessage `json:"input_tokens"`
	OutputTokens json.RawMessage `json:"output_tokens"`
	CostUSD      json.RawMessage `json:"cost_usd"`
}

// readLongJSONL reads a long table with one JSON object a line.
func readLongJSONL(r io.Reader, b *longBuilder) error {
	var row longRow
	return eachJSONLine(r, func(line int, text []byte) {
		b.rep.RowsRead++
		if err := parseLongJSON(text, &row); err != nil {
			b.rep.skip(b.file, line, "%v", err)
			return
		}
		b.add(line, &row)
	})
}

// parseLongJSON parses one JSONL line into row.
func parseLongJSON(text []byte, row *longRow) error {
	var j longJSON
	if err := json.Unmarshal(text, &j); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if j.Prompt == nil {
		return errors.New("missing prompt")
	}
	if j.Model == nil {
		return errors.New("missing model")
	}
	*row = longRow{}
	row[1], row[3] = *j.Prompt, *j.Model
	if j.Task != nil {
		row[2] = *j.Task
	}
	for _, f := range []struct {
		i   int
		raw json.RawMessage
	}{{0, j.PromptID}, {4, j.Quality}, {5, j.InputTokens}, {6, j.OutputTokens}, {7, j.CostUSD}} {
		s, err := jsonScalar(f.raw)
		if err != nil {
			return fmt.Errorf("%s: %w", longColumns()[f.i], err)
		}
		row[f.i] = s
	}
	return nil
}

// readLongParquet reads a long table from a Parquet file written by any tool.
// It reads untyped rows so that INT32 or FLOAT columns and nullable columns
// (as pandas and pyarrow write them) work too.
func readLongParquet(r io.ReaderAt, size int64, b *longBuilder) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("corrupt Parquet file: %v", p)
		}
	}()
	f, err := openParquet(r, size)
	if err != nil {
		return err
	}
	schema := f.Schema()
	// leafOf maps a Parquet leaf column index to a longRow field, -1 if unused.
	leafOf := make([]int, len(schema.Columns()))
	for i := range leafOf {
		leafOf[i] = -1
	}
	var has [numLongColumns]bool
	for j, name := range longColumns() {
		leaf, ok := schema.Lookup(name)
		if !ok {
			continue
		}
		if leaf.MaxRepetitionLevel != 0 {
			return fmt.Errorf("column %q is a list, want a single value", name)
		}
		kind := leaf.Node.Type().Kind()
		switch j {
		case 0, 1, 2, 3:
			if kind != parquet.ByteArray {
				return fmt.Errorf("column %q has type %s, want BYTE_ARRAY (STRING)", name, typeName(leaf.Node.Type()))
			}
		default:
			switch kind {
			case parquet.Int32, parquet.Int64, parquet.Float, parquet.Double:
			default:
				return fmt.Errorf("column %q has type %s, want a number (INT32, INT64, FLOAT or DOUBLE)", name, typeName(leaf.Node.Type()))
			}
		}
		leafOf[leaf.ColumnIndex] = j
		has[j] = true
	}
	if err := checkRequired(func(j int) bool { return has[j] }); err != nil {
		return err
	}
	pr := parquet.NewReader(f)
	defer pr.Close()
	rows := make([]parquet.Row, 256)
	line := 0
	var row longRow
	for {
		n, err := pr.ReadRows(rows)
		for _, pqRow := range rows[:n] {
			line++
			row = longRow{}
			for _, v := range pqRow {
				c := v.Column()
				if c < 0 || c >= len(leafOf) || leafOf[c] < 0 || v.IsNull() {
					continue
				}
				row[leafOf[c]] = valueText(v)
			}
			b.rep.RowsRead++
			b.add(line, &row)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("row %d: %w", line+1, err)
		}
		if n == 0 {
			return nil
		}
	}
}

// valueText formats a Parquet value as the text a CSV cell would hold.
func valueText(v parquet.Value) string {
	switch v.Kind() {
	case parquet.ByteArray:
		return string(v.ByteArray())
	case parquet.Int32:
		return strconv.FormatInt(int64(v.Int32()), 10)
	case parquet.Int64:
		return strconv.FormatInt(v.Int64(), 10)
	case parquet.Float:
		return strconv.FormatFloat(float64(v.Float()), 'g', -1, 32)
	case parquet.Double:
		return strconv.FormatFloat(v.Double(), 'g', -1, 64)
	}
	return ""
}
