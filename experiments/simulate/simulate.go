// Package simulate replays a full-information benchmark as a stream of
// routing requests through the real server (its handlers, policy, decision
// log, feedback endpoint and outcome log, in process), revealing only the
// chosen model's outcome, as production would. Every round it retrains the
// predictor from the logs alone (inverse-propensity weighted) and scores the
// round's policy on held-out prompts against the full ground truth and
// against a router trained on full information.
package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"switchyard/classifier"
	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/features"
	"switchyard/serving"
	"switchyard/training"
	"switchyard/training/eval"
)

// Strategy is a named exploration setting to simulate.
type Strategy struct {
	Name        string
	Exploration policy.Exploration
}

// ParseStrategy reads "none", "epsilon-greedy:EPS", "softmax:TEMPERATURE"
// or "optimism:BONUS[:EPS]".
func ParseStrategy(s string) (Strategy, error) {
	name, arg, _ := strings.Cut(s, ":")
	st := Strategy{Name: s, Exploration: policy.Exploration{Strategy: name}}
	switch name {
	case policy.ExploreNone:
	case policy.ExploreOptimism:
		b, e, hasEps := strings.Cut(arg, ":")
		v, err := strconv.ParseFloat(b, 64)
		if err != nil {
			return Strategy{}, fmt.Errorf("strategy %q: want optimism:BONUS[:EPS]", s)
		}
		st.Exploration.Bonus = v
		if hasEps {
			if st.Exploration.Epsilon, err = strconv.ParseFloat(e, 64); err != nil {
				return Strategy{}, fmt.Errorf("strategy %q: want optimism:BONUS[:EPS]", s)
			}
		}
	case policy.ExploreEpsilonGreedy, policy.ExploreSoftmax:
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil {
			return Strategy{}, fmt.Errorf("strategy %q: want %s:NUMBER", s, name)
		}
		if name == policy.ExploreEpsilonGreedy {
			st.Exploration.Epsilon = v
		} else {
			st.Exploration.Temperature = v
		}
	default:
		return Strategy{}, fmt.Errorf("strategy %q: want none, epsilon-greedy:EPS, softmax:T or optimism:BONUS[:EPS]", s)
	}
	return st, st.Exploration.Validate()
}

// Config sets up a simulation.
type Config struct {
	Bench        *eval.Bench
	Strategies   []Strategy
	Requests     int // per strategy
	RetrainEvery int // requests per round
	QualityBar   float64
	Seed         int64
	Settings     training.Settings
	Spec         features.Spec
	Clip         float64 // largest inverse-propensity weight
	TestShare    float64 // held-out prompts (by prompt-id hash) that score each round
	// AddModel, when set, is withheld from the catalogue until AddAt
	// requests, then added as a new model explored under NewModels.
	AddModel  string
	AddAt     int
	NewModels policy.NewModels
	WorkDir   string
	Log       *slog.Logger
}

// Round is one round of one strategy.
type Round struct {
	Strategy        string             `json:"strategy"`
	Round           int                `json:"round"`
	Requests        int                `json:"requests"` // served so far
	ExplorationRate float64            `json:"exploration_rate"`
	OnlineQuality   float64            `json:"online_quality"` // served traffic of the round
	OnlineCost      float64            `json:"online_cost"`
	TestQuality     float64            `json:"test_quality"` // the round's greedy policy on held-out prompts
	TestCost        float64            `json:"test_cost"`
	QualityRatio    float64            `json:"quality_ratio"` // test quality / full-information router's
	CostRatio       float64            `json:"cost_ratio"`
	Regret          float64            `json:"regret"` // full-information quality − test quality
	Shares          map[string]float64 `json:"shares"` // served traffic per model
}

// Added reports what happened to the model added mid-simulation.
type Added struct {
	Strategy         string `json:"strategy"`
	Model            string `json:"model"`
	AddedAt          int    `json:"added_at"`
	FirstServedAfter int    `json:"first_served_after"` // requests after it was added
	LearnedAfter     int    `json:"learned_after"`      // requests after it was added until a retrain had MinObservations of its outcomes (-1: never)
	Observations     int    `json:"observations"`
}

// Result is the outcome of Run.
type Result struct {
	Reference struct {
		Quality float64 `json:"quality"`
		Cost    float64 `json:"cost"`
	} `json:"full_information_router"`
	Rounds []Round  `json:"rounds"`
	Added  []Added  `json:"added_models,omitempty"`
	Test   int      `json:"test_prompts"`
	Train  int      `json:"train_prompts"`
	Pool   []string `json:"pool"`
}

// Run simulates every strategy.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Requests <= 0 || cfg.RetrainEvery <= 0 {
		return nil, fmt.Errorf("simulate: requests %d and retrain interval %d must be positive", cfg.Requests, cfg.RetrainEvery)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b := cfg.Bench
	var train, test []int
	for i, id := range b.PromptIDs {
		if training.InHoldout(id, "simulate", cfg.TestShare) {
			test = append(test, i)
		} else {
			train = append(train, i)
		}
	}
	if len(train) == 0 || len(test) == 0 {
		return nil, fmt.Errorf("simulate: %d training and %d test prompts", len(train), len(test))
	}
	if cfg.AddModel != "" {
		if _, ok := indexOf(b.Models, cfg.AddModel); !ok {
			return nil, fmt.Errorf("simulate: model to add %q is not in the pool %v", cfg.AddModel, b.Models)
		}
	}
	res := &Result{Test: len(test), Train: len(train), Pool: b.Models}
	// the reference: trained on full information over the training prompts
	refModel, _, err := (&training.Trainer{Settings: cfg.Settings}).Fit(ctx, fullInformation(b, train), training.Job{
		Models: b.Models, Spec: cfg.Spec, ValidationShare: 0.1, SplitSalt: "validation"})
	if err != nil {
		return nil, fmt.Errorf("simulate: full-information router: %w", err)
	}
	refRouter, err := newRouter(refModel, b, b.Models, policy.Config{Name: "full-information", QualityBar: cfg.QualityBar})
	if err != nil {
		return nil, err
	}
	res.Reference.Quality, res.Reference.Cost, err = score(refRouter, b, test)
	if err != nil {
		return nil, err
	}
	cfg.Log.Info("full-information router", "test_quality", res.Reference.Quality, "test_cost", res.Reference.Cost)
	for _, st := range cfg.Strategies {
		rounds, added, err := runStrategy(ctx, cfg, st, train, test, res)
		if err != nil {
			return nil, fmt.Errorf("simulate %s: %w", st.Name, err)
		}
		res.Rounds = append(res.Rounds, rounds...)
		if added != nil {
			res.Added = append(res.Added, *added)
		}
	}
	return res, nil
}

func runStrategy(ctx context.Context, cfg Config, st Strategy, train, test []int, res *Result) ([]Round, *Added, error) {
	b := cfg.Bench
	dir := filepath.Join(cfg.WorkDir, safeName(st.Name))
	if err := os.RemoveAll(dir); err != nil {
		return nil, nil, err
	}
	pool := append([]string(nil), b.Models...)
	if cfg.AddModel != "" {
		pool = remove(pool, cfg.AddModel)
	}
	// starting from no logs: a predictor that knows nothing (0.5 for all)
	m, err := classifier.NewModel(cfg.Spec, pool, cfg.Settings.EmbeddingDim, cfg.Settings.Hidden)
	if err != nil {
		return nil, nil, err
	}
	m.Init(rand.New(rand.NewSource(cfg.Seed)))
	m.Meta.Version = "untrained"
	pcfg := policy.Config{Name: st.Name, Version: "0", QualityBar: cfg.QualityBar, Exploration: st.Exploration}
	rng := rand.New(rand.NewSource(cfg.Seed))
	var rounds []Round
	var added *Added
	served := 0
	for round := 1; served < cfg.Requests; round++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		catModels := pool // with an added model: the predictor may not have its head yet
		rc := pcfg
		if added != nil {
			rc.NewModels = &cfg.NewModels
		}
		router, err := newRouter(m, b, catModels, rc)
		if err != nil {
			return nil, nil, err
		}
		n := min(cfg.RetrainEvery, cfg.Requests-served)
		if cfg.AddModel != "" && added == nil && served+n > cfg.AddAt && served < cfg.AddAt {
			n = cfg.AddAt - served // the round ends where the model is added
		}
		r, err := serveRound(ctx, cfg, st, router, dir, round, train, rng, n, served, added)
		if err != nil {
			return nil, nil, err
		}
		served += n
		r.Requests = served
		// retrain from the logs alone
		decisions, outcomes, err := datasets.ReadLogDir(dir)
		if err != nil {
			return nil, nil, err
		}
		justAdded := cfg.AddModel != "" && added == nil && served >= cfg.AddAt
		if added != nil && added.LearnedAfter < 0 {
			obs := 0
			for _, o := range outcomes {
				if o.Model == cfg.AddModel {
					obs++
				}
			}
			added.Observations = obs
			if obs >= cfg.NewModels.MinObservations && obs > 0 {
				added.LearnedAfter = served - added.AddedAt
			}
		}
		tr := &training.Trainer{Settings: cfg.Settings}
		cat, err := catalogue(b, pool)
		if err != nil {
			return nil, nil, err
		}
		next, _, err := tr.Fit(ctx, nil, training.Job{Models: pool, Spec: cfg.Spec, ValidationShare: 0.1, SplitSalt: "validation",
			Catalogue: cat, Logs: &training.Logs{Decisions: decisions, Outcomes: outcomes, Clip: cfg.Clip}})
		if err != nil {
			return nil, nil, fmt.Errorf("round %d: retrain: %w", round, err)
		}
		m = next
		if justAdded {
			// from the next round on, the catalogue has the model and the
			// predictor does not: it is served with the prior and explored
			// under NewModels until a retrain learns its head
			added = &Added{Strategy: st.Name, Model: cfg.AddModel, AddedAt: served, FirstServedAfter: -1, LearnedAfter: -1}
			pool = append(pool, cfg.AddModel)
		}
		greedy, err := newRouter(m, b, m.Meta.Models, policy.Config{Name: "greedy", QualityBar: cfg.QualityBar})
		if err != nil {
			return nil, nil, err
		}
		if r.TestQuality, r.TestCost, err = score(greedy, b, test); err != nil {
			return nil, nil, err
		}
		r.QualityRatio = r.TestQuality / res.Reference.Quality
		r.CostRatio = r.TestCost / res.Reference.Cost
		r.Regret = res.Reference.Quality - r.TestQuality
		rounds = append(rounds, r)
		cfg.Log.Info("round", "strategy", st.Name, "round", round, "requests", served, "test_quality", r.TestQuality,
			"test_cost", r.TestCost, "quality_ratio", r.QualityRatio, "cost_ratio", r.CostRatio, "exploration", r.ExplorationRate)
	}
	return rounds, added, nil
}

// serveRound sends n requests through the service, started afresh in
// process on the strategy's log folder (as a restarted server would be),
// answering each with the chosen model's outcome.
func serveRound(ctx context.Context, cfg Config, st Strategy, router *policy.Router, dir string, round int, train []int, rng *rand.Rand, n, served int, added *Added) (_ Round, err error) {
	b := cfg.Bench
	r := Round{Strategy: st.Name, Round: round, Shares: map[string]float64{}}
	sc := serving.DefaultConfig()
	sc.InstanceID = fmt.Sprintf("%s-r%d", safeName(st.Name), round)
	sc.ExploreSeed = uint64(cfg.Seed)
	cat, err := catalogue(b, router.Models())
	if err != nil {
		return r, err
	}
	sc.MaxInFlight, sc.RequestTimeout = 0, 0 // one request at a time, in process
	svc, err := serving.Open(ctx, serving.Options{Config: sc, LogDir: dir, Writer: "simulate", Log: cfg.Log,
		Load: func(func()) (*serving.Routing, error) { return serving.SingleRouting(router, cat), nil }})
	if err != nil {
		return r, err
	}
	defer func() { // on an error: the logs are flushed all the same
		if cerr := closeService(svc); err == nil {
			err = cerr
		}
	}()
	h := svc.Handler()
	for k := 0; k < n; k++ {
		i := train[rng.Intn(len(train))]
		in := b.Inputs[i]
		var resp serving.RouteResponse
		if err := call(h, "/v1/route", map[string]any{"prompt": in.Prompt, "task": in.Task, "prompt_id": b.PromptIDs[i]}, &resp); err != nil {
			return r, err
		}
		j, ok := indexOf(b.Models, resp.Model)
		if !ok {
			return r, fmt.Errorf("the server chose %q, not in the pool", resp.Model)
		}
		if added != nil && resp.Model == added.Model && added.FirstServedAfter < 0 {
			added.FirstServedAfter = served + k - added.AddedAt
		}
		fb := map[string]any{"decision_id": resp.DecisionID, "quality": b.Quality[i][j], "cost_usd": b.Cost[i][j],
			"output_tokens": int64(b.OutTokens[i][j]), "input_tokens": b.InputTokens[i]}
		var fr serving.FeedbackResponse
		if err := call(h, "/v1/feedback", fb, &fr); err != nil {
			return r, err
		}
		r.OnlineQuality += b.Quality[i][j]
		r.OnlineCost += b.Cost[i][j]
		r.Shares[resp.Model]++
		if resp.Explored {
			r.ExplorationRate++
		}
	}
	if err := closeService(svc); err != nil {
		return r, err
	}
	fn := float64(n)
	r.OnlineQuality /= fn
	r.OnlineCost /= fn
	r.ExplorationRate /= fn
	for m := range r.Shares {
		r.Shares[m] /= fn
	}
	return r, nil
}

// call sends one JSON request through the server's handler.
func call(h http.Handler, path string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(b)))
	if rec.Code != http.StatusOK {
		return fmt.Errorf("%s: %d %s", path, rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	return json.Unmarshal(rec.Body.Bytes(), out)
}

// score routes the test prompts greedily and returns the true average
// quality and cost.
func score(r *policy.Router, b *eval.Bench, test []int) (float64, float64, error) {
	var q, c float64
	for _, i := range test {
		d, err := r.Route(policy.Request{Input: b.Inputs[i]})
		if err != nil {
			return 0, 0, err
		}
		j, _ := indexOf(b.Models, d.Chosen)
		q += b.Quality[i][j]
		c += b.Cost[i][j]
	}
	n := float64(len(test))
	return q / n, c / n, nil
}

func newRouter(m *classifier.Model, b *eval.Bench, catModels []string, cfg policy.Config) (*policy.Router, error) {
	cat, err := catalogue(b, catModels)
	if err != nil {
		return nil, err
	}
	return policy.ModelRouter(m, cat, cfg)
}

func catalogue(b *eval.Bench, models []string) (*datasets.Catalogue, error) {
	var ps []datasets.ModelPrice
	for _, name := range models {
		j, ok := indexOf(b.Models, name)
		if !ok {
			return nil, fmt.Errorf("model %q not in the pool", name)
		}
		ps = append(ps, b.Prices[j])
	}
	return datasets.NewCatalogue(ps)
}

// fullInformation is the training prompts with every pool model's outcome.
func fullInformation(b *eval.Bench, train []int) *datasets.Dataset {
	cat, _ := datasets.NewCatalogue(b.Prices)
	ds := &datasets.Dataset{Catalogue: cat}
	for _, i := range train {
		ds.Prompts = append(ds.Prompts, datasets.PromptRecord{PromptID: b.PromptIDs[i], Prompt: b.Inputs[i].Prompt, Task: b.Inputs[i].Task})
		for j, m := range b.Models {
			ds.Outcomes = append(ds.Outcomes, datasets.OutcomeRecord{PromptID: b.PromptIDs[i], Model: m, Quality: b.Quality[i][j],
				CostUSD: b.Cost[i][j], OutputTokens: int64(b.OutTokens[i][j]), Source: datasets.SourceBenchmark})
		}
	}
	return ds
}

func indexOf(xs []string, x string) (int, bool) {
	for i, y := range xs {
		if y == x {
			return i, true
		}
	}
	return -1, false
}

func remove(xs []string, x string) []string {
	var out []string
	for _, y := range xs {
		if y != x {
			out = append(out, y)
		}
	}
	return out
}

func safeName(s string) string {
	return strings.NewReplacer(":", "-", "/", "-", " ", "-").Replace(s)
}

// closeService stops a round's service, its logs flushed to Parquet within
// a minute.
func closeService(svc *serving.Service) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return svc.Close(ctx)
}
