package training_test

import (
	"context"
	"testing"

	"switchyard/features"
	"switchyard/training"
)

// BenchmarkTrain measures training throughput on the synthetic workload with
// the default settings (one epoch per iteration).
func BenchmarkTrain(b *testing.B) {
	ds := syntheticDataset(b, 3000)
	ext, err := features.NewExtractor(features.DefaultSpec())
	if err != nil {
		b.Fatal(err)
	}
	ex, _, _, err := training.Join(ds, ext, ds.Catalogue.Names())
	if err != nil {
		b.Fatal(err)
	}
	s := training.DefaultSettings()
	s.Epochs = 1
	tr := &training.Trainer{Settings: s}
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := tr.Train(context.Background(), features.DefaultSpec(), ds.Catalogue.Names(), ex, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(ex))/b.Elapsed().Seconds(), "examples/s")
}
