package serving_test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/datasets/synthetic"
	"switchyard/experiments/rollout"
	"switchyard/serving"
	"switchyard/serving/fleet/fleettest"
	"switchyard/serving/servingtest"
)

// replicas starts n services sharing a Redis and one log root (each its
// own writer id), over the same predictor.
func replicas(t *testing.T, redis *fleettest.Redis, logs string, n int) []*servingtest.Server {
	t.Helper()
	cat := synthetic.DefaultCatalogue()
	model := writeModel(t, cat)
	var out []*servingtest.Server
	for i := range n {
		out = append(out, servingtest.Start(t, serving.Options{Config: serving.DefaultConfig(), LogDir: logs, Writer: fmt.Sprint("r", i),
			Redis: redis.URL, Load: servingtest.Predictor(model, cat, policy.ScorerGo, policy.Config{Name: "p", QualityBar: 0.6})}))
	}
	return out
}

// Feedback through any replica of a fleet is taken once, fleet-wide: every
// decision routed by one replica gets its feedback through another, twice
// (through two replicas at once), and the shared log root holds one outcome
// per decision with the first answer.
func TestFleetTakesFeedbackThroughAnyReplicaExactlyOnce(t *testing.T) {
	redis := fleettest.Start(t)
	logs := t.TempDir()
	fleet := replicas(t, redis, logs, 3)
	var mu sync.Mutex
	acked := map[string]float64{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			for i := range 60 {
				k := rng.Intn(len(fleet))
				d := fleet[k].Route(t, map[string]string{"prompt": fmt.Sprintf("worker %d question %d", w, i)})
				q := float64(rng.Intn(11)) / 10
				answers := make(chan serving.FeedbackResponse, 2)
				var fw sync.WaitGroup
				for _, j := range []int{(k + 1) % len(fleet), (k + 2) % len(fleet)} {
					fw.Add(1)
					go func() {
						defer fw.Done()
						var fr serving.FeedbackResponse
						if fleet[j].Do(t, http.MethodPost, "/v1/feedback", map[string]any{"decision_id": d.DecisionID, "quality": q}, &fr) == http.StatusOK {
							answers <- fr
						}
					}()
				}
				fw.Wait()
				close(answers)
				n := 0
				for fr := range answers {
					n++
					assert.Equal(t, q, fr.Quality)
					assert.Equal(t, d.Model, fr.Model)
				}
				assert.Equal(t, 2, n, "both feedbacks are answered 200")
				mu.Lock()
				acked[d.DecisionID] = q
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, s := range fleet {
		require.NoError(t, s.Stop())
	}
	decisions, outcomes, err := datasets.ReadLogDir(logs)
	require.NoError(t, err)
	assert.Len(t, decisions, 6*60)
	count := map[string]int{}
	for _, o := range outcomes {
		count[o.DecisionID]++
		assert.Equal(t, acked[o.DecisionID], o.Quality)
	}
	for id := range acked {
		assert.Equal(t, 1, count[id], "decision %s: one outcome fleet-wide", id)
	}
	assert.Len(t, outcomes, len(acked))
}

// With Redis down, routing goes on everywhere, feedback for a replica's own
// decisions is still acknowledged (and told to Redis when it is back),
// feedback for another replica's decision is refused with 503 (nothing is
// acknowledged that could be lost), and /readyz says degraded until Redis
// answers again.
func TestFleetRidesOutARedisOutage(t *testing.T) {
	redis := fleettest.Start(t)
	logs := t.TempDir()
	fleet := replicas(t, redis, logs, 2)
	a, b := fleet[0], fleet[1]
	before := a.Route(t, map[string]string{"prompt": "before the outage"})

	redis.Stop()
	own := a.Route(t, map[string]string{"prompt": "during the outage"})
	other := b.Route(t, map[string]string{"prompt": "during the outage, elsewhere"})
	require.Equal(t, http.StatusOK, a.Feedback(t, map[string]any{"decision_id": own.DecisionID, "quality": 0.25}), "a's own decision")
	code, out := a.Post(t, "/v1/feedback", fmt.Sprintf(`{"decision_id":%q,"quality":1}`, other.DecisionID))
	assert.Equal(t, http.StatusServiceUnavailable, code, out)
	var rd serving.Readiness
	require.Equal(t, http.StatusOK, a.Get(t, "/readyz", &rd))
	assert.Equal(t, "degraded", rd.Status)

	redis.Restart(t)
	require.Eventually(t, func() bool {
		var rd serving.Readiness
		a.Get(t, "/readyz", &rd)
		return rd.Status == "ready"
	}, 10*time.Second, 50*time.Millisecond, "ready again once Redis answers")
	// the outage's acknowledged outcome is known fleet-wide: b answers with it
	var fr serving.FeedbackResponse
	require.Eventually(t, func() bool {
		return b.Do(t, http.MethodPost, "/v1/feedback", map[string]any{"decision_id": own.DecisionID, "quality": 0.9}, &fr) == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, 0.25, fr.Quality, "reconciled: the first answer stays")
	require.Equal(t, http.StatusOK, b.Feedback(t, map[string]any{"decision_id": before.DecisionID, "quality": 1}))
	require.Equal(t, http.StatusOK, a.Feedback(t, map[string]any{"decision_id": other.DecisionID, "quality": 1}), "taken now")

	for _, s := range fleet {
		require.NoError(t, s.Stop())
	}
	_, outcomes, err := datasets.ReadLogDir(logs)
	require.NoError(t, err)
	assert.Len(t, outcomes, 3, "one outcome each for the three decisions")
}

// A staged rollout is one rollout fleet-wide: three replicas behind a
// round-robin of routes (feedback through the next replica) judge the
// guardrails on the fleet's outcomes, every replica shows each transition
// within a second of it, a worse treatment advances and then is reverted
// exactly once, and a restart of every replica resumes the rollout where
// it stood.
func TestFleetSharesOneRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a real server under load, or many training rounds): make test runs it; -short leaves it out")
	}
	rw := newRolloutWorld(t)
	redis := fleettest.Start(t)
	logs := t.TempDir()
	fc := rw.config(5, 0.2, 60)
	start := func() []*servingtest.Server {
		var out []*servingtest.Server
		for i := range 3 {
			out = append(out, servingtest.Start(t, serving.Options{Config: serving.DefaultConfig(), LogDir: logs, Writer: fmt.Sprint("r", i),
				Redis: redis.URL, Load: servingtest.Routing(fc)}))
		}
		return out
	}
	fleet := start()
	// a watcher polls every replica and notes when each first showed its
	// n-th transition
	shown := make([]map[int]time.Time, len(fleet))
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for i := range shown {
			shown[i] = map[int]time.Time{}
		}
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			for i, s := range fleet {
				st, err := experimentState(s.URL)
				if err != nil {
					continue
				}
				for n := 1; n <= len(st.Rollout.Transitions); n++ {
					if _, ok := shown[i][n]; !ok {
						shown[i][n] = time.Now()
					}
				}
			}
		}
	}()
	rng := rand.New(rand.NewSource(5))
	var st rollout.ExperimentState
	for i := 0; i < 9000 && st.State != "reverted"; i++ {
		rw.send(t, rng, fleet[i%3], fleet[(i+1)%3])
		if i%50 == 49 {
			st = experiment(t, fleet[i%3])
		}
	}
	time.Sleep(1500 * time.Millisecond) // the other replicas' view of the last transition
	close(stop)
	<-watched
	require.Equal(t, "reverted", st.State)
	var slowest time.Duration
	for n, tr := range st.Rollout.Transitions {
		for i := range fleet {
			seen, ok := shown[i][n+1]
			require.True(t, ok, "replica %d never showed transition %d", i, n+1)
			lag := seen.Sub(tr.Time)
			assert.Less(t, lag, time.Second, "replica %d showed transition %d after %v", i, n+1, lag)
			slowest = max(slowest, lag)
		}
	}
	t.Logf("transitions: %+v; the slowest replica showed one %v after it", st.Rollout.Transitions, slowest)
	reverts := 0
	for _, tr := range st.Rollout.Transitions {
		if tr.To == 0 {
			reverts++
			assert.Contains(t, tr.Reason, "guardrail breached")
		}
	}
	assert.Equal(t, 1, reverts, "reverted once fleet-wide")
	assert.Greater(t, len(st.Rollout.Transitions), 1, "advanced before it was reverted")
	assert.Greater(t, st.Rollout.Transitions[0].To, st.Rollout.Transitions[0].From, "the first transition advances")
	for _, s := range fleet {
		assert.Equal(t, st.Rollout.Transitions, experiment(t, s).Rollout.Transitions, "every replica has the one history")
		r := s.Route(t, map[string]string{"prompt": "after the revert", "user": "u1"})
		assert.Equal(t, "control", r.Arm, "everything goes to control")
	}

	for _, s := range fleet {
		require.NoError(t, s.Stop())
	}
	for _, s := range start() {
		got := experiment(t, s)
		assert.Equal(t, "reverted", got.State, "a restarted replica resumes the rollout")
		assert.Equal(t, st.Rollout.Transitions, got.Rollout.Transitions)
	}
}

// experimentState reads a server's one experiment without a test's
// assertions (for a goroutine).
func experimentState(url string) (rollout.ExperimentState, error) {
	var ex struct {
		Experiments []rollout.ExperimentState `json:"experiments"`
	}
	resp, err := http.Get(url + "/v1/experiments")
	if err != nil {
		return rollout.ExperimentState{}, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&ex); err != nil || len(ex.Experiments) != 1 || ex.Experiments[0].Rollout == nil {
		return rollout.ExperimentState{}, fmt.Errorf("experiments: %v", err)
	}
	return ex.Experiments[0], nil
}
