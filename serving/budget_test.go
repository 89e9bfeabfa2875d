package serving_test

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/features"
	"switchyard/serving"
	"switchyard/serving/budget"
	"switchyard/serving/fleet/fleettest"
	"switchyard/serving/servingtest"
	"switchyard/training/trainingtest"
)

// budgetWorld is a trained predictor over the synthetic workload, a day of
// requests of two tenants on it, and the policy they are routed by.
type budgetWorld struct {
	*trainingtest.World
	cfg policy.Config
}

// arrival is one request of the simulated day.
type arrival struct {
	at     time.Time
	tenant string
	prompt datasets.PromptRecord
}

var simDay = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)

// day draws n requests of tenant spread evenly over the simulated day,
// and surge more between 11:00 and 14:00.
func (bw budgetWorld) day(seed int64, tenant string, n, surge int) []arrival {
	rng := rand.New(rand.NewSource(seed))
	out := make([]arrival, 0, n+surge)
	for i := range n + surge {
		h := rng.Float64() * 24
		if i >= n {
			h = 11 + 3*rng.Float64()
		}
		out = append(out, arrival{at: simDay.Add(time.Duration(h * float64(time.Hour))), tenant: tenant,
			prompt: bw.Prompts[rng.Intn(len(bw.Prompts))]})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

func merge(days ...[]arrival) []arrival {
	var all []arrival
	for _, d := range days {
		all = append(all, d...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	return all
}

// fixed routes the requests offline, through the one decision rule, at a
// fixed cost weight, and returns their true spend and mean quality.
func (bw budgetWorld) fixed(t *testing.T, r *policy.Router, reqs []arrival, w float64) (spend, quality float64) {
	s, q := bw.sweepWeights(t, r, reqs, []float64{w})
	return s[0], q[0]
}

// sweepWeights is fixed for several weights: each request is scored once
// and its options ranked by the rule (Rule.Pick, what Route chooses) under
// each weight.
func (bw budgetWorld) sweepWeights(t *testing.T, r *policy.Router, reqs []arrival, ws []float64) (spends, qualities []float64) {
	spends, qualities = make([]float64, len(ws)), make([]float64, len(ws))
	for _, a := range reqs {
		d, err := r.Route(policy.Request{Input: features.Input{Prompt: a.prompt.Prompt, Task: a.prompt.Task}})
		require.NoError(t, err)
		for k, w := range ws {
			rule := d.Rule
			rule.CostWeight = w
			i, err := rule.Pick(d.Options)
			require.NoError(t, err)
			o := bw.Truth(t, a.prompt.PromptID, d.Options[i].Model)
			spends[k] += o.CostUSD
			qualities[k] += o.Quality
		}
	}
	for k := range qualities {
		qualities[k] /= float64(len(reqs))
	}
	return spends, qualities
}

// served is what a tenant got through the fleet.
type served struct {
	spend, quality float64
	n              int
	models         []string
	shaped         int
}

// serve runs the requests through two replicas sharing a Redis, on a clock
// that follows the requests' times: each is routed by one replica and its
// true quality and cost reported through the other.
func (bw budgetWorld) serve(t *testing.T, budgets *budget.Config, reqs []arrival) (map[string]*served, []*servingtest.Server) {
	redis := fleettest.Start(t)
	var clock atomic.Int64
	clock.Store(simDay.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	fc := serving.FileConfig{Catalogue: bw.CataloguePath, Policies: []serving.PolicySpec{{Config: bw.cfg, Predictor: bw.Predictor}}, Budgets: budgets}
	logs := t.TempDir()
	var fleet []*servingtest.Server
	for i := range 2 {
		fleet = append(fleet, servingtest.Start(t, serving.Options{Config: serving.DefaultConfig(), LogDir: logs, Writer: fmt.Sprint("r", i),
			Redis: redis.URL, Now: now, Load: servingtest.Routing(fc)}))
	}
	out := map[string]*served{}
	ctx := context.Background()
	for i, a := range reqs {
		clock.Store(a.at.UnixNano())
		r := fleet[i%2].Route(t, map[string]string{"prompt": a.prompt.Prompt, "task": a.prompt.Task, "tenant": a.tenant})
		o := bw.Truth(t, a.prompt.PromptID, r.Model)
		require.Equal(t, http.StatusOK, fleet[(i+1)%2].Feedback(t, map[string]any{"decision_id": r.DecisionID, "quality": o.Quality, "cost_usd": o.CostUSD}))
		s := out[a.tenant]
		if s == nil {
			s = &served{}
			out[a.tenant] = s
		}
		s.spend += o.CostUSD
		s.quality += o.Quality
		s.n++
		s.models = append(s.models, r.Model)
		if r.Budget != nil {
			s.shaped++
		}
		if i%8 == 7 {
			for _, f := range fleet {
				f.Service.Sync(ctx)
			}
		}
	}
	for range 2 { // each replica's last spend, then every replica reads it
		for _, f := range fleet {
			f.Service.Sync(ctx)
		}
	}
	for _, s := range out {
		s.quality /= float64(s.n)
	}
	return out, fleet
}

func newBudgetWorld(t *testing.T) budgetWorld {
	return budgetWorld{World: trainingtest.Train(t, trainingtest.Options{Seed: 21, Prompts: 1200}),
		cfg: policy.Config{Name: "p", Version: "1", QualityBar: 0.9}}
}

// sweep is the spend and quality of fixed cost weights over reqs, from 0
// up, on a log scale.
func (bw budgetWorld) sweep(t *testing.T, r *policy.Router, reqs []arrival) (ws, spends, qualities []float64) {
	ws = []float64{0}
	for w := 1.0; w < 1e7; w *= math.Pow(10, 0.05) {
		ws = append(ws, w)
	}
	spends, qualities = bw.sweepWeights(t, r, reqs, ws)
	return ws, spends, qualities
}

// A paced tenant with a daily budget at half its unconstrained spend, two
// replicas: the spend ends within 95–100% of the budget, at a mean quality
// within 2% of the best fixed cost weight chosen in hindsight for the same
// spend; a tenant without a budget is routed as if there were none.
func TestPacedBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (a real server under load, or many training rounds): make test runs it; -short leaves it out")
	}
	bw := newBudgetWorld(t)
	t.Run("spends it and loses little quality", func(t *testing.T) { pacedSpendsItAndLosesLittleQuality(t, bw) })
	t.Run("holds through a surge", func(t *testing.T) { pacedHoldsThroughASurge(t, bw) })
}

func pacedSpendsItAndLosesLittleQuality(t *testing.T, bw budgetWorld) {
	router := bw.Router(t, bw.cfg)
	paced, free := bw.day(1, "paced", 3000, 0), bw.day(2, "free", 600, 0)
	unconstrained, _ := bw.fixed(t, router, paced, 0)
	budgetUSD := unconstrained / 2
	got, fleet := bw.serve(t, &budget.Config{Tenants: map[string]budget.Spec{"paced": {USD: budgetUSD, Period: budget.PeriodDay, Mode: budget.ModePace}}},
		merge(paced, free))
	p := got["paced"]
	ws, spends, qualities := bw.sweep(t, router, paced)
	best, bestW := -1.0, 0.0
	for i := range ws {
		if spends[i] <= p.spend && qualities[i] > best {
			best, bestW = qualities[i], ws[i]
		}
	}
	t.Logf("budget %.4f USD (unconstrained %.4f): paced spend %.4f (%.1f%%), quality %.4f; best fixed weight %.4g for that spend: quality %.4f; %d of %d decisions paced",
		budgetUSD, unconstrained, p.spend, 100*p.spend/budgetUSD, p.quality, bestW, best, p.shaped, p.n)
	assert.GreaterOrEqual(t, p.spend, 0.95*budgetUSD)
	assert.LessOrEqual(t, p.spend, budgetUSD)
	assert.GreaterOrEqual(t, p.quality, 0.98*best, "within 2%% of the best fixed weight in hindsight")

	// the tenant without a budget: every decision as with no budget at all
	f := got["free"]
	assert.Zero(t, f.shaped)
	for i, a := range free {
		d, err := router.Route(policy.Request{Input: features.Input{Prompt: a.prompt.Prompt, Task: a.prompt.Task}})
		require.NoError(t, err)
		require.Equal(t, d.Chosen, f.models[i], "request %d of the free tenant", i)
	}

	// what the replicas say of the budget
	var st budget.State
	require.Equal(t, http.StatusOK, fleet[0].Get(t, "/v1/budgets/paced", &st))
	assert.Equal(t, budgetUSD, st.BudgetUSD)
	assert.InDelta(t, p.spend, st.SpentUSD, 1e-9*budgetUSD+1e-12, "spend is the actual cost from feedback")
	assert.Equal(t, "pace", st.Mode)
	assert.Positive(t, st.Shaped["paced"])
	code, body := fleet[1].Post(t, "/v1/route", `{"prompt":"x"}`)
	require.Equal(t, http.StatusOK, code, body)
	var none serving.ErrorResponse
	assert.Equal(t, http.StatusNotFound, fleet[1].Get(t, "/v1/budgets/free", &none))
	assert.Contains(t, none.Error.Message, `tenant "free" has no budget`)
	assert.InDelta(t, p.spend, fleet[1].Metric(t, "switchyard_budget_spent_usd"), 1e-9*budgetUSD+1e-12)
}

// A mid-day surge (half a day's traffic again between 11:00 and 14:00):
// the cost weight that spends the budget on a steady day, fixed, overspends
// it; pacing holds it.
func pacedHoldsThroughASurge(t *testing.T, bw budgetWorld) {
	router := bw.Router(t, bw.cfg)
	steady := bw.day(3, "paced", 2000, 0)
	unconstrained, _ := bw.fixed(t, router, steady, 0)
	budgetUSD := unconstrained / 2
	ws, spends, qualities := bw.sweep(t, router, steady)
	best, bestW := -1.0, 0.0
	for i := range ws {
		if spends[i] <= budgetUSD && qualities[i] > best {
			best, bestW = qualities[i], ws[i]
		}
	}
	surge := bw.day(3, "paced", 2000, 1000)
	fixedSpend, _ := bw.fixed(t, router, surge, bestW)
	got, _ := bw.serve(t, &budget.Config{Tenants: map[string]budget.Spec{"paced": {USD: budgetUSD, Period: budget.PeriodDay, Mode: budget.ModePace}}}, surge)
	p := got["paced"]
	t.Logf("budget %.4f USD: the best fixed weight of a steady day (%.4g) spends %.4f (%.1f%%) on the surge day; pacing spends %.4f (%.1f%%), quality %.4f",
		budgetUSD, bestW, fixedSpend, 100*fixedSpend/budgetUSD, p.spend, 100*p.spend/budgetUSD, p.quality)
	assert.Greater(t, fixedSpend, budgetUSD, "a fixed weight does not hold the budget through the surge")
	assert.GreaterOrEqual(t, p.spend, 0.95*budgetUSD)
	assert.LessOrEqual(t, p.spend, budgetUSD, "pacing holds it")
}

// A capped tenant that refuses past its budget, routed by two replicas at
// once: the fleet's spend never passes the budget by more than one
// request's cost per replica, and the refusals say why.
func TestCappedBudgetIsNotExceeded(t *testing.T) {
	bw := newBudgetWorld(t)
	redis := fleettest.Start(t)
	logs := t.TempDir()
	const budgetUSD = 0.5
	fc := serving.FileConfig{Catalogue: bw.CataloguePath, Policies: []serving.PolicySpec{{Config: bw.cfg, Predictor: bw.Predictor}},
		Budgets: &budget.Config{Tenants: map[string]budget.Spec{"capped": {USD: budgetUSD, Period: budget.PeriodDay, Mode: budget.ModeCap, WhenExhausted: budget.ExhaustedReject}}}}
	var fleet []*servingtest.Server
	for i := range 2 {
		fleet = append(fleet, servingtest.Start(t, serving.Options{Config: serving.DefaultConfig(), LogDir: logs, Writer: fmt.Sprint("r", i),
			Redis: redis.URL, Now: func() time.Time { return simDay.Add(12 * time.Hour) }, Load: servingtest.Routing(fc)}))
	}
	var mu sync.Mutex
	var charged, maxCost float64
	refused := 0
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			for range 150 {
				p := bw.Prompts[rng.Intn(len(bw.Prompts))]
				var r serving.RouteResponse
				code := fleet[w%2].Do(t, http.MethodPost, "/v1/route", map[string]string{"prompt": p.Prompt, "task": p.Task, "tenant": "capped"}, &r)
				mu.Lock()
				switch code {
				case http.StatusOK:
					for _, c := range r.Candidates {
						if c.Model == r.Model {
							charged += c.ExpectedCostUSD
							maxCost = max(maxCost, c.ExpectedCostUSD)
						}
					}
				case http.StatusTooManyRequests:
					refused++
				default:
					t.Errorf("route answered %d", code)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("budget %.4f USD: %.4f charged, %d refused, largest request %.4f", budgetUSD, charged, refused, maxCost)
	assert.Positive(t, refused)
	assert.LessOrEqual(t, charged, budgetUSD+2*maxCost, "over by at most a request per replica")
	for _, s := range fleet {
		s.Service.Sync(context.Background())
	}
	var st budget.State
	require.Equal(t, http.StatusOK, fleet[0].Get(t, "/v1/budgets/capped", &st))
	assert.InDelta(t, charged, st.SpentUSD, 1e-9)
	assert.Equal(t, "exhausted", st.Status)
	code, body := fleet[1].Post(t, "/v1/route", `{"prompt":"one more","tenant":"capped"}`)
	assert.Equal(t, http.StatusTooManyRequests, code)
	assert.Contains(t, fmt.Sprint(body["error"]), `tenant: "capped" has spent its budget of 0.5 USD for 20`)
}
