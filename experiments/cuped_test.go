package experiments_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// TestMetricSpecCUPED: experiments[].cuped (default off) selects CUPED
// for every metric whose registry entry names a covariate source, Mean
// and Ratio alike, and sets the history TTL's default.
func TestMetricSpecCUPED(t *testing.T) {
	t.Parallel()
	on := mustParse(t, strings.Replace(minimalYAML, "    variants:", "    cuped: true\n    variants:", 1), noEnv).Experiment("exp")
	off := mustParse(t, minimalYAML, noEnv).Experiment("exp")
	if !on.CUPED || off.CUPED {
		t.Fatalf("cuped: %v, default %v", on.CUPED, off.CUPED)
	}
	if on.CUPEDHistoryTTL != experiments.DefaultCUPEDHistoryTTL || off.CUPEDHistoryTTL != 0 {
		t.Errorf("cuped_history_ttl: %v with cuped, %v without", on.CUPEDHistoryTTL, off.CUPEDHistoryTTL)
	}
	for _, tc := range []struct {
		e      *experiments.Experiment
		metric string
		want   bool
	}{
		{on, experiments.MetricRequests, true},
		{on, experiments.MetricThumbs, true},      // a Ratio metric
		{on, experiments.MetricLatencyMS, true},   // a Ratio metric
		{on, experiments.MetricJudgeScore, false}, // no covariate source
		{on, "no-such-metric", false},
		{off, experiments.MetricRequests, false},
		{nil, experiments.MetricRequests, false},
	} {
		if got := experiments.MetricSpec(tc.e, tc.metric, false).CUPED; got != tc.want {
			t.Errorf("cuped %v, %s: CUPED = %v, want %v", tc.e != nil && tc.e.CUPED, tc.metric, got, tc.want)
		}
	}
}

// TestCovariateZ: z per source, inside the metric's bounds, and the z of
// a user without history.
func TestCovariateZ(t *testing.T) {
	t.Parallel()
	e := &experiments.Experiment{ID: "e", CUPED: true, Phase: 3, Caps: map[string]float64{experiments.MetricLatencyMS: 1000}}
	c := experiments.NewCovariates(e)
	if c.SaltPhase != 3 || c.HistoryTTL != time.Duration(experiments.DefaultCUPEDHistoryTTL) {
		t.Errorf("covariates: %+v", c)
	}
	if experiments.NewCovariates(&experiments.Experiment{ID: "e"}) != nil || experiments.NewCovariates(nil) != nil {
		t.Error("covariates without cuped")
	}
	seg := experiments.SegmentMetric(experiments.MetricRating, 0, 1)
	for _, tc := range []struct {
		metric string
		x, y   float64
		want   float64
	}{
		{experiments.MetricRequests, 7, 7, 7},        // a total
		{experiments.MetricRequests, 0, 0, 0},        // no history
		{experiments.MetricError, 1, 4, 0.25},        // a ratio
		{experiments.MetricError, 0, 0, 0},           // no history
		{experiments.MetricRating, 9, 2, 4.5},        // a ratio
		{experiments.MetricRating, 0, 0, 1},          // no history: the lower bound
		{seg, 0, 0, 1},                               // a segment statistic: its metric's
		{experiments.MetricLatencyMS, 5000, 2, 1000}, // clamped at the cap
		{experiments.MetricJudgeScore, 1, 1, 0},      // no covariate source
		{"unknown", 1, 1, 0},
	} {
		if got := c.Z(tc.metric, tc.x, tc.y); got != tc.want {
			t.Errorf("Z(%s, %v, %v) = %v, want %v", tc.metric, tc.x, tc.y, got, tc.want)
		}
	}
}

// TestCUPEDRatioAdjusts: marking Ratio metrics CUPED (MetricSpec) makes
// stats.Decide adjust them: with a covariate correlated with the outcome,
// the bounded primary's interval narrows and the call stays the same.
func TestCUPEDRatioAdjusts(t *testing.T) {
	t.Parallel()
	on := &experiments.Experiment{ID: "e", CUPED: true}
	off := &experiments.Experiment{ID: "e"}
	arm := func(n, p, z float64) stats.Summary {
		x := math.Round(n * p)
		return stats.Summary{N: n, SumX: x, SumX2: x, SumY: n, SumY2: n, SumXY: x, SumR: x, SumR2: x,
			SumZ: n * z, SumZ2: n * z * z, SumXZ: x * z * 1.5, SumYZ: n * z, SumRZ: x * z * 1.5}
	}
	for _, metric := range []string{experiments.MetricError, experiments.MetricThumbs} {
		var got [2]stats.MetricResult
		var verdict [2]stats.Verdict
		for k, e := range []*experiments.Experiment{off, on} {
			m := experiments.MetricSpec(e, metric, false)
			if m.CUPED != (k == 1) {
				t.Fatalf("%s: CUPED = %v", metric, m.CUPED)
			}
			g := experiments.MetricSpec(e, experiments.MetricLatencyMS, false)
			d := stats.Decide(stats.Input{Users: []float64{4000, 4000}, Metrics: map[string][]stats.Summary{
				metric:                      {arm(4000, 0.10, 0.3), arm(4000, 0.13, 0.3)},
				experiments.MetricLatencyMS: {arm(4000, 0.5, 0.4), arm(4000, 0.52, 0.4)},
			}}, stats.Policy{Primary: m, Guardrails: []stats.Guardrail{{Metric: g, Margin: 0.05}}, Alpha: 0.05})
			verdict[k] = d.Verdict
			for _, mr := range d.Variants[0].Metrics {
				if mr.Metric == metric {
					got[k] = mr
				}
			}
			if got[k].CILow == nil || got[k].CIHigh == nil {
				t.Fatalf("%s: no interval: %+v", metric, got[k])
			}
		}
		if verdict[0] != verdict[1] {
			t.Errorf("%s: verdict %s without cuped, %s with", metric, verdict[0], verdict[1])
		}
		w0, w1 := *got[0].CIHigh-*got[0].CILow, *got[1].CIHigh-*got[1].CILow
		if !(w1 < w0) {
			t.Errorf("%s: interval width %v with cuped, %v without: not adjusted", metric, w1, w0)
		}
	}
}
