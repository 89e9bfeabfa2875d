package features

import (
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Hash namespaces keep unigrams, bigrams, character n-grams and task labels
// from colliding systematically in the shared id space.
const (
	nsWord    uint32 = 0x9e3779b1
	nsBigram  uint32 = 0x3c6ef362
	nsTrigram uint32 = 0xdaa66d13
	nsChar    uint32 = 0x78dde6c4
	nsTask    uint32 = 0x1715609d
)

const (
	fnvOffset = 2166136261
	fnvPrime  = 16777619
	// maxCharWord bounds the bytes of one word used for character n-grams.
	maxCharWord = 32
)

var codeKeywords = []string{"def", "func", "class", "return", "import", "select", "function",
	"const", "var", "public", "void", "lambda", "async", "struct", "println", "printf", "sql", "regex", "json", "api"}

var mathKeywords = []string{"prove", "proof", "equation", "integral", "derivative", "theorem", "probability",
	"solve", "calculate", "compute", "matrix", "lemma", "sum", "percent", "ratio", "expected", "variance", "optimal"}

// Extractor maps inputs to Vectors under one Spec. It holds no mutable state
// and is safe for concurrent use.
type Extractor struct {
	spec       Spec
	id         string
	mod        uint32
	keywords   keywordTable
	wordOrders int
}

// Keyword kinds in the keyword table.
const (
	kwCode uint8 = 1 << iota
	kwMath
)

// keywordTable is a small open-addressing set of word hashes with their
// kinds: a lookup per word costs a few nanoseconds, where a Go map costs
// tens.
type keywordTable struct {
	keys  [256]uint32
	kinds [256]uint8
}

func (t *keywordTable) add(h uint32, kind uint8) {
	for i := h & 255; ; i = (i + 1) & 255 {
		if t.kinds[i] == 0 || t.keys[i] == h {
			t.keys[i] = h
			t.kinds[i] |= kind
			return
		}
	}
}

func (t *keywordTable) lookup(h uint32) uint8 {
	for i := h & 255; ; i = (i + 1) & 255 {
		if t.kinds[i] == 0 {
			return 0
		}
		if t.keys[i] == h {
			return t.kinds[i]
		}
	}
}

// NewExtractor returns an extractor for spec, or an error if the spec is not
// valid for this build.
func NewExtractor(spec Spec) (*Extractor, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	e := &Extractor{spec: spec, id: spec.ID(), mod: uint32(spec.Buckets - 1), wordOrders: spec.WordNgrams}
	for _, w := range codeKeywords {
		e.keywords.add(hashString(nsWord, w), kwCode)
	}
	for _, w := range mathKeywords {
		e.keywords.add(hashString(nsWord, w), kwMath)
	}
	return e, nil
}

// Spec returns the extractor's spec.
func (e *Extractor) Spec() Spec { return e.spec }

// SpecID returns the extractor's spec ID.
func (e *Extractor) SpecID() string { return e.id }

// TaskID returns the id of a task label (0 for an empty label). Labels are
// compared after trimming and lower-casing.
func (e *Extractor) TaskID(task string) int32 {
	task = strings.TrimSpace(task)
	if task == "" {
		return 0
	}
	h := uint32(fnvOffset) ^ nsTask
	for i := 0; i < len(task); i++ {
		c := task[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h = (h ^ uint32(c)) * fnvPrime
	}
	return e.bucket(h)
}

func (e *Extractor) bucket(h uint32) int32 {
	// murmur3 finaliser: spreads fnv's low bits before the modulo
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return int32(h%e.mod) + 1
}

func hashString(ns uint32, s string) uint32 {
	h := uint32(fnvOffset) ^ ns
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * fnvPrime
	}
	return h
}

// scan is the running state of one extraction.
type scan struct {
	e        *Extractor
	v        *Vector
	budget   int // bytes still allowed
	cut      bool
	prev     [2]uint32 // hashes of the previous words, most recent first
	nprev    int
	word     [maxCharWord + 2]byte
	wlen     int // bytes in word (capped)
	wfull    int // bytes of the word in total
	wh       uint32
	inWord   bool
	lineHead bool // at the start of a line, before any non-space byte

	words, wordBytes, lines, codeChars, codeMarks, digits, mathOps, mathMarks int
	questions, listItems, letters, uppers, backticks                          int
}

// Extract writes the features of in into v, reusing v's slices. Any input,
// including empty text, invalid UTF-8 and megabytes of text, yields a valid
// vector: at most MaxIDs ids, all in [1, Buckets), and NumDense finite signals.
func (e *Extractor) Extract(in Input, v *Vector) {
	v.IDs = v.IDs[:0]
	if cap(v.Dense) < NumDense {
		v.Dense = make([]float32, NumDense)
	}
	v.Dense = v.Dense[:NumDense]
	v.TaskID = e.TaskID(in.Task)

	s := scan{e: e, v: v, budget: e.spec.MaxBytes, lineHead: true, lines: 1}
	total := len(in.Prompt)
	turns := 0
	if in.Prompt != "" {
		turns++
		s.text(in.Prompt)
	}
	for i := range in.Messages {
		total += len(in.Messages[i].Content)
		turns++
		s.boundary()
		s.text(in.Messages[i].Content)
	}
	s.endWord()

	d := v.Dense
	nb := float64(max(1, e.spec.MaxBytes-s.budget))
	d[0] = float32(math.Log1p(float64(total)) / 10)
	d[1] = float32(math.Log1p(float64(s.words)) / 8)
	d[2] = float32(math.Log1p(float64(s.lines)) / 6)
	d[3] = capped(8 * float64(s.codeChars) / nb)
	d[4] = capped(float64(s.codeMarks+s.backticks/3) / 3)
	d[5] = capped(4 * float64(s.digits) / nb)
	d[6] = capped(float64(s.mathMarks)/3 + float64(s.mathOps)/12)
	d[7] = float32(math.Log1p(float64(s.questions)) / 3)
	d[8] = float32(math.Log1p(float64(s.listItems)) / 3)
	d[9] = float32(math.Log1p(float64(turns)) / 3)
	if s.words > 0 {
		d[10] = capped(float64(s.wordBytes) / float64(s.words) / 12)
	} else {
		d[10] = 0
	}
	if s.letters > 0 {
		d[11] = float32(float64(s.uppers) / float64(s.letters))
	} else {
		d[11] = 0
	}
	d[12] = 0
	if s.cut {
		d[12] = 1
	}
	d[13] = 0
	if v.TaskID != 0 {
		d[13] = 1
	}
}

func capped(x float64) float32 {
	if x > 1 {
		return 1
	}
	return float32(x)
}

// boundary separates two chat turns: words and n-grams do not span it.
func (s *scan) boundary() {
	s.endWord()
	s.nprev = 0
	s.lineHead = true
	s.lines++
}

func (s *scan) text(t string) {
	if s.budget <= 0 {
		s.cut = true
		return
	}
	if len(t) > s.budget {
		t = t[:s.budget]
		s.cut = true
	}
	s.budget -= len(t)
	for i := 0; i < len(t); {
		c := t[i]
		if c < utf8.RuneSelf {
			i++
			s.ascii(c)
			continue
		}
		r, size := utf8.DecodeRuneInString(t[i:])
		i += size
		if r == utf8.RuneError || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
			s.endWord()
			s.lineHead = false
			continue
		}
		if unicode.IsLetter(r) {
			s.letters++
			if unicode.IsUpper(r) {
				s.uppers++
			}
		}
		var buf [utf8.UTFMax]byte
		n := utf8.EncodeRune(buf[:], unicode.ToLower(r))
		for j := 0; j < n; j++ {
			s.addByte(buf[j])
		}
		s.lineHead = false
	}
}

func (s *scan) ascii(c byte) {
	switch {
	case 'a' <= c && c <= 'z':
		s.letters++
		s.addByte(c)
		s.lineHead = false
		return
	case 'A' <= c && c <= 'Z':
		s.letters++
		s.uppers++
		s.addByte(c + 'a' - 'A')
		s.lineHead = false
		return
	case '0' <= c && c <= '9':
		s.digits++
		if s.lineHead {
			s.listItems++ // "1. item", "2) item"
		}
		s.addByte('0') // numbers generalise by shape, not value
		s.lineHead = false
		return
	}
	s.endWord()
	switch c {
	case '\n':
		s.lines++
		s.lineHead = true
		return
	case ' ', '\t', '\r':
		return
	case '-', '*':
		if s.lineHead {
			s.listItems++
		}
		s.mathOps++
	case '{', '}', '(', ')', ';', '<', '>', '[', ']':
		s.codeChars++
	case '=':
		s.codeChars++
		s.mathOps++
	case '+', '/', '^':
		s.mathOps++
	case '?':
		s.questions++
	case '`':
		s.backticks++
	}
	s.lineHead = false
}

func (s *scan) addByte(c byte) {
	if !s.inWord {
		s.inWord = true
		s.wlen, s.wfull = 0, 0
		s.wh = uint32(fnvOffset) ^ nsWord
	}
	s.wh = (s.wh ^ uint32(c)) * fnvPrime
	if s.wlen < maxCharWord {
		s.word[s.wlen+1] = c
		s.wlen++
	}
	s.wfull++
}

func (s *scan) emit(h uint32) {
	if len(s.v.IDs) < s.e.spec.MaxIDs {
		s.v.IDs = append(s.v.IDs, s.e.bucket(h))
	}
}

func (s *scan) endWord() {
	if !s.inWord {
		return
	}
	s.inWord = false
	s.words++
	s.wordBytes += s.wfull
	h := s.wh
	if k := s.e.keywords.lookup(h); k != 0 {
		if k&kwCode != 0 {
			s.codeMarks++
		}
		if k&kwMath != 0 {
			s.mathMarks++
		}
	}
	s.emit(h)
	if s.e.wordOrders >= 2 && s.nprev >= 1 {
		s.emit((s.prev[0]^nsBigram)*fnvPrime ^ h*0x27d4eb2d)
	}
	if s.e.wordOrders >= 3 && s.nprev >= 2 {
		s.emit(((s.prev[1]^nsTrigram)*fnvPrime^s.prev[0])*fnvPrime ^ h*0x27d4eb2d)
	}
	s.prev[1], s.prev[0] = s.prev[0], h
	if s.nprev < 2 {
		s.nprev++
	}
	s.charNgrams()
}

// charNgrams emits the character n-grams of the current word framed as <word>.
func (s *scan) charNgrams() {
	lo, hi := s.e.spec.CharNgramMin, s.e.spec.CharNgramMax
	if hi == 0 {
		return
	}
	s.word[0] = '<'
	s.word[s.wlen+1] = '>'
	w := s.word[:s.wlen+2]
	for n := lo; n <= hi; n++ {
		for i := 0; i+n <= len(w); i++ {
			h := uint32(fnvOffset) ^ nsChar ^ uint32(n)
			for _, c := range w[i : i+n] {
				h = (h ^ uint32(c)) * fnvPrime
			}
			s.emit(h)
		}
	}
}

// String describes the spec in one line, for logs and manifests.
func (s Spec) String() string {
	return fmt.Sprintf("%s (hash %s, %d buckets, word 1-%d-grams, char %d-%d-grams, max %d bytes, max %d ids, %d dense)",
		s.ID(), s.Hash, s.Buckets, s.WordNgrams, s.CharNgramMin, s.CharNgramMax, s.MaxBytes, s.MaxIDs, len(s.Dense))
}
