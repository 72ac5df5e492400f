package experiments_test

import (
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
)

// TestMetricSpecCUPED: experiments[].cuped (default off) selects CUPED
// for the Mean metrics only.
func TestMetricSpecCUPED(t *testing.T) {
	t.Parallel()
	on := mustParse(t, strings.Replace(minimalYAML, "    variants:", "    cuped: true\n    variants:", 1), noEnv).Experiment("exp")
	off := mustParse(t, minimalYAML, noEnv).Experiment("exp")
	if !on.CUPED || off.CUPED {
		t.Fatalf("cuped: %v, default %v", on.CUPED, off.CUPED)
	}
	for _, tc := range []struct {
		e      *experiments.Experiment
		metric string
		want   bool
	}{
		{on, experiments.MetricRequests, true},
		{on, experiments.MetricThumbs, false}, // a Ratio metric
		{off, experiments.MetricRequests, false},
		{nil, experiments.MetricRequests, false},
	} {
		if got := experiments.MetricSpec(tc.e, tc.metric, false).CUPED; got != tc.want {
			t.Errorf("cuped %v, %s: CUPED = %v, want %v", tc.e != nil && tc.e.CUPED, tc.metric, got, tc.want)
		}
	}
}
