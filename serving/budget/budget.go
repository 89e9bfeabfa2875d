// Package budget keeps tenants' spending budgets and shapes routing
// decisions with them, without HTTP: a tenant's spend in its period (a UTC
// day or month) is the expected cost of its decisions, corrected by the
// actual cost feedback reports; in pace mode the tenant's requests get a
// cost weight (policy.Rule.CostWeight) that rises while the spend runs
// ahead of an even pace through what is left of the period and falls when
// it lags; in cap mode the tenant is routed as usual until the budget is
// spent, then to the cheapest allowed model or refused. A Ledger shares
// spend through a Store (serving/fleet keeps it in Redis) or, without one,
// keeps it in memory.
package budget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"switchyard/classifier/policy"
)

// Modes and what a cap does when the budget is spent.
const (
	ModePace = "pace"
	ModeCap  = "cap"

	ExhaustedCheapest = "cheapest"
	ExhaustedReject   = "reject"

	PeriodDay   = "day"
	PeriodMonth = "month"
)

// Spec is one budget.
type Spec struct {
	USD    float64 `json:"usd"`
	Period string  `json:"period"` // day or month, in UTC
	Mode   string  `json:"mode"`   // pace or cap
	// WhenExhausted is what cap does past the budget: cheapest (the
	// default) routes to the cheapest allowed model, reject answers 429.
	WhenExhausted string `json:"when_exhausted,omitempty"`
}

// Config is the budgets of a configuration: named tenants, and a default
// that every other tenant gets for itself.
type Config struct {
	Default *Spec           `json:"default,omitempty"`
	Tenants map[string]Spec `json:"tenants,omitempty"`
}

// Validate names what is wrong with a budget.
func (c *Config) Validate() error {
	if c == nil {
		return nil
	}
	check := func(who string, s Spec) error {
		switch {
		case math.IsNaN(s.USD) || math.IsInf(s.USD, 0) || s.USD <= 0:
			return fmt.Errorf("budget of %s: usd %v must be a positive amount", who, s.USD)
		case s.Period != PeriodDay && s.Period != PeriodMonth:
			return fmt.Errorf("budget of %s: period %q is not day or month", who, s.Period)
		case s.Mode != ModePace && s.Mode != ModeCap:
			return fmt.Errorf("budget of %s: mode %q is not pace or cap", who, s.Mode)
		case s.WhenExhausted != "" && s.WhenExhausted != ExhaustedCheapest && s.WhenExhausted != ExhaustedReject:
			return fmt.Errorf("budget of %s: when_exhausted %q is not cheapest or reject", who, s.WhenExhausted)
		case s.WhenExhausted != "" && s.Mode != ModeCap:
			return fmt.Errorf("budget of %s: when_exhausted applies to mode cap only", who)
		}
		return nil
	}
	if c.Default != nil {
		if err := check("the default tenant", *c.Default); err != nil {
			return err
		}
	}
	for t, s := range c.Tenants {
		if t == "" {
			return errors.New("budget: a tenant name is empty")
		}
		if err := check(fmt.Sprintf("tenant %q", t), s); err != nil {
			return err
		}
	}
	return nil
}

// spec is the budget of a tenant, if it has one.
func (c *Config) spec(tenant string) (Spec, bool) {
	if c == nil || tenant == "" {
		return Spec{}, false
	}
	if s, ok := c.Tenants[tenant]; ok {
		return s, true
	}
	if c.Default != nil {
		return *c.Default, true
	}
	return Spec{}, false
}

// Store shares spend between the replicas of a fleet. Keys name a tenant
// and a period.
type Store interface {
	// Add adds this process's batch seq of spend (USD by key) once (a
	// batch added before is not added again; seq 0 adds nothing) and
	// returns the spend of every key of the batch.
	Add(ctx context.Context, seq int64, delta map[string]float64, ttl time.Duration) (map[string]float64, error)
	// Charge adds cost to the spend of key if the spend is below limit,
	// and returns the spend after and whether it charged.
	Charge(ctx context.Context, key string, cost, limit float64, ttl time.Duration) (float64, bool, error)
}

// Pacing settings. The pace aims a little below the budget so that the
// gap between expected and actual cost and the replicas' sync do not
// carry the spend over it; the cost weight is set once per tick (1/1440 of
// the period: a minute of a day); the request rate is smoothed over a
// twenty-fourth of the period (an hour of a day).
const (
	paceAim      = 0.98
	ticksAPeriod = 1440
	rateWindow   = 24 // the rate's time constant is the period / rateWindow
	sampleSize   = 256
	maxSampled   = 200_000 // decisions kept for the pace, all tenants together
	maxWeight    = 1e9
	maxAccounts  = 100_000
	storeTTL     = 62 * 24 * time.Hour // a month's spend, and the next month's
	// CheapestWeight is the cost weight that routes to the cheapest
	// allowed model (a cap's "cheapest" past its budget).
	CheapestWeight = 1e12
)

// Suffixes of the store's keys for an account's decision count and the
// expected cost charged (the spend's key is the account's).
const (
	countKey    = "#n"
	expectedKey = "#e"
)

// account is one tenant's spend in one period. Spend, decisions and
// expected cost are each the store's last answer, plus what is being
// added to it, plus what was counted here since.
type account struct {
	tenant           string
	spec             Spec
	key              string // tenant and period, the store's key
	start            time.Time
	end              time.Time
	shared, inflight [3]float64 // spend, decisions, expected cost
	local            [3]float64
	weight           float64 // the pace's cost weight now
	tick             time.Time
	tickN            float64 // decisions at the last tick
	rate             float64 // decisions per second, smoothed; <0 before the first tick
	sample           []decision
	next             int // the sample's slot to replace
	fresh            int // syncs that still read its spend back (2 after it is used)
	shaped           map[string]int64
}

// decision is one of the tenant's recent decisions as the pace replays it
// under other cost weights.
type decision struct {
	opts []policy.Option
	rule policy.Rule
}

func (a *account) total(i int) float64 { return a.shared[i] + a.inflight[i] + a.local[i] }

func (a *account) spent() float64 { return a.total(0) }

// Ledger keeps the spend of the tenants with a budget. It is safe for
// concurrent use.
type Ledger struct {
	now   func() time.Time
	store Store

	syncMu   sync.Mutex  // one Sync at a time
	active   atomic.Bool // the configuration has budgets (read without mu)
	mu       sync.Mutex
	cfg      *Config
	accounts map[string]*account // by tenant
	seq      int64
	batch    map[string]float64 // being added to the store (retried as is)
	batchSeq int64
	// downUntil: a cap's charge does not ask the store before then (it
	// failed just now)
	downUntil time.Time
}

// NewLedger keeps the budgets of cfg (nil: none yet) on the clock now
// (time.Now when nil), sharing spend through store when it is not nil.
func NewLedger(cfg *Config, now func() time.Time, store Store) *Ledger {
	if now == nil {
		now = time.Now
	}
	l := &Ledger{now: now, store: store, cfg: cfg, accounts: map[string]*account{}}
	l.active.Store(cfg.any())
	return l
}

// any reports whether the configuration gives any tenant a budget.
func (c *Config) any() bool { return c != nil && (c.Default != nil || len(c.Tenants) > 0) }

// Configure takes the budgets of a reloaded configuration: accounts keep
// their spend; a tenant whose budget changed is paced by the new one.
func (l *Ledger) Configure(cfg *Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = cfg
	l.active.Store(cfg.any())
	for t, a := range l.accounts {
		s, ok := cfg.spec(t)
		if !ok {
			delete(l.accounts, t)
			continue
		}
		if s.Period != a.spec.Period {
			delete(l.accounts, t) // a new period: counted from now on
			continue
		}
		a.spec = s
	}
}

// Named are the tenants the configuration names (metrics are kept for
// them only).
func (l *Ledger) Named() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg == nil {
		return nil
	}
	out := make([]string, 0, len(l.cfg.Tenants))
	for t := range l.cfg.Tenants {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// IsNamed reports whether the configuration names the tenant.
func (l *Ledger) IsNamed(tenant string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg == nil {
		return false
	}
	_, ok := l.cfg.Tenants[tenant]
	return ok
}

// period returns the bounds and id of the period of spec that holds t.
func period(p string, t time.Time) (start, end time.Time, id string) {
	t = t.UTC()
	if p == PeriodMonth {
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0), start.Format("2006-01")
	}
	start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 0, 1), start.Format("2006-01-02")
}

// account returns the tenant's account in the period holding now (nil
// when the tenant has no budget), under l.mu.
func (l *Ledger) account(tenant string, now time.Time) *account {
	spec, ok := l.cfg.spec(tenant)
	if !ok {
		return nil
	}
	a := l.accounts[tenant]
	if a == nil && len(l.accounts) >= maxAccounts {
		l.dropStale(now)
		if len(l.accounts) >= maxAccounts {
			tenant = "(more tenants)" // beyond the bound, the rest share one account
			a = l.accounts[tenant]
		}
	}
	if a == nil {
		start, end, id := period(spec.Period, now)
		a = &account{tenant: tenant, spec: spec, key: tenant + "/" + id, start: start, end: end, rate: -1, tick: now, shaped: map[string]int64{}}
		l.accounts[tenant] = a
	}
	if !now.Before(a.end) {
		// a new period: the spend starts again; the pace's weight is kept
		// as its first guess
		start, end, id := period(a.spec.Period, now)
		a.start, a.end, a.key = start, end, a.tenant+"/"+id
		a.shared, a.inflight, a.local, a.rate, a.tick, a.tickN = [3]float64{}, [3]float64{}, [3]float64{}, -1, now, 0
	}
	a.fresh = 2 // read back at the next two syncs: the second sees what others sent meanwhile
	return a
}

// dropStale forgets accounts of periods that ended, under l.mu.
func (l *Ledger) dropStale(now time.Time) {
	for t, a := range l.accounts {
		if !now.Before(a.end) && a.local == ([3]float64{}) && a.inflight == ([3]float64{}) {
			delete(l.accounts, t)
		}
	}
}

// Shaping is what a tenant's budget does to a request.
type Shaping struct {
	Tenant     string
	Mode       string
	CostWeight float64 // policy.Request.CostWeight
	Exhausted  bool    // a cap's budget is spent
	Reject     bool    // ... and the request is refused
	BudgetUSD  float64
	Period     string
	reject     bool // the cap refuses past the budget
	key        string
}

// Action names the shaping for the route response and the metrics: ""
// when the budget left the decision alone.
func (s Shaping) Action() string {
	switch {
	case s.Reject:
		return "rejected"
	case s.Exhausted:
		return "capped"
	case s.CostWeight > 0:
		return "paced"
	}
	return ""
}

// Shape returns what the tenant's budget does to its next request.
func (l *Ledger) Shape(tenant string) (Shaping, bool) {
	if tenant == "" || !l.active.Load() {
		return Shaping{}, false // every request without a budget: no lock on the route path
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.account(tenant, now)
	if a == nil {
		return Shaping{}, false
	}
	sh := Shaping{Tenant: a.tenant, Mode: a.spec.Mode, BudgetUSD: a.spec.USD, Period: a.key[len(a.tenant)+1:], key: a.key,
		reject: a.spec.WhenExhausted == ExhaustedReject}
	switch a.spec.Mode {
	case ModeCap:
		if a.spent() >= a.spec.USD {
			sh = sh.Exhaust()
		}
	case ModePace:
		l.pace(a, now)
		sh.CostWeight = a.weight
	}
	return sh, true
}

// pace sets the account's cost weight once a tick: the smallest weight
// under which the tenant's recent decisions, replayed through the decision
// rule, would cost on average what spends the rest of the budget evenly
// over the decisions expected in the rest of the period (at the recent
// rate), with the expected cost scaled by what feedback says it really
// costs. Under steady traffic that is one weight for the whole period,
// the best fixed weight for the budget; a surge raises it while it lasts.
func (l *Ledger) pace(a *account, now time.Time) {
	period := a.end.Sub(a.start)
	dt := now.Sub(a.tick)
	if dt < period/ticksAPeriod {
		return
	}
	n := a.total(1)
	if alpha := math.Min(1, dt.Seconds()/(period.Seconds()/rateWindow)); a.rate < 0 {
		// the first tick (a new account, a restarted replica): the fleet's
		// decisions so far in the period over the time they took
		a.rate = n / math.Max(now.Sub(a.start).Seconds(), dt.Seconds())
	} else {
		a.rate += alpha * ((n-a.tickN)/dt.Seconds() - a.rate)
	}
	a.tick, a.tickN = now, n
	if len(a.sample) == 0 {
		return
	}
	remaining := paceAim*a.spec.USD - a.spent()
	ahead := a.rate * a.end.Sub(now).Seconds() // decisions expected in the rest of the period
	if remaining <= 0 {
		a.weight = maxWeight
		return
	}
	if ahead < 1 {
		a.weight = 0
		return
	}
	ratio := 1.0 // actual cost per expected cost
	if e := a.total(2); e > 0 && a.spent() > 0 {
		ratio = math.Min(5, math.Max(0.2, a.spent()/e))
	}
	target := remaining / ahead / ratio // expected cost per decision
	if a.meanCost(0) <= target {
		a.weight = 0
		return
	}
	lo, hi := math.Log(1e-3), math.Log(maxWeight)
	if a.meanCost(maxWeight) > target {
		a.weight = maxWeight
		return
	}
	for range 40 {
		mid := (lo + hi) / 2
		if a.meanCost(math.Exp(mid)) > target {
			lo = mid
		} else {
			hi = mid
		}
	}
	a.weight = math.Exp(hi)
}

// meanCost is the mean expected cost of the sampled decisions made again
// under cost weight w.
func (a *account) meanCost(w float64) float64 {
	var sum float64
	for _, d := range a.sample {
		r := d.rule
		r.CostWeight = w
		i, err := r.Pick(d.opts)
		if err != nil {
			continue
		}
		sum += d.opts[i].ExpectedCostUSD
	}
	return sum / float64(len(a.sample))
}

// remember keeps a decision in the sample the pace replays (the newest
// limit, reusing their memory).
func (a *account) remember(d policy.Decision, limit int) {
	if a.spec.Mode != ModePace {
		return
	}
	rule := d.Rule
	rule.CostWeight = 0
	if len(a.sample) < limit {
		a.sample = append(a.sample, decision{opts: append([]policy.Option(nil), d.Options...), rule: rule})
		return
	}
	s := &a.sample[a.next%len(a.sample)]
	s.opts, s.rule = append(s.opts[:0], d.Options...), rule
	a.next = (a.next + 1) % len(a.sample)
}

// ErrExhausted refuses a request of a capped tenant past its budget.
var ErrExhausted = errors.New("budget spent")

// Charge adds the expected cost of a decision made under sh to the
// tenant's spend. A cap is charged fleet-wide at once, and only while the
// spend is below the budget (so the fleet exceeds it by at most one
// request's cost): when another request spent the budget first, Charge
// returns ErrExhausted and the caller routes again as sh.Exhaust() says.
// Without a store, or while it cannot be reached, the cap is checked
// against the spend this replica knows.
func (l *Ledger) Charge(ctx context.Context, sh Shaping, d policy.Decision) error {
	cost := d.Options[d.Index].ExpectedCostUSD
	if sh.Mode == ModeCap && !sh.Exhausted && l.store != nil && time.Now().After(l.storeDownUntil()) {
		// the client's cancel does not stop the charge half-way
		spent, ok, err := l.store.Charge(context.WithoutCancel(ctx), sh.key, cost, sh.BudgetUSD, storeTTL)
		if err != nil {
			l.mu.Lock()
			l.downUntil = time.Now().Add(time.Second) // meanwhile the cap is checked here, without waiting
			l.mu.Unlock()
		}
		if err == nil {
			l.mu.Lock()
			defer l.mu.Unlock()
			a := l.accounts[sh.Tenant]
			if a == nil || a.key != sh.key {
				return nil // the period ended meanwhile
			}
			a.shared[0] = spent
			if !ok {
				return ErrExhausted
			}
			l.count(a, d, 0)
			return nil
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.accounts[sh.Tenant]
	if a == nil || a.key != sh.key {
		return nil // the period ended meanwhile
	}
	if sh.Mode == ModeCap && !sh.Exhausted && a.spent() >= a.spec.USD {
		return ErrExhausted
	}
	l.count(a, d, cost)
	return nil
}

func (l *Ledger) storeDownUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.downUntil
}

// count counts a decision charged spend here (0 when the store took it),
// under l.mu.
func (l *Ledger) count(a *account, d policy.Decision, spend float64) {
	a.local[0] += spend
	a.local[1]++
	a.local[2] += d.Options[d.Index].ExpectedCostUSD
	// the samples of all tenants together stay within maxSampled decisions
	a.remember(d, max(16, min(sampleSize, maxSampled/max(1, len(l.accounts)))))
}

// Exhaust is the shaping past the budget, for a request Charge refused.
func (sh Shaping) Exhaust() Shaping {
	s := sh
	s.Exhausted, s.CostWeight, s.Reject = true, CheapestWeight, sh.reject
	return s
}

// Correct adds the difference between a decision's actual cost (from
// feedback) and its expected cost to the tenant's spend in the current
// period.
func (l *Ledger) Correct(tenant string, delta float64) {
	if delta == 0 || math.IsNaN(delta) || math.IsInf(delta, 0) {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.account(tenant, now); a != nil {
		a.local[0] += delta
	}
}

// Count notes a shaped decision for the metrics.
func (l *Ledger) Count(sh Shaping) {
	act := sh.Action()
	if act == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.accounts[sh.Tenant]; a != nil {
		a.shaped[act]++
	}
}

// Sync adds the spend of this replica since the last Sync to the store
// and takes the fleet's spend of every account it holds. When the store
// cannot be reached the batch is kept and sent again, as it is, first.
func (l *Ledger) Sync(ctx context.Context) error {
	if l.store == nil {
		return nil
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	if l.batch == nil {
		l.seq++
		l.batch, l.batchSeq = map[string]float64{}, l.seq
		full := l.seq%8 == 0 // every 8th sync reads every account (other replicas spend too)
		for _, a := range l.accounts {
			if !full && a.fresh == 0 && a.local == ([3]float64{}) {
				continue // untouched lately: not sent, not read
			}
			a.fresh = max(0, a.fresh-1)
			for i, suffix := range [...]string{"", countKey, expectedKey} {
				l.batch[a.key+suffix] += a.local[i]
				a.inflight[i] += a.local[i]
				a.local[i] = 0
			}
		}
	}
	batch, seq := l.batch, l.batchSeq
	l.mu.Unlock()
	if len(batch) == 0 {
		l.mu.Lock()
		l.batch = nil
		l.mu.Unlock()
		return nil
	}
	totals, err := l.store.Add(ctx, seq, batch, storeTTL)
	if err != nil {
		return fmt.Errorf("budget: share spend: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.accounts {
		for i, suffix := range [...]string{"", countKey, expectedKey} {
			if v, ok := totals[a.key+suffix]; ok {
				a.shared[i], a.inflight[i] = v, 0
			}
		}
	}
	l.batch = nil
	return nil
}

// State is a tenant's budget as GET /v1/budgets/{tenant} shows it.
type State struct {
	Tenant      string           `json:"tenant"`
	Mode        string           `json:"mode"`
	Period      string           `json:"period"`
	PeriodStart time.Time        `json:"period_start"`
	PeriodEnd   time.Time        `json:"period_end"`
	BudgetUSD   float64          `json:"budget_usd"`
	SpentUSD    float64          `json:"spent_usd"`
	PaceUSD     float64          `json:"pace_usd"`    // what an even pace would have spent by now
	CostWeight  float64          `json:"cost_weight"` // the adjustment now: quality per USD added to the rule's weight on cost
	Status      string           `json:"status"`      // within pace, ahead of pace, exhausted
	Shaped      map[string]int64 `json:"shaped_decisions"`
}

// State returns a tenant's budget now; false when it has none.
func (l *Ledger) State(tenant string) (State, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	spec, ok := l.cfg.spec(tenant)
	if !ok {
		return State{}, false
	}
	a := l.accounts[tenant]
	if a == nil || !now.Before(a.end) { // nothing spent in this period yet (here): not created by looking
		start, end, id := period(spec.Period, now)
		a = &account{tenant: tenant, spec: spec, key: tenant + "/" + id, start: start, end: end}
	}
	frac := now.Sub(a.start).Seconds() / a.end.Sub(a.start).Seconds()
	st := State{Tenant: a.tenant, Mode: a.spec.Mode, Period: a.spec.Period, PeriodStart: a.start, PeriodEnd: a.end,
		BudgetUSD: a.spec.USD, SpentUSD: a.spent(), PaceUSD: a.spec.USD * frac, Shaped: map[string]int64{}}
	if a.spec.Mode == ModePace {
		st.CostWeight = a.weight
	}
	for k, v := range a.shaped {
		st.Shaped[k] = v
	}
	switch {
	case st.SpentUSD >= st.BudgetUSD:
		st.Status = "exhausted"
	case st.SpentUSD > st.PaceUSD:
		st.Status = "ahead of pace"
	default:
		st.Status = "within pace"
	}
	return st, true
}
