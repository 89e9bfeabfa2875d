package ope

import (
	"errors"
	"fmt"
	"gonum.org/v1/gonum/stat"
	"math"
	"math/rand/v2"
	"slices"
)

// Estimator names, the keys of Report.Quality and Report.Cost.
const (
	IPS   = "ips"   // inverse propensity scoring
	SNIPS = "snips" // self-normalised inverse propensity scoring
	DR    = "dr"    // doubly robust
)

// Defaults used when the corresponding Config field is zero.
const (
	DefaultBootstrap     = 1000
	DefaultLevel         = 0.95
	DefaultLowOverlapESS = 0.1
)

// Diagnostic thresholds behind Report.Warnings.
const (
	// sumTolerance is how far a probability vector may sum from 1.
	sumTolerance = 1e-6
	// propensityTolerance is how far Propensity may differ from
	// LoggingProbs[Logged] when both are given.
	propensityTolerance = 1e-6
	// RareLoggingProb is the logging probability below which an action
	// counts as practically unexplored.
	RareLoggingProb = 0.01
	// RareTargetShare is the share of the target's probability mass (over
	// the records that carry LoggingProbs) on practically unexplored actions
	// above which Value warns.
	RareTargetShare = 0.05
	// TinyPropensity is the logged propensity below which a record is
	// reported: one such record can carry a weight of 1000 or more.
	TinyPropensity = 1e-3
)

// bootstrapStream separates the bootstrap's random stream from any other
// use of the same seed.
const bootstrapStream = 0x626f6f7473747270 // "bootstrp"

// Record is one logged decision joined with its observed outcome, plus what
// the target policy and the direct model say about its context.
type Record struct {
	Logged       int       // index (into the action set) of the logged action
	Propensity   float64   // logging policy's probability of Logged, in (0,1]
	Reward       float64   // observed quality of the logged action, in [0,1]
	Cost         float64   // observed cost (USD) of the logged action
	Target       []float64 // target policy's probability of each action (sums to 1)
	PredReward   []float64 // direct model's predicted quality of each action (for DR)
	PredCost     []float64 // direct model's predicted cost of each action (for DR)
	LoggingProbs []float64 // optional: the logging policy's whole distribution (nil if unknown), for overlap diagnostics
}

// Config holds the settings of Value. The zero Config is usable.
type Config struct {
	// Bootstrap is the number of bootstrap resamples behind StdErr, Lo and
	// Hi; DefaultBootstrap when 0.
	Bootstrap int
	// Seed seeds the bootstrap; the same records and Config give the same
	// Report.
	Seed int64
	// Level is the coverage of the percentile interval, in (0,1);
	// DefaultLevel when 0.
	Level float64
	// MaxWeight clips every importance weight at this value; 0 means no
	// clipping. Clipping trades bias for variance: it bounds the influence
	// of records the logging policy rarely chose, but IPS and DR then no
	// longer converge to the target's value (IPS is pulled toward zero, DR
	// toward the direct model on the clipped records), and the bootstrap
	// interval covers the clipped estimand, not the true value. Use it when
	// ESS is small, and report it.
	MaxWeight float64
	// LowOverlapESS is the ESS/N share below which Value warns of low
	// overlap; DefaultLowOverlapESS when 0.
	LowOverlapESS float64
}

// Estimate is one estimator's point value with its bootstrap spread.
type Estimate struct {
	Value  float64 // estimate on all records
	StdErr float64 // standard deviation of the bootstrap replicates
	Lo     float64 // lower end of the percentile bootstrap interval
	Hi     float64 // upper end of the percentile bootstrap interval
}

// Report is the off-policy evaluation of one target policy on one log.
type Report struct {
	// N is the number of records.
	N int
	// ESS is the effective sample size of the (clipped) importance weights,
	// (Σw)²/Σw²: N when all weights are equal, near 1 when one dominates.
	ESS float64
	// Quality holds the estimates of the target's mean quality, keyed by
	// IPS, SNIPS and DR.
	Quality map[string]Estimate
	// Cost holds the estimates of the target's mean cost (USD per
	// request), with the same keys.
	Cost map[string]Estimate
	// MatchRate is the share of records where the target puts positive
	// probability on the logged action: the records that inform IPS.
	MatchRate float64
	// Warnings lists what makes the estimates fragile (low overlap,
	// unexplored target actions, tiny propensities, clipping), in a fixed
	// order; nil when there is nothing to report.
	Warnings []string
}

// RecordError reports an invalid record: which one, which field, and why.
type RecordError struct {
	Index  int    // position of the record in the input slice
	Field  string // Record field name, e.g. "Propensity" or "Target[2]"
	Reason string
}

// Error implements error.
func (e *RecordError) Error() string {
	return fmt.Sprintf("record %d: %s: %s", e.Index, e.Field, e.Reason)
}

// terms is what one record contributes to every estimator; the bootstrap
// only sums these.
type terms struct {
	w     float64 // clipped importance weight
	wr    float64 // w·reward
	wc    float64 // w·cost
	dr    float64 // doubly robust quality term
	dcost float64 // doubly robust cost term
}

// sums accumulates terms over a (re)sample.
type sums struct {
	w, wr, wc, dr, dcost float64
}

func (s *sums) add(t *terms) {
	s.w += t.w
	s.wr += t.wr
	s.wc += t.wc
	s.dr += t.dr
	s.dcost += t.dcost
}

// estimators returns IPS, SNIPS and DR for quality then cost, in that
// order. SNIPS is NaN when no weight is positive.
func (s *sums) estimators(n int) [6]float64 {
	fn := float64(n)
	snipsQ, snipsC := math.NaN(), math.NaN()
	if s.w > 0 {
		snipsQ, snipsC = s.wr/s.w, s.wc/s.w
	}
	return [6]float64{s.wr / fn, snipsQ, s.dr / fn, s.wc / fn, snipsC, s.dcost / fn}
}

// Value estimates the target policy's mean quality and cost from logged
// bandit feedback with IPS, self-normalised IPS and doubly robust
// estimators, each with a seeded percentile bootstrap interval, and
// diagnoses the overlap between the logging and the target policy. It
// returns an error naming the record and field when an input is invalid.
func Value(recs []Record, cfg Config) (*Report, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, fmt.Errorf("evaluate off-policy: %w", err)
	}
	if len(recs) == 0 {
		return nil, errors.New("evaluate off-policy: no records")
	}
	for i := range recs {
		if err := validate(i, &recs[i]); err != nil {
			return nil, fmt.Errorf("evaluate off-policy: %w", err)
		}
	}

	n := len(recs)
	ts := make([]terms, n)
	var (
		total          sums
		sumW2          float64
		matched        int
		clipped        int
		tiny           int
		minPropensity  = math.Inf(1)
		withLogging    int
		rareMass       float64
		zeroSupportRec int
	)
	for i := range recs {
		r := &recs[i]
		pt := r.Target[r.Logged]
		if pt > 0 {
			matched++
		}
		w := pt / r.Propensity
		if cfg.MaxWeight > 0 && w > cfg.MaxWeight {
			w = cfg.MaxWeight
			clipped++
		}
		var dmR, dmC float64
		for a, p := range r.Target {
			dmR += p * r.PredReward[a]
			dmC += p * r.PredCost[a]
		}
		ts[i] = terms{
			w:     w,
			wr:    w * r.Reward,
			wc:    w * r.Cost,
			dr:    dmR + w*(r.Reward-r.PredReward[r.Logged]),
			dcost: dmC + w*(r.Cost-r.PredCost[r.Logged]),
		}
		total.add(&ts[i])
		sumW2 += w * w

		if r.Propensity < TinyPropensity {
			tiny++
		}
		minPropensity = min(minPropensity, r.Propensity)
		if r.LoggingProbs != nil {
			withLogging++
			zero := false
			for a, p := range r.Target {
				if p > 0 && r.LoggingProbs[a] < RareLoggingProb {
					rareMass += p
					zero = zero || r.LoggingProbs[a] == 0
				}
			}
			if zero {
				zeroSupportRec++
			}
		}
	}

	rep := &Report{
		N:         n,
		MatchRate: float64(matched) / float64(n),
		Quality:   make(map[string]Estimate, 3),
		Cost:      make(map[string]Estimate, 3),
	}
	if sumW2 > 0 {
		rep.ESS = total.w * total.w / sumW2
	}

	point := total.estimators(n)
	boot, undefined := bootstrap(ts, cfg)
	names := [3]string{IPS, SNIPS, DR}
	for k := range point {
		est := summarise(point[k], boot[k], cfg.Level)
		if k < 3 {
			rep.Quality[names[k]] = est
		} else {
			rep.Cost[names[k-3]] = est
		}
	}

	share := rep.ESS / float64(n)
	if share < cfg.LowOverlapESS {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf(
			"low overlap: effective sample size %.1f is %.2g%% of %d records (threshold %.3g%%); ips and snips rest on few records, prefer dr and log with more exploration",
			rep.ESS, 100*share, n, 100*cfg.LowOverlapESS))
	}
	if withLogging > 0 && rareMass/float64(withLogging) > RareTargetShare {
		msg := fmt.Sprintf(
			"unexplored target actions: the target puts %.3g%% of its probability on actions the logging policy gives under %g%% (over %d records with LoggingProbs)",
			100*rareMass/float64(withLogging), 100*RareLoggingProb, withLogging)
		if zeroSupportRec > 0 {
			msg += fmt.Sprintf("; in %d records the logging probability is 0, so ips, snips and the dr correction cannot see those actions", zeroSupportRec)
		}
		rep.Warnings = append(rep.Warnings, msg)
	}
	if tiny > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf(
			"tiny propensities: %d records have propensity below %g (smallest %.3g); their weights can dominate, consider MaxWeight",
			tiny, TinyPropensity, minPropensity))
	}
	if clipped > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf(
			"clipped %d of %d weights at MaxWeight %g: ips and dr are biased by the clip in exchange for lower variance",
			clipped, n, cfg.MaxWeight))
	}
	if matched == 0 {
		rep.Warnings = append(rep.Warnings,
			"no match: the target never puts probability on a logged action, so snips is undefined (NaN) and dr equals the direct model")
	} else if undefined > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf(
			"snips undefined in %d of %d bootstrap resamples (no matched record drawn); its interval uses the rest",
			undefined, cfg.Bootstrap))
	}
	return rep, nil
}

// withDefaults fills zero fields of cfg and checks the rest.
func withDefaults(cfg Config) (Config, error) {
	if cfg.Bootstrap == 0 {
		cfg.Bootstrap = DefaultBootstrap
	}
	if cfg.Bootstrap < 2 {
		return cfg, fmt.Errorf("config: Bootstrap must be at least 2 (0 means %d), got %d", DefaultBootstrap, cfg.Bootstrap)
	}
	if cfg.Level == 0 {
		cfg.Level = DefaultLevel
	}
	if !(cfg.Level > 0 && cfg.Level < 1) {
		return cfg, fmt.Errorf("config: Level must be in (0,1) (0 means %g), got %g", DefaultLevel, cfg.Level)
	}
	if !(cfg.MaxWeight >= 0) || math.IsInf(cfg.MaxWeight, 0) {
		return cfg, fmt.Errorf("config: MaxWeight must be finite and not negative (0 means no clipping), got %g", cfg.MaxWeight)
	}
	if cfg.LowOverlapESS == 0 {
		cfg.LowOverlapESS = DefaultLowOverlapESS
	}
	if !(cfg.LowOverlapESS > 0 && cfg.LowOverlapESS <= 1) {
		return cfg, fmt.Errorf("config: LowOverlapESS must be in (0,1] (0 means %g), got %g", DefaultLowOverlapESS, cfg.LowOverlapESS)
	}
	return cfg, nil
}

// validate checks one record and returns a *RecordError for the first
// problem found.
func validate(i int, r *Record) error {
	bad := func(field, format string, args ...any) error {
		return &RecordError{Index: i, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	k := len(r.Target)
	if k == 0 {
		return bad("Target", "empty; give the target's probability of every action")
	}
	if err := checkDistribution(i, "Target", r.Target); err != nil {
		return err
	}
	if r.Logged < 0 || r.Logged >= k {
		return bad("Logged", "index %d out of range [0,%d) of the action set", r.Logged, k)
	}
	if !(r.Propensity > 0 && r.Propensity <= 1) {
		return bad("Propensity", "%g is outside (0,1]", r.Propensity)
	}
	if !(r.Reward >= 0 && r.Reward <= 1) {
		return bad("Reward", "%g is outside [0,1]", r.Reward)
	}
	if !(r.Cost >= 0) || math.IsInf(r.Cost, 0) {
		return bad("Cost", "%g is not a finite non-negative amount", r.Cost)
	}
	for _, f := range []struct {
		name string
		v    []float64
	}{{"PredReward", r.PredReward}, {"PredCost", r.PredCost}} {
		if len(f.v) != k {
			return bad(f.name, "length %d does not match Target's %d", len(f.v), k)
		}
		for a, x := range f.v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return bad(fmt.Sprintf("%s[%d]", f.name, a), "%g is not finite", x)
			}
		}
	}
	if r.LoggingProbs != nil {
		if len(r.LoggingProbs) != k {
			return bad("LoggingProbs", "length %d does not match Target's %d", len(r.LoggingProbs), k)
		}
		if err := checkDistribution(i, "LoggingProbs", r.LoggingProbs); err != nil {
			return err
		}
		if p := r.LoggingProbs[r.Logged]; math.Abs(p-r.Propensity) > propensityTolerance {
			return bad("Propensity", "%g disagrees with LoggingProbs[%d] = %g", r.Propensity, r.Logged, p)
		}
	}
	return nil
}

// checkDistribution checks that field p of record i holds probabilities
// summing to 1 within sumTolerance.
func checkDistribution(i int, field string, p []float64) error {
	var sum float64
	for a, x := range p {
		if !(x >= 0 && x <= 1) {
			return &RecordError{Index: i, Field: fmt.Sprintf("%s[%d]", field, a), Reason: fmt.Sprintf("%g is not a probability in [0,1]", x)}
		}
		sum += x
	}
	if math.Abs(sum-1) > sumTolerance {
		return &RecordError{Index: i, Field: field, Reason: fmt.Sprintf("sums to %.9g, not 1 (tolerance %g)", sum, sumTolerance)}
	}
	return nil
}

// bootstrap draws cfg.Bootstrap resamples of ts with replacement and
// returns, for each estimator (in sums.estimators order), the replicate
// values. Replicates where SNIPS is undefined are left out of the SNIPS
// slices; undefined counts them. The loop allocates nothing.
func bootstrap(ts []terms, cfg Config) (reps [6][]float64, undefined int) {
	n := len(ts)
	for k := range reps {
		reps[k] = make([]float64, 0, cfg.Bootstrap)
	}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), bootstrapStream))
	un := uint64(n)
	for range cfg.Bootstrap {
		var s sums
		for range n {
			s.add(&ts[rng.Uint64N(un)])
		}
		if s.w == 0 {
			undefined++
		}
		for k, v := range s.estimators(n) {
			if !math.IsNaN(v) {
				reps[k] = append(reps[k], v)
			}
		}
	}
	return reps, undefined
}

// summarise turns a point value and its bootstrap replicates into an
// Estimate. It sorts reps in place.
func summarise(value float64, reps []float64, level float64) Estimate {
	if len(reps) < 2 {
		return Estimate{Value: value, StdErr: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
	}
	stdErr := stat.StdDev(reps, nil)
	slices.Sort(reps)
	alpha := (1 - level) / 2
	return Estimate{
		Value:  value,
		StdErr: stdErr,
		Lo:     quantile(reps, alpha),
		Hi:     quantile(reps, 1-alpha),
	}
}

// quantile returns the p-quantile of sorted x by linear interpolation
// between order statistics (Hyndman and Fan type 7).
func quantile(x []float64, p float64) float64 {
	h := p * float64(len(x)-1)
	lo := int(math.Floor(h))
	if lo >= len(x)-1 {
		return x[len(x)-1]
	}
	return x[lo] + (h-float64(lo))*(x[lo+1]-x[lo])
}
