package api

import (
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// TestReportTokenGuardrailDirection: a guardrail on tokens per request
// guards against more tokens (more cost), as the rollout controller's
// policy does (the metric registry: tokens are lower-is-better). A
// candidate that uses 50% more completion tokens than the base is harmful
// beyond a 10% margin, not "non-inferior".
func TestReportTokenGuardrailDirection(t *testing.T) {
	t.Parallel()
	exp := twoArms(func(e *experiments.Experiment) {
		e.Rollout = &experiments.Rollout{Guardrails: []experiments.Guardrail{
			{Metric: experiments.MetricCompletionTokens, Margin: 0.10, Relative: true},
		}}
	})
	snap := snapshotOf(armData{20000, 0.50, 0.01, 800}, armData{20000, 0.50, 0.01, 800})
	snap.Stats[experiments.VariantMetric{Variant: 0, Metric: experiments.MetricCompletionTokens}] = contSum(20000, 200, 50)
	snap.Stats[experiments.VariantMetric{Variant: 1, Metric: experiments.MetricCompletionTokens}] = contSum(20000, 300, 50)
	r := BuildReport(exp, ReportStatus{Status: "running", Step: -1}, nil, snap, nil, time.Unix(0, 0))
	if r.Decision.Verdict != stats.Rollback {
		t.Errorf("verdict %s, want rollback; reasons %+v", r.Decision.Verdict, r.Decision.Reasons)
	}
	if row := r.metric(experiments.MetricCompletionTokens).row(1); row.Status != RowHarmful {
		t.Errorf("completion tokens row status %q, want %q", row.Status, RowHarmful)
	}
}
