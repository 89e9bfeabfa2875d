package eval

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"

	"switchyard/classifier/policy"
	"switchyard/datasets"
	"switchyard/training"
	"switchyard/training/frontier"
)

// Config sets up an evaluation run.
type Config struct {
	TestShare float64 // share of prompts in the test part (single split)
	Folds     int     // > 1: K-fold cross-validation instead of one split
	Salt      string  // salt of the split by prompt id
	Bars      []float64
	Lambdas   int // number of λ values in the trade-off sweep
	Learned   *Learned
	Baselines []Predictor // learned baselines routed through the same rule
	// Decisions, when set, receives "prompt_id,setting,model" rows for
	// every routing decision on the test part(s).
	Decisions io.Writer
	// TaskLabels says which prompts' task labels the routers see.
	TaskLabels TaskLabels
}

// TaskLabels says where an evaluation keeps the prompts' task labels.
type TaskLabels string

// The task-label settings of an evaluation.
const (
	// LabelsUse keeps every prompt's label, in training and test parts.
	LabelsUse TaskLabels = "use"
	// LabelsTrainOnly keeps the training part's labels and removes the
	// test part's: a router trained on labelled benchmarks or
	// tenant-labelled logs that then serves unlabelled traffic.
	LabelsTrainOnly TaskLabels = "train-only"
	// LabelsIgnore removes every label: no router sees a task anywhere.
	LabelsIgnore TaskLabels = "ignore"
)

// ParseTaskLabels reads a TaskLabels setting ("" is LabelsUse).
func ParseTaskLabels(s string) (TaskLabels, error) {
	switch t := TaskLabels(s); t {
	case "":
		return LabelsUse, nil
	case LabelsUse, LabelsTrainOnly, LabelsIgnore:
		return t, nil
	}
	return "", fmt.Errorf("task labels %q: want use, train-only or ignore", s)
}

// withoutTasks returns a view of b in which the prompts at idx have no task
// label (their features carry none either); b itself is unchanged.
func (b *Bench) withoutTasks(idx []int) *Bench {
	v := *b
	v.Tasks = slices.Clone(b.Tasks)
	v.Inputs = slices.Clone(b.Inputs)
	v.Vecs = slices.Clone(b.Vecs)
	for _, i := range idx {
		v.Tasks[i] = ""
		v.Inputs[i].Task = ""
		v.Vecs[i].TaskID = 0
	}
	return &v
}

// all is every prompt index of b.
func (b *Bench) all() []int {
	idx := make([]int, len(b.PromptIDs))
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// DefaultBars is the quality-bar sweep: 0 to 1 in steps of 0.02.
func DefaultBars() []float64 {
	var out []float64
	for i := 0; i <= 50; i++ {
		out = append(out, float64(i)/50)
	}
	return out
}

// RouterResult is one router's curve and figures on one test part.
type RouterResult struct {
	Name              string           `json:"name"`
	Kind              string           `json:"kind"` // learned, baseline, single, mixing, oracle
	Points            []frontier.Point `json:"points"`
	Envelope          []frontier.Point `json:"envelope"`
	AIQ               float64          `json:"aiq"`
	QualityAtBestCost float64          `json:"quality_at_best_single_cost"`
	CostFor95         *float64         `json:"cost_for_95pct_of_best,omitempty"`  // fraction of the best single model's cost
	CostFor100        *float64         `json:"cost_for_100pct_of_best,omitempty"` // nil: never reached
	APGR              *float64         `json:"apgr,omitempty"`
	CPT50             *float64         `json:"cpt50,omitempty"`
	CPT80             *float64         `json:"cpt80,omitempty"`
}

// Calibration is one model's calibration on the test part.
type Calibration struct {
	ECE  float64 `json:"ece"`
	Bins []Bin   `json:"bins"`
}

// Fold is the evaluation of one test part.
type Fold struct {
	Fold         int                    `json:"fold"`
	TrainPrompts int                    `json:"train_prompts"`
	TestPrompts  int                    `json:"test_prompts"`
	CostRange    [2]float64             `json:"cost_range"` // cheapest and dearest single model's average cost
	BestSingle   string                 `json:"best_single_model"`
	Routers      []RouterResult         `json:"routers"`
	Calibration  map[string]Calibration `json:"calibration"` // learned router, per model
}

// Summary is a router's figures over folds: mean and standard deviation.
type Summary struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	AIQ        *Stat  `json:"aiq"`
	QualityAt  *Stat  `json:"quality_at_best_single_cost"`
	CostFor95  *Stat  `json:"cost_for_95pct_of_best,omitempty"` // nil when some fold never reached it
	CostFor100 *Stat  `json:"cost_for_100pct_of_best,omitempty"`
	APGR       *Stat  `json:"apgr,omitempty"`
	CPT50      *Stat  `json:"cpt50,omitempty"`
	CPT80      *Stat  `json:"cpt80,omitempty"`
}

// Stat is a mean and standard deviation over folds (0 with one fold).
type Stat struct {
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
}

// Report is the result of Run.
type Report struct {
	Pool       []string     `json:"pool"`
	Prompts    int          `json:"prompts"`
	Dropped    int          `json:"dropped_prompts"`
	TwoModel   bool         `json:"two_model_pool"`
	TaskLabels TaskLabels   `json:"task_labels"`
	Folds      []Fold       `json:"folds"`
	Summaries  []Summary    `json:"summary"`
	Versus     []Comparison `json:"learned_versus"`
}

// Comparison is the learned router's AIQ minus another router's, fold by
// fold (the folds are the same prompts for both: a paired difference),
// with its mean and a 95% confidence interval over folds (Student's t with
// folds − 1 degrees of freedom; none with one fold).
type Comparison struct {
	Router  string    `json:"router"`
	Kind    string    `json:"kind"`
	PerFold []float64 `json:"per_fold"`
	Mean    float64   `json:"mean"`
	Lo      *float64  `json:"ci95_lo,omitempty"`
	Hi      *float64  `json:"ci95_hi,omitempty"`
}

// BestBaseline is the comparison with the best router that is neither the
// learned one, an oracle nor a single model (by mean AIQ); nil when there
// is none.
func (r *Report) BestBaseline() *Comparison {
	var best *Comparison
	for i := range r.Versus {
		c := &r.Versus[i]
		if c.Kind != "baseline" && c.Kind != "mixing" {
			continue
		}
		if best == nil || c.Mean < best.Mean { // the smallest lead: the strongest baseline
			best = c
		}
	}
	return best
}

// Split returns the train and test prompt indices of fold k (of cfg.Folds,
// or the single split when Folds <= 1), by a hash of the prompt id.
func (c Config) Split(b *Bench, k int) (train, test []int) {
	for i, id := range b.PromptIDs {
		var inTest bool
		if c.Folds > 1 {
			inTest = int(datasets.SaltedHash(c.Salt, id)%uint64(c.Folds)) == k
		} else {
			inTest = training.InHoldout(id, c.Salt, c.TestShare)
		}
		if inTest {
			test = append(test, i)
		} else {
			train = append(train, i)
		}
	}
	return train, test
}

// Run evaluates the learned router and every baseline on b.
func Run(ctx context.Context, b *Bench, cfg Config) (*Report, error) {
	if cfg.Learned == nil {
		return nil, fmt.Errorf("eval: no learned router configured")
	}
	if len(cfg.Bars) == 0 {
		cfg.Bars = DefaultBars()
	}
	folds := max(1, cfg.Folds)
	labels, err := ParseTaskLabels(string(cfg.TaskLabels))
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	if labels == LabelsIgnore {
		b = b.withoutTasks(b.all())
	}
	rep := &Report{Pool: b.Models, Prompts: len(b.PromptIDs), Dropped: b.Dropped, TwoModel: len(b.Models) == 2, TaskLabels: labels}
	if cfg.Decisions != nil {
		if _, err := io.WriteString(cfg.Decisions, "prompt_id,setting,model\n"); err != nil {
			return nil, fmt.Errorf("eval: write decisions: %w", err)
		}
	}
	for k := 0; k < folds; k++ {
		train, test := cfg.Split(b, k)
		if len(train) == 0 || len(test) == 0 {
			return nil, fmt.Errorf("eval: fold %d has %d training and %d test prompts", k, len(train), len(test))
		}
		fb := b
		if labels == LabelsTrainOnly {
			fb = b.withoutTasks(test)
		}
		f, err := runFold(ctx, fb, cfg, k, train, test)
		if err != nil {
			return nil, err
		}
		rep.Folds = append(rep.Folds, *f)
	}
	rep.Summaries = summarise(rep.Folds)
	rep.Versus = versus(rep.Folds)
	return rep, nil
}

// versus pairs the learned router's AIQ with every other router's, fold by
// fold.
func versus(folds []Fold) []Comparison {
	learned := -1
	for r, x := range folds[0].Routers {
		if x.Kind == "learned" {
			learned = r
		}
	}
	if learned < 0 {
		return nil
	}
	var out []Comparison
	for r, x := range folds[0].Routers {
		if r == learned {
			continue
		}
		c := Comparison{Router: x.Name, Kind: x.Kind}
		for _, f := range folds {
			c.PerFold = append(c.PerFold, f.Routers[learned].AIQ-f.Routers[r].AIQ)
		}
		c.Mean = stat.Mean(c.PerFold, nil)
		if n := len(c.PerFold); n > 1 {
			half := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}.Quantile(0.975) *
				stat.StdDev(c.PerFold, nil) / math.Sqrt(float64(n))
			lo, hi := c.Mean-half, c.Mean+half
			c.Lo, c.Hi = &lo, &hi
		}
		out = append(out, c)
	}
	return out
}

func runFold(ctx context.Context, b *Bench, cfg Config, k int, train, test []int) (*Fold, error) {
	f := &Fold{Fold: k, TrainPrompts: len(train), TestPrompts: len(test), Calibration: map[string]Calibration{}}
	expCost := b.ExpectedCosts(train, test)
	singleCost, singleQ := b.singleModel(test)
	order := b.byPrice()
	strong := order[len(order)-1]
	f.CostRange = [2]float64{math.Inf(1), 0}
	best := 0
	for j := range b.Models {
		f.CostRange[0] = math.Min(f.CostRange[0], singleCost[j])
		f.CostRange[1] = math.Max(f.CostRange[1], singleCost[j])
		if singleQ[j] > singleQ[best] || (singleQ[j] == singleQ[best] && singleCost[j] < singleCost[best]) {
			best = j
		}
	}
	f.BestSingle = b.Models[best]
	sc := scorer{b: b, fold: f, best: best, strong: strong, weak: order[0], singleQ: singleQ, singleCost: singleCost, out: cfg.Decisions}

	rules := frontier.Sweep(cfg.Bars, cfg.Lambdas, expCost)
	predictors := append([]Predictor{cfg.Learned}, cfg.Baselines...)
	for _, p := range predictors {
		if err := p.Fit(ctx, b, train); err != nil {
			return nil, fmt.Errorf("eval: fold %d: fit %s: %w", k, p.Name(), err)
		}
		preds := p.Predict(b, test)
		kind := "baseline"
		if p == Predictor(cfg.Learned) {
			kind = "learned"
			reliability(f, b, preds, test)
		}
		var pts []frontier.Point
		for _, r := range rules {
			pt, err := sc.route(p.Name()+"/"+r.String(), test, func(k int) []policy.Option {
				return options(b.Models, preds[k], expCost[k])
			}, r)
			if err != nil {
				return nil, err
			}
			pts = append(pts, pt)
		}
		f.Routers = append(f.Routers, sc.result(p.Name(), kind, pts))
	}

	// single models, and random mixing between them
	var singles []frontier.Point
	for j, m := range b.Models {
		pt := frontier.Point{Setting: "single/" + m, Cost: singleCost[j], Quality: singleQ[j]}
		if j == strong {
			pt.StrongShare = 1
		}
		if err := sc.write(test, pt.Setting, func(int) int { return j }); err != nil {
			return nil, err
		}
		singles = append(singles, pt)
		f.Routers = append(f.Routers, sc.result(m, "single", []frontier.Point{pt}))
	}
	f.Routers = append(f.Routers, sc.result("random-mixing", "mixing", singles))

	// the oracle knows every answer's quality and cost
	var oracle []frontier.Point
	trueCost := make([][]float64, len(test))
	for k, i := range test {
		trueCost[k] = b.Cost[i]
	}
	for _, r := range frontier.Sweep(nil, max(cfg.Lambdas, 20), trueCost) {
		pt, err := sc.route("oracle/"+r.String(), test, func(k int) []policy.Option {
			return options(b.Models, b.Quality[test[k]], b.Cost[test[k]])
		}, r)
		if err != nil {
			return nil, err
		}
		oracle = append(oracle, pt)
	}
	f.Routers = append(f.Routers, sc.result("oracle", "oracle", oracle))
	return f, nil
}

func options(models []string, q, c []float64) []policy.Option {
	opts := make([]policy.Option, len(models))
	for j, m := range models {
		opts[j] = policy.Option{Model: m, PredictedQuality: q[j], ExpectedCostUSD: c[j]}
	}
	return opts
}

// scorer routes test prompts and measures the result against the ground truth.
type scorer struct {
	b                   *Bench
	fold                *Fold
	best, strong, weak  int
	singleQ, singleCost []float64
	out                 io.Writer
}

func (s *scorer) route(setting string, test []int, opts func(k int) []policy.Option, r policy.Rule) (frontier.Point, error) {
	choice := make([]int, len(test))
	for k := range test {
		c, err := r.Pick(opts(k))
		if err != nil {
			return frontier.Point{}, fmt.Errorf("eval: %s: %w", setting, err)
		}
		choice[k] = c
	}
	pt := frontier.Point{Setting: setting}
	for k, i := range test {
		pt.Cost += s.b.Cost[i][choice[k]]
		pt.Quality += s.b.Quality[i][choice[k]]
		if choice[k] == s.strong {
			pt.StrongShare++
		}
	}
	n := float64(len(test))
	pt.Cost, pt.Quality, pt.StrongShare = pt.Cost/n, pt.Quality/n, pt.StrongShare/n
	return pt, s.write(test, setting, func(k int) int { return choice[k] })
}

func (s *scorer) write(test []int, setting string, choice func(k int) int) error {
	if s.out == nil {
		return nil
	}
	for k, i := range test {
		if _, err := fmt.Fprintf(s.out, "%s,%s,%s\n", csvField(s.b.PromptIDs[i]), csvField(setting), csvField(s.b.Models[choice(k)])); err != nil {
			return fmt.Errorf("eval: write decisions: %w", err)
		}
	}
	return nil
}

func csvField(s string) string {
	for _, c := range s {
		if c == ',' || c == '"' || c == '\n' || c == '\r' {
			return strconv.Quote(s)
		}
	}
	return s
}

func (s *scorer) result(name, kind string, pts []frontier.Point) RouterResult {
	env := frontier.Envelope(pts)
	r := RouterResult{Name: name, Kind: kind, Points: pts, Envelope: env}
	r.AIQ = frontier.AIQ(env, s.fold.CostRange[0], s.fold.CostRange[1])
	cb, qb := s.singleCost[s.best], s.singleQ[s.best]
	r.QualityAtBestCost = frontier.QualityAt(env, cb)
	if c, ok := frontier.CostToReach(env, 0.95*qb); ok {
		v := c / cb
		r.CostFor95 = &v
	}
	if c, ok := frontier.CostToReach(env, qb); ok {
		v := c / cb
		r.CostFor100 = &v
	}
	if len(s.b.Models) == 2 {
		pgr := frontier.PGRCurve(pts, s.singleQ[s.weak], s.singleQ[s.strong])
		a, c50, c80 := frontier.APGR(pgr), frontier.CPT(pgr, 0.5), frontier.CPT(pgr, 0.8)
		r.APGR, r.CPT50, r.CPT80 = &a, &c50, &c80
	}
	return r
}

// reliability records the learned router's calibration error per model on the test part.
func reliability(f *Fold, b *Bench, preds [][]float64, test []int) {
	for j, m := range b.Models {
		p, y := make([]float64, len(test)), make([]float64, len(test))
		for k, i := range test {
			p[k], y[k] = preds[k][j], b.Quality[i][j]
		}
		e, bins := ECE(p, y, 10)
		f.Calibration[m] = Calibration{ECE: e, Bins: bins}
	}
}

func summarise(folds []Fold) []Summary {
	var out []Summary
	for r := range folds[0].Routers {
		s := Summary{Name: folds[0].Routers[r].Name, Kind: folds[0].Routers[r].Kind}
		get := func(f func(RouterResult) *float64) *Stat {
			var xs []float64
			for _, fold := range folds {
				v := f(fold.Routers[r])
				if v == nil {
					return nil
				}
				xs = append(xs, *v)
			}
			return meanStd(xs)
		}
		s.AIQ = get(func(x RouterResult) *float64 { return &x.AIQ })
		s.QualityAt = get(func(x RouterResult) *float64 { return &x.QualityAtBestCost })
		s.CostFor95 = get(func(x RouterResult) *float64 { return x.CostFor95 })
		s.CostFor100 = get(func(x RouterResult) *float64 { return x.CostFor100 })
		s.APGR = get(func(x RouterResult) *float64 { return x.APGR })
		s.CPT50 = get(func(x RouterResult) *float64 { return x.CPT50 })
		s.CPT80 = get(func(x RouterResult) *float64 { return x.CPT80 })
		out = append(out, s)
	}
	return out
}

func meanStd(xs []float64) *Stat {
	if len(xs) == 1 {
		return &Stat{xs[0], 0}
	}
	m, sd := stat.MeanStdDev(xs, nil)
	return &Stat{m, sd}
}
