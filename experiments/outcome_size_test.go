package experiments

import (
	"testing"
	"unsafe"
)

// TestOutcomeSize keeps UsageMissing in what was padding: Observe copies
// an Outcome into the recorder's queue, so its size is per-request cost.
func TestOutcomeSize(t *testing.T) {
	if got := unsafe.Sizeof(Outcome{}); got != 144 {
		t.Errorf("Outcome is %d bytes, want 144", got)
	}
}

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
	o := Outcome{PromptTokens: 10, CompletionTokens: 5, Cost: 0.1}
	outcomeValues(&o, &v, &has)
	for _, m := range []string{MetricPromptTokens, MetricCompletionTokens, MetricCost, MetricRequests} {
		if !has[idx(m)] {
			t.Errorf("known usage: %s missing", m)
		}
	}
	o.UsageMissing = true
	outcomeValues(&o, &v, &has)
	for _, m := range []string{MetricPromptTokens, MetricCompletionTokens, MetricCost} {
		if has[idx(m)] {
			t.Errorf("missing usage: %s recorded", m)
		}
	}
	if !has[idx(MetricRequests)] || !has[idx(MetricLatencyMS)] {
		t.Error("missing usage dropped the request metrics")
	}
}
