package serving_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/datasets/synthetic"
	"switchyard/serving"
	"switchyard/serving/servingtest"
)

// BenchmarkHandler is the in-process cost of a whole /v1/route request
// through the handler (decode, decide, log, encode), without the network,
// next to the no-op endpoint.
func BenchmarkHandler(b *testing.B) {
	h := benchHandler(b, serving.DefaultConfig())
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

// BenchmarkRouteMessages is the in-process cost of /v1/route requests of
// many chat messages (40 bytes each) and of 3.5 and 4 MB prompts, through the
// handler with the durable decision log: the time per message stays flat
// as the count grows (routing is linear in the request's size).
func BenchmarkRouteMessages(b *testing.B) {
	cfg := serving.DefaultConfig()
	cfg.MaxMessages, cfg.MaxBodyBytes, cfg.MaxTextBytes = 100_000, 8<<20, 8<<20
	h := benchHandler(b, cfg)
	run := func(name string, body []byte, units int, unit string, want int) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/route", bytes.NewReader(body)))
				if rec.Code != want {
					b.Fatal(rec.Code, rec.Body.String())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(units), "ns/"+unit)
		})
	}
	for _, n := range []int{1_000, 10_000, 100_000} {
		msgs := make([]map[string]string, n)
		for i := range msgs {
			msgs[i] = map[string]string{"role": "user", "content": "a turn of a long conversation, 40 bytes"}
		}
		body, _ := json.Marshal(map[string]any{"messages": msgs})
		run(fmt.Sprintf("messages=%d", n), body, n, "message", http.StatusOK)
	}
	// 3.5 MB fit the largest window (flash's million tokens); 4 MB fit none and are refused
	for _, mb := range []float64{3.5, 4} {
		want := http.StatusOK
		if mb == 4 {
			want = http.StatusBadRequest
		}
		n := int(mb * (1 << 20))
		body, _ := json.Marshal(map[string]string{"prompt": strings.Repeat(benchPrompt(1<<10), 4<<10)[:n]})
		run(fmt.Sprintf("prompt=%gMB", mb), body, n, "byte", want)
	}
}

// benchHandler is the HTTP handler of a service with cfg, the
// production-size predictor (random weights) scored by ONNX Runtime and the
// durable logs, served in process.
func benchHandler(b *testing.B, cfg serving.Config) http.Handler {
	cat := synthetic.DefaultCatalogue()
	svc, err := serving.Open(context.Background(), serving.Options{Config: cfg, LogDir: b.TempDir(), Writer: "bench",
		Load: servingtest.Predictor(benchModel(b, cat), cat, policy.ScorerONNX, policy.Config{Name: "bench", QualityBar: 0.8})})
	require.NoError(b, err)
	b.Cleanup(func() { svc.Close(context.Background()) })
	return svc.Handler()
}
