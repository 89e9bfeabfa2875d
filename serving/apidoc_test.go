package serving_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/serving"
	"switchyard/serving/budget"
)

// The HTTP API page documents every field of the request and response
// types, so it cannot fall behind them.
func TestAPIDocumentsEveryField(t *testing.T) {
	b, err := os.ReadFile("../docs/api.md")
	require.NoError(t, err)
	doc := string(b)
	for _, v := range []any{serving.RouteRequest{}, serving.RouteResponse{}, serving.FeedbackRequest{},
		serving.FeedbackResponse{}, policy.Option{}, serving.Message{}, serving.ModelInfo{}, serving.BudgetNote{}, budget.State{}} {
		typ := reflect.TypeOf(v)
		for i := 0; i < typ.NumField(); i++ {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			assert.Contains(t, doc, name, "%s.%s", typ.Name(), typ.Field(i).Name)
		}
	}
}
