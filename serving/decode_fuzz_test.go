package serving

import (
	"bytes"
	"testing"
)

// FuzzDecodeRoute feeds arbitrary bodies to the request decoder: it must
// either return a request the router accepts the shape of, or an error,
// and never panic.
func FuzzDecodeRoute(f *testing.F) {
	for _, s := range []string{
		`{"prompt":"hi"}`, `{"messages":[{"role":"user","content":"x"}]}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}`,
		`{"prompt":"x","quality_bar":0.5,"candidates":["a"],"max_cost_usd":0.1,"task":"t"}`,
		`{"prompt":`, `[]`, `null`, `{"prompt":"\u0000\xff"}`, `{"quality_bar":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, pr, err := decodeRoute(bytes.NewReader(body))
		if err != nil {
			if req != nil {
				t.Fatalf("error %v with a request", err)
			}
			return
		}
		if pr.Input.Prompt == "" && len(pr.Input.Messages) == 0 {
			t.Fatalf("accepted a request with no prompt: %q", body)
		}
		if pr.QualityBar != nil && (*pr.QualityBar < 0 || *pr.QualityBar > 1) {
			t.Fatalf("accepted quality_bar %v", *pr.QualityBar)
		}
		if pr.MaxCostUSD < 0 {
			t.Fatalf("accepted max_cost_usd %v", pr.MaxCostUSD)
		}
	})
}
