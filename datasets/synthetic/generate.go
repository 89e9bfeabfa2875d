package synthetic

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"switchyard/datasets"
)

// DefaultPrompts is the number of prompts Generate makes when Config.Prompts is 0.
const DefaultPrompts = 4000

// Stream constants separate the random streams for prompts and for outcomes,
// so that the prompts of a seed do not depend on how outcomes are drawn.
const (
	promptStream  = 0x70726f6d70747321 // "prompts!"
	outcomeStream = 0x6f7574636f6d6521 // "outcome!"
)

// baseTime is the timestamp of the first generated prompt; prompt i arrives
// i·promptInterval later.
var baseTime = time.Date(2025, time.January, 6, 9, 0, 0, 0, time.UTC)

const promptInterval = 15 * time.Second

// Config sets what Generate produces.
type Config struct {
	Seed    int64 // all randomness derives from it
	Prompts int   // number of prompts; DefaultPrompts when 0
}

// Workload is a generated full-information benchmark: the catalogue, the
// prompts, and one outcome per prompt and model (prompt-major, models in
// catalogue order).
type Workload struct {
	Catalogue *datasets.Catalogue
	Prompts   []datasets.PromptRecord
	Outcomes  []datasets.OutcomeRecord
}

// Generate makes a workload from cfg. The same Config always gives the same
// workload, byte for byte.
func Generate(cfg Config) (*Workload, error) {
	w, _, err := generate(cfg)
	return w, err
}

// generate is Generate that also returns the hidden truth of each prompt,
// for tests and calibration.
func generate(cfg Config) (*Workload, []latent, error) {
	n := cfg.Prompts
	if n == 0 {
		n = DefaultPrompts
	}
	if n < 0 {
		return nil, nil, fmt.Errorf("generate synthetic workload: prompts must not be negative (0 means %d), got %d", DefaultPrompts, cfg.Prompts)
	}
	if n > 10_000_000 {
		return nil, nil, errors.New("generate synthetic workload: more than 10,000,000 prompts; generate several workloads instead")
	}
	cat := DefaultCatalogue()
	prng := rand.New(rand.NewPCG(uint64(cfg.Seed), promptStream))
	orng := rand.New(rand.NewPCG(uint64(cfg.Seed), outcomeStream))
	fill := newFiller(prng)

	w := &Workload{
		Catalogue: cat,
		Prompts:   make([]datasets.PromptRecord, n),
		Outcomes:  make([]datasets.OutcomeRecord, 0, n*len(modelProfiles)),
	}
	truth := make([]latent, n)
	for i := 0; i < n; i++ {
		ti := drawCategory(prng, func(k int) float64 { return taskMix[k].share }, len(taskMix))
		task := taskMix[ti]
		level := 1 + drawCategory(prng, func(k int) float64 { return task.levels[k] }, 4)
		text := fill.prompt(task.name, level)
		diff := difficultyOf(prng, level, text)
		id := fmt.Sprintf("syn-%06d", i+1)
		w.Prompts[i] = datasets.PromptRecord{PromptID: id, Prompt: text, Task: task.name}
		truth[i] = latent{task: ti, level: level, difficulty: diff}

		at := baseTime.Add(time.Duration(i) * promptInterval)
		in := datasets.EstimateInputTokens(text)
		// The length the request calls for, shared by all models; harder
		// requests ask for longer answers.
		u := clamp(0.6*float64(level-1)/3+0.4*prng.Float64(), 0, 1)
		wantOut := task.outLo * math.Pow(task.outHi/task.outLo, u)
		for j, m := range modelProfiles {
			w.Outcomes = append(w.Outcomes, outcome(orng, m, cat.Models[j], id, at, in, wantOut, m.skill[ti], diff))
		}
	}
	return w, truth, nil
}

// outcome draws one model's answer to one prompt; its cost comes from the
// catalogue entry price through the project's one cost model.
func outcome(rng *rand.Rand, m modelProfile, price datasets.ModelPrice, promptID string, at time.Time, in int, wantOut, skill, diff float64) datasets.OutcomeRecord {
	var q float64
	if rng.Float64() < pAcceptable(skill, diff) {
		q = 1
	}
	out := max(1, int64(math.Round(wantOut*m.verbosity*math.Exp(0.2*rng.NormFloat64()))))
	// Latency: time to first token (noisy), prefill, then decoding.
	lat := m.ttftMS*math.Exp(0.25*rng.NormFloat64()) + float64(in)*0.02 + float64(out)/m.tokPerSec*1000
	return datasets.OutcomeRecord{
		PromptID:     promptID,
		Model:        price.Name,
		Quality:      q,
		InputTokens:  int64(in),
		OutputTokens: out,
		CostUSD:      price.CostUSD(float64(in), float64(out)),
		LatencyMS:    math.Round(lat*10) / 10,
		Source:       datasets.SourceBenchmark,
		Time:         at,
	}
}

// prompt writes one prompt of the given task and level.
func (f *filler) prompt(task string, level int) string {
	f.reset()
	var text string
	switch task {
	case TaskClassification:
		text = f.classification(level)
	case TaskSummarization:
		text = f.summarization(level)
	case TaskRAG:
		text = f.rag(level)
	case TaskCode:
		text = f.code(level)
	case TaskReasoning:
		text = f.reasoning(level)
	default:
		text = f.creative(level)
	}
	return fixArticles(text)
}

// fixArticles turns "a" into "an" before words that start with a vowel
// letter (templates cannot know which word a placeholder becomes). Words
// starting with "u" or "one" are left alone ("a user", "a one-line").
func fixArticles(s string) string {
	if !strings.Contains(s, "a ") && !strings.Contains(s, "A ") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); i++ {
		b.WriteByte(s[i])
		if s[i] != 'a' && s[i] != 'A' || i+2 >= len(s) || s[i+1] != ' ' {
			continue
		}
		if i > 0 && isLetter(s[i-1]) {
			continue
		}
		switch s[i+2] {
		case 'a', 'e', 'i', 'o', 'A', 'E', 'I', 'O':
			if !strings.HasPrefix(s[i+2:], "one") {
				b.WriteByte('n')
			}
		}
	}
	return b.String()
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80 }
