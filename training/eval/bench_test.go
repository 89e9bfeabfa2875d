package eval

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"switchyard/datasets"
	"switchyard/features"
	"switchyard/training"
)

// mmluPro loads the MMLU-Pro benchmark restricted to the six-model
// pool, or skips when the data is absent.
func mmluPro(b *testing.B) (*datasets.Dataset, *Bench, features.Spec) {
	dir := filepath.Join("..", "..", "..", "shared", "data", "mmlu-pro")
	if _, err := os.Stat(filepath.Join(dir, "quality.csv")); err != nil {
		b.Skipf("benchmark data not found at %s: %v", dir, err)
	}
	ds, _, err := datasets.ImportBenchmark(dir)
	if err != nil {
		b.Fatal(err)
	}
	spec := features.DefaultSpec()
	ext, err := features.NewExtractor(spec)
	if err != nil {
		b.Fatal(err)
	}
	pool := []string{"gpt-4o-2024-05-13", "gemini-1.5-pro-002", "gemini-1.5-flash-002",
		"Meta-Llama-3_1-70B-Instruct", "Meta-Llama-3_1-8B-Instruct", "deepseek-chat-2024-05"}
	bench, err := NewBench(ds, pool, ext)
	if err != nil {
		b.Fatal(err)
	}
	return ds, bench, spec
}

// BenchmarkEvalMMLUPro times a whole evaluation (training the learned router
// and every baseline, sweeping and scoring) on the MMLU-Pro six-model pool.
func BenchmarkEvalMMLUPro(b *testing.B) {
	_, bench, spec := mmluPro(b)
	b.ResetTimer()
	for b.Loop() {
		cfg := Config{TestShare: 0.2, Salt: "eval", Lambdas: 60,
			Learned:   &Learned{Trainer: training.Trainer{Settings: training.DefaultSettings()}, Spec: spec},
			Baselines: []Predictor{&PerTask{}, &KNN{K: 25}, &Logistic{Epochs: 5, LR: 0.05, L2: 1e-6, Seed: 1}}}
		if _, err := Run(context.Background(), bench, cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/eval")
}

// BenchmarkHeadroomMMLUPro measures how much a router could gain on the
// MMLU-Pro pool from knowing each question's difficulty: a per-task router
// that is also told, for every prompt, the true share of the 26 models
// outside the pool that answered it correctly (in fifths) — information no
// predictor from the prompt can exceed on difficulty. It reports the 5-fold
// mean AIQ of the learned router, the per-task baseline and that
// difficulty-informed per-task router.
func BenchmarkHeadroomMMLUPro(b *testing.B) {
	ds, bench, spec := mmluPro(b)
	inPool := map[string]bool{}
	for _, m := range bench.Models {
		inPool[m] = true
	}
	right, answered := map[string]float64{}, map[string]float64{}
	for _, o := range ds.Outcomes {
		if !inPool[o.Model] {
			right[o.PromptID] += o.Quality
			answered[o.PromptID]++
		}
	}
	difficulty := &taskBuckets{key: func(i int) string {
		id := bench.PromptIDs[i]
		return fmt.Sprintf("%s|%d", bench.Tasks[i], int(5*right[id]/max(1, answered[id])))
	}}
	b.ResetTimer()
	for b.Loop() {
		cfg := Config{Folds: 5, Salt: "eval", Lambdas: 60,
			Learned:   &Learned{Trainer: training.Trainer{Settings: training.DefaultSettings()}, Spec: spec},
			Baselines: []Predictor{&PerTask{}, difficulty}}
		rep, err := Run(context.Background(), bench, cfg)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range rep.Summaries {
			switch s.Name {
			case "learned", "per-task", "per-task-x-true-difficulty":
				b.ReportMetric(s.AIQ.Mean, s.Name+"_aiq")
				b.ReportMetric(s.QualityAt.Mean, s.Name+"_q@best")
			}
		}
	}
}

// taskBuckets predicts each model's mean training quality in the prompt's
// bucket (key), falling back to per-task means for a bucket unseen in
// training.
type taskBuckets struct {
	key     func(i int) string
	means   map[string][]float64
	perTask PerTask
}

func (p *taskBuckets) Name() string { return "per-task-x-true-difficulty" }

func (p *taskBuckets) Fit(ctx context.Context, b *Bench, train []int) error {
	if err := p.perTask.Fit(ctx, b, train); err != nil {
		return err
	}
	sums, counts := map[string][]float64{}, map[string]float64{}
	for _, i := range train {
		k := p.key(i)
		if sums[k] == nil {
			sums[k] = make([]float64, len(b.Models))
		}
		for j, q := range b.Quality[i] {
			sums[k][j] += q
		}
		counts[k]++
	}
	p.means = map[string][]float64{}
	for k, s := range sums {
		for j := range s {
			s[j] /= counts[k]
		}
		p.means[k] = s
	}
	return nil
}

func (p *taskBuckets) Predict(b *Bench, test []int) [][]float64 {
	out := p.perTask.Predict(b, test)
	for k, i := range test {
		if m, ok := p.means[p.key(i)]; ok {
			out[k] = append([]float64(nil), m...)
		}
	}
	return out
}
