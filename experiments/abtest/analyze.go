// Package abtest analyses an A/B experiment on routing policies from the
// decision and outcome logs: per arm, units, requests, average quality and
// cost with 95% confidence intervals (unit-level: requests of one unit are
// not independent, so the estimators are ratios of per-unit sums with
// delta-method variances), latency percentiles, the relative lift against
// control with its interval and p-value, and a sample-ratio-mismatch
// check against the configured weights.
package abtest

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"

	"switchyard/datasets"
)

// Metric is a ratio estimate with its 95% interval.
type Metric struct {
	Mean   float64 `json:"mean"`
	StdErr float64 `json:"std_err"`
	Lo     float64 `json:"lo"`
	Hi     float64 `json:"hi"`
}

// Lift is a relative difference against control.
type Lift struct {
	Relative float64 `json:"relative"` // (arm − control) / control
	Lo       float64 `json:"lo"`
	Hi       float64 `json:"hi"`
	PValue   float64 `json:"p_value"` // two-sided, for the difference of means
}

// Arm is one arm's figures.
type Arm struct {
	Name         string  `json:"name"`
	Weight       float64 `json:"weight"`
	Units        int     `json:"units"`
	Requests     int     `json:"requests"`
	WithOutcome  int     `json:"with_outcome"`
	Quality      Metric  `json:"quality"`
	Cost         Metric  `json:"cost_usd"`
	LatencyP50MS float64 `json:"latency_p50_ms"`
	LatencyP90MS float64 `json:"latency_p90_ms"`
	LatencyP99MS float64 `json:"latency_p99_ms"`
	QualityLift  *Lift   `json:"quality_lift,omitempty"` // nil for control, or when control's mean is 0
	CostLift     *Lift   `json:"cost_lift,omitempty"`
}

// SRM is the sample-ratio-mismatch check.
type SRM struct {
	Skipped   bool    `json:"skipped,omitempty"` // no weights to compare with (a staged rollout decides the split)
	ChiSquare float64 `json:"chi_square"`
	PValue    float64 `json:"p_value"`
	Mismatch  bool    `json:"mismatch"` // p below the threshold
}

// Report is the analysis of one experiment.
type Report struct {
	Experiment string `json:"experiment"`
	Control    string `json:"control"`
	Arms       []Arm  `json:"arms"`
	SRM        SRM    `json:"srm"`
	// OutcomesWithoutDecision counts the outcomes in the logs (of any
	// experiment or none) whose decision is not in the decision logs, so
	// cannot be attributed to an arm (see datasets.CountOutcomeLinks).
	OutcomesWithoutDecision int `json:"outcomes_without_decision"`
}

// Config names the experiment, its arms' weights and the control arm.
type Config struct {
	Experiment string
	Weights    map[string]float64 // configured traffic weight per arm
	Control    string             // the arm the others are compared with
	// SRMAlpha is the p-value below which the split is flagged (0.001 when 0).
	SRMAlpha float64
}

// ArmLogs is one arm's part of an experiment's logs, reduced to what the
// analysis needs.
type ArmLogs struct {
	Name string
	// FirstDecision is the arm's first decision in the logs, named when
	// the arm is not in the configuration.
	FirstDecision string
	Units         int // units with at least one request
	Requests      int
	// Quality, Cost and Outcomes hold, for each unit with at least one
	// outcome (in any order), the sums of its outcomes' quality and cost
	// and their number.
	Quality, Cost, Outcomes []float64
	// Latencies are the latencies of the outcomes that report one (> 0),
	// in any order.
	Latencies []float64
}

// unitAgg sums one unit's observations.
type unitAgg struct {
	requests, n int
	q, c        float64
}

// Analyze computes the report from the logs in memory: each decision of
// the experiment with the last logged online outcome of its chosen model
// (datasets.JoinDecisions with OnlineOnly), per unit (UnitHash, or the
// decision when it has none) and arm, then Summarize. Outcomes whose
// decision is not in the logs are counted in the report; when there are
// outcomes and none has its decision, the error (a
// *datasets.MissingDecisionsError, wrapped) says so.
func Analyze(decisions []datasets.DecisionRecord, outcomes []datasets.OutcomeRecord, cfg Config) (*Report, error) {
	var arms []ArmLogs
	index := map[string]int{}
	units := map[string]map[string]*unitAgg{} // arm -> unit -> sums
	for _, jd := range datasets.JoinDecisions(decisions, outcomes, datasets.JoinOptions{OnlineOnly: true}) {
		d := jd.Decision
		if d.Experiment != cfg.Experiment {
			continue
		}
		i, ok := index[d.Arm]
		if !ok {
			i = len(arms)
			index[d.Arm] = i
			arms = append(arms, ArmLogs{Name: d.Arm, FirstDecision: d.DecisionID})
			units[d.Arm] = map[string]*unitAgg{}
		}
		unit := d.UnitHash
		if unit == "" {
			unit = d.DecisionID
		}
		u := units[d.Arm][unit]
		if u == nil {
			u = &unitAgg{}
			units[d.Arm][unit] = u
		}
		u.requests++
		if o := jd.Outcome; o != nil {
			u.n++
			u.q += o.Quality
			u.c += o.CostUSD
			if o.LatencyMS > 0 {
				arms[i].Latencies = append(arms[i].Latencies, o.LatencyMS)
			}
		}
	}
	for i := range arms {
		a := &arms[i]
		a.Units = len(units[a.Name])
		for _, u := range units[a.Name] {
			a.Requests += u.requests
			if u.n > 0 {
				a.Quality, a.Cost, a.Outcomes = append(a.Quality, u.q), append(a.Cost, u.c), append(a.Outcomes, float64(u.n))
			}
		}
	}
	return Summarize(arms, datasets.CountOutcomeLinks(decisions, outcomes), cfg)
}

// Summarize computes the report from an experiment's logs reduced to its
// arms (in the order they first appear in the logs) and the logs' outcome
// counts: per arm the unit-level ratio estimates, latency percentiles and
// lifts against control, and the sample ratio check. An arm of the logs
// that the configuration does not have is an error naming its first
// decision; so is an experiment without decisions, or, when there are
// outcomes and none has its decision, a *datasets.MissingDecisionsError
// (wrapped).
func Summarize(arms []ArmLogs, links datasets.OutcomeLinks, cfg Config) (*Report, error) {
	if cfg.SRMAlpha == 0 {
		cfg.SRMAlpha = 0.001
	}
	if _, ok := cfg.Weights[cfg.Control]; !ok {
		return nil, fmt.Errorf("analyze: control arm %q is not one of the configured arms", cfg.Control)
	}
	if links.AllWithoutDecision() {
		return nil, fmt.Errorf("analyze: no outcomes to analyse: %w", links.Err())
	}
	logged := map[string]*ArmLogs{}
	for i, a := range arms {
		if _, ok := cfg.Weights[a.Name]; !ok {
			return nil, fmt.Errorf("analyze: decision %s is in arm %q, which the configuration does not have", a.FirstDecision, a.Name)
		}
		logged[a.Name] = &arms[i]
	}
	if len(arms) == 0 {
		return nil, fmt.Errorf("analyze: no decisions of experiment %q in the logs", cfg.Experiment)
	}
	names := make([]string, 0, len(cfg.Weights))
	for n := range cfg.Weights {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { // control first, then by name
		if (names[i] == cfg.Control) != (names[j] == cfg.Control) {
			return names[i] == cfg.Control
		}
		return names[i] < names[j]
	})
	rep := &Report{Experiment: cfg.Experiment, Control: cfg.Control, OutcomesWithoutDecision: links.WithoutDecision}
	for _, name := range names {
		a := Arm{Name: name, Weight: cfg.Weights[name]}
		if l := logged[name]; l != nil {
			a.Units, a.Requests = l.Units, l.Requests
			for _, n := range l.Outcomes {
				a.WithOutcome += int(n)
			}
			a.Quality = ratio(l.Quality, l.Outcomes)
			a.Cost = ratio(l.Cost, l.Outcomes)
			sort.Float64s(l.Latencies)
			a.LatencyP50MS, a.LatencyP90MS, a.LatencyP99MS = quantile(l.Latencies, 0.5), quantile(l.Latencies, 0.9), quantile(l.Latencies, 0.99)
		}
		rep.Arms = append(rep.Arms, a)
	}
	control := rep.Arms[0]
	for i := 1; i < len(rep.Arms); i++ {
		rep.Arms[i].QualityLift = lift(rep.Arms[i].Quality, control.Quality)
		rep.Arms[i].CostLift = lift(rep.Arms[i].Cost, control.Cost)
	}
	srm, err := srmCheck(rep.Arms, cfg.SRMAlpha)
	if err != nil {
		return nil, err
	}
	rep.SRM = srm
	return rep, nil
}

// ratio estimates Σy/Σn over units with the delta-method standard error.
func ratio(ys, ns []float64) Metric {
	k := float64(len(ys))
	if k == 0 {
		return Metric{} // no outcomes: WithOutcome says so
	}
	var sy, sn float64
	for i := range ys {
		sy += ys[i]
		sn += ns[i]
	}
	r := sy / sn
	nbar := sn / k
	var v float64
	for i := range ys {
		e := ys[i] - r*ns[i]
		v += e * e
	}
	se := 0.0
	if k > 1 {
		se = math.Sqrt(v/(k-1)) / (nbar * math.Sqrt(k))
	}
	return Metric{Mean: r, StdErr: se, Lo: r - 1.96*se, Hi: r + 1.96*se}
}

// roundingNoise is the relative size, against the means compared, below
// which a standard error or a difference is floating-point rounding of
// identical values rather than a measured spread: ratio's residuals of
// arms with constant values come out near 1e-16 of the mean, not 0.
const roundingNoise = 1e-9

// lift compares an arm with control: relative difference with a
// delta-method interval, and a two-sided z-test p-value on the difference.
// The p-value is 1 when the difference or its standard error is zero or
// within rounding noise of it: a difference without measured variance
// (constant values, or one unit per arm) is no evidence, and a z statistic
// of rounding error over rounding error would claim significance.
func lift(arm, control Metric) *Lift {
	if control.Mean == 0 {
		return nil // a relative change from zero is undefined
	}
	rel := arm.Mean/control.Mean - 1
	se := math.Sqrt(arm.StdErr*arm.StdErr/(control.Mean*control.Mean) +
		arm.Mean*arm.Mean*control.StdErr*control.StdErr/math.Pow(control.Mean, 4))
	dse := math.Sqrt(arm.StdErr*arm.StdErr + control.StdErr*control.StdErr)
	diff := arm.Mean - control.Mean
	noise := roundingNoise * max(math.Abs(arm.Mean), math.Abs(control.Mean))
	p := 1.0
	if dse > noise && math.Abs(diff) > noise {
		p = 2 * distuv.UnitNormal.Survival(math.Abs(diff/dse))
	}
	return &Lift{Relative: rel, Lo: rel - 1.96*se, Hi: rel + 1.96*se, PValue: p}
}

// srmCheck tests the units per arm against the configured weights
// (chi-square with arms − 1 degrees of freedom).
func srmCheck(arms []Arm, alpha float64) (SRM, error) {
	var total float64
	var wsum float64
	for _, a := range arms {
		total += float64(a.Units)
		wsum += a.Weight
	}
	if wsum <= 0 {
		return SRM{Skipped: true, PValue: 1}, nil
	}
	var chi float64
	dof := -1
	for _, a := range arms {
		exp := total * a.Weight / wsum
		if exp == 0 {
			if a.Units > 0 {
				return SRM{ChiSquare: math.Inf(1), PValue: 0, Mismatch: true}, nil
			}
			continue
		}
		d := float64(a.Units) - exp
		chi += d * d / exp
		dof++
	}
	if dof < 1 {
		return SRM{}, errors.New("analyze: the SRM check needs at least two arms with weight")
	}
	p := distuv.ChiSquared{K: float64(dof)}.Survival(chi)
	return SRM{ChiSquare: chi, PValue: p, Mismatch: p < alpha}, nil
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
