package ope

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat"
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
// order, of n records (a resample's size, counted with repetitions). SNIPS
// is NaN when no weight is positive.
func (s *sums) estimators(fn float64) [6]float64 {
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
// It is an Accumulator fed recs in order.
func Value(recs []Record, cfg Config) (*Report, error) {
	acc, err := NewAccumulator(cfg)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, errors.New("evaluate off-policy: no records")
	}
	for i := range recs {
		if err := acc.Add(&recs[i]); err != nil {
			return nil, err
		}
	}
	return acc.Report()
}

// Accumulator computes Value's Report from records added one at a time,
// in memory that does not grow with their number: per record it keeps only
// running sums, and the bootstrap is a Poisson bootstrap (each record enters
// each resample a Poisson(1) number of times, drawn as the record is added)
// whose resamples are Config.Bootstrap running sums. The same records added
// in the same order with the same Config give the same Report. An
// Accumulator is not safe for concurrent use.
type Accumulator struct {
	cfg   Config
	n     int
	reps  []replicate
	state uint64 // of the bootstrap's random numbers (splitmix64)

	total          sums
	sumW2          float64
	matched        int
	clipped        int
	tiny           int
	minPropensity  float64
	withLogging    int
	rareMass       float64
	zeroSupportRec int
}

// replicate is one bootstrap resample's running sums: its size and the
// terms of the records drawn into it, each counted as often as drawn.
type replicate struct {
	n float64
	s sums
}

// NewAccumulator starts an evaluation with cfg (zero fields take their
// defaults).
func NewAccumulator(cfg Config) (*Accumulator, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, fmt.Errorf("evaluate off-policy: %w", err)
	}
	return &Accumulator{cfg: cfg, reps: make([]replicate, cfg.Bootstrap), state: uint64(cfg.Seed) ^ bootstrapStream, minPropensity: math.Inf(1)}, nil
}

// N is the number of records added.
func (a *Accumulator) N() int { return a.n }

// Add validates r and adds it to the estimates. The error names r by its
// position among the records added (as Value names its index) and leaves
// the Accumulator as it was.
func (a *Accumulator) Add(r *Record) error {
	if err := validate(a.n, r); err != nil {
		return fmt.Errorf("evaluate off-policy: %w", err)
	}
	a.n++
	pt := r.Target[r.Logged]
	if pt > 0 {
		a.matched++
	}
	w := pt / r.Propensity
	if a.cfg.MaxWeight > 0 && w > a.cfg.MaxWeight {
		w = a.cfg.MaxWeight
		a.clipped++
	}
	var dmR, dmC float64
	for k, p := range r.Target {
		dmR += p * r.PredReward[k]
		dmC += p * r.PredCost[k]
	}
	t := terms{
		w:     w,
		wr:    w * r.Reward,
		wc:    w * r.Cost,
		dr:    dmR + w*(r.Reward-r.PredReward[r.Logged]),
		dcost: dmC + w*(r.Cost-r.PredCost[r.Logged]),
	}
	a.total.add(&t)
	a.sumW2 += w * w
	a.resample(&t)

	if r.Propensity < TinyPropensity {
		a.tiny++
	}
	a.minPropensity = min(a.minPropensity, r.Propensity)
	if r.LoggingProbs != nil {
		a.withLogging++
		zero := false
		for k, p := range r.Target {
			if p > 0 && r.LoggingProbs[k] < RareLoggingProb {
				a.rareMass += p
				zero = zero || r.LoggingProbs[k] == 0
			}
		}
		if zero {
			a.zeroSupportRec++
		}
	}
	return nil
}

// resample adds t to every bootstrap resample, Poisson(1) times each. One
// random number (splitmix64) draws the counts of two resamples.
func (a *Accumulator) resample(t *terms) {
	x := a.state
	for b := 0; b < len(a.reps); b += 2 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		a.reps[b].add(poissonOne.draw(uint32(z)), t)
		if b+1 < len(a.reps) {
			a.reps[b+1].add(poissonOne.draw(uint32(z>>32)), t)
		}
	}
	a.state = x
}

// add counts t c times into the resample.
func (r *replicate) add(c float64, t *terms) {
	r.n += c
	r.s.w += c * t.w
	r.s.wr += c * t.wr
	r.s.wc += c * t.wc
	r.s.dr += c * t.dr
	r.s.dcost += c * t.dcost
}

// Report is the evaluation of the records added so far.
func (a *Accumulator) Report() (*Report, error) {
	n, cfg := a.n, a.cfg
	if n == 0 {
		return nil, errors.New("evaluate off-policy: no records")
	}
	rep := &Report{
		N:         n,
		MatchRate: float64(a.matched) / float64(n),
		Quality:   make(map[string]Estimate, 3),
		Cost:      make(map[string]Estimate, 3),
	}
	if a.sumW2 > 0 {
		rep.ESS = a.total.w * a.total.w / a.sumW2
	}

	point := a.total.estimators(float64(n))
	boot, undefined := a.replicates()
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
	if a.withLogging > 0 && a.rareMass/float64(a.withLogging) > RareTargetShare {
		msg := fmt.Sprintf(
			"unexplored target actions: the target puts %.3g%% of its probability on actions the logging policy gives under %g%% (over %d records with LoggingProbs)",
			100*a.rareMass/float64(a.withLogging), 100*RareLoggingProb, a.withLogging)
		if a.zeroSupportRec > 0 {
			msg += fmt.Sprintf("; in %d records the logging probability is 0, so ips, snips and the dr correction cannot see those actions", a.zeroSupportRec)
		}
		rep.Warnings = append(rep.Warnings, msg)
	}
	if a.tiny > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf(
			"tiny propensities: %d records have propensity below %g (smallest %.3g); their weights can dominate, consider MaxWeight",
			a.tiny, TinyPropensity, a.minPropensity))
	}
	if a.clipped > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf(
			"clipped %d of %d weights at MaxWeight %g: ips and dr are biased by the clip in exchange for lower variance",
			a.clipped, n, cfg.MaxWeight))
	}
	if a.matched == 0 {
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

// replicates returns, for each estimator (in sums.estimators order), its
// value on every bootstrap resample. Resamples where SNIPS is undefined
// (no positive weight drawn, or nothing drawn at all) are left out of the
// SNIPS slices, and empty resamples out of every slice; undefined counts
// the resamples left out of SNIPS.
func (a *Accumulator) replicates() (reps [6][]float64, undefined int) {
	for k := range reps {
		reps[k] = make([]float64, 0, len(a.reps))
	}
	for _, r := range a.reps {
		if r.s.w == 0 {
			undefined++
		}
		if r.n == 0 {
			continue
		}
		for k, v := range r.s.estimators(r.n) {
			if !math.IsNaN(v) {
				reps[k] = append(reps[k], v)
			}
		}
	}
	return reps, undefined
}

// poisson is Poisson(1) as a sampler of 32-bit uniform numbers: cdf[k] is
// P(X ≤ k) in units of 2⁻³², rounded (P(X > 12) is below 2⁻³² and left
// out), and cell[i] the number of CDF steps below the i-th of 4096 equal
// cells of [0, 2³²), with cellSplit set when a step falls inside the cell.
type poisson struct {
	cdf  [13]uint64
	cell [4096]uint8
}

const cellSplit = 0x80

// poissonOne is the sampler; it is never written to after it is built.
var poissonOne = newPoisson()

func newPoisson() *poisson {
	var ps poisson
	p, sum := math.Exp(-1), 0.0
	for k := range ps.cdf {
		sum += p
		ps.cdf[k] = uint64(math.Round(sum * (1 << 32)))
		p /= float64(k + 1)
	}
	for i := range ps.cell {
		lo, hi := uint64(i)<<20, uint64(i+1)<<20
		c := ps.count(lo, 0)
		if ps.count(hi-1, c) != c {
			c |= cellSplit
		}
		ps.cell[i] = uint8(c)
	}
	return &ps
}

// count is the number of CDF steps at or below x, counting from step c.
func (ps *poisson) count(x uint64, c int) int {
	for c < len(ps.cdf) && x >= ps.cdf[c] {
		c++
	}
	return c
}

// draw turns a uniform 32-bit number into a draw of Poisson(1): the
// number of CDF steps at or below u, looked up by u's top 12 bits (the
// CDF is searched in the 6 of 4096 cells a step falls in).
func (ps *poisson) draw(u uint32) float64 {
	c := ps.cell[u>>20]
	if c&cellSplit != 0 {
		return float64(ps.count(uint64(u), int(c&^cellSplit)))
	}
	return float64(c)
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
