package serving_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier"
	"switchyard/classifier/classifiertest"
	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/synthetic"
	"switchyard/serving"
	"switchyard/serving/servingtest"
)

// The service's lifecycle without the command line: Open takes the log
// folder and a port, Run serves until its context ends and then flushes
// both logs to Parquet; a second service on the same folder is refused, and
// one opened after the first stopped remembers its decisions.
func TestServiceOpensServesAndStopsWithItsLogs(t *testing.T) {
	cfgPath, _ := writeConfig(t, nil)
	logs := t.TempDir()
	opt := serving.Options{Config: serving.DefaultConfig(), Addr: "127.0.0.1:0", LogDir: logs, Writer: "svc",
		Load: func(onFallback func()) (*serving.Routing, error) {
			return serving.ReadConfig(cfgPath, policy.LoadOptions{Scorer: policy.ScorerGo, OnFallback: onFallback})
		}}
	svc, err := serving.Open(context.Background(), opt)
	require.NoError(t, err)
	_, err = serving.Open(context.Background(), opt)
	require.ErrorContains(t, err, "svc", "the folder is taken by this writer id")

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	base := "http://" + svc.Addr()
	var ids []string
	for i := 0; i < 5; i++ {
		resp, err := http.Post(base+"/v1/route", "application/json", strings.NewReader(fmt.Sprintf(`{"prompt":"question %d"}`, i)))
		require.NoError(t, err)
		var out serving.RouteResponse
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		ids = append(ids, out.DecisionID)
		fb, err := http.Post(base+"/v1/feedback", "application/json", strings.NewReader(fmt.Sprintf(`{"decision_id":%q,"quality":1}`, out.DecisionID)))
		require.NoError(t, err)
		fb.Body.Close()
		require.Equal(t, http.StatusOK, fb.StatusCode)
	}
	stop()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	decisions, outcomes, err := datasets.ReadLogDir(logs)
	require.NoError(t, err)
	assert.Len(t, decisions, 5, "every decision is in Parquet after the stop")
	assert.Len(t, outcomes, 5)

	again, err := serving.Open(context.Background(), opt)
	require.NoError(t, err, "the lock was released")
	ctx2, stop2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- again.Run(ctx2) }()
	resp, err := http.Post("http://"+again.Addr()+"/v1/feedback", "application/json", strings.NewReader(fmt.Sprintf(`{"decision_id":%q,"quality":0}`, ids[0])))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a decision of the earlier run is remembered (its feedback is answered idempotently)")
	stop2()
	require.NoError(t, <-done2)
}

// A restarted service counts the outcomes stored by the earlier run on top
// of its predictor's training observations, unless the predictor was
// trained on them (stored before its ObservedUntil): retraining from the
// logs and restarting does not count an outcome twice.
func TestRestartCountsOnlyOutcomesThePredictorDidNotSee(t *testing.T) {
	cat := synthetic.DefaultCatalogue()
	m := classifiertest.New(t, classifiertest.Options{Models: cat.Names(), BiasStep: 0.4, OutputTokens: 200})
	logs := t.TempDir()
	cfg := serving.DefaultConfig()
	cfg.AdminKey = "k"
	start := func(m *classifier.Model) *servingtest.Server {
		return servingtest.Start(t, serving.Options{Config: cfg, LogDir: logs,
			Load: servingtest.Predictor(classifiertest.Write(t, m), cat, policy.ScorerGo, policy.Config{Name: "p", QualityBar: 0.6})})
	}
	observations := func(s *servingtest.Server) map[string]int64 {
		var out struct {
			Models []serving.ModelInfo `json:"models"`
		}
		require.Equal(t, http.StatusOK, s.Get(t, "/v1/models", &out))
		n := map[string]int64{}
		for _, mi := range out.Models {
			n[mi.Model] = mi.Observations
		}
		return n
	}

	first := start(m)
	chosen := map[string]int64{}
	for i := range 3 {
		d := first.Route(t, map[string]string{"prompt": fmt.Sprintf("question %d", i)})
		require.Equal(t, http.StatusOK, first.Feedback(t, map[string]any{"decision_id": d.DecisionID, "quality": 1}))
		chosen[d.Model]++
	}
	require.NotEmpty(t, chosen)
	for _, name := range cat.Names() {
		assert.Equal(t, chosen[name], observations(first)[name], "%s: counted as they arrive", name)
	}
	require.NoError(t, first.Stop())

	again := start(m)
	for _, name := range cat.Names() {
		assert.Equal(t, chosen[name], observations(again)[name], "%s: the earlier run's outcomes count after a restart", name)
	}
	require.Equal(t, http.StatusOK, again.Reload(t, "k", nil))
	for _, name := range cat.Names() {
		assert.Equal(t, chosen[name], observations(again)[name], "%s: and after a reload of the same predictor", name)
	}
	require.NoError(t, again.Stop())

	retrained := *m
	retrained.Meta.ObservedUntil = time.Now() // as if trained on every outcome stored so far
	retrained.Meta.Observations = map[string]int{}
	for name, n := range chosen {
		retrained.Meta.Observations[name] = int(n)
	}
	last := start(&retrained)
	for _, name := range cat.Names() {
		assert.Equal(t, int64(retrained.Meta.Observations[name]), observations(last)[name], "%s: not counted twice", name)
	}
}
