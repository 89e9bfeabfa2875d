package synthetic

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets"
)

// mustGenerate generates a workload with its hidden truth or stops the test.
func mustGenerate(t testing.TB, cfg Config) (*Workload, []latent) {
	t.Helper()
	w, truth, err := generate(cfg)
	require.NoError(t, err)
	return w, truth
}

// accuracy is the mean quality of each model over the prompts that keep
// reports true for.
func accuracy(w *Workload, truth []latent, keep func(l latent) bool) map[string]float64 {
	names := w.Catalogue.Names()
	sum := make(map[string]float64, len(names))
	var n float64
	for i, l := range truth {
		if !keep(l) {
			continue
		}
		n++
		for j, name := range names {
			sum[name] += w.Outcomes[i*len(names)+j].Quality
		}
	}
	for k := range sum {
		sum[k] /= n
	}
	return sum
}

func all(latent) bool { return true }

func TestDefaultCatalogue_HasMarketPricedSyntheticModels(t *testing.T) {
	cat := DefaultCatalogue()
	require.GreaterOrEqual(t, len(cat.Models), 7)
	tests := []struct {
		name    string
		in, out float64
	}{
		{"open-8b-selfhosted", 0.05, 0.05},
		{"flash", 0.10, 0.40},
		{"mini", 0.15, 0.60},
		{"haiku-class", 0.80, 4.00},
		{"gpt-4o-class", 2.50, 10.00},
		{"sonnet-class", 3.00, 15.00},
		{"opus-class", 15.00, 75.00},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := cat.Lookup(tt.name)
			require.True(t, ok)
			assert.Equal(t, tt.in, m.InputUSDPerMTok)
			assert.Equal(t, tt.out, m.OutputUSDPerMTok)
			assert.Positive(t, m.ContextWindow)
			assert.Contains(t, m.Notes, "synthetic")
		})
	}
}

func TestGenerate_Config(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		prompts int
		wantErr bool
	}{
		{"zero prompts means the default", Config{Seed: 3}, DefaultPrompts, false},
		{"explicit count", Config{Seed: 3, Prompts: 25}, 25, false},
		{"negative count is an error", Config{Seed: 3, Prompts: -1}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Generate(tt.cfg)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Len(t, w.Prompts, tt.prompts)
			assert.Len(t, w.Outcomes, tt.prompts*len(w.Catalogue.Models))
		})
	}
}

func TestGenerate_SameSeedGivesIdenticalWorkload(t *testing.T) {
	a, err := Generate(Config{Seed: 42, Prompts: 1500})
	require.NoError(t, err)
	b, err := Generate(Config{Seed: 42, Prompts: 1500})
	require.NoError(t, err)
	require.Equal(t, a.Catalogue.Models, b.Catalogue.Models)
	require.Equal(t, a.Prompts, b.Prompts)
	require.Equal(t, a.Outcomes, b.Outcomes)
}

func TestGenerate_DifferentSeedsGiveDifferentWorkloads(t *testing.T) {
	a, err := Generate(Config{Seed: 1, Prompts: 500})
	require.NoError(t, err)
	b, err := Generate(Config{Seed: 2, Prompts: 500})
	require.NoError(t, err)
	assert.NotEqual(t, a.Prompts, b.Prompts)
	assert.NotEqual(t, a.Outcomes, b.Outcomes)
	same := 0
	for i := range a.Prompts {
		if a.Prompts[i].Prompt == b.Prompts[i].Prompt {
			same++
		}
	}
	assert.Less(t, same, 25, "prompts at the same index should differ between seeds")
}

func TestGenerate_TaskMixMatchesBrief(t *testing.T) {
	const n = 20000
	w, _ := mustGenerate(t, Config{Seed: 7, Prompts: n})
	count := map[string]float64{}
	for _, p := range w.Prompts {
		count[p.Task]++
	}
	tests := []struct {
		task  string
		share float64
	}{
		{TaskClassification, 0.35},
		{TaskSummarization, 0.18},
		{TaskRAG, 0.22},
		{TaskCode, 0.12},
		{TaskReasoning, 0.08},
		{TaskCreative, 0.05},
	}
	var total float64
	for _, tt := range tests {
		t.Run(tt.task, func(t *testing.T) {
			assert.InDelta(t, tt.share, count[tt.task]/n, 0.02)
		})
		total += count[tt.task]
	}
	assert.Equal(t, float64(n), total, "every prompt has one of the six task labels")
}

func TestGenerate_ModelAccuraciesFallInCalibrationBands(t *testing.T) {
	tests := []struct {
		model  string
		lo, hi float64
	}{
		{"opus-class", 0.84, 0.91},
		{"sonnet-class", 0.79, 0.87},
		{"gpt-4o-class", 0.78, 0.86},
		{"haiku-class", 0.66, 0.74},
		{"mini", 0.59, 0.68},
		{"flash", 0.58, 0.67},
		{"open-8b-selfhosted", 0.43, 0.52},
	}
	for _, seed := range []int64{1, 99} {
		w, truth := mustGenerate(t, Config{Seed: seed, Prompts: 4000})
		acc := accuracy(w, truth, all)
		for _, tt := range tests {
			assert.GreaterOrEqual(t, acc[tt.model], tt.lo, "seed %d model %s", seed, tt.model)
			assert.LessOrEqual(t, acc[tt.model], tt.hi, "seed %d model %s", seed, tt.model)
		}
	}
}

func TestGenerate_HarderLevelsHaveLowerQualityForEveryModel(t *testing.T) {
	w, truth := mustGenerate(t, Config{Seed: 5, Prompts: 8000})
	var byLevel [5]map[string]float64
	for level := 1; level <= 4; level++ {
		byLevel[level] = accuracy(w, truth, func(l latent) bool { return l.level == level })
	}
	for _, name := range w.Catalogue.Names() {
		t.Run(name, func(t *testing.T) {
			for level := 2; level <= 4; level++ {
				assert.Less(t, byLevel[level][name], byLevel[level-1][name], "level %d vs %d", level, level-1)
			}
			assert.Greater(t, byLevel[1][name]-byLevel[4][name], 0.3, "easy and hard prompts should be far apart")
		})
	}
}

func TestGenerate_CheapModelsMatchFrontierOnlyOnEasyWork(t *testing.T) {
	w, truth := mustGenerate(t, Config{Seed: 11, Prompts: 12000})
	cheapest, frontier := "open-8b-selfhosted", "opus-class"
	easyCls := accuracy(w, truth, func(l latent) bool { return taskMix[l.task].name == TaskClassification && l.level == 1 })
	assert.InDelta(t, easyCls[frontier], easyCls[cheapest], 0.10, "cheapest model on easy classification")
	for _, task := range []string{TaskReasoning, TaskCode} {
		hard := accuracy(w, truth, func(l latent) bool { return taskMix[l.task].name == task && l.level >= 3 })
		assert.Greater(t, hard[frontier]-hard[cheapest], 0.3, "frontier should be far ahead on hard %s", task)
		assert.Greater(t, hard[frontier]-hard["mini"], 0.2, "frontier should be well ahead of mini on hard %s", task)
	}
}

func TestGenerate_ModelsAreNotStrictlyOrderedByPrice(t *testing.T) {
	w, truth := mustGenerate(t, Config{Seed: 13, Prompts: 12000})
	onTask := func(task string) map[string]float64 {
		return accuracy(w, truth, func(l latent) bool { return taskMix[l.task].name == task })
	}
	tests := []struct {
		task            string
		cheaper, dearer string
	}{
		{TaskSummarization, "flash", "mini"},
		{TaskSummarization, "flash", "haiku-class"},
		{TaskRAG, "gpt-4o-class", "sonnet-class"},
		{TaskClassification, "gpt-4o-class", "sonnet-class"},
		{TaskCode, "mini", "flash"},
	}
	for _, tt := range tests {
		t.Run(tt.task+"/"+tt.cheaper+">"+tt.dearer, func(t *testing.T) {
			acc := onTask(tt.task)
			assert.Greater(t, acc[tt.cheaper], acc[tt.dearer])
		})
	}
}

func TestGenerate_OutcomesAreConsistentWithPromptsAndPrices(t *testing.T) {
	w, _ := mustGenerate(t, Config{Seed: 17, Prompts: 2000})
	names := w.Catalogue.Names()
	require.Len(t, w.Outcomes, len(w.Prompts)*len(names))
	var prev time.Time
	for i, p := range w.Prompts {
		require.Regexp(t, `^syn-\d{6}$`, p.PromptID)
		in := int64(datasets.EstimateInputTokens(p.Prompt))
		for j, name := range names {
			o := w.Outcomes[i*len(names)+j]
			price, ok := w.Catalogue.Lookup(o.Model)
			require.True(t, ok)
			require.Equal(t, name, o.Model)
			require.Equal(t, p.PromptID, o.PromptID)
			require.Equal(t, datasets.SourceBenchmark, o.Source)
			require.Empty(t, o.DecisionID)
			require.Empty(t, o.Error)
			require.Equal(t, in, o.InputTokens)
			require.Positive(t, o.OutputTokens)
			require.Equal(t, price.CostUSD(float64(o.InputTokens), float64(o.OutputTokens)), o.CostUSD)
			require.Contains(t, []float64{0, 1}, o.Quality)
			require.Positive(t, o.LatencyMS)
			require.False(t, o.Time.Before(prev), "times never go backwards")
			require.Equal(t, o.Time, o.Time.Truncate(time.Microsecond), "times fit the log's microsecond precision")
			prev = o.Time
		}
	}
}

func TestGenerate_OutputLengthsFollowTheTask(t *testing.T) {
	w, truth := mustGenerate(t, Config{Seed: 19, Prompts: 6000})
	nm := len(w.Catalogue.Models)
	sum := map[string]float64{}
	n := map[string]float64{}
	for i, l := range truth {
		task := taskMix[l.task].name
		for j := 0; j < nm; j++ {
			sum[task] += float64(w.Outcomes[i*nm+j].OutputTokens)
			n[task]++
		}
	}
	tests := []struct {
		task   string
		lo, hi float64 // mean output tokens
	}{
		{TaskClassification, 5, 30},
		{TaskSummarization, 100, 300},
		{TaskRAG, 100, 250},
		{TaskCode, 200, 800},
		{TaskReasoning, 300, 1200},
		{TaskCreative, 300, 900},
	}
	for _, tt := range tests {
		t.Run(tt.task, func(t *testing.T) {
			mean := sum[tt.task] / n[tt.task]
			assert.GreaterOrEqual(t, mean, tt.lo)
			assert.LessOrEqual(t, mean, tt.hi)
		})
	}
}

func TestGenerate_PromptsAreVariedValidText(t *testing.T) {
	w, truth := mustGenerate(t, Config{Seed: 23, Prompts: 10000})
	placeholder := regexp.MustCompile(`\{[a-zA-Z]+[23]?\}`)
	distinct := make(map[string]struct{}, len(w.Prompts))
	maxLen := map[string]int{}
	minLen := math.MaxInt
	for i, p := range w.Prompts {
		require.NotEmpty(t, strings.TrimSpace(p.Prompt))
		require.True(t, utf8.ValidString(p.Prompt), "prompt %s is not valid UTF-8", p.PromptID)
		require.False(t, placeholder.MatchString(p.Prompt), "unexpanded placeholder in %s: %q", p.PromptID, p.Prompt)
		require.Equal(t, taskMix[truth[i].task].name, p.Task)
		distinct[p.Prompt] = struct{}{}
		maxLen[p.Task] = max(maxLen[p.Task], len(p.Prompt))
		minLen = min(minLen, len(p.Prompt))
	}
	assert.Greater(t, float64(len(distinct))/float64(len(w.Prompts)), 0.95, "prompts should rarely repeat")
	assert.Less(t, minLen, 100, "some prompts are short")
	assert.Greater(t, maxLen[TaskRAG], 3000, "RAG prompts carry long context")
	for task, l := range maxLen {
		assert.LessOrEqual(t, l, maxLen[TaskRAG], "RAG prompts are the longest, not %s", task)
	}
}

func TestTaskStyles_EveryTaskHasTemplatesAndConstraintRanges(t *testing.T) {
	require.Len(t, taskStyles, len(taskMix))
	for _, task := range taskMix {
		t.Run(task.name, func(t *testing.T) {
			s, ok := taskStyles[task.name]
			require.True(t, ok)
			for i, intros := range s.intros {
				assert.NotEmpty(t, intros, "level %d", i+1)
			}
			assert.NotEmpty(t, s.easy)
			assert.NotEmpty(t, s.hard)
			for _, r := range [][2]int{s.mix.easy2, s.mix.hard3, s.mix.hard4} {
				assert.GreaterOrEqual(t, r[0], 0)
				assert.LessOrEqual(t, r[0], r[1])
			}
		})
	}
}

// A fixed count must not draw: the prompts of every seed depend on it.
func TestFillerCount_FixedRangeLeavesTheRandomStreamAlone(t *testing.T) {
	a, b := newFiller(rand.New(rand.NewPCG(1, 2))), newFiller(rand.New(rand.NewPCG(1, 2)))
	assert.Equal(t, 1, a.count([2]int{1, 1}))
	assert.Equal(t, b.rng.Uint64(), a.rng.Uint64())
	n := a.count([2]int{0, 1})
	assert.Contains(t, []int{0, 1}, n)
	assert.NotEqual(t, b.rng.Uint64(), a.rng.Uint64(), "a range draws")
}

func TestWordingDifficulty_GrowsWithConstraintsCodeAndMath(t *testing.T) {
	base := "Classify this review as positive or negative: \"Great product.\""
	tests := []struct {
		name   string
		harder string
	}{
		{"constraint words", base + " Answer in exactly one word, unless the review is sarcastic, and justify it in JSON."},
		{"proof and steps", "Prove step by step that the sum of the first n odd numbers is n². Give a formal proof."},
		{"code snippet", base + "\n```python\ndef f(x):\n    return x\n```"},
		{"math content", base + " Then solve 3x + 2y = 7, x - y = 1 and x² ≥ 2."},
		{"several questions", base + " Why? Who wrote it? When? Is it fake?"},
		{"length", base + strings.Repeat(" The customer also mentioned the delivery.", 40)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Greater(t, wordingDifficulty(tt.harder), wordingDifficulty(base))
		})
	}
}

func TestFixArticles(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a incident report", "an incident report"},
		{"A operations analyst", "An operations analyst"},
		{"a user and a one-line answer", "a user and a one-line answer"},
		{"a product", "a product"},
		{"data export", "data export"},
		{"Bogotá office", "Bogotá office"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, fixArticles(tt.in))
		})
	}
}

// BenchmarkGenerate measures the default workload of 4000 prompts (about
// 0.08 s on one core).
func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Generate(Config{Seed: 1, Prompts: DefaultPrompts}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(DefaultPrompts)*float64(b.N)/b.Elapsed().Seconds(), "prompts/s")
}

// Synthetic fleet logs: every replica's files in hour partitions, readable
// by the log readers, with the shares of outcomes, late and shadow outcomes
// and propensities the generator promises.
func TestWriteLogsLooksLikeAFleetsLogs(t *testing.T) {
	dir := t.TempDir()
	st, err := WriteLogs(dir, LogsConfig{Seed: 2, Decisions: 5000, Replicas: 3, PromptBytes: 300, Prompts: 400})
	require.NoError(t, err)
	decisions, outcomes, err := datasets.ReadLogDir(dir)
	require.NoError(t, err)
	require.Len(t, decisions, 5000)
	assert.Equal(t, st.Outcomes+st.Shadow, len(outcomes))
	assert.InDelta(t, 0.95*5000, st.Outcomes, 100)
	assert.InDelta(t, 0.02*5000, st.Late, 40)
	assert.InDelta(t, 0.095*5000, st.Shadow, 80)
	writers := map[string]bool{}
	dfiles, _, err := datasets.LogFiles(dir)
	require.NoError(t, err)
	for _, f := range dfiles {
		_, _, w, _, ok := datasets.ParseLogFileName(filepath.Base(f))
		require.True(t, ok, f)
		writers[w] = true
	}
	assert.Len(t, writers, 3)
	for _, d := range decisions[:50] {
		assert.LessOrEqual(t, len(d.Prompt), 300)
		assert.True(t, utf8.ValidString(d.Prompt))
		assert.Greater(t, d.Propensity, 0.0)
	}
	links := datasets.CountOutcomeLinks(decisions, outcomes)
	assert.Zero(t, links.WithoutDecision)
	again := t.TempDir()
	_, err = WriteLogs(again, LogsConfig{Seed: 2, Decisions: 5000, Replicas: 3, PromptBytes: 300, Prompts: 400})
	require.NoError(t, err)
	d2, _, err := datasets.ReadLogDir(again)
	require.NoError(t, err)
	assert.Equal(t, decisions, d2, "the same seed writes the same logs")
}

// Every synthetic decision carries its candidates with the logging
// policy's probabilities (the chosen one's is its propensity), and with an
// experiment its arm and unit: each user always in the same arm, about
// half of them in each.
func TestWriteLogsLogsCandidatesAndArms(t *testing.T) {
	dir := t.TempDir()
	_, err := WriteLogs(dir, LogsConfig{Seed: 2, Decisions: 4000, PromptBytes: 200, Prompts: 300, Experiment: "x", Users: 400})
	require.NoError(t, err)
	decisions, _, err := datasets.ReadLogDir(dir)
	require.NoError(t, err)
	arms := map[string]string{}
	perArm := map[string]int{}
	for _, d := range decisions {
		require.Len(t, d.Candidates, 7, d.DecisionID)
		var sum float64
		chosen := -1
		for i, c := range d.Candidates {
			sum += c.Probability
			if c.Model == d.Chosen {
				chosen = i
			}
			assert.Positive(t, c.ExpectedCostUSD)
		}
		assert.InDelta(t, 1, sum, 1e-9)
		require.GreaterOrEqual(t, chosen, 0, d.DecisionID)
		assert.Equal(t, d.Propensity, d.Candidates[chosen].Probability, d.DecisionID)

		assert.Equal(t, "x", d.Experiment)
		assert.Len(t, d.UnitHash, 16)
		if a, ok := arms[d.UnitHash]; ok {
			assert.Equal(t, a, d.Arm, "a user stays in its arm")
		}
		arms[d.UnitHash] = d.Arm
		perArm[d.Arm]++
	}
	assert.Len(t, arms, 400)
	assert.InDelta(t, 2000, perArm[ArmA], 300)
	assert.Equal(t, 4000, perArm[ArmA]+perArm[ArmB])

	plain := t.TempDir()
	_, err = WriteLogs(plain, LogsConfig{Seed: 2, Decisions: 100, PromptBytes: 200, Prompts: 300})
	require.NoError(t, err)
	decisions, _, err = datasets.ReadLogDir(plain)
	require.NoError(t, err)
	assert.Empty(t, decisions[0].Experiment+decisions[0].Arm+decisions[0].UnitHash, "no experiment unless asked")
}
