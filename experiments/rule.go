package experiments

import (
	"math"

	"github.com/abgate/abgate/stats"
)

// RuleCostMetric is the cost metric of the rollout's trade-off rule:
// rollout.cost_metric, or cost_per_success when the experiment declares
// a success signal, else cost.
func (e *Experiment) RuleCostMetric() string {
	if e.Rollout != nil && e.Rollout.CostMetric != "" {
		return e.Rollout.CostMetric
	}
	if e.Success != nil {
		return MetricCostPerSuccess
	}
	return MetricCost
}

// validateRule checks rollout.rule and its fields; path is the
// experiment's YAML path.
func validateRule(e *Experiment, path string) []FieldError {
	r := e.Rollout
	p := path + ".rollout"
	var errs []FieldError
	switch stats.Rule(r.Rule) {
	case stats.PrimaryRule:
		for _, f := range []struct {
			field string
			set   bool
		}{{".quality_margin", r.QualityMargin != 0}, {".cost_metric", r.CostMetric != ""}, {".cost_margin", r.CostMargin != 0}} {
			if f.set {
				errs = append(errs, FieldError{p + f.field, "only used with rule (cost_saving or quality_within_budget)"})
			}
		}
		return errs
	case stats.CostSavingRule, stats.QualityWithinBudgetRule:
	default:
		return append(errs, FieldError{p + ".rule", "must be cost_saving or quality_within_budget"})
	}
	for _, f := range []struct {
		field string
		v     float64
	}{{".quality_margin", r.QualityMargin}, {".cost_margin", r.CostMargin}} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			errs = append(errs, FieldError{p + f.field, "must be a finite number >= 0 (a fraction: 0.02 = 2%)"})
		}
	}
	if stats.Rule(r.Rule) == stats.CostSavingRule && r.CostMargin != 0 {
		errs = append(errs, FieldError{p + ".cost_margin", "only used with rule quality_within_budget"})
	}
	if stats.Rule(r.Rule) == stats.QualityWithinBudgetRule && r.QualityMargin != 0 {
		errs = append(errs, FieldError{p + ".quality_margin", "only used with rule cost_saving"})
	}
	cm := e.RuleCostMetric()
	switch {
	case !isMetric(e, cm):
		errs = append(errs, FieldError{p + ".cost_metric", "not a built-in or declared metric"})
	case !judgeable(e, cm):
		errs = append(errs, FieldError{p + ".cost_metric", reasonNoDirection})
	case cm == MetricCostPerSuccess && e.Success == nil:
		errs = append(errs, FieldError{p + ".cost_metric", "cost_per_success needs the experiment's success signal"})
	case cm == orStr(e.Primary, DefaultPrimaryMetric):
		errs = append(errs, FieldError{p + ".cost_metric", "must differ from the primary metric"})
	}
	return errs
}
