package eval

import (
	"errors"
	"fmt"
	"sort"

	"switchyard/classifier/policy"
	"switchyard/training/frontier"
)

// Target is what a calibration must meet on validation data. Exactly one of
// its fields is set.
type Target struct {
	CostPer1K  float64 // at most this many USD per 1,000 requests
	MaxShare   float64 // at most this share of traffic to ShareModel
	ShareModel string
	MinQuality float64 // at least this average quality
}

// Validate checks that exactly one target is set, with a sensible value.
func (t Target) Validate() error {
	n := 0
	if t.CostPer1K != 0 {
		n++
		if !(t.CostPer1K > 0) {
			return fmt.Errorf("calibrate: cost budget %v per 1,000 requests must be positive", t.CostPer1K)
		}
	}
	if t.ShareModel != "" {
		n++
		if !(t.MaxShare >= 0 && t.MaxShare <= 1) {
			return fmt.Errorf("calibrate: maximum share %v of %s must be in [0,1]", t.MaxShare, t.ShareModel)
		}
	}
	if t.MinQuality != 0 {
		n++
		if !(t.MinQuality > 0 && t.MinQuality <= 1) {
			return fmt.Errorf("calibrate: minimum quality %v must be in (0,1]", t.MinQuality)
		}
	}
	if n != 1 {
		return errors.New("calibrate: give exactly one target: a cost budget per 1,000 requests, a maximum share for a model, or a minimum average quality")
	}
	return nil
}

func (t Target) String() string {
	switch {
	case t.CostPer1K != 0:
		return fmt.Sprintf("cost at most $%g per 1,000 requests", t.CostPer1K)
	case t.ShareModel != "":
		return fmt.Sprintf("at most %.1f%% of traffic to %s", 100*t.MaxShare, t.ShareModel)
	default:
		return fmt.Sprintf("average quality at least %g", t.MinQuality)
	}
}

// Setting is one rule setting measured on the validation prompts.
type Setting struct {
	Rule      policy.Rule
	CostPer1K float64            // realised USD per 1,000 requests
	Quality   float64            // realised average quality
	Shares    map[string]float64 // share of traffic per model
}

// Tuning is the outcome of Calibrate: the chosen setting and the whole sweep.
type Tuning struct {
	Chosen  Setting
	Sweep   []Setting
	Prompts int
}

// MeetTarget routes the validation prompts with router at every setting of
// the knob ("bar" or "lambda") through the project's one rule, measures the
// realised cost, quality and traffic shares against the ground truth, and
// picks the setting that meets the target: the best quality within a cost
// budget or traffic share, or the least cost at a minimum quality.
func MeetTarget(b *Bench, router *policy.Router, prompts []int, knob string, t Target) (*Tuning, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if len(prompts) == 0 {
		return nil, errors.New("calibrate: no validation prompts")
	}
	if t.ShareModel != "" {
		if _, ok := indexOf(b.Models, t.ShareModel); !ok {
			return nil, fmt.Errorf("calibrate: model %q is not in the pool %v", t.ShareModel, b.Models)
		}
	}
	// the options the server would compute for each prompt
	opts := make([][]policy.Option, len(prompts))
	cols := make([][]int, len(prompts)) // option index -> bench model index
	costs := make([][]float64, len(prompts))
	for k, i := range prompts {
		d, err := router.Score(policy.Request{Input: b.Inputs[i], Candidates: b.Models})
		if err != nil {
			return nil, fmt.Errorf("calibrate: prompt %s: %w", b.PromptIDs[i], err)
		}
		opts[k] = d.Options
		cols[k] = make([]int, len(d.Options))
		costs[k] = make([]float64, len(d.Options))
		for o, op := range d.Options {
			j, _ := indexOf(b.Models, op.Model)
			cols[k][o] = j
			costs[k][o] = op.ExpectedCostUSD
		}
	}
	var rules []policy.Rule
	switch knob {
	case "bar":
		rules = frontier.Sweep(sweepBars(), 0, nil)
	case "lambda":
		rules = frontier.Sweep(nil, 200, costs)
	default:
		return nil, fmt.Errorf("calibrate: knob %q: want bar or lambda", knob)
	}
	cal := &Tuning{Prompts: len(prompts)}
	for _, r := range rules {
		s := Setting{Rule: r, Shares: map[string]float64{}}
		for k, i := range prompts {
			c, err := r.Pick(opts[k])
			if err != nil {
				return nil, fmt.Errorf("calibrate: %w", err)
			}
			j := cols[k][c]
			s.CostPer1K += b.Cost[i][j]
			s.Quality += b.Quality[i][j]
			s.Shares[b.Models[j]]++
		}
		n := float64(len(prompts))
		s.CostPer1K *= 1000 / n
		s.Quality /= n
		for m := range s.Shares {
			s.Shares[m] /= n
		}
		cal.Sweep = append(cal.Sweep, s)
	}
	best := -1
	for i, s := range cal.Sweep {
		var ok bool
		switch {
		case t.CostPer1K != 0:
			ok = s.CostPer1K <= t.CostPer1K
		case t.ShareModel != "":
			ok = s.Shares[t.ShareModel] <= t.MaxShare
		default:
			ok = s.Quality >= t.MinQuality
		}
		if !ok {
			continue
		}
		if best < 0 || preferred(s, cal.Sweep[best], t) {
			best = i
		}
	}
	if best < 0 {
		lo := cal.Sweep[0]
		for _, s := range cal.Sweep {
			switch {
			case t.CostPer1K != 0 && s.CostPer1K < lo.CostPer1K,
				t.ShareModel != "" && s.Shares[t.ShareModel] < lo.Shares[t.ShareModel],
				t.MinQuality != 0 && s.Quality > lo.Quality:
				lo = s
			}
		}
		return cal, fmt.Errorf("calibrate: no %s setting meets the target (%s) on %d validation prompts; the nearest, %s, gives $%.4f per 1,000 requests at quality %.4f",
			knob, t, len(prompts), lo.Rule, lo.CostPer1K, lo.Quality)
	}
	cal.Chosen = cal.Sweep[best]
	return cal, nil
}

// preferred: within a budget or share cap, higher quality then lower cost;
// at a minimum quality, lower cost then higher quality.
func preferred(a, b Setting, t Target) bool {
	if t.MinQuality != 0 {
		if a.CostPer1K != b.CostPer1K {
			return a.CostPer1K < b.CostPer1K
		}
		return a.Quality > b.Quality
	}
	if a.Quality != b.Quality {
		return a.Quality > b.Quality
	}
	return a.CostPer1K < b.CostPer1K
}

func sweepBars() []float64 {
	var out []float64
	for i := 0; i <= 200; i++ {
		out = append(out, float64(i)/200)
	}
	return out
}

func indexOf(xs []string, x string) (int, bool) {
	for i, y := range xs {
		if y == x {
			return i, true
		}
	}
	return -1, false
}

// SortedShares lists a setting's traffic shares from the largest.
func (s Setting) SortedShares() []string {
	names := make([]string, 0, len(s.Shares))
	for m := range s.Shares {
		names = append(names, m)
	}
	sort.Slice(names, func(i, j int) bool {
		if s.Shares[names[i]] != s.Shares[names[j]] {
			return s.Shares[names[i]] > s.Shares[names[j]]
		}
		return names[i] < names[j]
	})
	return names
}
