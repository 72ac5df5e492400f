package recorder

import (
	"testing"

	"github.com/abgate/abgate/experiments"
)

// TestOutcomeValuesUsageMissing: tokens and cost are left out, not zero,
// when the upstream reported no usage.
func TestOutcomeValuesUsageMissing(t *testing.T) {
	var v [numOutcomeMetrics]float64
	var has [numOutcomeMetrics]bool
	idx := func(name string) int {
		for i, m := range outcomeMetrics {
			if m == name {
				return i
			}
		}
		t.Fatalf("no metric %s", name)
		return -1
	}
	o := experiments.Outcome{PromptTokens: 10, CompletionTokens: 5, Cost: 0.1}
	outcomeValues(&o, &v, &has)
	for _, m := range []string{experiments.MetricPromptTokens, experiments.MetricCompletionTokens, experiments.MetricCost, experiments.MetricRequests} {
		if !has[idx(m)] {
			t.Errorf("known usage: %s missing", m)
		}
	}
	o.UsageMissing = true
	outcomeValues(&o, &v, &has)
	for _, m := range []string{experiments.MetricPromptTokens, experiments.MetricCompletionTokens, experiments.MetricCost} {
		if has[idx(m)] {
			t.Errorf("missing usage: %s recorded", m)
		}
	}
	if !has[idx(experiments.MetricRequests)] || !has[idx(experiments.MetricLatencyMS)] {
		t.Error("missing usage dropped the request metrics")
	}
}
