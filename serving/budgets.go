package serving

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gorilla/mux"

	"switchyard/classifier/policy"
	"switchyard/serving/budget"
)

// BudgetNote is in a route response when the tenant's budget shaped the
// decision.
type BudgetNote struct {
	Tenant     string  `json:"tenant"`
	Action     string  `json:"action"`      // paced: the rule weighed cost more; capped: the budget is spent, the cheapest allowed model
	CostWeight float64 `json:"cost_weight"` // quality per USD added to the rule's weight on cost
}

func budgetNote(sh budget.Shaping) *BudgetNote {
	act := sh.Action()
	if act == "" {
		return nil
	}
	n := &BudgetNote{Tenant: sh.Tenant, Action: act, CostWeight: sh.CostWeight}
	if sh.Exhausted {
		n.CostWeight = 0 // the cheapest allowed model, not a weight to read
	}
	return n
}

// charge charges a decision to its tenant's budget. A cap that another
// request spent first routes the request again as the cap says (to the
// cheapest allowed model), or returns budget.ErrExhausted with the shaping
// to refuse it with.
func (s *Server) charge(ctx context.Context, router *policy.Router, pr policy.Request, d policy.Decision, sh budget.Shaping) (policy.Decision, budget.Shaping, error) {
	err := s.budgets.Charge(ctx, sh, d)
	if errors.Is(err, budget.ErrExhausted) {
		if sh = sh.Exhaust(); sh.Reject {
			return d, sh, err
		}
		pr.CostWeight, pr.NoExplore = sh.CostWeight, true
		if d, err = router.Route(pr); err != nil {
			return d, sh, err
		}
		err = s.budgets.Charge(ctx, sh, d)
	}
	s.budgets.Count(sh)
	if m := s.metrics; m != nil && sh.Action() != "" {
		m.BudgetShaped.WithLabelValues(s.tenantLabel(sh.Tenant), sh.Action()).Inc()
	}
	return d, sh, err
}

// refuseOverBudget answers 429 for a capped tenant past its budget.
func (s *Server) refuseOverBudget(w http.ResponseWriter, sh budget.Shaping) {
	s.budgets.Count(sh)
	if m := s.metrics; m != nil {
		m.BudgetShaped.WithLabelValues(s.tenantLabel(sh.Tenant), "rejected").Inc()
	}
	writeError(w, http.StatusTooManyRequests, &fieldError{field: "tenant",
		msg: fmt.Sprintf("%q has spent its budget of %g USD for %s (mode cap, when_exhausted reject)", sh.Tenant, sh.BudgetUSD, sh.Period)})
}

// tenantLabel is a tenant as the metrics name it: the tenants named in the
// configuration by name, the rest together.
func (s *Server) tenantLabel(tenant string) string {
	if s.budgets.IsNamed(tenant) {
		return tenant
	}
	return "other"
}

func (s *Server) handleBudget(w http.ResponseWriter, req *http.Request) {
	tenant := mux.Vars(req)["tenant"]
	st, ok := s.budgets.State(tenant)
	if !ok {
		writeError(w, http.StatusNotFound, &fieldError{field: "tenant", msg: fmt.Sprintf("tenant %q has no budget (none named for it and no default)", tenant)})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// SyncBudgets adds the spend of this replica to the fleet's and takes the
// fleet's spend of its tenants. The service calls it four times a second.
func (s *Server) SyncBudgets(ctx context.Context) {
	if err := s.budgets.Sync(ctx); err != nil {
		s.log.Debug("fleet: budgets not synced; spend is kept and sent when Redis answers", "err", err)
	}
}
