// Package features turns a request (a prompt or chat messages, and an
// optional task label) into the fixed-size numeric input of the predictor:
// hashed word and character n-gram ids for an embedding bag, a task-label id,
// and a handful of dense signals.
//
// It is the one feature extractor of Switchyard: training, evaluation and
// serving all call Extract, and every trained model stores the Spec ID it was
// built with so that serving can refuse a model built with another spec.
// The package imports nothing from the project.
package features

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Hash names the hash function used for n-gram ids.
const HashFNV1a32 = "fnv1a32"

// Dense signal names, in the order they appear in Vector.Dense.
var denseNames = [...]string{
	"log_bytes",      // log1p(bytes of the whole text)/10
	"log_words",      // log1p(words in the truncated text)/8
	"log_lines",      // log1p(lines)/6
	"code_chars",     // share of code punctuation {}();=<>[] (×8, capped at 1)
	"code_markers",   // code fences or keywords (def, func, class, return, import, SELECT): 0..1
	"digit_share",    // share of digits (×4, capped at 1)
	"math_markers",   // math operators and words (prove, equation, integral, ...): 0..1
	"questions",      // log1p(question marks)/3
	"list_items",     // log1p(lines starting with a bullet or a number)/3
	"turns",          // log1p(chat turns)/3
	"mean_word_len",  // mean word length in bytes /12 (capped at 1)
	"upper_share",    // share of upper-case letters among letters
	"truncated",      // 1 when the text was cut at MaxBytes
	"has_task_label", // 1 when the caller supplied a task label
}

// NumDense is the number of dense signals in every Vector.
const NumDense = len(denseNames)

// DenseNames returns the names of the dense signals in Vector order.
func DenseNames() []string { return append([]string(nil), denseNames[:]...) }

// Spec fixes everything that decides the ids and signals a text maps to.
// Two extractors with the same Spec ID produce identical vectors.
type Spec struct {
	Hash         string   `json:"hash"`           // always HashFNV1a32 for now
	Buckets      int      `json:"buckets"`        // size of the id space; ids lie in [1, Buckets), 0 is padding
	WordNgrams   int      `json:"word_ngrams"`    // word n-grams of order 1..WordNgrams
	CharNgramMin int      `json:"char_ngram_min"` // character n-grams (within words, with < > boundary marks)
	CharNgramMax int      `json:"char_ngram_max"` // 0 disables character n-grams
	MaxBytes     int      `json:"max_bytes"`      // the text is truncated to this many bytes before hashing
	MaxIDs       int      `json:"max_ids"`        // at most this many ids per text; later ones are dropped
	Dense        []string `json:"dense"`          // dense signal names, in order
	Version      int      `json:"version"`        // bumped when the extraction code changes meaning
}

// extractionVersion is bumped whenever Extract changes what a text maps to.
const extractionVersion = 1

// DefaultSpec is the spec used unless a caller asks for another.
func DefaultSpec() Spec {
	return Spec{
		Hash:         HashFNV1a32,
		Buckets:      1 << 17,
		WordNgrams:   2,
		CharNgramMin: 0,
		CharNgramMax: 0,
		MaxBytes:     8192,
		MaxIDs:       2048,
		Dense:        DenseNames(),
		Version:      extractionVersion,
	}
}

// Validate reports whether the spec can be used by this build.
func (s Spec) Validate() error {
	switch {
	case s.Hash != HashFNV1a32:
		return fmt.Errorf("feature spec: unknown hash %q (want %q)", s.Hash, HashFNV1a32)
	case s.Buckets < 2 || s.Buckets > 1<<24:
		return fmt.Errorf("feature spec: buckets %d out of range [2, %d]", s.Buckets, 1<<24)
	case s.WordNgrams < 1 || s.WordNgrams > 3:
		return fmt.Errorf("feature spec: word_ngrams %d out of range [1, 3]", s.WordNgrams)
	case s.CharNgramMax != 0 && (s.CharNgramMin < 2 || s.CharNgramMax < s.CharNgramMin || s.CharNgramMax > 6):
		return fmt.Errorf("feature spec: char n-gram range [%d, %d] invalid (want 2 <= min <= max <= 6, or max 0)", s.CharNgramMin, s.CharNgramMax)
	case s.MaxBytes < 1:
		return errors.New("feature spec: max_bytes must be positive")
	case s.MaxIDs < 1:
		return errors.New("feature spec: max_ids must be positive")
	case s.Version != extractionVersion:
		return fmt.Errorf("feature spec: version %d is not supported by this build (want %d)", s.Version, extractionVersion)
	}
	if len(s.Dense) != NumDense {
		return fmt.Errorf("feature spec: %d dense signals, this build computes %d", len(s.Dense), NumDense)
	}
	for i, n := range s.Dense {
		if n != denseNames[i] {
			return fmt.Errorf("feature spec: dense signal %d is %q, this build computes %q", i, n, denseNames[i])
		}
	}
	return nil
}

// ID is a stable identifier of the spec: "fs1-" and the first 12 hex digits
// of the SHA-256 of its canonical JSON form.
func (s Spec) ID() string {
	b, err := json.Marshal(s)
	if err != nil { // a struct of strings and ints always marshals
		panic(err)
	}
	sum := sha256.Sum256(b)
	return "fs1-" + hex.EncodeToString(sum[:6])
}

// Message is one turn of an OpenAI-style chat.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Input is what a request offers to the extractor: either Prompt or
// Messages (when both are set, both are used), and an optional task label.
type Input struct {
	Prompt   string
	Messages []Message
	Task     string
}

// Vector is the extracted features of one input. Extract reuses its slices,
// so a caller that keeps one Vector per worker allocates nothing per request.
type Vector struct {
	IDs    []int32   // hashed n-gram ids in [1, Buckets), at most MaxIDs
	TaskID int32     // id of the task label, 0 when none was given
	Dense  []float32 // NumDense signals
}
