package serving_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/serving"
)

// messagesBody is a chat request of n messages of the given content.
func messagesBody(n int, content string) string {
	var b strings.Builder
	b.WriteString(`{"messages":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"role":"user","content":%q}`, content)
	}
	b.WriteString(`]}`)
	return b.String()
}

// Work per request is bounded: more messages or text than the limits get a
// 413 naming the limit (BenchmarkRouteMessages times requests up to them).
func TestRequestSizeLimitsNameTheLimit(t *testing.T) {
	cfg := serving.DefaultConfig()
	cfg.MaxBodyBytes = 8 << 20
	cfg.MaxMessages = 20_000
	cfg.MaxTextBytes = 1 << 20
	f := startServer(t, cfg, policy.ScorerGo)
	cases := []struct {
		name, body string
		code       int
		msg        string
	}{
		{"too many messages", messagesBody(20_001, "hi"), http.StatusRequestEntityTooLarge, "--max-messages"},
		{"too much text", `{"prompt":"` + strings.Repeat("a", 1<<20+1) + `"}`, http.StatusRequestEntityTooLarge, "--max-text-bytes"},
		{"text over many messages", messagesBody(1000, strings.Repeat("b", 1100)), http.StatusRequestEntityTooLarge, "--max-text-bytes"},
		{"at the message limit", messagesBody(20_000, "hello there"), http.StatusOK, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := f.Post(t, "/v1/route", c.body)
			require.Equal(t, c.code, code, out)
			if c.msg != "" {
				assert.Contains(t, out["error"].(map[string]any)["message"], c.msg)
			}
		})
	}
}

// The decision log keeps the whole conversation of a many-message request
// (assembled in linear time).
func TestManyMessagesAreLoggedWhole(t *testing.T) {
	f := startServer(t, serving.DefaultConfig(), policy.ScorerGo)
	code, out := f.Post(t, "/v1/route", messagesBody(5000, "turn"))
	require.Equal(t, http.StatusOK, code, out)
	require.NoError(t, f.Stop())
	decisions := readDecisions(t, f.logs)
	require.Len(t, decisions, 1)
	assert.Equal(t, strings.Repeat("turn\n", 4999)+"turn", decisions[0].Prompt)
}

func TestFeedbackRefusesImplausibleValues(t *testing.T) {
	f := startServer(t, serving.DefaultConfig(), policy.ScorerGo)
	_, out := f.Post(t, "/v1/route", `{"prompt":"hello"}`)
	id := out["decision_id"].(string)
	cases := []struct{ name, body, field string }{
		{"huge cost", `{"decision_id":"` + id + `","quality":1,"cost_usd":1e308}`, "cost_usd"},
		{"negative cost", `{"decision_id":"` + id + `","quality":1,"cost_usd":-1}`, "cost_usd"},
		{"huge latency", `{"decision_id":"` + id + `","quality":1,"latency_ms":1e12}`, "latency_ms"},
		{"huge tokens", `{"decision_id":"` + id + `","quality":1,"output_tokens":1000000000000}`, "output_tokens"},
		{"long id", `{"decision_id":"` + strings.Repeat("x", 100_000) + `","quality":1}`, "decision_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := f.Post(t, "/v1/feedback", c.body)
			require.Equal(t, http.StatusBadRequest, code, out)
			e := out["error"].(map[string]any)
			assert.Equal(t, c.field, e["field"])
			assert.Less(t, len(e["message"].(string)), 300, "the message does not echo a huge value")
		})
	}
	code, out := f.Post(t, "/v1/feedback", ``)
	require.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, out["error"].(map[string]any)["message"], "decision_id and quality", "the feedback endpoint's own hint")

	code, out = f.Post(t, "/v1/feedback", `{"decision_id":"`+strings.Repeat("y", 200)+`","quality":1}`)
	require.Equal(t, http.StatusNotFound, code)
	assert.Less(t, len(out["error"].(map[string]any)["message"].(string)), 150, "an unknown id is shortened in the answer")
}

func TestMethodNotAllowedSaysWhatIsAllowed(t *testing.T) {
	f := startServer(t, serving.DefaultConfig(), policy.ScorerGo)
	for path, allow := range map[string]string{"/v1/route": "POST", "/route": "POST", "/v1/feedback": "POST", "/readyz": "GET", "/v1/models": "GET"} {
		method := http.MethodGet
		if allow == "GET" {
			method = http.MethodDelete
		}
		req, _ := http.NewRequest(method, f.url+path, nil)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, path)
		assert.Equal(t, allow, resp.Header.Get("Allow"), path)
	}
}

// The access log has one line per API request: routed, fed back, refused.
func TestAccessLogHasALinePerRequest(t *testing.T) {
	var buf syncBuffer
	cfg := serving.DefaultConfig()
	cfg.AccessLog = true
	cfg.APIKeys = []string{"k"}
	f := startServerWith(t, cfg, policy.ScorerGo, slog.New(slog.NewJSONHandler(&buf, nil)))
	do := func(path, body string, key bool) {
		req, _ := http.NewRequest(http.MethodPost, f.url+path, strings.NewReader(body))
		if key {
			req.Header.Set("Authorization", "Bearer k")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	do("/v1/route", `{"prompt":"hi"}`, true)
	do("/v1/route", `{"prompt":"hi"}`, false)
	do("/v1/feedback", `{"decision_id":"nope","quality":1}`, true)
	do("/v1/route", `{`, true)
	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var m map[string]any
		require.NoError(t, json.Unmarshal(l, &m))
		if m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	require.Len(t, lines, 4)
	codes := []float64{200, 401, 404, 400}
	for i, l := range lines {
		assert.Equal(t, codes[i], l["code"], i)
	}
	assert.NotEmpty(t, lines[0]["decision_id"])
	assert.Equal(t, "nope", lines[2]["decision_id"])
}

// Context windows: a 1 MB prompt (about 262,000 tokens) goes to the only
// model whose window holds it, no fallback names a model it does not fit,
// and a prompt that fits no candidate gets a 400 that says so.
func TestRouteRespectsContextWindows(t *testing.T) {
	f := startServer(t, serving.DefaultConfig(), policy.ScorerGo)
	big := strings.Repeat("long context ", (1<<20)/13)
	code, out := f.Post(t, "/v1/route", `{"prompt":"`+big+`","quality_bar":0}`)
	require.Equal(t, http.StatusOK, code, out)
	assert.Equal(t, "flash", out["model"], "the only model with a window over 262k tokens")
	assert.Empty(t, out["fallbacks"])

	code, out = f.Post(t, "/v1/route", `{"prompt":"`+big+`","candidates":["mini","opus-class"]}`)
	require.Equal(t, http.StatusBadRequest, code, out)
	e := out["error"].(map[string]any)
	assert.Equal(t, "prompt", e["field"])
	assert.Contains(t, e["message"], "200,000 (opus-class)")

	mid := strings.Repeat("mid ", 150_000) // about 150,000 tokens: fits flash and the 200k models
	code, out = f.Post(t, "/v1/route", `{"prompt":"`+mid+`","quality_bar":0}`)
	require.Equal(t, http.StatusOK, code, out)
	for _, m := range append([]any{out["model"]}, out["fallbacks"].([]any)...) {
		assert.NotContains(t, []string{"open-8b-selfhosted", "mini", "gpt-4o-class"}, m)
	}
}
