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
	"time"
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
// carry the spend over it; the cost weight is adjusted once per tick
// (1/1440 of the period: a minute of a day).
const (
	paceAim       = 0.98
	ticksAPeriod  = 1440
	rateSmoothing = 0.3 // weight of the newest tick in the spend rate
	weightGain    = 0.5 // the weight moves by (rate/desired)^gain per tick
	firstWeight   = 0.01
	maxAccounts   = 100_000
	storeTTL      = 62 * 24 * time.Hour // a month's spend, and the next month's
	// CheapestWeight is the cost weight that routes to the cheapest
	// allowed model (a cap's "cheapest" past its budget).
	CheapestWeight = 1e12
)

// account is one tenant's spend in one period.
type account struct {
	tenant   string
	spec     Spec
	key      string // tenant and period, the store's key
	start    time.Time
	end      time.Time
	shared   float64 // the spend the store last returned (all of it, without a store)
	inflight float64 // being added to the store
	local    float64 // spent here since
	// pacing
	weight    float64
	tick      time.Time // of the last adjustment
	tickSpend float64
	rate      float64 // USD per second, smoothed; <0 before the first tick
	meanCost  float64 // expected cost of a decision, smoothed
	shaped    map[string]int64
}

func (a *account) spent() float64 { return a.shared + a.inflight + a.local }

// Ledger keeps the spend of the tenants with a budget. It is safe for
// concurrent use.
type Ledger struct {
	now   func() time.Time
	store Store

	syncMu   sync.Mutex // one Sync at a time
	mu       sync.Mutex
	cfg      *Config
	accounts map[string]*account // by tenant
	seq      int64
	batch    map[string]float64 // being added to the store (retried as is)
	batchSeq int64
}

// NewLedger keeps the budgets of cfg (nil: none yet) on the clock now
// (time.Now when nil), sharing spend through store when it is not nil.
func NewLedger(cfg *Config, now func() time.Time, store Store) *Ledger {
	if now == nil {
		now = time.Now
	}
	return &Ledger{now: now, store: store, cfg: cfg, accounts: map[string]*account{}}
}

// Configure takes the budgets of a reloaded configuration: accounts keep
// their spend; a tenant whose budget changed is paced by the new one.
func (l *Ledger) Configure(cfg *Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = cfg
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
	if a != nil && !now.Before(a.end) {
		// a new period: the spend starts again; the pace's weight is kept
		// as its first guess
		start, end, id := period(spec.Period, now)
		a.start, a.end, a.key = start, end, tenant+"/"+id
		a.shared, a.inflight, a.local, a.rate, a.tick, a.tickSpend = 0, 0, 0, -1, start, 0
	}
	if a == nil {
		if len(l.accounts) >= maxAccounts {
			l.dropStale(now)
			if len(l.accounts) >= maxAccounts {
				tenant = "(more tenants)" // beyond the bound, the rest share one account
				if a = l.accounts[tenant]; a != nil {
					return a
				}
			}
		}
		start, end, id := period(spec.Period, now)
		a = &account{tenant: tenant, spec: spec, key: tenant + "/" + id, start: start, end: end, rate: -1, tick: now, shaped: map[string]int64{}}
		l.accounts[tenant] = a
	}
	return a
}

// dropStale forgets accounts of periods that ended, under l.mu.
func (l *Ledger) dropStale(now time.Time) {
	for t, a := range l.accounts {
		if !now.Before(a.end) && a.local == 0 && a.inflight == 0 {
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

// pace adjusts the account's cost weight once a tick: the weight grows
// while the spend rate runs ahead of the rate that would spend what is
// left of the budget evenly over what is left of the period, and shrinks
// while it lags, multiplicatively (a weight that falls far below its
// first value returns to 0).
func (l *Ledger) pace(a *account, now time.Time) {
	tick := a.end.Sub(a.start) / ticksAPeriod
	dt := now.Sub(a.tick)
	if dt < tick {
		return
	}
	spent := a.spent()
	inst := (spent - a.tickSpend) / dt.Seconds()
	if a.rate < 0 {
		a.rate = inst
	} else {
		a.rate = (1-rateSmoothing)*a.rate + rateSmoothing*inst
	}
	a.tick, a.tickSpend = now, spent
	left := a.end.Sub(now).Seconds()
	remaining := paceAim*a.spec.USD - spent
	start := firstWeight / math.Max(a.meanCost, 1e-9)
	switch {
	case remaining <= 0 || left <= 0:
		a.weight = math.Max(2*a.weight, start) // over the aim: spend as little as the rule allows
	case a.rate <= 0:
		a.weight /= 2
	default:
		ratio := a.rate / (remaining / left)
		if a.weight == 0 {
			if ratio > 1 {
				a.weight = start
			}
			break
		}
		a.weight *= math.Min(2, math.Max(0.5, math.Pow(ratio, weightGain)))
	}
	if a.weight < start/1000 {
		a.weight = 0
	}
}

// ErrExhausted refuses a request of a capped tenant past its budget.
var ErrExhausted = errors.New("budget spent")

// Charge adds the expected cost of a decision made under sh to the
// tenant's spend. A cap is charged fleet-wide at once, and only while the
// spend is below the budget (so the fleet exceeds it by at most one
// request's cost): when another request spent the budget first, Charge
// returns ErrExhausted and the caller routes again as sh says past the
// budget (Recharge). Without a store, or while it cannot be reached, the
// cap is checked against the spend this replica knows.
func (l *Ledger) Charge(ctx context.Context, sh Shaping, cost float64) error {
	if sh.Mode == ModeCap && !sh.Exhausted && l.store != nil {
		spent, ok, err := l.store.Charge(ctx, sh.key, cost, sh.BudgetUSD, storeTTL)
		if err == nil {
			l.mu.Lock()
			defer l.mu.Unlock()
			if a := l.accounts[sh.Tenant]; a != nil && a.key == sh.key {
				a.shared = spent
				if ok {
					a.note(cost)
				}
			}
			if !ok {
				return ErrExhausted
			}
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
	a.local += cost
	a.note(cost)
	return nil
}

// note smooths the expected cost of a decision (the scale of the pace's
// first weight).
func (a *account) note(cost float64) {
	if a.meanCost == 0 {
		a.meanCost = cost
	} else {
		a.meanCost = 0.99*a.meanCost + 0.01*cost
	}
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
		a.local += delta
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
		for _, a := range l.accounts {
			l.batch[a.key] += a.local
			a.inflight += a.local
			a.local = 0
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
	spent, err := l.store.Add(ctx, seq, batch, storeTTL)
	if err != nil {
		return fmt.Errorf("budget: share spend: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.accounts {
		if v, ok := spent[a.key]; ok {
			a.shared, a.inflight = v, 0
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
	a := l.account(tenant, now)
	if a == nil {
		return State{}, false
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
