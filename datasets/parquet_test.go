package datasets

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func sampleDecisions() []DecisionRecord {
	t0 := time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)
	return []DecisionRecord{
		{
			DecisionID: "d1", Time: t0, RequestID: "r1", PromptID: "p1", Prompt: "What is 2+2?",
			PromptSHA256: strings.Repeat("ab", 32), Task: "math", FeatureSpecID: "fs1", PredictorVersion: "v3",
			Policy: "threshold", PolicyVersion: "1", QualityBar: 0.8,
			Candidates: []Candidate{
				{Model: "big", PredictedQuality: 0.93, ExpectedCostUSD: 0.0021},
				{Model: "small", PredictedQuality: 0.81, ExpectedCostUSD: 0.00003},
			},
			Chosen: "small", Propensity: 0.95, Experiment: "e1", Arm: "treatment", InputTokens: 4,
		},
		{DecisionID: "d2", Time: t0.Add(time.Second), PromptSHA256: "00", Candidates: nil, Chosen: "big", Propensity: 1},
		{DecisionID: "d3", Candidates: []Candidate{{Model: "only"}}}, // zero Time
	}
}

func sampleOutcomes() []OutcomeRecord {
	return []OutcomeRecord{
		{DecisionID: "d1", PromptID: "p1", Model: "small", Quality: 1, InputTokens: 4, OutputTokens: 12,
			CostUSD: 1.5e-6, LatencyMS: 231.5, Source: SourceOnline, Time: time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)},
		{PromptID: "p2", Model: "big", Quality: 0.25, Source: SourceBenchmark, Error: "timeout"}, // zero Time
	}
}

func samplePrompts() []PromptRecord {
	return []PromptRecord{{PromptID: "p1", Prompt: "What is 2+2?", Task: "math"}, {PromptID: "p2", Prompt: "héllo\nwörld"}}
}

// normalise makes an empty slice nil, since Parquet does not tell them apart.
func normaliseDecisions(rows []DecisionRecord) []DecisionRecord {
	for i := range rows {
		if len(rows[i].Candidates) == 0 {
			rows[i].Candidates = nil
		}
	}
	return rows
}

// roundTrip writes rows to a new file with write and returns what read reads
// back.
func roundTrip[T any](t *testing.T, write func(string, []T) error, read func(string) ([]T, error), rows []T) []T {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rows.parquet")
	require.NoError(t, write(path, rows))
	got, err := read(path)
	require.NoError(t, err)
	return got
}

func TestRoundTripKeepsEveryField(t *testing.T) {
	t.Run("decisions", func(t *testing.T) {
		got := roundTrip(t, WriteDecisions, ReadDecisions, sampleDecisions())
		assert.Equal(t, sampleDecisions(), normaliseDecisions(got))
		assert.True(t, got[2].Time.IsZero(), "zero time must round-trip as zero")
	})
	t.Run("outcomes", func(t *testing.T) {
		assert.Equal(t, sampleOutcomes(), roundTrip(t, WriteOutcomes, ReadOutcomes, sampleOutcomes()))
	})
	t.Run("prompts", func(t *testing.T) {
		assert.Equal(t, samplePrompts(), roundTrip(t, WritePrompts, ReadPrompts, samplePrompts()))
	})
	t.Run("empty", func(t *testing.T) {
		assert.Empty(t, roundTrip(t, WriteFile[OutcomeRecord], ReadFile[OutcomeRecord], nil))
	})
}

func TestWriterManyRowsSpanRowGroups(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.parquet")
	w, err := NewWriter[OutcomeRecord](path)
	require.NoError(t, err)
	n := rowsPerRowGroup + 1000
	for i := range n {
		require.NoError(t, w.Write(OutcomeRecord{PromptID: "p", Model: "m", InputTokens: int64(i)}))
	}
	require.NoError(t, w.Close())
	got, err := ReadOutcomes(path)
	require.NoError(t, err)
	require.Len(t, got, n)
	for i, o := range got {
		if o.InputTokens != int64(i) {
			t.Fatalf("row %d: input tokens %d", i, o.InputTokens)
		}
	}
}

func TestWriterIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "outcomes.parquet")

	w, err := NewWriter[OutcomeRecord](path)
	require.NoError(t, err)
	require.NoError(t, w.Write(sampleOutcomes()...))
	assert.NoFileExists(t, path, "nothing at the path before Close")
	tmps, _ := filepath.Glob(filepath.Join(dir, ".outcomes.parquet.*.tmp"))
	require.Len(t, tmps, 1, "writes go to a hidden temporary file")
	require.NoError(t, w.Close())
	require.NoError(t, w.Close(), "second Close is a no-op")
	w.Abort() // no-op after Close
	assert.FileExists(t, path)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), st.Mode().Perm())
	assert.Error(t, w.Write(sampleOutcomes()...), "write after close")

	aborted := filepath.Join(dir, "aborted.parquet")
	w, err = NewWriter[OutcomeRecord](aborted)
	require.NoError(t, err)
	require.NoError(t, w.Write(sampleOutcomes()...))
	w.Abort()
	assert.NoFileExists(t, aborted)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the closed file remains, no temporary files")

	_, err = NewWriter[OutcomeRecord](filepath.Join(dir, "no-such-dir", "x.parquet"))
	assert.ErrorContains(t, err, "no-such-dir")
}

// Stand-ins for OutcomeRecord with a column missing or mistyped.
type outcomeWithoutQuality struct {
	DecisionID   string    `parquet:"decision_id"`
	PromptID     string    `parquet:"prompt_id"`
	Model        string    `parquet:"model"`
	InputTokens  int64     `parquet:"input_tokens"`
	OutputTokens int64     `parquet:"output_tokens"`
	CostUSD      float64   `parquet:"cost_usd"`
	LatencyMS    float64   `parquet:"latency_ms"`
	Source       string    `parquet:"source"`
	Time         time.Time `parquet:"time,timestamp(microsecond),optional"`
	Error        string    `parquet:"error"`
}

type outcomeWithStringQuality struct {
	DecisionID   string    `parquet:"decision_id"`
	PromptID     string    `parquet:"prompt_id"`
	Model        string    `parquet:"model"`
	Quality      string    `parquet:"quality"`
	InputTokens  int64     `parquet:"input_tokens"`
	OutputTokens int64     `parquet:"output_tokens"`
	CostUSD      float64   `parquet:"cost_usd"`
	LatencyMS    float64   `parquet:"latency_ms"`
	Source       string    `parquet:"source"`
	Time         time.Time `parquet:"time,timestamp(microsecond),optional"`
	Error        string    `parquet:"error"`
}

type candidateWithIntModel struct {
	Model            int64   `parquet:"model"`
	PredictedQuality float64 `parquet:"predicted_quality"`
	ExpectedCostUSD  float64 `parquet:"expected_cost_usd"`
}

type decisionWithIntCandidateModel struct {
	DecisionID string                  `parquet:"decision_id"`
	Candidates []candidateWithIntModel `parquet:"candidates,list"`
}

type outcomeWithExtraColumn struct {
	OutcomeRecord
	Extra string `parquet:"extra"`
}

func TestReadFileRejectsBadFilesWithClearErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.parquet")
	require.NoError(t, WriteOutcomes(good, sampleOutcomes()))
	goodBytes, err := os.ReadFile(good)
	require.NoError(t, err)

	writeRaw := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o644))
		return p
	}
	writeVersion := func(name, version string) string {
		var buf bytes.Buffer
		var opts []parquet.WriterOption
		if version != "" {
			opts = append(opts, parquet.KeyValueMetadata(SchemaVersionKey, version))
		}
		require.NoError(t, parquet.Write(&buf, sampleOutcomes(), opts...))
		return writeRaw(name, buf.Bytes())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	framed := append(append([]byte("PAR1"), random...), []byte("\x10\x00\x00\x00PAR1")...)

	cases := []struct {
		name string
		path func() string
		read func(string) error
		want []string
	}{
		{"missing column", func() string {
			p := filepath.Join(dir, "outcomes.parquet")
			require.NoError(t, WriteFile(p, []outcomeWithoutQuality{{PromptID: "p", Model: "m"}}))
			return p
		}, readOutcomes, []string{"outcomes.parquet: column \"quality\" missing"}},
		{"several missing columns", func() string {
			p := filepath.Join(dir, "few.parquet")
			require.NoError(t, WriteFile(p, []PromptRecord{{PromptID: "p"}}))
			return p
		}, readOutcomes, []string{"few.parquet: column \"decision_id\" missing; column \"model\" missing;", "column \"error\" missing"}},
		{"mistyped column", func() string {
			p := filepath.Join(dir, "mistyped.parquet")
			require.NoError(t, WriteFile(p, []outcomeWithStringQuality{{Quality: "high"}}))
			return p
		}, readOutcomes, []string{"mistyped.parquet: column \"quality\" has type BYTE_ARRAY (STRING), want DOUBLE"}},
		{"mistyped nested list column", func() string {
			p := filepath.Join(dir, "decisions.parquet")
			require.NoError(t, WriteFile(p, []decisionWithIntCandidateModel{{DecisionID: "d"}}))
			return p
		}, readDecisions, []string{"column \"candidates.list.element.model\" has type INT64 (INT(64,true)), want BYTE_ARRAY (STRING)"}},
		{"wrong schema version", func() string { return writeVersion("v99.parquet", "99") }, readOutcomes,
			[]string{"v99.parquet: schema version \"99\", want \"" + SchemaVersion + "\""}},
		{"missing schema version", func() string { return writeVersion("noversion.parquet", "") }, readOutcomes,
			[]string{"noversion.parquet: schema version missing", `want "` + SchemaVersion + `"`}},
		{"truncated", func() string { return writeRaw("truncated.parquet", goodBytes[:len(goodBytes)-10]) }, readOutcomes,
			[]string{"truncated.parquet: truncated or not a Parquet file"}},
		{"truncated at start", func() string { return writeRaw("head.parquet", goodBytes[10:]) }, readOutcomes,
			[]string{"head.parquet: not a Parquet file"}},
		{"random bytes", func() string { return writeRaw("random.parquet", random) }, readOutcomes,
			[]string{"random.parquet: not a Parquet file"}},
		{"random bytes framed as Parquet", func() string { return writeRaw("framed.parquet", framed) }, readOutcomes,
			[]string{"framed.parquet: corrupt Parquet file"}},
		{"tiny file", func() string { return writeRaw("tiny.parquet", []byte("PAR1")) }, readOutcomes,
			[]string{"tiny.parquet: not a Parquet file: only 4 bytes"}},
		{"absent file", func() string { return filepath.Join(dir, "absent.parquet") }, readOutcomes,
			[]string{"absent.parquet", "no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.read(tc.path())
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func readOutcomes(p string) error  { _, err := ReadOutcomes(p); return err }
func readDecisions(p string) error { _, err := ReadDecisions(p); return err }

func TestReadFileAllowsExtraColumns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "extra.parquet")
	rows := []outcomeWithExtraColumn{{OutcomeRecord: sampleOutcomes()[0], Extra: "x"}}
	require.NoError(t, WriteFile(path, rows))
	got, err := ReadOutcomes(path)
	require.NoError(t, err)
	assert.Equal(t, sampleOutcomes()[:1], got)
}

func TestCheckSchemaRefusesNullsAndLists(t *testing.T) {
	type required struct {
		A string `parquet:"a"`
	}
	type optional struct {
		A *string `parquet:"a,optional"`
	}
	type list struct {
		A []string `parquet:"a,list"`
	}
	type repeated struct {
		A []string `parquet:"a"`
	}
	req, opt := parquet.SchemaOf(new(required)), parquet.SchemaOf(new(optional))
	assert.NoError(t, CheckSchema(req, opt), "a required column reads into an optional field")
	assert.ErrorContains(t, CheckSchema(opt, req), `column "a" may be null`)
	assert.ErrorContains(t, CheckSchema(parquet.SchemaOf(new(list)), req), `column "a" missing`)
	assert.ErrorContains(t, CheckSchema(parquet.SchemaOf(new(repeated)), req), `column "a" has repetition level 1, want 0`)
}

func TestCheckSchemaAcceptsUnannotatedStringsAndInts(t *testing.T) {
	plain := parquet.NewSchema("plain", parquet.Group{
		"s": parquet.Leaf(parquet.ByteArrayType),
		"n": parquet.Leaf(parquet.Int64Type),
		"t": parquet.Leaf(parquet.Int64Type),
	})
	type typed struct {
		S string `parquet:"s"`
		N int64  `parquet:"n"`
	}
	type timed struct {
		T time.Time `parquet:"t,timestamp(microsecond)"`
	}
	assert.NoError(t, CheckSchema(plain, parquet.SchemaOf(new(typed))))
	assert.ErrorContains(t, CheckSchema(parquet.SchemaOf(new(typed)), parquet.SchemaOf(new(timed))), `column "t" missing`)
	assert.ErrorContains(t, CheckSchema(plain, parquet.SchemaOf(new(timed))),
		`column "t" has type INT64 (INT(64,true)), want INT64 (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS))`)
}

// TestSchemasMatchGolden pins the Parquet schema of each log. docs/formats.md
// documents these schemas; run `go test ./datasets -run Golden -update` after a
// deliberate change, bump SchemaVersion if old files no longer read, and
// update docs/formats.md.
func TestSchemasMatchGolden(t *testing.T) {
	var b strings.Builder
	for _, s := range []struct {
		file  string
		model any
	}{
		{"decision log (decisions*.parquet)", new(DecisionRecord)},
		{"outcome log (" + OutcomesGlob + ")", new(OutcomeRecord)},
		{"prompt table (" + PromptsFile + ")", new(PromptRecord)},
	} {
		b.WriteString("# " + s.file + "\n")
		b.WriteString(parquet.SchemaOf(s.model).String())
		b.WriteString("\n\n")
	}
	b.WriteString("# key/value metadata: " + SchemaVersionKey + " = " + SchemaVersion + "\n")
	golden := filepath.Join("testdata", "schemas.golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(golden, []byte(b.String()), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test ./datasets -run Golden -update to create it")
	assert.Equal(t, string(want), b.String(), "schemas changed: rerun with -update and update docs/formats.md")
}

// FuzzReadParquet feeds arbitrary bytes to the Parquet reader: it must return
// the footer's number of rows or an error, never panic.
func FuzzReadParquet(f *testing.F) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[OutcomeRecord](&buf, parquet.KeyValueMetadata(SchemaVersionKey, SchemaVersion))
	_, err := w.Write(sampleOutcomes())
	require.NoError(f, err)
	require.NoError(f, w.Close())
	good := buf.Bytes()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("PAR1PAR1"))
	f.Add([]byte("PAR1\x00\x00\x00\x00\x04\x00\x00\x00PAR1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := readParquet[OutcomeRecord](bytes.NewReader(b), int64(len(b)))
		if err != nil && rows != nil {
			t.Fatalf("%d rows with error %v", len(rows), err)
		}
	})
}

// TestFormatsDocumentsTheSchemas keeps the Parquet schema section of
// docs/formats.md in step with the golden file.
func TestFormatsDocumentsTheSchemas(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "schemas.golden"))
	require.NoError(t, err)
	doc, err := os.ReadFile(filepath.Join("..", "docs", "formats.md"))
	require.NoError(t, err)
	assert.Contains(t, string(doc), string(golden), "docs/formats.md's Parquet schema section differs from testdata/schemas.golden")
}
