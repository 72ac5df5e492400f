package stats

import (
	"fmt"
	"math"
)

// Rule selects what promotes a candidate in full mode (issue 15).
type Rule string

const (
	// PrimaryRule (the zero value): the primary is significantly better
	// and every guardrail non-inferior.
	PrimaryRule Rule = ""
	// CostSavingRule: the primary (quality) is non-inferior within
	// Policy.QualityMargin and Policy.CostMetric is significantly better
	// (cheaper), with every guardrail non-inferior.
	CostSavingRule Rule = "cost_saving"
	// QualityWithinBudgetRule: the primary is significantly better and
	// Policy.CostMetric is non-inferior within Policy.CostMargin (the cost
	// stays within budget), with every guardrail non-inferior.
	QualityWithinBudgetRule Rule = "quality_within_budget"
)

// Role of the cost metric's MetricResult under a trade-off rule.
const RoleCost = "rule_cost"

// ReasonRulePromote: a trade-off rule promoted the winner.
const ReasonRulePromote ReasonCode = "rule_promote"

// Summary is the rule's promote condition in words, for reasons and
// reports.
func (r Rule) Summary() string {
	switch r {
	case CostSavingRule:
		return "quality non-inferior within its margin and cost significantly lower"
	case QualityWithinBudgetRule:
		return "quality significantly better and cost within its budget"
	}
	return "primary significantly better"
}

// TradeOffCall is a trade-off rule's call on one candidate.
type TradeOffCall struct {
	// Promote: every component test rejected its null at its level.
	Promote bool
	// Worse: a component is significantly on its null's far side (quality
	// worse beyond what the rule allows, or cost higher beyond it), so the
	// rule can't promote this candidate on this evidence.
	Worse bool
	// Score ranks promotable candidates: the improvement the rule is
	// after (the cost saving for CostSavingRule, the quality lift for
	// QualityWithinBudgetRule), oriented so larger is better.
	Score float64
}

// TradeOff combines a candidate's one-sided calls on quality (the
// primary) and cost into rule's call: an intersection-union test (Berger
// 1982; Berger & Hsu 1996). The union null "quality worse by the margin
// or more, or cost not lower" (CostSavingRule), or "quality not better,
// or cost higher by the margin or more" (QualityWithinBudgetRule), is
// rejected only when both component tests reject theirs, each at level α;
// the IUT's size is then ≤ α with no multiplicity correction between the
// components, because a false promotion needs the component whose null is
// true to reject falsely.
//
// quality and cost are MetricResults as Decide computes them: for
// CostSavingRule quality carries a non-inferiority call (NonInferior,
// Harmful at QualityMargin) and cost a superiority call (Better, Worse);
// for QualityWithinBudgetRule the other way round. An invalid result never
// promotes. TradeOff is pure: it reads the calls and lifts, nothing else.
func TradeOff(rule Rule, better Direction, costBetter Direction, quality, cost MetricResult) TradeOffCall {
	var c TradeOffCall
	switch rule {
	case CostSavingRule:
		c.Promote = quality.Valid && cost.Valid && quality.NonInferior && cost.Better
		c.Worse = (quality.Valid && quality.Harmful) || (cost.Valid && cost.Worse)
		c.Score = liftScore(costBetter, cost.Lift)
	case QualityWithinBudgetRule:
		c.Promote = quality.Valid && cost.Valid && quality.Better && cost.NonInferior
		c.Worse = (quality.Valid && quality.Worse) || (cost.Valid && cost.Harmful)
		c.Score = liftScore(better, quality.Lift)
	}
	if c.Promote && c.Worse { // contradictory calls (a corrupt result): neither
		c.Promote, c.Worse = false, false
	}
	return c
}

func liftScore(d Direction, lift *float64) float64 {
	if lift == nil || !finite(*lift) {
		return math.Inf(-1)
	}
	return d.sign() * *lift
}

// checkRule reports why the policy's trade-off rule can't be used, or "".
func checkRule(p Policy) string {
	switch p.Rule {
	case PrimaryRule:
		return ""
	case CostSavingRule, QualityWithinBudgetRule:
	default:
		return fmt.Sprintf("unknown rule %q", p.Rule)
	}
	if p.CostMetric.Name == "" {
		return "rule " + string(p.Rule) + " needs Policy.CostMetric"
	}
	for _, m := range []float64{p.QualityMargin, p.CostMargin} {
		if !(m >= 0) || math.IsInf(m, 0) {
			return "rule margins must be finite and >= 0"
		}
	}
	return ""
}

// evalTradeOff evaluates candidate j's quality and cost under p's rule at
// level alpha each (the IUT's components) and returns both results, the
// reason codes of any that can't be decided on, and the rule's call.
func evalTradeOff(in Input, p Policy, j int, alpha float64, ec evalCtx) (q, c MetricResult, qbad, cbad ReasonCode, call TradeOffCall) {
	if p.Rule == CostSavingRule {
		q, qbad = evalMetric(in, p.Primary, j, "guardrail", p.QualityMargin, alpha, ec)
		c, cbad = evalMetric(in, p.CostMetric, j, "primary", 0, alpha, ec)
	} else {
		q, qbad = evalMetric(in, p.Primary, j, "primary", 0, alpha, ec)
		c, cbad = evalMetric(in, p.CostMetric, j, "guardrail", p.CostMargin, alpha, ec)
	}
	q.Role, c.Role = "primary", RoleCost
	call = TradeOff(p.Rule, p.Primary.Better, p.CostMetric.Better, q, c)
	if qbad != "" || cbad != "" {
		call = TradeOffCall{Score: math.Inf(-1)}
	}
	return q, c, qbad, cbad, call
}
