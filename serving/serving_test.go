package serving_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/classifiertest"
	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/synthetic"
	"switchyard/features"
	"switchyard/serving"
	"switchyard/serving/servingtest"
)

// fixture is a service over the synthetic catalogue and a small predictor
// that ranks later (dearer) models better, for one test.
type fixture struct {
	*servingtest.Server
	url   string
	cat   *datasets.Catalogue
	model string // the predictor's path
	logs  string
}

// writeModel writes the fixture's predictor over cat's models and returns
// its path.
func writeModel(t *testing.T, cat *datasets.Catalogue) string {
	t.Helper()
	return classifiertest.Write(t, classifiertest.New(t, classifiertest.Options{Models: cat.Names(), BiasStep: 0.4, OutputTokens: 200}))
}

func startServer(t *testing.T, cfg serving.Config, scorer string) *fixture {
	t.Helper()
	return startServerWith(t, cfg, scorer, nil)
}

// startServerWith starts a service whose log goes to log (discarded when nil).
func startServerWith(t *testing.T, cfg serving.Config, scorer string, log *slog.Logger) *fixture {
	t.Helper()
	cat := synthetic.DefaultCatalogue()
	model := writeModel(t, cat)
	s := servingtest.Start(t, serving.Options{Config: cfg, Log: log,
		Load: servingtest.Predictor(model, cat, scorer, policy.Config{Name: "test", Version: "7", QualityBar: 0.6})})
	return &fixture{Server: s, url: s.URL, cat: cat, model: model, logs: s.LogDir}
}

// readDecisions reads every decision in a log folder.
func readDecisions(t *testing.T, dir string) []datasets.DecisionRecord {
	t.Helper()
	d, _, err := datasets.ReadLogDir(dir)
	require.NoError(t, err)
	return d
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

func TestRouteReturnsADecisionForEveryCandidate(t *testing.T) {
	f := startServer(t, serving.DefaultConfig(), policy.ScorerONNX)
	for _, path := range []string{"/v1/route", "/route"} {
		code, out := f.Post(t, path, `{"prompt":"Classify this ticket: I was charged twice.","request_id":"r-1"}`)
		require.Equal(t, http.StatusOK, code, out)
		_, ok := f.cat.Lookup(out["model"].(string))
		assert.True(t, ok, "chosen model is in the catalogue")
		cands := out["candidates"].([]any)
		require.Len(t, cands, len(f.cat.Models))
		for _, c := range cands {
			q := c.(map[string]any)["predicted_quality"].(float64)
			assert.True(t, q >= 0 && q <= 1)
			assert.Greater(t, c.(map[string]any)["expected_cost_usd"].(float64), 0.0)
		}
		assert.Len(t, out["fallbacks"], len(f.cat.Models)-1)
		assert.Equal(t, 1.0, out["propensity"])
		assert.Equal(t, 0.6, out["quality_bar"])
		assert.Equal(t, "test", out["policy"])
		assert.Equal(t, "r-1", out["request_id"])
		assert.NotEmpty(t, out["decision_id"])
		assert.NotEmpty(t, out["predictor_version"])
	}
}

func TestRouteHonoursRequestOptions(t *testing.T) {
	f := startServer(t, serving.DefaultConfig(), policy.ScorerGo)
	code, out := f.Post(t, "/v1/route", `{"messages":[{"role":"system","content":"be brief"},
		{"role":"user","content":[{"type":"text","text":"Summarise this"},{"type":"image_url"}]}],
		"candidates":["mini","opus-class"],"quality_bar":0.0,"task":"summarization","model":"gpt-x","temperature":0.2}`)
	require.Equal(t, http.StatusOK, code, out)
	assert.Len(t, out["candidates"], 2)
	assert.Equal(t, "mini", out["model"], "a zero bar is cleared by the cheapest")
	assert.Equal(t, 0.0, out["quality_bar"])

	code, out = f.Post(t, "/v1/route", `{"prompt":"hello","quality_bar":1}`)
	require.Equal(t, http.StatusOK, code, out)
	assert.Equal(t, false, out["cleared"])
}

func TestRouteRejectsBadInputNamingTheField(t *testing.T) {
	f := startServer(t, serving.DefaultConfig(), policy.ScorerGo)
	cases := []struct {
		name, body, field, msg string
	}{
		{"malformed json", `{"prompt": "abc"`, "", "malformed JSON"},
		{"garbage", `not json at all`, "", "malformed JSON"},
		{"empty body", ``, "", "empty body"},
		{"array body", `[1,2]`, "", "JSON object"},
		{"no prompt", `{"task":"x"}`, "prompt", "required"},
		{"empty prompt", `{"prompt":""}`, "prompt", "empty"},
		{"prompt not a string", `{"prompt":42}`, "prompt", "must be a string"},
		{"bar out of range", `{"prompt":"x","quality_bar":1.5}`, "quality_bar", "outside [0,1]"},
		{"bar wrong type", `{"prompt":"x","quality_bar":"high"}`, "quality_bar", "number"},
		{"unknown candidate", `{"prompt":"x","candidates":["mini","gpt-9"]}`, "candidates", `"gpt-9"`},
		{"empty candidates", `{"prompt":"x","candidates":[]}`, "candidates", "empty"},
		{"negative max cost", `{"prompt":"x","max_cost_usd":-1}`, "max_cost_usd", "positive"},
		{"max cost below all", `{"prompt":"x","max_cost_usd":1e-12}`, "max_cost_usd", "cheapest"},
		{"bad message content", `{"messages":[{"role":"user","content":7}]}`, "messages.content", "string"},
		{"two values", `{"prompt":"x"} {"prompt":"y"}`, "", "more than one"},
		{"all messages empty", `{"messages":[{"role":"user","content":""},{"role":"user"}]}`, "messages", "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := f.Post(t, "/v1/route", c.body)
			require.Equal(t, http.StatusBadRequest, code, out)
			e := out["error"].(map[string]any)
			assert.Contains(t, e["message"], c.msg)
			if c.field != "" {
				assert.Equal(t, c.field, e["field"])
			}
		})
	}
}

func TestRouteAnswers413AboveTheBodyLimit(t *testing.T) {
	cfg := serving.DefaultConfig()
	cfg.MaxBodyBytes = 1 << 10
	f := startServer(t, cfg, policy.ScorerGo)
	code, out := f.Post(t, "/v1/route", `{"prompt":"`+strings.Repeat("a", 2<<10)+`"}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, code, out)
	code, _ = f.Post(t, "/v1/route", `{"prompt":"`+strings.Repeat("a", 900)+`"}`)
	assert.Equal(t, http.StatusOK, code)
}

func TestRouteHandlesHugeAndBinaryPrompts(t *testing.T) {
	f := startServer(t, serving.DefaultConfig(), policy.ScorerONNX)
	huge, _ := json.Marshal(map[string]string{"prompt": strings.Repeat("lorem ipsum dolor ", 1<<16)})
	code, out := f.Post(t, "/v1/route", string(huge))
	assert.Equal(t, http.StatusOK, code, out)
	bin, _ := json.Marshal(map[string]string{"prompt": "\x00\x01\xff\xfe binary"})
	code, out = f.Post(t, "/v1/route", string(bin))
	assert.Equal(t, http.StatusOK, code, out)
}

func TestHealthReadyAndModels(t *testing.T) {
	f := startServer(t, serving.DefaultConfig(), policy.ScorerGo)
	resp, err := http.Get(f.url + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = http.Get(f.url + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	resp, err = http.Get(f.url + "/v1/models")
	require.NoError(t, err)
	var models struct {
		Models []serving.ModelInfo `json:"models"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&models))
	resp.Body.Close()
	require.Len(t, models.Models, len(f.cat.Models))
	for _, m := range models.Models {
		assert.True(t, m.Routable)
	}

	// a server with no predictor is alive but not ready
	empty, err := serving.New(serving.DefaultConfig(), serving.Deps{Catalogue: f.cat})
	require.NoError(t, err)
	ts := httptest.NewServer(empty.Handler())
	defer ts.Close()
	resp, err = http.Get(ts.URL + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	resp, err = http.Post(ts.URL+"/v1/route", "application/json", strings.NewReader(`{"prompt":"x"}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

func TestEveryDecisionIsWrittenToTheDecisionLog(t *testing.T) {
	for _, keep := range []bool{true, false} {
		cfg := serving.DefaultConfig()
		cfg.KeepPrompts = keep
		f := startServer(t, cfg, policy.ScorerONNX)
		ids := map[string]string{}
		for i := 0; i < 25; i++ {
			prompt := "Write a haiku about routers, take " + strings.Repeat("!", i)
			body, _ := json.Marshal(map[string]any{"prompt": prompt, "task": "creative", "request_id": "req"})
			code, out := f.Post(t, "/v1/route", string(body))
			require.Equal(t, http.StatusOK, code)
			ids[out["decision_id"].(string)] = out["model"].(string)
		}
		code, _ := f.Post(t, "/v1/route", `{"prompt":`) // rejected: not logged
		require.Equal(t, http.StatusBadRequest, code)
		require.NoError(t, f.Stop())

		recs := readDecisions(t, f.logs)
		require.Len(t, recs, 25)
		for _, r := range recs {
			assert.Equal(t, ids[r.DecisionID], r.Chosen)
			assert.Equal(t, 1.0, r.Propensity)
			assert.Len(t, r.Candidates, len(f.cat.Models))
			assert.Equal(t, "test", r.Policy)
			assert.Equal(t, "creative", r.Task)
			assert.Len(t, r.PromptSHA256, 64)
			assert.NotEmpty(t, r.FeatureSpecID)
			assert.Empty(t, r.Experiment)
			if keep {
				assert.True(t, strings.HasPrefix(r.Prompt, "Write a haiku"))
			} else {
				assert.Empty(t, r.Prompt)
			}
		}
	}
}

func TestGoAndONNXScorersDecideAlike(t *testing.T) {
	cat := synthetic.DefaultCatalogue()
	path := writeModel(t, cat)
	var routers []*policy.Router
	for _, s := range []string{policy.ScorerONNX, policy.ScorerGo} {
		r, sc, err := policy.LoadRouter(policy.LoadOptions{ModelPath: path, Catalogue: cat, Scorer: s,
			Policy: policy.Config{Name: "p", QualityBar: 0.7}})
		require.NoError(t, err)
		defer sc.Close()
		routers = append(routers, r)
	}
	w, err := synthetic.Generate(synthetic.Config{Seed: 2, Prompts: 200})
	require.NoError(t, err)
	for _, p := range w.Prompts {
		req := policy.Request{Input: features.Input{Prompt: p.Prompt, Task: p.Task}}
		a, err := routers[0].Route(req)
		require.NoError(t, err)
		b, err := routers[1].Route(req)
		require.NoError(t, err)
		require.Equal(t, a.Chosen, b.Chosen)
		for i := range a.Options {
			require.InDelta(t, a.Options[i].PredictedQuality, b.Options[i].PredictedQuality, 1e-5)
		}
	}
}

func TestLoadRouterRejectsBrokenInputs(t *testing.T) {
	cat := synthetic.DefaultCatalogue()
	path := writeModel(t, cat)
	_, _, err := policy.LoadRouter(policy.LoadOptions{ModelPath: filepath.Join(t.TempDir(), "none.onnx"), Catalogue: cat, Policy: policy.Config{Name: "p"}})
	require.Error(t, err)

	small, err := datasets.NewCatalogue(cat.Models[:2])
	require.NoError(t, err)
	_, _, err = policy.LoadRouter(policy.LoadOptions{ModelPath: path, Catalogue: small, Scorer: policy.ScorerGo, Policy: policy.Config{Name: "p"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not in the catalogue")

	_, _, err = policy.LoadRouter(policy.LoadOptions{ModelPath: path, Catalogue: cat, Scorer: "tpu", Policy: policy.Config{Name: "p"}})
	require.ErrorContains(t, err, "unknown scorer")

	_, _, err = policy.LoadRouter(policy.LoadOptions{ModelPath: path, Catalogue: cat, Scorer: policy.ScorerGo,
		Policy: policy.Config{Name: "p", Candidates: []string{"nope"}}})
	require.ErrorContains(t, err, `"nope"`)
}

func TestFeedbackIsStoredOnceAndValidated(t *testing.T) {
	f := startServer(t, serving.DefaultConfig(), policy.ScorerGo)
	code, out := f.Post(t, "/v1/route", `{"prompt":"Tag this ticket: refund please"}`)
	require.Equal(t, http.StatusOK, code)
	id, model := out["decision_id"].(string), out["model"].(string)

	body := `{"decision_id":"` + id + `","quality":0.9,"input_tokens":12,"output_tokens":30,"latency_ms":420}`
	code, first := f.Post(t, "/v1/feedback", body)
	require.Equal(t, http.StatusOK, code, first)
	assert.Equal(t, model, first["model"])
	p, _ := f.cat.Lookup(model)
	assert.InDelta(t, p.CostUSD(12, 30), first["cost_usd"], 1e-15, "cost from the chosen model's prices")
	code, second := f.Post(t, "/v1/feedback", `{"decision_id":"`+id+`","quality":0.1}`)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, first, second, "a repeated feedback gets the same answer")

	cases := []struct {
		name, body, field string
		code              int
	}{
		{"unknown decision", `{"decision_id":"nope","quality":1}`, "decision_id", http.StatusNotFound},
		{"no decision", `{"quality":1}`, "decision_id", http.StatusBadRequest},
		{"no quality", `{"decision_id":"` + id + `"}`, "quality", http.StatusBadRequest},
		{"quality above 1", `{"decision_id":"` + id + `","quality":1.5}`, "quality", http.StatusBadRequest},
		{"negative tokens", `{"decision_id":"` + id + `","quality":1,"output_tokens":-3}`, "output_tokens", http.StatusBadRequest},
		{"negative cost", `{"decision_id":"` + id + `","quality":1,"cost_usd":-0.1}`, "cost_usd", http.StatusBadRequest},
		{"quality as text", `{"decision_id":"` + id + `","quality":"good"}`, "quality", http.StatusBadRequest},
		{"malformed", `{"decision_id":`, "", http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := f.Post(t, "/v1/feedback", c.body)
			require.Equal(t, c.code, code, out)
			if c.field != "" {
				assert.Equal(t, c.field, out["error"].(map[string]any)["field"])
			}
		})
	}

	require.NoError(t, f.Stop())
	_, outcomes, err := datasets.ReadLogDir(f.logs)
	require.NoError(t, err)
	require.Len(t, outcomes, 1, "stored once")
	assert.Equal(t, id, outcomes[0].DecisionID)
	assert.Equal(t, 0.9, outcomes[0].Quality)
	assert.Equal(t, datasets.SourceOnline, outcomes[0].Source)
	assert.Equal(t, int64(30), outcomes[0].OutputTokens)
}

func TestConcurrentFeedbackForOneDecisionIsStoredOnce(t *testing.T) {
	f := startServer(t, serving.DefaultConfig(), policy.ScorerGo)
	_, out := f.Post(t, "/v1/route", `{"prompt":"x"}`)
	id := out["decision_id"].(string)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(f.url+"/v1/feedback", "application/json", strings.NewReader(`{"decision_id":"`+id+`","quality":1}`))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	require.NoError(t, f.Stop())
	_, outcomes, err := datasets.ReadLogDir(f.logs)
	require.NoError(t, err)
	assert.Len(t, outcomes, 1)
}
