package ope_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"switchyard/datasets/synthetic"
	"switchyard/experiments/ope"
)

// handRecords are three two-action records whose estimates are worked out
// by hand in TestEstimatorsMatchHandComputedValues.
func handRecords() []ope.Record {
	return []ope.Record{
		{Logged: 0, Propensity: 0.5, Reward: 1, Cost: 0.2, Target: []float64{1, 0},
			PredReward: []float64{0.8, 0.4}, PredCost: []float64{0.1, 0.5}},
		{Logged: 1, Propensity: 0.25, Reward: 0, Cost: 0.6, Target: []float64{0.5, 0.5},
			PredReward: []float64{0.6, 0.3}, PredCost: []float64{0.2, 0.4}},
		{Logged: 0, Propensity: 0.8, Reward: 1, Cost: 0.1, Target: []float64{0, 1},
			PredReward: []float64{0.9, 0.7}, PredCost: []float64{0.1, 0.3}, LoggingProbs: []float64{0.8, 0.2}},
	}
}

func TestEstimatorsMatchHandComputedValues(t *testing.T) {
	// Weights are 1/0.5 = 2, 0.5/0.25 = 2 and 0/0.8 = 0.
	// DR quality terms: 0.8+2(1-0.8) = 1.2, 0.45+2(0-0.3) = -0.15, 0.7.
	// DR cost terms: 0.1+2(0.2-0.1) = 0.3, 0.3+2(0.6-0.4) = 0.7, 0.3.
	tests := []struct {
		name      string
		maxWeight float64
		quality   map[string]float64
		cost      map[string]float64
		ess       float64
	}{
		{"unclipped", 0,
			map[string]float64{ope.IPS: 2.0 / 3, ope.SNIPS: 0.5, ope.DR: 1.75 / 3},
			map[string]float64{ope.IPS: 1.6 / 3, ope.SNIPS: 0.4, ope.DR: 1.3 / 3}, 2},
		{"clip above every weight changes nothing", 5,
			map[string]float64{ope.IPS: 2.0 / 3, ope.SNIPS: 0.5, ope.DR: 1.75 / 3},
			map[string]float64{ope.IPS: 1.6 / 3, ope.SNIPS: 0.4, ope.DR: 1.3 / 3}, 2},
		// Weights become 1.5, 1.5, 0.
		{"clip at 1.5", 1.5,
			map[string]float64{ope.IPS: 0.5, ope.SNIPS: 0.5, ope.DR: (1.1 + 0 + 0.7) / 3},
			map[string]float64{ope.IPS: 1.2 / 3, ope.SNIPS: 0.4, ope.DR: (0.25 + 0.6 + 0.3) / 3}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := ope.Value(handRecords(), ope.Config{Bootstrap: 50, MaxWeight: tt.maxWeight})
			require.NoError(t, err)
			assert.Equal(t, 3, rep.N)
			assert.InDelta(t, 2.0/3, rep.MatchRate, 1e-12)
			assert.InDelta(t, tt.ess, rep.ESS, 1e-12)
			for k, want := range tt.quality {
				assert.InDelta(t, want, rep.Quality[k].Value, 1e-12, "quality %s", k)
			}
			for k, want := range tt.cost {
				assert.InDelta(t, want, rep.Cost[k].Value, 1e-12, "cost %s", k)
			}
		})
	}
}

func TestClippingCapsWeights(t *testing.T) {
	// Every record matched with propensity 0.001: weight 1000, capped at 10.
	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]ope.Record, 200)
	for i := range recs {
		recs[i] = ope.Record{Logged: 0, Propensity: 0.001, Reward: float64(rng.IntN(2)), Cost: 1,
			Target: []float64{1, 0}, PredReward: []float64{0.5, 0.5}, PredCost: []float64{1, 1}}
	}
	const capW = 10.0
	rep, err := ope.Value(recs, ope.Config{Bootstrap: 200, MaxWeight: capW})
	require.NoError(t, err)
	var mean float64
	for _, r := range recs {
		mean += r.Reward
	}
	mean /= float64(len(recs))
	assert.InDelta(t, capW*mean, rep.Quality[ope.IPS].Value, 1e-9, "ips uses clipped weights")
	assert.InDelta(t, capW, rep.Cost[ope.IPS].Value, 1e-9)
	assert.LessOrEqual(t, rep.Quality[ope.IPS].Hi, capW, "no bootstrap replicate exceeds the cap")
	assert.InDelta(t, float64(len(recs)), rep.ESS, 1e-9, "equal clipped weights give ESS = n")
	assert.True(t, hasWarning(rep, "clipped 200 of 200 weights"), "warnings: %q", rep.Warnings)

	unclipped, err := ope.Value(recs, ope.Config{Bootstrap: 200})
	require.NoError(t, err)
	assert.InDelta(t, 1000*mean, unclipped.Quality[ope.IPS].Value, 1e-9)
	assert.False(t, hasWarning(unclipped, "clipped"))
}

func TestInvalidRecordErrorNamesIndexAndField(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *ope.Record)
		field  string
	}{
		{"zero propensity", func(r *ope.Record) { r.Propensity = 0 }, "Propensity"},
		{"propensity above one", func(r *ope.Record) { r.Propensity = 1.5 }, "Propensity"},
		{"NaN propensity", func(r *ope.Record) { r.Propensity = math.NaN() }, "Propensity"},
		{"propensity disagrees with LoggingProbs", func(r *ope.Record) { r.Propensity = 0.5 }, "Propensity"},
		{"NaN reward", func(r *ope.Record) { r.Reward = math.NaN() }, "Reward"},
		{"reward above one", func(r *ope.Record) { r.Reward = 2 }, "Reward"},
		{"negative cost", func(r *ope.Record) { r.Cost = -1 }, "Cost"},
		{"infinite cost", func(r *ope.Record) { r.Cost = math.Inf(1) }, "Cost"},
		{"empty target", func(r *ope.Record) { r.Target = nil }, "Target"},
		{"target not summing to one", func(r *ope.Record) { r.Target = []float64{0.5, 0.49} }, "Target"},
		{"NaN target entry", func(r *ope.Record) { r.Target = []float64{math.NaN(), 1} }, "Target[0]"},
		{"negative target entry", func(r *ope.Record) { r.Target = []float64{-0.5, 1.5} }, "Target[0]"},
		{"logged below range", func(r *ope.Record) { r.Logged = -1 }, "Logged"},
		{"logged above range", func(r *ope.Record) { r.Logged = 2 }, "Logged"},
		{"short PredReward", func(r *ope.Record) { r.PredReward = []float64{0.5} }, "PredReward"},
		{"NaN PredReward", func(r *ope.Record) { r.PredReward = []float64{0.5, math.NaN()} }, "PredReward[1]"},
		{"long PredCost", func(r *ope.Record) { r.PredCost = []float64{1, 2, 3} }, "PredCost"},
		{"infinite PredCost", func(r *ope.Record) { r.PredCost = []float64{1, math.Inf(-1)} }, "PredCost[1]"},
		{"short LoggingProbs", func(r *ope.Record) { r.LoggingProbs = []float64{1} }, "LoggingProbs"},
		{"LoggingProbs not summing to one", func(r *ope.Record) { r.LoggingProbs = []float64{0.8, 0.3} }, "LoggingProbs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := handRecords()
			tt.mutate(&recs[2])
			_, err := ope.Value(recs, ope.Config{Bootstrap: 10})
			require.Error(t, err)
			var re *ope.RecordError
			require.True(t, errors.As(err, &re), "error %v is not a *RecordError", err)
			assert.Equal(t, 2, re.Index)
			assert.Equal(t, tt.field, re.Field)
			assert.Contains(t, err.Error(), "record 2: "+tt.field+":")
			assert.Equal(t, strings.ToLower(err.Error()[:1]), err.Error()[:1], "error strings start lower case")
		})
	}
}

func TestInvalidInputIsRejected(t *testing.T) {
	tests := []struct {
		name string
		recs []ope.Record
		cfg  ope.Config
		want string
	}{
		{"no records", nil, ope.Config{}, "no records"},
		{"negative bootstrap", handRecords(), ope.Config{Bootstrap: -1}, "Bootstrap"},
		{"single bootstrap", handRecords(), ope.Config{Bootstrap: 1}, "Bootstrap"},
		{"level of one", handRecords(), ope.Config{Level: 1}, "Level"},
		{"NaN level", handRecords(), ope.Config{Level: math.NaN()}, "Level"},
		{"negative clip", handRecords(), ope.Config{MaxWeight: -1}, "MaxWeight"},
		{"infinite clip", handRecords(), ope.Config{MaxWeight: math.Inf(1)}, "MaxWeight"},
		{"overlap share above one", handRecords(), ope.Config{LowOverlapESS: 2}, "LowOverlapESS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ope.Value(tt.recs, tt.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestWarningsFlagFragileEstimates(t *testing.T) {
	// twoActions builds n records on two actions where the logging policy
	// plays action 0 with probability p0 and the target is fixed.
	twoActions := func(n int, p0 float64, target []float64, withProbs bool, logged func(i int) int) []ope.Record {
		recs := make([]ope.Record, n)
		for i := range recs {
			a := logged(i)
			prop := p0
			if a == 1 {
				prop = 1 - p0
			}
			recs[i] = ope.Record{Logged: a, Propensity: prop, Reward: float64(i % 2), Cost: 0.01,
				Target: target, PredReward: []float64{0.5, 0.5}, PredCost: []float64{0.01, 0.01}}
			if withProbs {
				recs[i].LoggingProbs = []float64{p0, 1 - p0}
			}
		}
		return recs
	}
	tests := []struct {
		name      string
		recs      []ope.Record
		cfg       ope.Config
		want      []string // each a prefix of one warning, in order
		snipsNaN  bool
		wantMatch float64
	}{
		{"target equal to a well-explored logging policy", twoActions(100, 0.5, []float64{0.5, 0.5}, true, func(i int) int { return i % 2 }),
			ope.Config{}, nil, false, 1},
		{"target never takes the logged action", twoActions(100, 0.5, []float64{0, 1}, false, func(int) int { return 0 }),
			ope.Config{}, []string{"low overlap", "no match"}, true, 0},
		{"rarely explored target action", twoActions(100, 0.995, []float64{0, 1}, true, func(i int) int { return boolInt(i == 0) }),
			ope.Config{}, []string{"low overlap", "unexplored target actions", "snips undefined in"}, false, 0.01},
		{"tiny propensity", twoActions(100, 0.9995, []float64{0.5, 0.5}, false, func(i int) int { return boolInt(i < 2) }),
			ope.Config{}, []string{"low overlap", "tiny propensities"}, false, 1},
		{"clip", twoActions(100, 0.9995, []float64{0.5, 0.5}, false, func(i int) int { return boolInt(i < 2) }),
			ope.Config{MaxWeight: 2}, []string{"tiny propensities", "clipped 2 of 100"}, false, 1},
		{"threshold raised", twoActions(100, 0.5, []float64{0, 1}, false, func(i int) int { return i % 2 }),
			ope.Config{LowOverlapESS: 0.6}, []string{"low overlap"}, false, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := ope.Value(tt.recs, tt.cfg)
			require.NoError(t, err)
			require.Len(t, rep.Warnings, len(tt.want), "warnings: %q", rep.Warnings)
			for i, w := range tt.want {
				assert.True(t, strings.HasPrefix(rep.Warnings[i], w), "warning %d %q does not start with %q", i, rep.Warnings[i], w)
			}
			assert.Equal(t, tt.snipsNaN, math.IsNaN(rep.Quality[ope.SNIPS].Value))
			assert.InDelta(t, tt.wantMatch, rep.MatchRate, 1e-12)
		})
	}
}

func TestNoMatchLeavesDRAtTheDirectModel(t *testing.T) {
	recs := handRecords()
	for i := range recs {
		recs[i].Target = []float64{0, 0}
		recs[i].Target[1-recs[i].Logged] = 1
		recs[i].LoggingProbs = nil
	}
	rep, err := ope.Value(recs, ope.Config{Bootstrap: 20})
	require.NoError(t, err)
	assert.InDelta(t, 0, rep.ESS, 0)
	assert.InDelta(t, 0, rep.Quality[ope.IPS].Value, 0)
	assert.True(t, math.IsNaN(rep.Quality[ope.SNIPS].Value))
	assert.True(t, math.IsNaN(rep.Quality[ope.SNIPS].Lo))
	// Direct model on the unlogged actions: 0.4, 0.6, 0.7.
	assert.InDelta(t, (0.4+0.6+0.7)/3, rep.Quality[ope.DR].Value, 1e-12)
}

func TestSameSeedGivesIdenticalReport(t *testing.T) {
	recs := handRecords()
	cfg := ope.Config{Bootstrap: 300, Seed: 42}
	a, err := ope.Value(recs, cfg)
	require.NoError(t, err)
	b, err := ope.Value(recs, cfg)
	require.NoError(t, err)
	require.Equal(t, a, b)

	cfg.Seed = 43
	c, err := ope.Value(recs, cfg)
	require.NoError(t, err)
	assert.Equal(t, a.Quality[ope.DR].Value, c.Quality[ope.DR].Value, "the point estimate does not depend on the seed")
	assert.NotEqual(t, a.Quality[ope.DR].StdErr, c.Quality[ope.DR].StdErr, "the bootstrap does")
}

// Records added to an Accumulator one at a time give Value's report; an
// invalid one is refused by its position and leaves the others' estimate
// as it was.
func TestAccumulatorAddsWhatValueTakesAtOnce(t *testing.T) {
	cfg := ope.Config{Bootstrap: 100, Seed: 5}
	want, err := ope.Value(handRecords(), cfg)
	require.NoError(t, err)
	acc, err := ope.NewAccumulator(cfg)
	require.NoError(t, err)
	_, err = acc.Report()
	require.ErrorContains(t, err, "no records")
	recs := handRecords()
	require.NoError(t, acc.Add(&recs[0]))
	bad := recs[1]
	bad.Propensity = 0
	err = acc.Add(&bad)
	var re *ope.RecordError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 1, re.Index)
	assert.Equal(t, "Propensity", re.Field)
	require.NoError(t, acc.Add(&recs[1]))
	require.NoError(t, acc.Add(&recs[2]))
	assert.Equal(t, 3, acc.N())
	got, err := acc.Report()
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

// The Poisson bootstrap's standard errors are the estimators' own: on
// 20,000 records, within 5% of the standard deviation of the per-record
// terms over √n (IPS and DR are means of them).
func TestBootstrapStandardErrorMatchesTheAnalyticOne(t *testing.T) {
	const n, k = 20_000, 3
	rng := rand.New(rand.NewPCG(7, 8))
	recs := make([]ope.Record, n)
	ips, dr := make([]float64, n), make([]float64, n)
	for i := range recs {
		lp := epsGreedy(k, rng.IntN(k), 0.3)
		a := draw(rng, lp)
		pred := []float64{rng.Float64(), rng.Float64(), rng.Float64()}
		r := ope.Record{Logged: a, Propensity: lp[a], Reward: float64(rng.IntN(2)), Cost: 0.01, Target: oneHot(k, 0),
			PredReward: pred, PredCost: []float64{0.01, 0.01, 0.01}}
		w := r.Target[a] / r.Propensity
		ips[i], dr[i] = w*r.Reward, pred[0]+w*(r.Reward-pred[a])
		recs[i] = r
	}
	rep, err := ope.Value(recs, ope.Config{Bootstrap: 1000, Seed: 1})
	require.NoError(t, err)
	for name, terms := range map[string][]float64{ope.IPS: ips, ope.DR: dr} {
		se := math.Sqrt(variance(terms) / n)
		assert.InEpsilon(t, se, rep.Quality[name].StdErr, 0.05, name)
		assert.InDelta(t, mean(terms), rep.Quality[name].Value, 1e-12, name)
		assert.InDelta(t, 2*1.96*se, rep.Quality[name].Hi-rep.Quality[name].Lo, 0.1*2*1.96*se, "%s: a normal interval's width", name)
	}
}

// bench is a full-information benchmark: the evaluation half of a synthetic
// workload with every model's true quality and cost, and the direct model
// fitted on the other half.
type bench struct {
	k       int
	quality [][]float64 // per evaluation context and model: observed quality (0/1)
	cost    [][]float64 // per evaluation context and model: cost in USD
	predQ   [][]float64 // direct model: mean quality of the context's task and model on the training half
	predC   [][]float64 // direct model: mean cost, likewise
}

// newBench generates a workload and splits it by prompt index parity: even
// prompts train the direct model, odd prompts are the contexts to log.
func newBench(t testing.TB, seed int64, prompts int) *bench {
	t.Helper()
	w, err := synthetic.Generate(synthetic.Config{Seed: seed, Prompts: prompts})
	require.NoError(t, err)
	names := w.Catalogue.Names()
	k := len(names)
	model := make(map[string]int, k)
	for j, n := range names {
		model[n] = j
	}
	prompt := make(map[string]int, len(w.Prompts))
	for i, p := range w.Prompts {
		prompt[p.PromptID] = i
	}
	quality := make([][]float64, len(w.Prompts))
	cost := make([][]float64, len(w.Prompts))
	for i := range quality {
		quality[i] = make([]float64, k)
		cost[i] = make([]float64, k)
	}
	for _, o := range w.Outcomes {
		i, ok := prompt[o.PromptID]
		require.True(t, ok, "outcome for unknown prompt %s", o.PromptID)
		j, ok := model[o.Model]
		require.True(t, ok, "outcome for unknown model %s", o.Model)
		quality[i][j] = o.Quality
		cost[i][j] = o.CostUSD
	}

	type agg struct {
		n    float64
		q, c []float64
	}
	byTask := map[string]*agg{}
	for i := 0; i < len(w.Prompts); i += 2 {
		a := byTask[w.Prompts[i].Task]
		if a == nil {
			a = &agg{q: make([]float64, k), c: make([]float64, k)}
			byTask[w.Prompts[i].Task] = a
		}
		a.n++
		for j := range k {
			a.q[j] += quality[i][j]
			a.c[j] += cost[i][j]
		}
	}
	for _, a := range byTask {
		for j := range k {
			a.q[j] /= a.n
			a.c[j] /= a.n
		}
	}

	b := &bench{k: k}
	for i := 1; i < len(w.Prompts); i += 2 {
		a := byTask[w.Prompts[i].Task]
		require.NotNil(t, a, "task %s has no training prompt", w.Prompts[i].Task)
		b.quality = append(b.quality, quality[i])
		b.cost = append(b.cost, cost[i])
		b.predQ = append(b.predQ, a.q)
		b.predC = append(b.predC, a.c)
	}
	return b
}

// rule is the routing rule: the cheapest model (by predicted cost) whose
// predicted quality reaches bar, else the best predicted model.
func (b *bench) rule(i int, bar float64) int {
	best, cheapest := 0, -1
	for j := range b.k {
		if b.predQ[i][j] > b.predQ[i][best] {
			best = j
		}
		if b.predQ[i][j] >= bar && (cheapest < 0 || b.predC[i][j] < b.predC[i][cheapest]) {
			cheapest = j
		}
	}
	if cheapest >= 0 {
		return cheapest
	}
	return best
}

// epsGreedy puts 1-eps on action a and spreads eps uniformly.
func epsGreedy(k, a int, eps float64) []float64 {
	p := make([]float64, k)
	for j := range p {
		p[j] = eps / float64(k)
	}
	p[a] += 1 - eps
	return p
}

func oneHot(k, a int) []float64 {
	p := make([]float64, k)
	p[a] = 1
	return p
}

// log draws one logged decision per context from logging and records it
// against target; it returns the records and the target's true mean quality
// and cost over the contexts.
func (b *bench) log(rng *rand.Rand, logging, target func(i int) []float64) (recs []ope.Record, trueQ, trueC float64) {
	recs = make([]ope.Record, len(b.quality))
	for i := range recs {
		lp := logging(i)
		a := draw(rng, lp)
		tp := target(i)
		recs[i] = ope.Record{Logged: a, Propensity: lp[a], Reward: b.quality[i][a], Cost: b.cost[i][a],
			Target: tp, PredReward: b.predQ[i], PredCost: b.predC[i], LoggingProbs: lp}
		for j, p := range tp {
			trueQ += p * b.quality[i][j]
			trueC += p * b.cost[i][j]
		}
	}
	n := float64(len(recs))
	return recs, trueQ / n, trueC / n
}

func draw(rng *rand.Rand, p []float64) int {
	u := rng.Float64()
	for j, q := range p {
		if u < q {
			return j
		}
		u -= q
	}
	return len(p) - 1
}

func TestEstimatorsOnSyntheticLogs(t *testing.T) {
	b := newBench(t, 7, 6000) // 3000 evaluation contexts
	const (
		seeds      = 20
		eps        = 0.3
		loggingBar = 0.7
		targetBar  = 0.85
	)
	logging := func(i int) []float64 { return epsGreedy(b.k, b.rule(i, loggingBar), eps) }
	target := func(i int) []float64 { return oneHot(b.k, b.rule(i, targetBar)) }

	type run struct {
		rep          *ope.Report
		trueQ, trueC float64
	}
	runs := make([]run, seeds)
	for s := range runs {
		rng := rand.New(rand.NewPCG(uint64(s), 99))
		recs, q, c := b.log(rng, logging, target)
		rep, err := ope.Value(recs, ope.Config{Bootstrap: 200, Seed: int64(s)})
		require.NoError(t, err)
		runs[s] = run{rep, q, c}
	}
	// The contexts and their outcomes are fixed; only the logging draws
	// vary, so the truth is the same for every seed.
	trueQ, trueC := runs[0].trueQ, runs[0].trueC

	// Over 200-300 logging seeds on workloads 7, 8 and 9 the quality DR
	// interval covered 93-96% of the time (heavy weights make the percentile
	// bootstrap slightly liberal), so 18 of 20 is met by these seeds but is
	// not a wide margin: a change to the synthetic generator can move it.
	t.Run("true value inside the 95% interval in at least 18 of 20 seeds", func(t *testing.T) {
		covered := map[string]int{}
		for _, r := range runs {
			for k, e := range r.rep.Quality {
				if e.Lo <= trueQ && trueQ <= e.Hi {
					covered["quality "+k]++
				}
			}
			for k, e := range r.rep.Cost {
				if e.Lo <= trueC && trueC <= e.Hi {
					covered["cost "+k]++
				}
			}
		}
		t.Logf("truth: quality %.4f, cost %.6f USD; coverage out of %d: %v", trueQ, trueC, seeds, covered)
		assert.GreaterOrEqual(t, covered["quality dr"], 18)
		assert.GreaterOrEqual(t, covered["quality ips"], 18)
		assert.GreaterOrEqual(t, covered["cost dr"], 18)
	})

	t.Run("dr varies less than ips", func(t *testing.T) {
		for _, metric := range []string{"quality", "cost"} {
			est := func(r run) map[string]ope.Estimate {
				if metric == "quality" {
					return r.rep.Quality
				}
				return r.rep.Cost
			}
			var ips, dr, seIPS, seDR []float64
			for _, r := range runs {
				ips = append(ips, est(r)[ope.IPS].Value)
				dr = append(dr, est(r)[ope.DR].Value)
				seIPS = append(seIPS, est(r)[ope.IPS].StdErr)
				seDR = append(seDR, est(r)[ope.DR].StdErr)
			}
			vIPS, vDR := variance(ips), variance(dr)
			t.Logf("%s: variance over seeds ips %.3g dr %.3g (ratio %.3g); mean bootstrap stderr ips %.3g dr %.3g",
				metric, vIPS, vDR, vDR/vIPS, mean(seIPS), mean(seDR))
			assert.Less(t, vDR, vIPS, metric)
			assert.Less(t, mean(seDR), mean(seIPS), metric)
		}
	})

	t.Run("ips is unbiased on average over seeds", func(t *testing.T) {
		var ips []float64
		for _, r := range runs {
			ips = append(ips, r.rep.Quality[ope.IPS].Value)
		}
		se := math.Sqrt(variance(ips) / seeds)
		assert.InDelta(t, trueQ, mean(ips), 4*se, "mean of ips %.4f, truth %.4f", mean(ips), trueQ)
	})

	t.Run("target equal to the logging policy gives the on-policy mean", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 1))
		recs, onQ, onC := b.log(rng, logging, logging)
		var obsQ, obsC float64
		for _, r := range recs {
			obsQ += r.Reward
			obsC += r.Cost
		}
		obsQ /= float64(len(recs))
		obsC /= float64(len(recs))
		rep, err := ope.Value(recs, ope.Config{Bootstrap: 200})
		require.NoError(t, err)
		for _, k := range []string{ope.IPS, ope.SNIPS} {
			assert.InDelta(t, obsQ, rep.Quality[k].Value, 1e-9, k)
			assert.InDelta(t, obsC, rep.Cost[k].Value, 1e-12, k)
		}
		assert.InDelta(t, float64(len(recs)), rep.ESS, 1e-6, "all weights are 1")
		assert.InDelta(t, 1, rep.MatchRate, 0)
		assert.Empty(t, rep.Warnings)
		assert.True(t, rep.Quality[ope.DR].Lo <= onQ && onQ <= rep.Quality[ope.DR].Hi,
			"on-policy value %.4f outside dr interval [%.4f, %.4f]", onQ, rep.Quality[ope.DR].Lo, rep.Quality[ope.DR].Hi)
		assert.True(t, rep.Cost[ope.DR].Lo <= onC && onC <= rep.Cost[ope.DR].Hi)
	})

	t.Run("low overlap is flagged", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(2, 2))
		// The target always takes the model after the logging rule's
		// pick, which the logging policy explores with 0.01/7.
		lowEps := func(i int) []float64 { return epsGreedy(b.k, b.rule(i, loggingBar), 0.01) }
		disagree := func(i int) []float64 { return oneHot(b.k, (b.rule(i, loggingBar)+1)%b.k) }
		recs, _, _ := b.log(rng, lowEps, disagree)
		rep, err := ope.Value(recs, ope.Config{Bootstrap: 200})
		require.NoError(t, err)
		t.Logf("ESS %.2f of %d, match rate %.4f, warnings %q", rep.ESS, rep.N, rep.MatchRate, rep.Warnings)
		assert.Less(t, rep.ESS/float64(rep.N), 0.01)
		assert.True(t, hasWarning(rep, "low overlap"))
		assert.True(t, hasWarning(rep, "unexplored target actions: the target puts 100%"))
	})
}

func FuzzValue(f *testing.F) {
	f.Add(0, 0.5, 1.0, 0.2, 0.3, 0.8, 0.4)
	f.Add(1, 1e-9, 0.0, 0.0, 1.0, 0.0, 0.0)
	f.Add(0, 1.0, 1.0, 5.0, 0.0, 2.0, -1.0)
	f.Fuzz(func(t *testing.T, logged int, prop, reward, cost, t0, pr0, pc0 float64) {
		recs := handRecords()
		recs[1] = ope.Record{Logged: logged, Propensity: prop, Reward: reward, Cost: cost,
			Target: []float64{t0, 1 - t0}, PredReward: []float64{pr0, 0.5}, PredCost: []float64{pc0, 0.1}}
		rep, err := ope.Value(recs, ope.Config{Bootstrap: 20, MaxWeight: 100})
		if err != nil {
			return
		}
		for _, m := range []map[string]ope.Estimate{rep.Quality, rep.Cost} {
			for k, e := range m {
				if k == ope.SNIPS && rep.MatchRate == 0 {
					continue
				}
				if math.IsNaN(e.Value) || math.IsInf(e.Value, 0) {
					t.Fatalf("%s not finite on valid input: %+v", k, e)
				}
			}
		}
	})
}

// BenchmarkValue times Value on 10,000 seven-action records with
// 1,000 bootstrap resamples (each record drawn into each resample).
func BenchmarkValue(b *testing.B) {
	const n, k = 10_000, 7
	rng := rand.New(rand.NewPCG(3, 4))
	recs := make([]ope.Record, n)
	for i := range recs {
		base := rng.IntN(k)
		lp := epsGreedy(k, base, 0.3)
		a := draw(rng, lp)
		pred := make([]float64, k)
		pc := make([]float64, k)
		for j := range pred {
			pred[j] = rng.Float64()
			pc[j] = 0.001 * float64(j+1)
		}
		recs[i] = ope.Record{Logged: a, Propensity: lp[a], Reward: float64(rng.IntN(2)), Cost: pc[a],
			Target: oneHot(k, (base+i%2)%k), PredReward: pred, PredCost: pc, LoggingProbs: lp}
	}
	cfg := ope.Config{Bootstrap: 1000, Seed: 1}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ope.Value(recs, cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*n*1000/b.Elapsed().Seconds(), "resampled-records/s")
}

func hasWarning(rep *ope.Report, prefix string) bool {
	for _, w := range rep.Warnings {
		if strings.HasPrefix(w, prefix) {
			return true
		}
	}
	return false
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

func variance(x []float64) float64 {
	m := mean(x)
	var s float64
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return s / float64(len(x)-1)
}
