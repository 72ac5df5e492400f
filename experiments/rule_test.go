package experiments_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

const ruleYAML = `
upstreams:
  - {name: u, url: http://127.0.0.1:9}
experiments:
  - id: e
    primary: thumbs
    SUCCESS
    variants:
      - {name: base, upstream: u, model: m0}
      - {name: cand, upstream: u, model: m1}
    rollout: ROLLOUT
`

func ruleConfig(success, rollout string) string {
	return strings.NewReplacer("SUCCESS", success, "ROLLOUT", rollout).Replace(ruleYAML)
}

// TestRulePolicy: rollout.rule reaches the policy with its margins and
// the cost metric, defaulting to cost_per_success with a success signal,
// else cost; RolloutInput then carries the cost metric.
func TestRulePolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, success, rollout string
		rule                   stats.Rule
		cost                   string
	}{
		{"saving, default cost", "", "{rule: cost_saving, quality_margin: 0.02}", stats.CostSavingRule, experiments.MetricCost},
		{"saving, success signal", "success: {metric: task_completed}", "{rule: cost_saving, quality_margin: 0.02}", stats.CostSavingRule, experiments.MetricCostPerSuccess},
		{"budget, explicit", "success: {metric: task_completed}", "{rule: quality_within_budget, cost_metric: completion_tokens, cost_margin: 0.1}", stats.QualityWithinBudgetRule, experiments.MetricCompletionTokens},
		{"no rule", "", "{}", stats.PrimaryRule, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := experiments.Parse([]byte(ruleConfig(tc.success, tc.rollout)), nil)
			if err != nil {
				t.Fatal(err)
			}
			e := &cfg.Experiments[0]
			p := e.Policy(-1)
			if p.Rule != tc.rule || p.CostMetric.Name != tc.cost {
				t.Fatalf("policy rule %q cost %q, want %q %q", p.Rule, p.CostMetric.Name, tc.rule, tc.cost)
			}
			if tc.rule == stats.PrimaryRule {
				return
			}
			if !p.CostMetric.Relative || p.CostMetric.Better != stats.LowerIsBetter {
				t.Errorf("cost metric %+v: want relative, lower is better", p.CostMetric)
			}
			if p.QualityMargin != e.Rollout.QualityMargin || p.CostMargin != e.Rollout.CostMargin {
				t.Errorf("margins %v %v", p.QualityMargin, p.CostMargin)
			}
			in := experiments.RolloutInput(e, experiments.Snapshot{}, &experiments.Allocation{}, p)
			if _, ok := in.Metrics[tc.cost]; !ok {
				t.Errorf("RolloutInput lacks the cost metric %s: %v", tc.cost, in.Metrics)
			}
		})
	}
}

func TestRuleValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, success, rollout string
		fields                 []string
	}{
		{"unknown rule", "", "{rule: cheapest}", []string{"rollout.rule"}},
		{"margins without a rule", "", "{quality_margin: 0.1, cost_metric: cost, cost_margin: 0.1}",
			[]string{"rollout.quality_margin", "rollout.cost_metric", "rollout.cost_margin"}},
		{"bad margins", "", "{rule: cost_saving, quality_margin: -1, cost_margin: .inf}", []string{"rollout.quality_margin", "rollout.cost_margin"}},
		{"wrong rule's margin", "", "{rule: quality_within_budget, quality_margin: 0.1}", []string{"rollout.quality_margin"}},
		{"unknown cost metric", "", "{rule: cost_saving, cost_metric: dollars}", []string{"rollout.cost_metric"}},
		{"cost per success without success", "", "{rule: cost_saving, cost_metric: cost_per_success}", []string{"rollout.cost_metric"}},
		{"cost metric is the primary", "", "{rule: cost_saving, cost_metric: thumbs}", []string{"rollout.cost_metric"}},
		{"no direction", "", "{rule: cost_saving, cost_metric: requests}", []string{"rollout.cost_metric"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := experiments.Parse([]byte(ruleConfig(tc.success, tc.rollout)), nil)
			var ve experiments.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err %v, want a ValidationError", err)
			}
			for _, f := range tc.fields {
				if !strings.Contains(err.Error(), "experiments[0]."+f) {
					t.Errorf("no error for %s in %v", f, err)
				}
			}
		})
	}
}

// TestCacheHitRatioGuardrail: cache_hit_ratio is a higher-is-better
// ratio in [0, 1], usable as a guardrail (issue 15).
func TestCacheHitRatioGuardrail(t *testing.T) {
	t.Parallel()
	cfg, err := experiments.Parse([]byte(ruleConfig("", "{guardrails: [{metric: cache_hit_ratio, margin: 0.05}]}")), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Experiments[0].Policy(-1)
	g := p.Guardrails[0]
	if g.Name != experiments.MetricCacheHitRatio || g.Kind != stats.Ratio || g.Better != stats.HigherIsBetter || g.Bounds == nil || *g.Bounds != (stats.Bounds{Lo: 0, Hi: 1}) {
		t.Errorf("guardrail %+v", g)
	}
}
