package api

import (
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/stats"
)

// TestRuleNamedInVerdict: a trade-off rule's promotion is named in the
// verdict sentence (issue 15). The fine-tune is better on thumbs at
// twice the cost, within a budget of +150%.
func TestRuleNamedInVerdict(t *testing.T) {
	t.Parallel()
	exp := reportExperiment()
	exp.Rollout.Rule, exp.Rollout.CostMargin = string(stats.QualityWithinBudgetRule), 1.5
	now := reportT0.Add(72*time.Hour + 5*time.Minute)
	r := moneyReport(t, exp, []arm{{thumbs: 0.55, latencyMS: 820, errRate: 0.004}, {thumbs: 0.585, latencyMS: 790, errRate: 0.004, costMul: 2}}, 72, now)
	if r.Verdict.Kind != VerdictPromote {
		t.Fatalf("verdict %s: %s", r.Verdict.Kind, r.Verdict.Sentence)
	}
	if want := "the quality_within_budget rule promotes it"; !strings.Contains(r.Verdict.Sentence, want) {
		t.Errorf("verdict lacks %q:\n%s", want, r.Verdict.Sentence)
	}
}

// TestRuleCostSavingPrimaryRow: under cost_saving the primary is judged
// by non-inferiority, and its row says so. The candidate costs half the
// base's (the fixture scales cost up only).
func TestRuleCostSavingPrimaryRow(t *testing.T) {
	t.Parallel()
	exp := reportExperiment()
	exp.Rollout.Rule, exp.Rollout.QualityMargin = string(stats.CostSavingRule), 0.5
	now := reportT0.Add(72*time.Hour + 5*time.Minute)
	r := moneyReport(t, exp, []arm{{thumbs: 0.55, latencyMS: 820, errRate: 0.004, costMul: 2}, {thumbs: 0.55, latencyMS: 820, errRate: 0.004}}, 72, now)
	if r.Verdict.Kind != VerdictPromote || !strings.Contains(r.Verdict.Sentence, "the cost_saving rule promotes it") {
		t.Fatalf("verdict %s: %s", r.Verdict.Kind, r.Verdict.Sentence)
	}
	for _, m := range r.Metrics {
		if m.Role == RolePrimary {
			if got := m.Rows[1].Status; got != RowNonInferior {
				t.Errorf("primary row status %s, want %s", got, RowNonInferior)
			}
		}
	}
}
