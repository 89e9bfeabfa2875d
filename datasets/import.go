package datasets

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// MaxStoredProblems caps ImportReport.Problems; later problems are counted in
// ImportReport.ProblemCount but not kept, so a badly broken file cannot
// exhaust memory through its report.
const MaxStoredProblems = 1000

// RowProblem is one input row (or header) an importer could not use, or had
// to patch.
type RowProblem struct {
	File   string
	Line   int // 1-based line (CSV, JSONL) or row (Parquet)
	Reason string
}

// String formats the problem like a compiler message: "file:line: reason".
func (p RowProblem) String() string {
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Reason)
}

// ImportReport says what an importer read and what it skipped.
type ImportReport struct {
	Files    []string // the files read, in order
	RowsRead int      // data rows read from all files, headers excluded
	Prompts  int      // prompts in the resulting dataset
	Outcomes int      // outcomes in the resulting dataset
	Skipped  int      // malformed rows left out
	// Problems are the first MaxStoredProblems problems: skipped rows, and
	// skipped columns or filled-in values worth knowing about.
	Problems []RowProblem
	// ProblemCount counts all problems, including those beyond MaxStoredProblems.
	ProblemCount int
}

// Summary is a one-line account of the import, such as
// "read 12032 prompts, 385024 outcomes from 4 files; skipped 3 malformed rows".
func (r *ImportReport) Summary() string {
	s := fmt.Sprintf("read %d prompts, %d outcomes from %d files", r.Prompts, r.Outcomes, len(r.Files))
	if r.Skipped > 0 {
		s += fmt.Sprintf("; skipped %d malformed rows", r.Skipped)
	}
	if other := r.ProblemCount - r.Skipped; other > 0 {
		s += fmt.Sprintf("; %d other problems", other)
	}
	return s
}

// String is the summary followed by one "file:line: reason" line per stored
// problem.
func (r *ImportReport) String() string {
	var b strings.Builder
	b.WriteString(r.Summary())
	for _, p := range r.Problems {
		b.WriteString("\n")
		b.WriteString(p.String())
	}
	if more := r.ProblemCount - len(r.Problems); more > 0 {
		fmt.Fprintf(&b, "\n... and %d more problems", more)
	}
	return b.String()
}

// problem records a problem without skipping a row.
func (r *ImportReport) problem(file string, line int, format string, args ...any) {
	r.ProblemCount++
	if len(r.Problems) < MaxStoredProblems {
		r.Problems = append(r.Problems, RowProblem{File: file, Line: line, Reason: fmt.Sprintf(format, args...)})
	}
}

// skip records a malformed row that is left out.
func (r *ImportReport) skip(file string, line int, format string, args ...any) {
	r.Skipped++
	r.problem(file, line, format, args...)
}

// File names of the benchmark-table layout (see ImportBenchmark).
const (
	BenchmarkPromptsFile      = "prompts.jsonl"
	BenchmarkQualityFile      = "quality.csv"
	BenchmarkOutputTokensFile = "output_tokens.csv"
	BenchmarkModelsFile       = "models.csv"
)

// maxLineBytes bounds one JSONL line; a longer line is an error, not a skip,
// because it usually means the file is not JSONL at all.
const maxLineBytes = 64 << 20

// ImportBenchmark imports a benchmark folder in the benchmark-table layout:
//
//   - models.csv: the catalogue (see ReadCatalogue);
//   - prompts.jsonl: one object a line with prompt_id, prompt and optional task;
//   - quality.csv: header prompt_id,<model>...; one row per prompt, each cell a
//     quality in [0,1], an empty cell meaning no outcome;
//   - output_tokens.csv: the same shape, the tokens each answer generated.
//
// It makes one OutcomeRecord (Source SourceBenchmark) per non-empty quality
// cell, with InputTokens from EstimateInputTokens(prompt) and CostUSD from the
// catalogue's ModelPrice.CostUSD. An empty or missing output-token cell is
// filled with that model's median over output_tokens.csv (the middle value;
// for an even count the mean of the two middle values, rounded half up); a
// model with no counts at all gets 0 and a problem line.
//
// Malformed rows (bad JSON, duplicate or unknown prompt ids, a quality that is
// not a number in [0,1], a token count that is not a non-negative integer) are
// reported with file, line and reason and left out; so are model columns
// missing from models.csv. A missing file or header is an error. Prompts
// without outcomes are kept in the prompt table.
func ImportBenchmark(dir string) (*Dataset, *ImportReport, error) {
	rep := &ImportReport{}
	modelsPath := filepath.Join(dir, BenchmarkModelsFile)
	cat, err := ReadCatalogue(modelsPath)
	if err != nil {
		return nil, nil, fmt.Errorf("import benchmark %s: %w", dir, err)
	}
	rep.Files = append(rep.Files, modelsPath)
	rep.RowsRead += len(cat.Models)

	promptsPath := filepath.Join(dir, BenchmarkPromptsFile)
	prompts, idx, err := readPromptsJSONL(promptsPath, rep)
	if err != nil {
		return nil, nil, fmt.Errorf("import benchmark: %w", err)
	}
	rep.Files = append(rep.Files, promptsPath)

	tokensPath := filepath.Join(dir, BenchmarkOutputTokensFile)
	tokens, err := readTokenTable(tokensPath, cat, idx, rep)
	if err != nil {
		return nil, nil, fmt.Errorf("import benchmark: %w", err)
	}
	rep.Files = append(rep.Files, tokensPath)

	qualityPath := filepath.Join(dir, BenchmarkQualityFile)
	outcomes, err := readQualityTable(qualityPath, cat, prompts, idx, tokens, rep)
	if err != nil {
		return nil, nil, fmt.Errorf("import benchmark: %w", err)
	}
	rep.Files = append(rep.Files, qualityPath)

	rep.Prompts, rep.Outcomes = len(prompts), len(outcomes)
	return &Dataset{Catalogue: cat, Prompts: prompts, Outcomes: outcomes}, rep, nil
}

// readPromptsJSONL reads prompts.jsonl, skipping malformed lines and
// duplicate ids. idx maps prompt ids to their index in prompts.
func readPromptsJSONL(path string, rep *ImportReport) (prompts []PromptRecord, idx map[string]int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read prompts: %w", err)
	}
	defer f.Close()
	firstLine := map[string]int{}
	idx = map[string]int{}
	err = eachJSONLine(f, func(line int, b []byte) {
		rep.RowsRead++
		p, err := ParsePromptLine(b)
		if err != nil {
			rep.skip(path, line, "%v", err)
			return
		}
		if first, dup := firstLine[p.PromptID]; dup {
			rep.skip(path, line, "duplicate prompt id %q (first on line %d)", p.PromptID, first)
			return
		}
		firstLine[p.PromptID] = line
		idx[p.PromptID] = len(prompts)
		prompts = append(prompts, p)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read prompts %s: %w", path, err)
	}
	return prompts, idx, nil
}

// eachJSONLine calls fn with each line of a JSONL stream that is not blank,
// white space trimmed, and its 1-based line number. A line longer than
// maxLineBytes is an error that names its number.
func eachJSONLine(r io.Reader, fn func(line int, text []byte)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		fn(line, text)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", line+1, err)
	}
	return nil
}

// ParsePromptLine parses one line of a prompts.jsonl file: a JSON object with
// prompt_id (a string, or a number taken literally), prompt (a string) and an
// optional task (a string). Surrounding white space of the id is dropped.
func ParsePromptLine(line []byte) (PromptRecord, error) {
	var raw struct {
		PromptID json.RawMessage `json:"prompt_id"`
		Prompt   *string         `json:"prompt"`
		Task     *string         `json:"task"`
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return PromptRecord{}, fmt.Errorf("invalid JSON: %w", err)
	}
	id, err := jsonScalar(raw.PromptID)
	if err != nil {
		return PromptRecord{}, fmt.Errorf("prompt_id: %w", err)
	}
	id = strings.TrimSpace(id)
	if id == "" {
		return PromptRecord{}, errors.New("missing prompt_id")
	}
	if raw.Prompt == nil {
		return PromptRecord{}, fmt.Errorf("prompt %q: missing prompt", id)
	}
	p := PromptRecord{PromptID: id, Prompt: *raw.Prompt}
	if raw.Task != nil {
		p.Task = *raw.Task
	}
	return p, nil
}

// jsonScalar returns the text of a JSON string or number ("" for absent or
// null), and an error for other JSON values.
func jsonScalar(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("want a string or number, got %.20s", raw)
	}
	return n.String(), nil
}

// wideHeader reads the header of a wide table (prompt_id,<model>...) and maps
// each column to a catalogue model index, -1 for columns to ignore. Models
// missing from the catalogue and repeated columns are reported and ignored.
func wideHeader(cr *csv.Reader, path string, cat *Catalogue, rep *ImportReport) ([]int, error) {
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: empty file, want a header of prompt_id and one column per model", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: header: %w", path, err)
	}
	if first := strings.TrimSpace(strings.TrimPrefix(header[0], "\ufeff")); first != "prompt_id" {
		return nil, fmt.Errorf("read %s: header must start with prompt_id, got %.40q", path, first)
	}
	cols := make([]int, len(header))
	cols[0] = -1
	seen := map[int]bool{}
	for i := 1; i < len(header); i++ {
		name := strings.TrimSpace(header[i])
		cols[i] = -1
		m, ok := cat.index[name]
		switch {
		case !ok:
			rep.problem(path, 1, "column %d: model %q is not in %s; column ignored", i+1, name, BenchmarkModelsFile)
		case seen[m]:
			rep.problem(path, 1, "column %d: model %q appears twice; column ignored", i+1, name)
		default:
			seen[m] = true
			cols[i] = m
		}
	}
	return cols, nil
}

// csvRows calls row for each data row of a CSV table after its header, with
// its 1-based line and its fields, and counts it in rep.RowsRead. Rows with a
// parse error or another number of fields than the header's ncols are
// reported and skipped. The fields slice is reused between calls. It returns
// the error of a failed read, unwrapped.
func csvRows(cr *csv.Reader, path string, ncols int, rep *ImportReport, row func(line int, rec []string)) error {
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			rep.RowsRead++
			rep.skip(path, perr.StartLine, "malformed CSV: %v", perr.Err)
			continue
		}
		if err != nil {
			return err
		}
		line, _ := cr.FieldPos(0)
		rep.RowsRead++
		if len(rec) != ncols {
			rep.skip(path, line, "%d fields, want %d like the header", len(rec), ncols)
			continue
		}
		row(line, rec)
	}
}

// newCSVReader reads a CSV table for streaming: buffered, any number of
// fields a row (csvRows checks them), the fields slice reused.
func newCSVReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(bufio.NewReaderSize(r, 1<<20))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return cr
}

// wideTable is a wide table (see ImportBenchmark) open for streaming, its
// header read.
type wideTable struct {
	path string
	f    *os.File
	cr   *csv.Reader
	cat  *Catalogue
	cols []int // the catalogue model of each column, -1 for columns to ignore
}

// openWide opens a wide table and reads its header (see wideHeader).
func openWide(path string, cat *Catalogue, rep *ImportReport) (*wideTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read table: %w", err)
	}
	cr := newCSVReader(f)
	cols, err := wideHeader(cr, path, cat, rep)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &wideTable{path: path, f: f, cr: cr, cat: cat, cols: cols}, nil
}

// readWideCells streams the data rows of t, one prompt a row, into row. It
// skips, with a problem line, a row whose prompt id is not in idx or repeats
// an earlier row's, and a row with a cell that parse refuses (what names the
// value in that line: "quality"). row gets the prompt's index in idx and one
// value a column: none for an empty cell or an ignored column. The values
// slice is reused between calls.
func readWideCells[V any](t *wideTable, idx map[string]int, rep *ImportReport, what string, parse func(string) (V, error), none V, row func(p int, vals []V)) error {
	firstLine := make(map[int]int)
	vals := make([]V, len(t.cols))
	err := csvRows(t.cr, t.path, len(t.cols), rep, func(line int, rec []string) {
		id := strings.TrimSpace(rec[0])
		p, ok := idx[id]
		if !ok {
			rep.skip(t.path, line, "prompt id %q is not in %s", id, BenchmarkPromptsFile)
			return
		}
		if first, dup := firstLine[p]; dup {
			rep.skip(t.path, line, "duplicate prompt id %q (first on line %d)", id, first)
			return
		}
		for i, mi := range t.cols {
			vals[i] = none
			if mi < 0 || rec[i] == "" {
				continue
			}
			v, err := parse(rec[i])
			if err != nil {
				rep.skip(t.path, line, "model %q: %s %q: %v", t.cat.Models[mi].Name, what, rec[i], err)
				return
			}
			vals[i] = v
		}
		firstLine[p] = line
		row(p, vals)
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", t.path, err)
	}
	return nil
}

// tokenTable holds output token counts of prompt p and catalogue model m at
// counts[p*models+m], -1 where unknown, and the per-model medians.
type tokenTable struct {
	models  int
	counts  []int64
	medians []int64
	known   []bool // whether the model has any count, i.e. its median is real
}

func (t *tokenTable) get(p, m int) int64 {
	if c := t.counts[p*t.models+m]; c >= 0 {
		return c
	}
	return t.medians[m]
}

// readTokenTable reads output_tokens.csv.
func readTokenTable(path string, cat *Catalogue, idx map[string]int, rep *ImportReport) (*tokenTable, error) {
	wt, err := openWide(path, cat, rep)
	if err != nil {
		return nil, err
	}
	defer wt.f.Close()
	m := len(cat.Models)
	t := &tokenTable{models: m, counts: make([]int64, len(idx)*m)}
	for i := range t.counts {
		t.counts[i] = -1
	}
	err = readWideCells(wt, idx, rep, "output tokens", parseCount, -1, func(p int, vals []int64) {
		for i, mi := range wt.cols {
			if mi >= 0 {
				t.counts[p*m+mi] = vals[i]
			}
		}
	})
	if err != nil {
		return nil, err
	}
	t.medians = make([]int64, m)
	t.known = make([]bool, m)
	col := make([]int64, 0, len(idx))
	for mi := range m {
		col = col[:0]
		for p := range len(idx) {
			if c := t.counts[p*m+mi]; c >= 0 {
				col = append(col, c)
			}
		}
		if len(col) > 0 {
			t.medians[mi], t.known[mi] = median(col), true
		}
	}
	return t, nil
}

// median returns the middle value of xs (sorting it); for an even count, the
// mean of the two middle values rounded half up.
func median(xs []int64) int64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	a, b := xs[n/2-1], xs[n/2]
	return a + (b-a+1)/2
}

// maxCount bounds token counts: far beyond any context window, yet small
// enough that costs stay exact in float64.
const maxCount = 1 << 40

// parseCount parses a non-negative token count. "300.0" is accepted since
// some tools write integers as floats.
func parseCount(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, errors.New("negative")
		}
		if n > maxCount {
			return 0, errors.New("too large")
		}
		return n, nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, errors.New("not a number")
	}
	if x < 0 {
		return 0, errors.New("negative")
	}
	if x != math.Trunc(x) {
		return 0, errors.New("not a whole number")
	}
	if x > maxCount {
		return 0, errors.New("too large")
	}
	return int64(x), nil
}

// parseQuality parses a quality in [0,1].
func parseQuality(s string) (float64, error) {
	q, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(q) {
		return 0, errors.New("not a number")
	}
	if q < 0 || q > 1 {
		return 0, errors.New("outside [0,1]")
	}
	return q, nil
}

// readQualityTable streams quality.csv into outcomes.
func readQualityTable(path string, cat *Catalogue, prompts []PromptRecord, idx map[string]int, tokens *tokenTable, rep *ImportReport) ([]OutcomeRecord, error) {
	wt, err := openWide(path, cat, rep)
	if err != nil {
		return nil, err
	}
	defer wt.f.Close()
	used := 0
	for _, mi := range wt.cols {
		if mi < 0 {
			continue
		}
		used++
		if !tokens.known[mi] {
			rep.problem(path, 1, "model %q has no output token counts in %s; using 0, so its cost counts input tokens only",
				cat.Models[mi].Name, BenchmarkOutputTokensFile)
		}
	}
	outcomes := make([]OutcomeRecord, 0, len(prompts)*used)
	err = readWideCells(wt, idx, rep, "quality", parseQuality, math.NaN(), func(p int, vals []float64) {
		in := int64(EstimateInputTokens(prompts[p].Prompt))
		for i, mi := range wt.cols {
			if math.IsNaN(vals[i]) {
				continue
			}
			price := cat.Models[mi]
			out := tokens.get(p, mi)
			outcomes = append(outcomes, OutcomeRecord{
				PromptID:     prompts[p].PromptID,
				Model:        price.Name,
				Quality:      vals[i],
				InputTokens:  in,
				OutputTokens: out,
				CostUSD:      price.CostUSD(float64(in), float64(out)),
				Source:       SourceBenchmark,
			})
		}
	})
	if err != nil {
		return nil, err
	}
	return outcomes, nil
}
