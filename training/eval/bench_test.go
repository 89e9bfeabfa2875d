package eval

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"switchyard/datasets"
	"switchyard/features"
	"switchyard/training"
)

// BenchmarkEvalMMLUPro times a whole evaluation (training the learned router
// and every baseline, sweeping and scoring) on the MMLU-Pro six-model pool.
func BenchmarkEvalMMLUPro(b *testing.B) {
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
