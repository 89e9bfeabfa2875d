package serving_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"switchyard/classifier/classifiertest"
	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/logstore"
	"switchyard/datasets/synthetic"
	"switchyard/features"
	"switchyard/serving"
	"switchyard/training"
)

// benchPrompt returns realistic prompt text of exactly n bytes.
func benchPrompt(n int) string {
	w, _ := synthetic.Generate(synthetic.Config{Seed: 9, Prompts: 200})
	var sb strings.Builder
	for sb.Len() < n {
		for _, p := range w.Prompts {
			sb.WriteString(p.Prompt)
			sb.WriteByte('\n')
		}
	}
	return sb.String()[:n]
}

// benchModel writes the production-size predictor (random weights) over
// cat's models and returns its path.
func benchModel(b *testing.B, cat *datasets.Catalogue) string {
	def := training.DefaultSettings()
	return classifiertest.Write(b, classifiertest.New(b, classifiertest.Options{Models: cat.Names(), Spec: features.DefaultSpec(),
		EmbeddingDim: def.EmbeddingDim, Hidden: def.Hidden}))
}

// BenchmarkDecision is the in-process cost of one routing decision
// (features + scoring + policy) with the production-size predictor.
func BenchmarkDecision(b *testing.B) {
	cat := synthetic.DefaultCatalogue()
	path := benchModel(b, cat)
	for _, scorer := range []string{policy.ScorerONNX, policy.ScorerGo} {
		r, sc, err := policy.LoadRouter(policy.LoadOptions{ModelPath: path, Catalogue: cat, Scorer: scorer,
			Policy: policy.Config{Name: "bench", QualityBar: 0.8}})
		require.NoError(b, err)
		for _, size := range []int{100, 1 << 10, 4 << 10, 32 << 10} {
			req := policy.Request{Input: features.Input{Prompt: benchPrompt(size)}}
			b.Run(fmt.Sprintf("scorer=%s/prompt=%dB", scorer, size), func(b *testing.B) {
				timeDecisions(b, func() {
					if _, err := r.Route(req); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
		// the decision as the server makes it: with its record written to
		// the durable decision log before the answer
		prompt := benchPrompt(1 << 10)
		body := &serving.RouteRequest{Prompt: &prompt}
		req := policy.Request{Input: features.Input{Prompt: prompt}}
		dlog, err := logstore.NewDecisionLog(logstore.DefaultDecisionLogConfig(b.TempDir()), slog.New(slog.NewTextHandler(io.Discard, nil)))
		require.NoError(b, err)
		b.Run(fmt.Sprintf("scorer=%s/prompt=1024B/logged", scorer), func(b *testing.B) {
			timeDecisions(b, func() {
				d, err := r.Route(req)
				if err != nil {
					b.Fatal(err)
				}
				dlog.Log(serving.DecisionRecord("bench-1", time.Now(), body, d, true))
			})
		})
		require.NoError(b, dlog.Close(context.Background()))
		sc.Close()
	}
}

// timeDecisions runs decide b.N times and reports its median and p99 and
// the decisions per second.
func timeDecisions(b *testing.B, decide func()) {
	b.ReportAllocs()
	lat := make([]time.Duration, 0, 1<<16)
	for b.Loop() {
		t0 := time.Now()
		decide()
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50_µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99_µs")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
