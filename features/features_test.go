package features

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTestExtractor(t testing.TB) *Extractor {
	t.Helper()
	e, err := NewExtractor(DefaultSpec())
	require.NoError(t, err)
	return e
}

func requireValid(t *testing.T, e *Extractor, v *Vector) {
	t.Helper()
	spec := e.Spec()
	require.LessOrEqual(t, len(v.IDs), spec.MaxIDs)
	for _, id := range v.IDs {
		require.True(t, id >= 1 && int(id) < spec.Buckets, "id %d out of [1,%d)", id, spec.Buckets)
	}
	require.True(t, v.TaskID >= 0 && int(v.TaskID) < spec.Buckets)
	require.Len(t, v.Dense, NumDense)
	for i, x := range v.Dense {
		require.False(t, math.IsNaN(float64(x)) || math.IsInf(float64(x), 0), "dense %s = %v", denseNames[i], x)
		require.True(t, x >= 0 && x <= 2, "dense %s = %v out of range", denseNames[i], x)
	}
}

func TestExtractAnyInputIsValidAndBounded(t *testing.T) {
	e := newTestExtractor(t)
	huge := strings.Repeat("the quick brown fox jumps over 12 lazy dogs? ", 1<<20/45)
	cases := map[string]Input{
		"empty":          {},
		"spaces":         {Prompt: "   \n\t  "},
		"invalid utf8":   {Prompt: "caf\xc3 \xff\xfe ok \x80\x80"},
		"binary":         {Prompt: string([]byte{0, 1, 2, 255, 254, 0, 10, 13})},
		"one megabyte":   {Prompt: huge},
		"long word":      {Prompt: strings.Repeat("x", 10000)},
		"unicode":        {Prompt: "Ünïcödé ТЕКСТ 数学の問題 ∑ x² = ?"},
		"messages":       {Messages: []Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi?"}}},
		"task only":      {Task: "Code"},
		"prompt and msg": {Prompt: "a", Messages: []Message{{Content: "b"}}},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			var v Vector
			e.Extract(in, &v)
			requireValid(t, e, &v)
		})
	}
}

func TestExtractTruncatesAtMaxBytes(t *testing.T) {
	e := newTestExtractor(t)
	var short, long Vector
	base := strings.Repeat("alpha beta gamma ", 100)
	e.Extract(Input{Prompt: base}, &short)
	e.Extract(Input{Prompt: base + strings.Repeat("delta ", 1<<18)}, &long)
	assert.Equal(t, float32(0), short.Dense[12])
	assert.Equal(t, float32(1), long.Dense[12])
	assert.Equal(t, e.Spec().MaxIDs, len(long.IDs), "a long text fills the id budget")
	assert.Greater(t, long.Dense[0], short.Dense[0], "the length signal sees the whole text")
}

func TestExtractIsDeterministicAndReusesVector(t *testing.T) {
	e := newTestExtractor(t)
	in := Input{Prompt: "Summarise this report in 3 bullet points:\n- revenue grew 12%\n- costs fell", Task: "summarization"}
	var a, b Vector
	e.Extract(in, &a)
	e.Extract(Input{Prompt: "something else entirely, much longer than before " + strings.Repeat("z ", 50)}, &b)
	e.Extract(in, &b)
	assert.Equal(t, a.IDs, b.IDs)
	assert.Equal(t, a.Dense, b.Dense)
	assert.Equal(t, a.TaskID, b.TaskID)
}

func TestExtractAllocatesNothingWithAWarmVector(t *testing.T) {
	e := newTestExtractor(t)
	in := Input{Prompt: strings.Repeat("Write a Go function that parses JSON { \"a\": 1 } and returns an error. ", 15), Task: "code"}
	var v Vector
	e.Extract(in, &v)
	allocs := testing.AllocsPerRun(100, func() { e.Extract(in, &v) })
	assert.Zero(t, allocs)
}

func TestExtractNgramsAndSignals(t *testing.T) {
	e := newTestExtractor(t)
	var v Vector
	e.Extract(Input{Prompt: "hello world"}, &v)
	assert.Len(t, v.IDs, 3, "2 unigrams + 1 bigram")
	assert.Zero(t, v.TaskID)
	spec := DefaultSpec()
	spec.CharNgramMin, spec.CharNgramMax = 3, 3
	withChars, err := NewExtractor(spec)
	require.NoError(t, err)
	withChars.Extract(Input{Prompt: "hello world"}, &v)
	assert.Len(t, v.IDs, 13, "and char 3-grams of <hello> (5) and <world> (5)")

	var lower, upper Vector
	e.Extract(Input{Prompt: "Hello World"}, &upper)
	e.Extract(Input{Prompt: "hello   world"}, &lower)
	assert.Equal(t, lower.IDs, upper.IDs, "normalisation folds case and spacing")

	var code, prose Vector
	e.Extract(Input{Prompt: "```go\nfunc main() { x := []int{1,2}; return }\n```"}, &code)
	e.Extract(Input{Prompt: "Tell me a short story about a lighthouse keeper."}, &prose)
	assert.Greater(t, code.Dense[3], prose.Dense[3], "code punctuation")
	assert.Greater(t, code.Dense[4], prose.Dense[4], "code markers")

	var math1 Vector
	e.Extract(Input{Prompt: "Prove that the sum of 2 odd numbers is even. Solve x^2 + 3x = 10?"}, &math1)
	assert.Greater(t, math1.Dense[6], prose.Dense[6], "math markers")
	assert.Greater(t, math1.Dense[7], prose.Dense[7], "question marks")

	var chat Vector
	e.Extract(Input{Messages: []Message{{Content: "a"}, {Content: "b"}, {Content: "c"}}}, &chat)
	assert.Greater(t, chat.Dense[9], prose.Dense[9], "turns")
}

func TestTaskLabelIsCaseInsensitiveAndSeparateFromText(t *testing.T) {
	e := newTestExtractor(t)
	assert.Equal(t, e.TaskID("Code"), e.TaskID(" code "))
	assert.NotEqual(t, e.TaskID("code"), e.TaskID("math"))
	assert.NotZero(t, e.TaskID("x"))
	var a, b Vector
	e.Extract(Input{Prompt: "same text", Task: "math"}, &a)
	e.Extract(Input{Prompt: "same text"}, &b)
	assert.Equal(t, a.IDs, b.IDs)
	assert.NotEqual(t, a.TaskID, b.TaskID)
	assert.Equal(t, float32(1), a.Dense[13])
}

func TestSpecIDIsStableAndSensitive(t *testing.T) {
	s := DefaultSpec()
	// Pinned: changing the default spec (or its JSON form) must be a deliberate act,
	// since every trained model records this id and serving refuses others.
	assert.Equal(t, "fs1-"+s.ID()[4:], s.ID())
	assert.Len(t, s.ID(), 16)
	assert.Equal(t, s.ID(), DefaultSpec().ID())
	s2 := DefaultSpec()
	s2.Buckets = 1 << 16
	assert.NotEqual(t, s.ID(), s2.ID())
	s3 := DefaultSpec()
	s3.MaxBytes = 100
	assert.NotEqual(t, s.ID(), s3.ID())
}

func TestSpecValidateNamesTheProblem(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Spec)
		want string
	}{
		{"hash", func(s *Spec) { s.Hash = "md5" }, "unknown hash"},
		{"buckets", func(s *Spec) { s.Buckets = 1 }, "buckets"},
		{"ngrams", func(s *Spec) { s.WordNgrams = 9 }, "word_ngrams"},
		{"char", func(s *Spec) { s.CharNgramMin = 5; s.CharNgramMax = 3 }, "char n-gram"},
		{"dense", func(s *Spec) { s.Dense = s.Dense[:3] }, "dense signals"},
		{"version", func(s *Spec) { s.Version = 99 }, "version"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := DefaultSpec()
			c.mod(&s)
			_, err := NewExtractor(s)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func FuzzExtract(f *testing.F) {
	for _, s := range []string{"", "hello world", "caf\xc3", "```\ncode\n```", "1. a\n2. b?", strings.Repeat("ab ", 5000)} {
		f.Add(s, "task", s)
	}
	e, err := NewExtractor(DefaultSpec())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, prompt, task, msg string) {
		var v Vector
		e.Extract(Input{Prompt: prompt, Task: task, Messages: []Message{{Role: "user", Content: msg}}}, &v)
		requireValid(t, e, &v)
		var w Vector
		e.Extract(Input{Prompt: prompt, Task: task, Messages: []Message{{Role: "user", Content: msg}}}, &w)
		require.Equal(t, v.IDs, w.IDs)
		_ = utf8.ValidString(prompt)
	})
}

func BenchmarkExtract1KB(b *testing.B) {
	e := newTestExtractor(b)
	in := Input{Prompt: strings.Repeat("Classify the sentiment of this customer review about our product. ", 16)[:1024]}
	var v Vector
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		e.Extract(in, &v)
	}
}
