package api

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/abgate/abgate/stats"
)

// TestReportAlphaSpent: the report's policy is the controller's for the
// step's current test (Experiment.PolicyAt): its third test runs at
// α·6/(9π²), and alpha_spent is the three tests' sum, shown in the text
// report as one line (issue 11, item 6).
func TestReportAlphaSpent(t *testing.T) {
	t.Parallel()
	h, st := fixtureServer(t)
	exp, _ := h.src.Experiment("support-bot-ft")
	status := fixtureStatus()
	status.Test = 3
	snap, err := st.Summaries(context.Background(), exp.ID, status.Period)
	if err != nil {
		t.Fatal(err)
	}
	r := BuildReport(exp, status, nil, snap, nil, reportT0)
	third := stats.RestartAlpha(0.05, 3) // the second restart
	if math.Abs(r.Policy.Alpha-third) > 1e-15 || math.Abs(r.Policy.AlphaSpent-stats.AlphaSpent(0.05, 3)) > 1e-15 || !(r.Policy.AlphaSpent < 0.05) {
		t.Fatalf("policy alpha %g, spent %g; want %g and %g", r.Policy.Alpha, r.Policy.AlphaSpent, third, stats.AlphaSpent(0.05, 3))
	}
	for _, m := range r.Decision.Variants[0].Metrics {
		if math.Abs(m.Alpha-third) > 1e-15 {
			t.Errorf("%s decided at %g, want %g", m.Metric, m.Alpha, third)
		}
	}
	var b strings.Builder
	if err := RenderText(&b, r); err != nil || !strings.Contains(b.String(), "alpha spent so far on this step: 0.04") {
		t.Errorf("text report lacks the alpha spent line (%v):\n%s", err, b.String())
	}
}
