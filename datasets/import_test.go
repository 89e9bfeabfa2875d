package datasets

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeFiles writes name → content files into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
}

// benchmarkFixture is a small benchmark folder with one malformed row of each
// kind; the comments give line numbers.
func benchmarkFixture() map[string]string {
	return map[string]string{
		BenchmarkModelsFile: "model,input_usd_per_mtok,output_usd_per_mtok\na,1,2\nb,10,20\n",
		BenchmarkPromptsFile: strings.Join([]string{
			`{"prompt_id":"p1","prompt":"abcd","task":"math"}`, // 1
			`{"prompt_id":"p2","prompt":"abcdefgh"}`,           // 2
			`not json`,                                         // 3: invalid JSON
			`{"prompt_id":"p1","prompt":"dup"}`,                // 4: duplicate
			`{"prompt":"no id"}`,                               // 5: missing id
			`{"prompt_id":3,"prompt":"numeric id"}`,            // 6: id "3"
			``,                                                 // 7: blank, ignored
			`{"prompt_id":"p4","task":"x"}`,                    // 8: missing prompt
		}, "\n") + "\n",
		BenchmarkOutputTokensFile: strings.Join([]string{
			"prompt_id,a,b,zz", // 1: zz not in models.csv
			"p1,10,,5",         // 2: b unknown → median
			"p2,20,30,1",       // 3
			"3,-1,4,",          // 4: negative
			"p9,1,1,1",         // 5: unknown prompt
		}, "\n") + "\n",
		BenchmarkQualityFile: strings.Join([]string{
			"prompt_id,b,a,zz", // 1: zz not in models.csv
			"p1,1,0,1",         // 2
			"p2,0.5,,1",        // 3: a empty → no outcome
			"3,1,1.5,1",        // 4: outside [0,1]
			"3,x,1,",           // 5: not a number
			"3,,1,",            // 6: a, tokens row was skipped → median
			"p1,1,1,1",         // 7: duplicate
			"nope,1,1,1",       // 8: unknown prompt
			"p2,1",             // 9: too few fields
		}, "\n") + "\n",
	}
}

func TestImportBenchmarkReportsAndSkipsMalformedRows(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, benchmarkFixture())
	d, rep, err := ImportBenchmark(dir)
	require.NoError(t, err)

	assert.Equal(t, []PromptRecord{
		{PromptID: "p1", Prompt: "abcd", Task: "math"},
		{PromptID: "p2", Prompt: "abcdefgh"},
		{PromptID: "3", Prompt: "numeric id"},
	}, d.Prompts)
	// Medians of output_tokens.csv: a: {10, 20} → 15, b: {30} → 30.
	cost := func(in, out, pin, pout float64) float64 { return in*pin/1e6 + out*pout/1e6 }
	assertOutcomes(t, []OutcomeRecord{
		{PromptID: "p1", Model: "b", Quality: 1, InputTokens: 1, OutputTokens: 30, CostUSD: cost(1, 30, 10, 20), Source: SourceBenchmark},
		{PromptID: "p1", Model: "a", Quality: 0, InputTokens: 1, OutputTokens: 10, CostUSD: cost(1, 10, 1, 2), Source: SourceBenchmark},
		{PromptID: "p2", Model: "b", Quality: 0.5, InputTokens: 2, OutputTokens: 30, CostUSD: cost(2, 30, 10, 20), Source: SourceBenchmark},
		{PromptID: "3", Model: "a", Quality: 1, InputTokens: 3, OutputTokens: 15, CostUSD: cost(3, 15, 1, 2), Source: SourceBenchmark},
	}, d.Outcomes)
	require.NoError(t, d.Validate())

	p := func(file string, line int, reason string) string {
		return filepath.Join(dir, file) + fmt.Sprintf(":%d: ", line) + reason
	}
	wantProblems := []string{
		p(BenchmarkPromptsFile, 3, "invalid JSON: "),
		p(BenchmarkPromptsFile, 4, `duplicate prompt id "p1" (first on line 1)`),
		p(BenchmarkPromptsFile, 5, "missing prompt_id"),
		p(BenchmarkPromptsFile, 8, `prompt "p4": missing prompt`),
		p(BenchmarkOutputTokensFile, 1, `column 4: model "zz" is not in models.csv; column ignored`),
		p(BenchmarkOutputTokensFile, 4, `model "a": output tokens "-1": negative`),
		p(BenchmarkOutputTokensFile, 5, `prompt id "p9" is not in prompts.jsonl`),
		p(BenchmarkQualityFile, 1, `column 4: model "zz" is not in models.csv; column ignored`),
		p(BenchmarkQualityFile, 4, `model "a": quality "1.5": outside [0,1]`),
		p(BenchmarkQualityFile, 5, `model "b": quality "x": not a number`),
		p(BenchmarkQualityFile, 7, `duplicate prompt id "p1" (first on line 2)`),
		p(BenchmarkQualityFile, 8, `prompt id "nope" is not in prompts.jsonl`),
		p(BenchmarkQualityFile, 9, "2 fields, want 4 like the header"),
	}
	require.Len(t, rep.Problems, len(wantProblems), rep.String())
	for i, w := range wantProblems {
		assert.True(t, strings.HasPrefix(rep.Problems[i].String(), w), "problem %d:\n got %s\nwant %s", i, rep.Problems[i], w)
	}
	assert.Equal(t, 11, rep.Skipped)
	assert.Equal(t, 13, rep.ProblemCount)
	assert.Equal(t, 2+7+4+8, rep.RowsRead)
	assert.Equal(t, "read 3 prompts, 4 outcomes from 4 files; skipped 11 malformed rows; 2 other problems", rep.Summary())
	assert.Len(t, rep.Files, 4)
	assert.True(t, strings.HasPrefix(rep.String(), rep.Summary()+"\n"+p(BenchmarkPromptsFile, 3, "invalid JSON")), rep.String())
}

func TestImportBenchmarkRefusesUnusableInput(t *testing.T) {
	cases := []struct {
		name   string
		change func(files map[string]string)
		want   string
	}{
		{"no models.csv", func(f map[string]string) { delete(f, BenchmarkModelsFile) }, "models.csv"},
		{"no prompts.jsonl", func(f map[string]string) { delete(f, BenchmarkPromptsFile) }, "prompts.jsonl: no such file"},
		{"no quality.csv", func(f map[string]string) { delete(f, BenchmarkQualityFile) }, "quality.csv: no such file"},
		{"no output_tokens.csv", func(f map[string]string) { delete(f, BenchmarkOutputTokensFile) }, "output_tokens.csv: no such file"},
		{"empty quality.csv", func(f map[string]string) { f[BenchmarkQualityFile] = "" }, "quality.csv: empty file, want a header"},
		{"quality.csv without prompt_id", func(f map[string]string) { f[BenchmarkQualityFile] = "id,a\n1,1\n" },
			`quality.csv: header must start with prompt_id, got "id"`},
		{"models.csv without prices", func(f map[string]string) { f[BenchmarkModelsFile] = "model\na\n" }, "missing column"},
		{"prompt line over 64 MiB", func(f map[string]string) {
			f[BenchmarkPromptsFile] = `{"prompt_id":"x","prompt":"` + strings.Repeat("a", maxLineBytes) + "\"}\n"
		}, "prompts.jsonl: line 1: bufio.Scanner: token too long"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := benchmarkFixture()
			tc.change(files)
			dir := t.TempDir()
			writeFiles(t, dir, files)
			_, _, err := ImportBenchmark(dir)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestImportReportCapsStoredProblems(t *testing.T) {
	rep := &ImportReport{}
	for i := range MaxStoredProblems + 5 {
		rep.skip("f.csv", i+2, "bad")
	}
	assert.Len(t, rep.Problems, MaxStoredProblems)
	assert.Equal(t, MaxStoredProblems+5, rep.ProblemCount)
	assert.Equal(t, MaxStoredProblems+5, rep.Skipped)
	assert.True(t, strings.HasSuffix(rep.String(), "\nf.csv:1001: bad\n... and 5 more problems"), rep.String()[len(rep.String())-60:])
	assert.Equal(t, "read 0 prompts, 0 outcomes from 0 files", (&ImportReport{}).Summary())
}

func TestMedianRoundsHalfUp(t *testing.T) {
	for _, tc := range []struct {
		in   []int64
		want int64
	}{
		{[]int64{5}, 5},
		{[]int64{3, 1, 2}, 2},
		{[]int64{10, 20}, 15},
		{[]int64{10, 11}, 11},
		{[]int64{4, 1, 3, 2}, 3},
	} {
		assert.Equal(t, tc.want, median(tc.in), "%v", tc.in)
	}
}

// mmluPro is the real benchmark shared next to the project (see
// ../shared/data/README.md from the module root); it is never copied in.
const mmluPro = "../../shared/data/mmlu-pro"

func requireBenchmarkData(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(filepath.Join(mmluPro, BenchmarkQualityFile)); err != nil {
		tb.Skipf("benchmark data not found at %s: %v (it lives next to the project, see /work/shared/data/README.md)", mmluPro, err)
	}
}

func TestImportBenchmarkReadsMMLUPro(t *testing.T) {
	requireBenchmarkData(t)
	start := time.Now()
	d, rep, err := ImportBenchmark(mmluPro)
	require.NoError(t, err)
	took := time.Since(start)
	t.Logf("%s in %v", rep.Summary(), took)

	assert.Len(t, d.Prompts, 12032)
	assert.Len(t, d.Catalogue.Models, 32)
	assert.Equal(t, 12032, rep.Prompts)
	assert.Zero(t, rep.Skipped, rep.String())
	// 12,032 × 32 cells, less the empty ones.
	assert.Greater(t, len(d.Outcomes), 380000)
	assert.LessOrEqual(t, len(d.Outcomes), 12032*32)
	require.NoError(t, d.Validate())
	assert.Less(t, took, 10*time.Second, "import must stream, not crawl")

	dir := t.TempDir()
	require.NoError(t, WriteDataset(dir, d))
	back, err := ReadDataset(dir)
	require.NoError(t, err)
	assert.Len(t, back.Outcomes, len(d.Outcomes))
	assert.Equal(t, d.Outcomes[:100], back.Outcomes[:100])
}

func BenchmarkImportBenchmarkMMLUPro(b *testing.B) {
	requireBenchmarkData(b)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		d, _, err := ImportBenchmark(mmluPro)
		if err != nil {
			b.Fatal(err)
		}
		n += len(d.Outcomes)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "outcomes/s")
}

// longCatalogue has models a and b.
func longCatalogue(t testing.TB) *Catalogue {
	cat, err := NewCatalogue([]ModelPrice{{Name: "a", InputUSDPerMTok: 1, OutputUSDPerMTok: 2}, {Name: "b", InputUSDPerMTok: 10, OutputUSDPerMTok: 20}})
	require.NoError(t, err)
	return cat
}

// longWant is the valid content of the long-format fixtures, in every format.
var longWant = []OutcomeRecord{
	// p1 × a: tokens estimated (ceil(11/4) = 3) and the median of a (20); cost computed.
	{PromptID: "p1", Model: "a", Quality: 1, InputTokens: 3, OutputTokens: 20, CostUSD: 3*1e-6 + 20*2e-6, Source: SourceBenchmark},
	{PromptID: "p1", Model: "b", Quality: 0, InputTokens: 5, OutputTokens: 100, CostUSD: 0.5, Source: SourceBenchmark},
	{PromptID: "p2", Model: "a", Quality: 0.5, InputTokens: 7, OutputTokens: 20, CostUSD: 7*1e-6 + 20*2e-6, Source: SourceBenchmark},
}

var longWantPrompts = []PromptRecord{{PromptID: "p1", Prompt: "hello world", Task: "t"}, {PromptID: "p2", Prompt: "multi\nline"}}

func assertLongDataset(t *testing.T, d *Dataset) {
	t.Helper()
	assert.Equal(t, longWantPrompts, d.Prompts)
	assertOutcomes(t, longWant, d.Outcomes)
	assert.NoError(t, d.Validate())
}

// assertOutcomes checks got against want field by field, costs within
// rounding.
func assertOutcomes(t *testing.T, want, got []OutcomeRecord) {
	t.Helper()
	require.Len(t, got, len(want))
	for i, w := range want {
		g := got[i]
		assert.InDelta(t, w.CostUSD, g.CostUSD, 1e-15, "outcome %d cost", i)
		g.CostUSD = w.CostUSD
		assert.Equal(t, w, g, "outcome %d", i)
	}
}

func TestImportLongCSVReportsAndSkipsMalformedRows(t *testing.T) {
	content := strings.Join([]string{
		"prompt_id,prompt,task,model,quality,input_tokens,output_tokens,cost_usd,extra", // 1
		"p1,hello world,t,a,1,,,,x",         // 2
		"p1,hello world,t,b,0,5,100,0.5,x",  // 3
		"p2,\"multi\nline\",,a,0.5,7,20,,x", // 4-5
		"p1,other text,t,a,1,,,,x",          // 6
		"p3,q,,zz,1,,,,x",                   // 7
		"p3,q,,a,2,,,,x",                    // 8
		"p3,q,,a,,,,,x",                     // 9
		"p3,q,,a,1,-3,,,x",                  // 10
		"p3,q,,a,1,,1.5,,x",                 // 11
		"p3,q,,a,1,,,abc,x",                 // 12
		"p1,hello world,t,b,1,,,,x",         // 13
		",q,,a,1,,,,x",                      // 14
		"p3,q,,a,1,,,",                      // 15
		"p1,hello world,u,a,1,,,,x",         // 16
		`p3,"bad"quote,,a,1,,,,x`,           // 17
	}, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "long.csv")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	d, rep, err := ImportLong(path, longCatalogue(t))
	require.NoError(t, err)
	assertLongDataset(t, d)

	want := []string{
		`:6: prompt id "p1" has a different prompt text than on line 2`,
		`:7: model "zz" is not in the catalogue`,
		`:8: quality "2": outside [0,1]`,
		`:9: empty quality`,
		`:10: input_tokens "-3": negative`,
		`:11: output_tokens "1.5": not a whole number`,
		`:12: cost_usd "abc": not a non-negative number`,
		`:13: duplicate outcome for prompt "p1" and model "b" (first on line 3)`,
		`:14: empty prompt_id`,
		`:15: 8 fields, want 9 like the header`,
		`:16: prompt id "p1" has task "u", but "t" on line 2`,
		`:17: malformed CSV: extraneous or missing " in quoted-field`,
	}
	require.Len(t, rep.Problems, len(want), rep.String())
	for i, w := range want {
		assert.Equal(t, path+w, rep.Problems[i].String())
	}
	assert.Equal(t, 15, rep.RowsRead)
	assert.Equal(t, len(want), rep.Skipped)
	assert.Equal(t, "read 2 prompts, 3 outcomes from 1 files; skipped 12 malformed rows", rep.Summary())
}

func TestImportLongReadsJSONLAndParquetLikeCSV(t *testing.T) {
	dir := t.TempDir()
	jsonl := filepath.Join(dir, "long.jsonl")
	require.NoError(t, os.WriteFile(jsonl, []byte(strings.Join([]string{
		`{"prompt_id":"p1","prompt":"hello world","task":"t","model":"a","quality":1}`,
		`{"prompt_id":"p1","prompt":"hello world","task":"t","model":"b","quality":0,"input_tokens":5,"output_tokens":100,"cost_usd":0.5}`,
		`{"prompt_id":"p2","prompt":"multi\nline","task":null,"model":"a","quality":"0.5","input_tokens":7,"output_tokens":20,"cost_usd":null}`,
		`{"prompt_id":"p3","prompt":"q","model":"a","quality":true}`,
		`{"prompt_id":"p3","model":"a","quality":1}`,
		`{"prompt_id":"p3","prompt":"q","quality":1}`,
		`[1,2]`,
	}, "\n")), 0o644))
	d, rep, err := ImportLong(jsonl, longCatalogue(t))
	require.NoError(t, err)
	assertLongDataset(t, d)
	var reasons []string
	for _, p := range rep.Problems {
		reasons = append(reasons, fmt.Sprintf("%d: %s", p.Line, p.Reason))
	}
	assert.Equal(t, []string{
		"4: quality: want a string or number, got true",
		"5: missing prompt",
		"6: missing model",
		"7: invalid JSON: json: cannot unmarshal array into Go value of type datasets.longJSON",
	}, reasons)

	// A Parquet file as pandas would write it: nullable columns, INT32 counts.
	type longParquetRow struct {
		PromptID     string   `parquet:"prompt_id"`
		Prompt       *string  `parquet:"prompt,optional"`
		Task         *string  `parquet:"task,optional"`
		Model        string   `parquet:"model"`
		Quality      float32  `parquet:"quality"`
		InputTokens  *int32   `parquet:"input_tokens,optional"`
		OutputTokens *float64 `parquet:"output_tokens,optional"`
		CostUSD      *float64 `parquet:"cost_usd,optional"`
		Other        bool     `parquet:"other"`
	}
	s := func(v string) *string { return &v }
	i := func(v int32) *int32 { return &v }
	f := func(v float64) *float64 { return &v }
	pq := filepath.Join(dir, "long.parquet")
	require.NoError(t, parquet.WriteFile(pq, []longParquetRow{
		{PromptID: "p1", Prompt: s("hello world"), Task: s("t"), Model: "a", Quality: 1},
		{PromptID: "p1", Prompt: s("hello world"), Task: s("t"), Model: "b", Quality: 0, InputTokens: i(5), OutputTokens: f(100), CostUSD: f(0.5)},
		{PromptID: "p2", Prompt: s("multi\nline"), Model: "a", Quality: 0.5, InputTokens: i(7), OutputTokens: f(20)},
		{PromptID: "p3", Prompt: s("q"), Model: "zz", Quality: 1},
	}))
	d, rep, err = ImportLong(pq, longCatalogue(t))
	require.NoError(t, err)
	assertLongDataset(t, d)
	require.Len(t, rep.Problems, 1)
	assert.Equal(t, pq+`:4: model "zz" is not in the catalogue`, rep.Problems[0].String())
}

func TestImportLongRefusesUnusableInput(t *testing.T) {
	type badTypes struct {
		PromptID string `parquet:"prompt_id"`
		Prompt   string `parquet:"prompt"`
		Model    string `parquet:"model"`
		Quality  string `parquet:"quality"`
	}
	type badModel struct {
		PromptID string  `parquet:"prompt_id"`
		Prompt   string  `parquet:"prompt"`
		Model    int64   `parquet:"model"`
		Quality  float64 `parquet:"quality"`
	}
	type listQuality struct {
		PromptID string    `parquet:"prompt_id"`
		Prompt   string    `parquet:"prompt"`
		Model    string    `parquet:"model"`
		Quality  []float64 `parquet:"quality,list"`
	}
	cases := []struct {
		name  string
		file  string
		write func(path string) error
		want  string
	}{
		{"unknown extension", "long.tsv", nil, `unknown extension ".tsv", want .csv, .jsonl or .parquet`},
		{"absent file", "absent.csv", nil, "no such file"},
		{"empty CSV", "long.csv", text(""), "empty file, want a header"},
		{"CSV without quality", "long.csv", text("prompt_id,prompt,model\np,q,a\n"), "header: missing column(s) quality"},
		{"Parquet with a string quality", "long.parquet", func(p string) error { return parquet.WriteFile(p, []badTypes{{}}) },
			`column "quality" has type BYTE_ARRAY (STRING), want a number`},
		{"Parquet with a numeric model", "long.parquet", func(p string) error { return parquet.WriteFile(p, []badModel{{}}) },
			`column "model" has type INT64 (INT(64,true)), want BYTE_ARRAY (STRING)`},
		{"Parquet with a list", "long.parquet", func(p string) error { return parquet.WriteFile(p, []listQuality{{}}) },
			"missing column(s) quality"},
		{"Parquet that is not", "long.parquet", text("prompt_id,prompt\n"), "not a Parquet file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.file)
			if tc.write != nil {
				require.NoError(t, tc.write(path))
			}
			_, _, err := ImportLong(path, longCatalogue(t))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, _, err := ImportLong("x.csv", nil)
	assert.ErrorContains(t, err, "no catalogue")
}

func text(s string) func(string) error {
	return func(p string) error { return os.WriteFile(p, []byte(s), 0o644) }
}

func TestImportLongWarnsWhenAModelHasNoTokenCounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "long.csv")
	require.NoError(t, os.WriteFile(path, []byte("prompt_id,prompt,model,quality\np1,abcd,b,1\np2,abcd,b,0\n"), 0o644))
	d, rep, err := ImportLong(path, longCatalogue(t))
	require.NoError(t, err)
	require.Len(t, d.Outcomes, 2)
	assert.Zero(t, d.Outcomes[0].OutputTokens)
	assert.InDelta(t, 1*10/1e6, d.Outcomes[0].CostUSD, 1e-15)
	require.Len(t, rep.Problems, 1)
	assert.Equal(t, path+`:2: model "b" has no output token counts in the file; using 0, so its cost counts input tokens only`, rep.Problems[0].String())
	assert.Zero(t, rep.Skipped)
	assert.Equal(t, "read 2 prompts, 2 outcomes from 1 files; 1 other problems", rep.Summary())
}

// FuzzImportLongCSV feeds arbitrary bytes to the long CSV importer: it must
// return an error or a report whose counts add up, never panic.
func FuzzImportLongCSV(f *testing.F) {
	f.Add([]byte("prompt_id,prompt,task,model,quality,input_tokens,output_tokens,cost_usd\np1,hi,t,a,1,,,\np1,hi,t,b,0.5,3,4,0.1\n"))
	f.Add([]byte("prompt_id,prompt,model,quality\n\"p\n1\",x,a,1e-3\np2,\"\"\"\",b,NaN\n,,,\n"))
	f.Add([]byte("\ufeffprompt_id,prompt,model,quality\np,x,a,1\np,y,a,1\n"))
	fuzzLongReader(f, "fuzz.csv", readLongCSV)
}

// FuzzImportLongJSONL is FuzzImportLongCSV for JSONL input.
func FuzzImportLongJSONL(f *testing.F) {
	f.Add([]byte(`{"prompt_id":"p1","prompt":"hi","model":"a","quality":1}` + "\n" + `{"prompt_id":2,"prompt":"x","model":"b","quality":"0.5","cost_usd":1e400}`))
	f.Add([]byte(`{"prompt_id":"p1","prompt":"\ud800","model":"a","quality":0,"input_tokens":-0}`))
	fuzzLongReader(f, "fuzz.jsonl", readLongJSONL)
}

// fuzzLongReader fuzzes one reader of the long format: on input it does not
// refuse, the report's counts must add up and the dataset must be valid.
func fuzzLongReader(f *testing.F, file string, read func(io.Reader, *longBuilder) error) {
	cat := longCatalogue(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		rep := &ImportReport{}
		lb := newLongBuilder(file, cat, rep)
		if err := read(bytes.NewReader(b), lb); err != nil {
			return
		}
		checkFuzzDataset(t, lb.finish(), rep, bytes.Count(b, []byte("\n"))+1)
	})
}

func checkFuzzDataset(t *testing.T, d *Dataset, rep *ImportReport, lines int) {
	t.Helper()
	if rep.RowsRead > lines {
		t.Fatalf("%d rows read from %d lines", rep.RowsRead, lines)
	}
	if len(d.Outcomes)+rep.Skipped != rep.RowsRead {
		t.Fatalf("%d outcomes + %d skipped != %d rows read", len(d.Outcomes), rep.Skipped, rep.RowsRead)
	}
	if len(d.Prompts) > len(d.Outcomes) || len(rep.Problems) > MaxStoredProblems {
		t.Fatalf("%d prompts, %d outcomes, %d problems", len(d.Prompts), len(d.Outcomes), len(rep.Problems))
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("imported dataset is invalid: %v", err)
	}
	for _, o := range d.Outcomes {
		if o.Quality < 0 || o.Quality > 1 || o.InputTokens < 0 || o.OutputTokens < 0 || !(o.CostUSD >= 0) {
			t.Fatalf("out-of-range outcome %+v", o)
		}
	}
}

// FuzzParsePromptLine feeds arbitrary lines to the prompts.jsonl parser: it
// must return a prompt with an id or an error, never panic.
func FuzzParsePromptLine(f *testing.F) {
	f.Add([]byte(`{"prompt_id": "70", "task": "business", "prompt": "Typical?\nA. yes"}`))
	f.Add([]byte(`{"prompt_id": 7.5e3, "prompt": ""}`))
	f.Add([]byte(`{"prompt_id": null, "prompt": "x"}`))
	f.Add([]byte(`{"prompt_id": {"a":1}, "prompt": "x"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		p, err := ParsePromptLine(line)
		if err != nil {
			return
		}
		if p.PromptID == "" || p.PromptID != strings.TrimSpace(p.PromptID) {
			t.Fatalf("bad id %q", p.PromptID)
		}
		// Unescaping never grows text by more than invalid UTF-8 → U+FFFD (1 → 3 bytes).
		if n := len(p.PromptID) + len(p.Prompt) + len(p.Task); n > 3*len(line) {
			t.Fatalf("%d bytes of text from a %d-byte line", n, len(line))
		}
	})
}
