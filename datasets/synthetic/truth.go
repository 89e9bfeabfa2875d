package synthetic

import (
	"math"
	"math/rand/v2"
	"strings"
)

// Task labels of the generated prompts, as stored in PromptRecord.Task.
const (
	TaskClassification = "classification"
	TaskSummarization  = "summarization"
	TaskRAG            = "rag"
	TaskCode           = "code"
	TaskReasoning      = "reasoning"
	TaskCreative       = "creative"
)

// taskSpec is one task of the traffic mix: its share of requests, how its
// difficulty levels 1-4 are distributed, and its answer lengths.
type taskSpec struct {
	name   string
	share  float64
	levels [4]float64
	outLo  float64 // output tokens of the easiest answers
	outHi  float64 // output tokens of the hardest answers
}

// taskMix is the enterprise traffic mix of the product brief. The index of a
// task here is its index in modelProfile.skill.
var taskMix = []taskSpec{
	{TaskClassification, 0.35, [4]float64{0.40, 0.30, 0.20, 0.10}, 5, 30},
	{TaskSummarization, 0.18, [4]float64{0.25, 0.35, 0.25, 0.15}, 100, 300},
	{TaskRAG, 0.22, [4]float64{0.25, 0.35, 0.25, 0.15}, 100, 250},
	{TaskCode, 0.12, [4]float64{0.20, 0.30, 0.30, 0.20}, 200, 800},
	{TaskReasoning, 0.08, [4]float64{0.15, 0.30, 0.30, 0.25}, 300, 1200},
	{TaskCreative, 0.05, [4]float64{0.30, 0.30, 0.25, 0.15}, 300, 900},
}

// Ground-truth constants. Difficulty is in logits: a model whose skill equals
// a prompt's difficulty answers it acceptably half of the time.
const (
	qualityScale    = 1.2  // slope of the quality sigmoid
	levelWeight     = 0.55 // difficulty added per level above 1, beyond the wording
	difficultyNoise = 0.6  // standard deviation of the unexplained difficulty
)

// marker is a wording cue that makes a request harder to answer well.
type marker struct {
	text   string
	weight float64
}

var difficultyMarkers = []marker{
	{"step by step", 0.35}, {"prove", 0.5}, {"proof", 0.25}, {"formal", 0.3}, {"edge case", 0.35},
	{"exactly", 0.25}, {"unless", 0.3}, {"if ", 0.08}, {"must", 0.15}, {"do not", 0.12},
	{"without", 0.15}, {"at most", 0.15}, {"at least", 0.12}, {"json", 0.15}, {"justif", 0.2},
	{"thread-safe", 0.35}, {"concurren", 0.3}, {"complexity", 0.25}, {"o(", 0.2}, {"invariant", 0.25},
	{"counterexample", 0.35}, {"optimal", 0.3}, {"minimis", 0.2}, {"cite", 0.15}, {"contradict", 0.2},
	{"superseded", 0.25}, {"conflict", 0.2}, {"each", 0.06}, {"both", 0.08}, {"nested", 0.2},
	{"rigorous", 0.3}, {"derive", 0.3}, {"deterministic", 0.15}, {"iambic", 0.3}, {"rhyme scheme", 0.2},
	{"table", 0.1}, {"rank", 0.1}, {"probability", 0.2}, {"generalise", 0.25}, {"timeout", 0.15},
}

// markersByFirstByte indexes difficultyMarkers by their first byte so that
// wordingDifficulty scans a text once. Read-only after initialisation.
var markersByFirstByte = func() (idx [256][]marker) {
	for _, m := range difficultyMarkers {
		idx[m.text[0]] = append(idx[m.text[0]], m)
	}
	return idx
}()

// wordingDifficulty is the part of a prompt's difficulty that can be read
// from its text: constraint words, length, code and math content, several
// questions and list items. It is a function of the text alone, so a
// predictor can learn it.
func wordingDifficulty(text string) float64 {
	lower := strings.ToLower(text)
	var marks float64
	for i := 0; i < len(lower); i++ {
		if i > 0 && isLetter(lower[i-1]) {
			continue // markers start words: "prove" but not "improve"
		}
		for _, m := range markersByFirstByte[lower[i]] {
			if strings.HasPrefix(lower[i:], m.text) {
				marks += m.weight
			}
		}
	}
	d := math.Min(marks, 3)

	d += clamp(0.45*math.Log(float64(len(text))/150), -0.5, 2)

	if strings.Contains(text, "```") {
		d += 0.4
	}
	var mathOps, questions, items float64
	for _, r := range text {
		switch r {
		case '=', '²', '³', '≥', '≤', '^', '×':
			mathOps++
		case '?':
			questions++
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "- ") || (len(line) > 2 && line[0] >= '0' && line[0] <= '9' && line[1] == '.') {
			items++
		}
	}
	d += math.Min(0.12*mathOps, 0.6)
	d += math.Min(0.15*math.Max(questions-1, 0), 0.6)
	d += math.Min(0.04*items, 0.4)
	return d
}

// latent is the hidden truth about one prompt.
type latent struct {
	task       int // index into taskMix
	level      int // 1..4
	difficulty float64
}

// difficultyOf draws the latent difficulty of a prompt of the given level.
func difficultyOf(rng *rand.Rand, level int, text string) float64 {
	return levelWeight*float64(level-1) + wordingDifficulty(text) + difficultyNoise*rng.NormFloat64()
}

// pAcceptable is the probability that a model of the given skill answers a
// prompt of the given difficulty acceptably.
func pAcceptable(skill, difficulty float64) float64 {
	return 1 / (1 + math.Exp(-qualityScale*(skill-difficulty)))
}

// drawCategory returns an index drawn with the given weights (summing to 1).
func drawCategory(rng *rand.Rand, weights func(i int) float64, n int) int {
	u := rng.Float64()
	for i := 0; i < n-1; i++ {
		u -= weights(i)
		if u < 0 {
			return i
		}
	}
	return n - 1
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }
