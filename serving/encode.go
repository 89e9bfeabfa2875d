package serving

import (
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"
)

// appendJSON encodes the response like encoding/json would (the tests
// check that both decode alike), without reflection or allocations: it is
// on every request's path.
func (r *RouteResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"decision_id":`...)
	b = appendJSONString(b, r.DecisionID)
	if r.RequestID != "" {
		b = append(b, `,"request_id":`...)
		b = appendJSONString(b, r.RequestID)
	}
	b = append(b, `,"model":`...)
	b = appendJSONString(b, r.Model)
	b = append(b, `,"cleared":`...)
	b = strconv.AppendBool(b, r.Cleared)
	b = append(b, `,"quality_bar":`...)
	b = appendJSONFloat(b, r.QualityBar)
	b = append(b, `,"candidates":[`...)
	for i, o := range r.Candidates {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"model":`...)
		b = appendJSONString(b, o.Model)
		b = append(b, `,"predicted_quality":`...)
		b = appendJSONFloat(b, o.PredictedQuality)
		b = append(b, `,"expected_cost_usd":`...)
		b = appendJSONFloat(b, o.ExpectedCostUSD)
		b = append(b, '}')
	}
	b = append(b, `],"fallbacks":[`...)
	for i, f := range r.Fallbacks {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, f)
	}
	b = append(b, `],"propensity":`...)
	b = appendJSONFloat(b, r.Propensity)
	b = append(b, `,"explored":`...)
	b = strconv.AppendBool(b, r.Explored)
	b = append(b, `,"input_tokens_estimate":`...)
	b = strconv.AppendInt(b, int64(r.InputTokens), 10)
	for _, kv := range [...][2]string{{"policy", r.Policy}, {"policy_version", r.PolicyVersion},
		{"predictor_version", r.PredictorVersion}, {"feature_spec_id", r.FeatureSpecID}} {
		b = append(b, ',', '"')
		b = append(b, kv[0]...)
		b = append(b, '"', ':')
		b = appendJSONString(b, kv[1])
	}
	for _, kv := range [...][2]string{{"experiment", r.Experiment}, {"arm", r.Arm}, {"shadow", r.Shadow}} {
		if kv[1] != "" {
			b = append(b, ',', '"')
			b = append(b, kv[0]...)
			b = append(b, '"', ':')
			b = appendJSONString(b, kv[1])
		}
	}
	if n := r.Budget; n != nil {
		b = append(b, `,"budget":{"tenant":`...)
		b = appendJSONString(b, n.Tenant)
		b = append(b, `,"action":`...)
		b = appendJSONString(b, n.Action)
		b = append(b, `,"cost_weight":`...)
		b = appendJSONFloat(b, n.CostWeight)
		b = append(b, '}')
	}
	return append(b, '}', '\n')
}

func appendJSONFloat(b []byte, f float64) []byte {
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

var respBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func writeRoute(w http.ResponseWriter, r *RouteResponse) {
	bp := respBufs.Get().(*[]byte)
	b := r.appendJSON((*bp)[:0])
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	*bp = b
	respBufs.Put(bp)
}
