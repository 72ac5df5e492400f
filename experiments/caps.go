package experiments

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// Caps bound the per-request values of the unbounded request metrics
// (issue 11). The recorder clamps each request's value at its metric's
// cap before it is summed, so every user's own mean lies in [0, cap], and
// the registry (LookupMetric) then gives the metric the bounds [0, cap]:
// the controller's policy analyses it with the nonasymptotic bounded test
// (docs/statistics.md §2.9), valid at every sample size.
//
// A cap is a property of the measurement, not of the decision: choose the
// tightest defensible one (the test's cost in users grows with the cap's
// distance from typical values), and keep it for the life of a phase —
// values recorded under another cap are on another scale.

// CappableMetrics are the request metrics a cap can bound, in registry
// order: the others are bounded by nature (0/1 rates) or have no per-user
// ratio (requests).
var cappableMetrics = [...]string{
	MetricLatencyMS, MetricTTFBMS, MetricMaxGapMS,
	MetricPromptTokens, MetricCompletionTokens, MetricCost,
}

// timeMetrics are the capped metrics whose default cap is the variants'
// upstream total_timeout: no request can take longer (a fallback's
// second attempt aside, which the cap then clamps).
var timeMetrics = [...]string{MetricLatencyMS, MetricTTFBMS, MetricMaxGapMS}

// IsCappable reports whether metric name takes a cap (experiments[].caps).
func IsCappable(name string) bool { return slices.Contains(cappableMetrics[:], name) }

// MetricCap returns the declared cap of metric name in e
// (experiments[].caps), and whether it has one. Only a declared cap
// bounds the metric in the policy: the default a timeout gives (see
// RecordingCap) is so far above typical values that the bounded test
// could never clear a guardrail with it, so without a declaration the
// metric keeps the asymptotic test.
func MetricCap(e *Experiment, name string) (float64, bool) {
	if e == nil || !IsCappable(name) {
		return 0, false
	}
	c, ok := e.Caps[name]
	return c, ok && c > 0
}

// RecordingCap is the cap the recorder clamps a metric's per-request
// values at: the declared cap, else, for the time metrics, the largest
// total_timeout of the variants' upstreams ups (no request takes longer
// but a fallback's second attempt), so one runaway value cannot dominate
// a sum.
func RecordingCap(e *Experiment, ups []Upstream, name string) (float64, bool) {
	if c, ok := MetricCap(e, name); ok {
		return c, true
	}
	if e == nil || !slices.Contains(timeMetrics[:], name) {
		return 0, false
	}
	var most time.Duration
	for _, v := range e.Variants {
		i := slices.IndexFunc(ups, func(u Upstream) bool { return u.Name == v.Upstream })
		if i < 0 || ups[i].TotalTimeout <= 0 {
			return 0, false
		}
		most = max(most, time.Duration(ups[i].TotalTimeout))
	}
	if most <= 0 {
		return 0, false
	}
	return float64(most) / float64(time.Millisecond), true
}

// validateCaps checks experiments[].caps; path is the experiment's path.
func validateCaps(e *Experiment, path string) []FieldError {
	var errs []FieldError
	for _, name := range slices.Sorted(maps.Keys(e.Caps)) {
		c := e.Caps[name]
		p := path + ".caps." + name
		switch {
		case !IsCappable(name):
			errs = append(errs, FieldError{p, fmt.Sprintf("not a cappable metric (one of %v)", cappableMetrics)})
		case !(c > 0) || math.IsInf(c, 0):
			errs = append(errs, FieldError{p, "must be a finite number > 0"})
		}
	}
	return errs
}
