package recorder

import (
	"testing"

	"github.com/abgate/abgate/experiments"
)

// TestOutcomeMetricsAreTheRegistrys: the recorder aggregates exactly the
// registry's request metrics, in the registry's order (the order of its
// per-user array), and nothing else.
func TestOutcomeMetricsAreTheRegistrys(t *testing.T) {
	t.Parallel()
	var want []string
	for _, m := range experiments.BuiltinMetrics() {
		if m.Source == experiments.SourceRequest {
			want = append(want, m.Name)
		}
	}
	if len(want) != numOutcomeMetrics {
		t.Fatalf("registry has %d request metrics %v, recorder aggregates %d %v", len(want), want, numOutcomeMetrics, outcomeMetrics)
	}
	for i, name := range outcomeMetrics {
		if name != want[i] {
			t.Errorf("outcomeMetrics[%d] = %q, registry's request metric %d is %q", i, name, i, want[i])
		}
	}
}
