package serving

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"

	"switchyard/classifier/policy"
	"switchyard/features"
)

// RouteRequest is the body of POST /v1/route. Either Prompt or Messages
// (OpenAI style) is required; everything else is optional. Unknown fields
// are ignored, so a gateway may send a whole chat-completion body.
type RouteRequest struct {
	Prompt     *string   `json:"prompt"`
	Messages   []Message `json:"messages"`
	QualityBar *float64  `json:"quality_bar"`
	Candidates []string  `json:"candidates"`
	MaxCostUSD *float64  `json:"max_cost_usd"`
	Task       string    `json:"task"`
	RequestID  string    `json:"request_id"`
	User       string    `json:"user"`
	Tenant     string    `json:"tenant"`
	Session    string    `json:"session"`
	PromptID   string    `json:"prompt_id"`
}

// Message is one chat turn. Content is a string or an array of parts of
// which the text parts are used ({"type":"text","text":"..."}).
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// UnmarshalJSON accepts string content and multi-part content.
func (m *Message) UnmarshalJSON(b []byte) error {
	var raw struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	m.Role = raw.Role
	c := bytes.TrimSpace(raw.Content)
	switch {
	case len(c) == 0 || bytes.Equal(c, []byte("null")):
		m.Content = ""
	case c[0] == '"':
		return json.Unmarshal(c, &m.Content)
	case c[0] == '[':
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(c, &parts); err != nil {
			return &fieldError{field: "messages.content", msg: "must be a string or an array of {type, text} parts"}
		}
		var sb strings.Builder
		for _, p := range parts {
			if p.Text == "" {
				continue
			}
			if sb.Len() > 0 {
				sb.WriteByte('\n')
			}
			sb.WriteString(p.Text)
		}
		m.Content = sb.String()
	default:
		return &fieldError{field: "messages.content", msg: "must be a string or an array of {type, text} parts"}
	}
	return nil
}

// RouteResponse is the answer of POST /v1/route.
type RouteResponse struct {
	DecisionID       string          `json:"decision_id"` // empty from the route command, which logs nothing
	RequestID        string          `json:"request_id,omitempty"`
	Model            string          `json:"model"`
	Cleared          bool            `json:"cleared"`
	QualityBar       float64         `json:"quality_bar"`
	Candidates       []policy.Option `json:"candidates"`
	Fallbacks        []string        `json:"fallbacks"`
	Propensity       float64         `json:"propensity"`
	Explored         bool            `json:"explored"` // the policy's exploration chose another model than its rule
	InputTokens      int             `json:"input_tokens_estimate"`
	Policy           string          `json:"policy"`
	PolicyVersion    string          `json:"policy_version"`
	PredictorVersion string          `json:"predictor_version"`
	FeatureSpecID    string          `json:"feature_spec_id"`
	Experiment       string          `json:"experiment,omitempty"`
	Arm              string          `json:"arm,omitempty"`
	Shadow           string          `json:"shadow,omitempty"` // send a copy of the request to this model; report its outcome with source shadow
	Budget           *BudgetNote     `json:"budget,omitempty"` // the tenant's budget shaped the decision
}

// DecisionResponse is the answer for a decision, without what only the
// server knows (decision and request ids, experiment, arm, shadow): the
// route command prints it as it is.
func DecisionResponse(d policy.Decision) RouteResponse {
	return RouteResponse{Model: d.Chosen, Cleared: d.Cleared, QualityBar: d.QualityBar,
		Candidates: d.Options, Fallbacks: d.FallbackModels(), Propensity: d.Propensity, Explored: d.Explored,
		InputTokens: d.InputTokens, Policy: d.Policy, PolicyVersion: d.PolicyVersion,
		PredictorVersion: d.PredictorVersion, FeatureSpecID: d.FeatureSpecID}
}

// ErrorResponse is the body of every 4xx and 5xx answer.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody says what went wrong and, where one field is to blame, which.
type ErrorBody struct {
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

type fieldError struct {
	field, msg string
}

func (e *fieldError) Error() string {
	if e.field == "" {
		return e.msg
	}
	return e.field + ": " + e.msg
}

// decodeRoute parses and validates a route request body into the router's
// request.
func decodeRoute(body io.Reader) (*RouteRequest, policy.Request, error) {
	var req RouteRequest
	dec := json.NewDecoder(body)
	if err := dec.Decode(&req); err != nil {
		return nil, policy.Request{}, jsonError(err, "send a JSON object with a prompt or messages")
	}
	if dec.More() {
		return nil, policy.Request{}, &fieldError{msg: "malformed JSON: more than one value in the body"}
	}
	if err := req.validate(); err != nil {
		return nil, policy.Request{}, err
	}
	pr := policy.Request{
		Input:      features.Input{Task: req.Task},
		QualityBar: req.QualityBar,
		Candidates: req.Candidates,
	}
	if req.Prompt != nil {
		pr.Input.Prompt = *req.Prompt
	}
	if len(req.Messages) > 0 {
		pr.Input.Messages = make([]features.Message, len(req.Messages))
		for i, m := range req.Messages {
			pr.Input.Messages[i] = features.Message{Role: m.Role, Content: m.Content}
		}
	}
	if req.MaxCostUSD != nil {
		pr.MaxCostUSD = *req.MaxCostUSD
	}
	return &req, pr, nil
}

func (r *RouteRequest) validate() error {
	hasText := r.Prompt != nil && *r.Prompt != ""
	for i := 0; i < len(r.Messages) && !hasText; i++ {
		hasText = r.Messages[i].Content != ""
	}
	if !hasText {
		switch {
		case len(r.Messages) > 0:
			return &fieldError{field: "messages", msg: "every message's content is empty"}
		case r.Prompt != nil:
			return &fieldError{field: "prompt", msg: "is empty"}
		}
		return &fieldError{field: "prompt", msg: "one of prompt or messages is required"}
	}
	if b := r.QualityBar; b != nil && (math.IsNaN(*b) || *b < 0 || *b > 1) {
		return &fieldError{field: "quality_bar", msg: fmt.Sprintf("%v is outside [0,1]", *b)}
	}
	if c := r.MaxCostUSD; c != nil && (math.IsNaN(*c) || *c <= 0) {
		return &fieldError{field: "max_cost_usd", msg: fmt.Sprintf("%v must be a positive number of US dollars", *c)}
	}
	if r.Candidates != nil && len(r.Candidates) == 0 {
		return &fieldError{field: "candidates", msg: "is empty; omit it to use the policy's candidates"}
	}
	for _, c := range r.Candidates {
		if strings.TrimSpace(c) == "" {
			return &fieldError{field: "candidates", msg: "contains an empty model name"}
		}
	}
	return nil
}

// jsonError turns a decoding error into a field error that names the field
// or the offset; send says what an empty body should have held.
func jsonError(err error, send string) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var fe *fieldError
	switch {
	case errors.As(err, &fe):
		return fe
	case errors.As(err, &syn):
		return &fieldError{msg: fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn)}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return &fieldError{msg: fmt.Sprintf("the body must be a JSON object, not %s", typ.Value)}
		}
		return &fieldError{field: field, msg: fmt.Sprintf("must be %s, not %s", typeName(typ.Type.String()), typ.Value)}
	case errors.Is(err, io.EOF):
		return &fieldError{msg: "empty body: " + send}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &fieldError{msg: "malformed JSON: the body ends early"}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge
	}
	return &fieldError{msg: "malformed JSON: " + err.Error()}
}

var errTooLarge = errors.New("request body too large")

func typeName(goType string) string {
	switch goType {
	case "string", "*string":
		return "a string"
	case "float64", "*float64":
		return "a number"
	case "[]string":
		return "an array of strings"
	case "[]serving.Message":
		return "an array of messages"
	}
	return goType
}
