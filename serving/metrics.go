package serving

import (
	"github.com/prometheus/client_golang/prometheus"

	"switchyard/datasets/logstore"
	"switchyard/serving/budget"
)

// Metrics are the service's Prometheus metrics, registered into the
// registry passed to NewMetrics (tests pass a fresh one).
type Metrics struct {
	Decisions        *prometheus.CounterVec   // by model, policy, arm
	Explored         *prometheus.CounterVec   // by policy
	PredictedQuality *prometheus.HistogramVec // of the chosen model, by model
	ExpectedCost     *prometheus.HistogramVec // of the chosen model, by model
	DecisionSeconds  prometheus.Histogram     // in-process decision: features, scoring, policy
	RequestSeconds   *prometheus.HistogramVec // whole HTTP request, by endpoint and status code
	Feedback         *prometheus.CounterVec   // by model and result (stored, repeated, rejected, failed)
	RealisedQuality  *prometheus.HistogramVec // from feedback, by model
	RealisedCost     *prometheus.HistogramVec // from feedback, by model
	Shed             *prometheus.CounterVec   // requests answered 429, by reason (in_flight, queue_delay, queue_timeout)
	InFlight         prometheus.Gauge
	Reloads          *prometheus.CounterVec // by result
	ScorerFallbacks  prometheus.Counter     // scorings that fell back to the pure-Go scorer
	FleetConflicts   prometheus.Counter     // outcomes acknowledged by two replicas while Redis was unreachable
	BudgetShaped     *prometheus.CounterVec // decisions a budget shaped, by tenant (named ones; the rest "other") and action
}

// NewMetrics creates and registers the metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	qBuckets := prometheus.LinearBuckets(0.05, 0.1, 10)
	costBuckets := prometheus.ExponentialBuckets(1e-6, 3, 14)
	m := &Metrics{
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_decisions_total",
			Help: "Routing decisions, by chosen model, policy and experiment arm."}, []string{"model", "policy", "arm"}),
		Explored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_explored_decisions_total",
			Help: "Decisions where exploration chose another model than the rule."}, []string{"policy"}),
		PredictedQuality: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchyard_predicted_quality",
			Help: "Predicted quality of the chosen model.", Buckets: qBuckets}, []string{"model"}),
		ExpectedCost: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchyard_expected_cost_usd",
			Help: "Expected cost of the chosen model, USD.", Buckets: costBuckets}, []string{"model"}),
		DecisionSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "switchyard_decision_seconds",
			Help: "In-process decision time: features, scoring and policy (2 µs to 2 s).", Buckets: prometheus.ExponentialBuckets(2e-6, 2, 21)}),
		RequestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchyard_http_request_seconds",
			Help: "HTTP request time, by endpoint and status code (20 µs to 21 s).", Buckets: prometheus.ExponentialBuckets(2e-5, 2, 21)}, []string{"endpoint", "code"}),
		Feedback: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_feedback_total",
			Help: "Feedback requests, by model and result."}, []string{"model", "result"}),
		RealisedQuality: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchyard_realised_quality",
			Help: "Quality reported by feedback.", Buckets: qBuckets}, []string{"model"}),
		RealisedCost: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchyard_realised_cost_usd",
			Help: "Cost reported by (or computed for) feedback, USD.", Buckets: costBuckets}, []string{"model"}),
		Shed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_shed_requests_total",
			Help: "Requests answered 429, by reason: too many in flight, or the server's queueing delay above its target."}, []string{"reason"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchyard_requests_in_flight",
			Help: "API requests being served."}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_reloads_total",
			Help: "Configuration reloads, by result (ok, rejected)."}, []string{"result"}),
		ScorerFallbacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_scorer_fallbacks_total",
			Help: "Scorings answered by the pure-Go scorer because ONNX Runtime failed."}),
		FleetConflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_fleet_conflicts_total",
			Help: "Outcomes this replica acknowledged while Redis was unreachable that another replica had also stored (the first stays)."}),
		BudgetShaped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_budget_shaped_decisions_total",
			Help: "Requests a tenant's budget shaped, by tenant (those named in the configuration; the rest as other) and action (paced, capped, rejected)."}, []string{"tenant", "action"}),
	}
	for _, reason := range []string{"in_flight", "queue_delay", "queue_timeout"} {
		m.Shed.WithLabelValues(reason) // exported as 0 from the start
	}
	reg.MustRegister(m.Decisions, m.Explored, m.PredictedQuality, m.ExpectedCost, m.DecisionSeconds, m.RequestSeconds,
		m.Feedback, m.RealisedQuality, m.RealisedCost, m.Shed, m.InFlight, m.Reloads, m.ScorerFallbacks, m.FleetConflicts, m.BudgetShaped)
	return m
}

// RegisterShedMetrics exposes the delay shedder's current shed share and
// the queueing delay it last measured.
func RegisterShedMetrics(reg prometheus.Registerer, d *DelayShedder) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_shed_share",
			Help: "Share of routing requests being answered 429 because of queueing delay."}, d.Share),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_queueing_delay_seconds",
			Help: "90th percentile of the Go scheduler's queueing delay over the last sampling window."},
			func() float64 { return d.Delay().Seconds() }),
	)
}

// logHealth is what a log writer reports for metrics: its logstore.Health.
type logHealth interface{ Health() logstore.Health }

// RegisterLogMetrics exposes a log's backlog, drops and write errors.
func RegisterLogMetrics(reg prometheus.Registerer, name string, l logHealth) {
	labels := prometheus.Labels{"log": name}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_log_backlog", Help: "Records (decision log) or segments (outcome log) waiting to be written to Parquet.", ConstLabels: labels},
			func() float64 { return float64(l.Health().Backlog) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchyard_log_dropped_total", Help: "Records dropped because the backlog was full.", ConstLabels: labels},
			func() float64 { return float64(l.Health().Dropped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchyard_log_write_errors_total", Help: "Failed log writes.", ConstLabels: labels},
			func() float64 { return float64(l.Health().Errors) }),
	)
}

// budgetCollector exports the budgets of the tenants the configuration
// names: spend, budget and cost weight.
type budgetCollector struct{ l *budget.Ledger }

var (
	budgetSpendDesc = prometheus.NewDesc("switchyard_budget_spent_usd",
		"Spend of a tenant named in the configuration in its current period (expected cost, corrected by feedback), USD.", []string{"tenant", "period"}, nil)
	budgetLimitDesc = prometheus.NewDesc("switchyard_budget_usd",
		"Budget of a tenant named in the configuration for its period, USD.", []string{"tenant", "period"}, nil)
	budgetWeightDesc = prometheus.NewDesc("switchyard_budget_cost_weight",
		"Cost weight a paced tenant's budget adds to the rule now (quality per USD).", []string{"tenant", "period"}, nil)
)

func (c budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- budgetSpendDesc
	ch <- budgetLimitDesc
	ch <- budgetWeightDesc
}

func (c budgetCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.l.Named() {
		st, ok := c.l.State(t)
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(budgetSpendDesc, prometheus.GaugeValue, st.SpentUSD, t, st.Period)
		ch <- prometheus.MustNewConstMetric(budgetLimitDesc, prometheus.GaugeValue, st.BudgetUSD, t, st.Period)
		ch <- prometheus.MustNewConstMetric(budgetWeightDesc, prometheus.GaugeValue, st.CostWeight, t, st.Period)
	}
}
