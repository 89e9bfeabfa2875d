package serving_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"switchyard/classifier"
	"switchyard/classifier/policy"
	"switchyard/datasets/synthetic"
	"switchyard/features"
	"switchyard/serving"
	"switchyard/training"
)

// BenchmarkHandler is the in-process cost of a whole /v1/route request
// through the handler (decode, decide, log, encode), without the network,
// next to the no-op endpoint.
func BenchmarkHandler(b *testing.B) {
	cat := synthetic.DefaultCatalogue()
	def := training.DefaultSettings()
	m, err := classifier.NewModel(features.DefaultSpec(), cat.Names(), def.EmbeddingDim, def.Hidden)
	require.NoError(b, err)
	m.Init(rand.New(rand.NewSource(1)))
	path := filepath.Join(b.TempDir(), "p.onnx")
	require.NoError(b, classifier.WriteONNX(path, m))
	router, sc, err := serving.LoadRouter(serving.LoadOptions{ModelPath: path, Catalogue: cat, Policy: policy.Config{Name: "bench", QualityBar: 0.8}})
	require.NoError(b, err)
	defer sc.Close()
	dlog, err := serving.NewDecisionLog(serving.DefaultDecisionLogConfig(b.TempDir()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(b, err)
	srv, err := serving.New(serving.DefaultConfig(), serving.Deps{Router: router, Catalogue: cat, Decisions: dlog, Registry: prometheus.NewRegistry()})
	require.NoError(b, err)
	h := srv.Handler()
	body, _ := json.Marshal(map[string]string{"prompt": benchPrompt(1 << 10)})
	for _, path := range []string{"/v1/noop", "/v1/route"} {
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
				if rec.Code != http.StatusOK {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}
