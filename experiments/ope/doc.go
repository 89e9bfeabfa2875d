// Package ope estimates, from production logs, how a routing policy that
// was not deployed would have done: off-policy evaluation.
//
// # Where it sits
//
// The router logs every decision with the propensity of the chosen model
// under the policy that was live (the logging policy); the outcome joined to
// it reveals the quality and cost of that one model only. To judge a
// candidate policy (the target) the caller turns each logged decision into a
// Record: the logged action and its propensity, the observed reward and
// cost, the target's distribution over the same action set, and a direct
// model's predicted quality and cost of every action. Value returns a
// Report with three estimators for mean quality and for mean cost per
// request, percentile bootstrap intervals and overlap diagnostics; an
// Accumulator does the same for records added one at a time. The
// package imports nothing from the project; callers in experiments and cmd
// build the records.
//
// # Estimators
//
// With n records, the importance weight of record i is
//
//	w_i = Target_i[Logged_i] / Propensity_i
//
// (clipped, see below), r_i its reward and q̂_i(a) the direct model's
// prediction for action a. Then
//
//	IPS   = (1/n) Σ_i w_i r_i
//	SNIPS = Σ_i w_i r_i / Σ_i w_i
//	DR    = (1/n) Σ_i [ Σ_a Target_i[a] q̂_i(a) + w_i (r_i − q̂_i(Logged_i)) ]
//
// and the same with the cost and the predicted cost. IPS is unbiased
// whenever the logging policy gives positive probability to every action
// the target may take, but its variance grows with the weights. SNIPS
// normalises by the realised total weight instead of n: the weights have
// expectation 1 under the logging policy, so Σw/n estimates 1 and dividing
// by it removes the noise of how many matched records happened to be drawn.
// SNIPS is biased by O(1/n) but usually far less variable, and it always
// stays within the range of the observed rewards. DR starts from the direct
// model's prediction for the target and corrects it with importance-weighted
// residuals: it is unbiased if either the propensities or the direct model
// are right, and its variance is that of the residuals rather than of the
// rewards, so a decent direct model makes it the estimator to report.
//
// # Clipping
//
// Config.MaxWeight caps every weight at that value. A record the logging
// policy chose with probability 0.001 otherwise counts a thousand times; the
// cap bounds that influence and so the variance, at the price of bias: IPS
// is pulled toward zero (for non-negative rewards), DR toward the direct
// model on the clipped records, and intervals then cover the clipped
// quantity, not the true value. ESS and SNIPS use the clipped weights too.
// A warning reports how many weights were clipped.
//
// # Intervals and diagnostics
//
// The bootstrap is a Poisson bootstrap: in each of Config.Bootstrap
// resamples every record counts a Poisson(1) number of times (the limit of
// drawing n records with replacement), drawn from a generator seeded by
// Config.Seed as the record is added, so the same records in the same order
// give the same Report. A resample's estimates divide by its own size.
// StdErr is the standard deviation of the replicates and [Lo, Hi] their
// percentile interval at Config.Level. Nothing is kept per record: an
// Accumulator holds running sums, one set per resample, so a log of ten
// million decisions is evaluated in the memory of a few thousand numbers,
// at a few nanoseconds per record and resample.

// The effective sample size (Σw)²/Σw² says how many records the weighted
// average effectively rests on. Value warns when ESS/n falls below
// Config.LowOverlapESS, when the target puts more than RareTargetShare of
// its probability on actions the logging policy (per LoggingProbs) gives
// under RareLoggingProb, when propensities fall below TinyPropensity, when
// weights were clipped and when SNIPS is undefined.
package ope
