package stats

import (
	"encoding/json"
	"math"
	"testing"
)

// meanSummary is n users whose values have mean m and SD sd.
func meanSummary(n, m, sd float64) Summary {
	return Summary{N: n, SumX: n * m, SumX2: n * (sd*sd + m*m)}
}

func tradeOffPolicy(rule Rule) Policy {
	return Policy{
		Primary:       Metric{Name: "quality"},
		CostMetric:    Metric{Name: "cost", Better: LowerIsBetter},
		Rule:          rule,
		QualityMargin: 0.02,
		CostMargin:    0.05,
		OneSided:      true,
		Guardrails:    []Guardrail{{Metric: Metric{Name: "error", Better: LowerIsBetter}, Margin: 0.01}},
	}
}

func tradeOffInput(n, q0, q1, c0, c1 float64) Input {
	return Input{Users: []float64{n, n}, Metrics: map[string][]Summary{
		"quality": {meanSummary(n, q0, 0.4), meanSummary(n, q1, 0.4)},
		"cost":    {meanSummary(n, c0, 0.5), meanSummary(n, c1, 0.5)},
		"error":   {meanSummary(n, 0.01, 0.1), meanSummary(n, 0.01, 0.1)},
	}}
}

func TestTradeOff(t *testing.T) {
	t.Parallel()
	lift := func(x float64) *float64 { return &x }
	ok := MetricResult{Valid: true, Lift: lift(0.1)}
	with := func(f func(*MetricResult)) MetricResult { m := ok; f(&m); return m }
	ni := with(func(m *MetricResult) { m.NonInferior = true })
	better := with(func(m *MetricResult) { m.Better = true })
	harmful := with(func(m *MetricResult) { m.Harmful = true })
	worse := with(func(m *MetricResult) { m.Worse = true })
	invalidNI := MetricResult{NonInferior: true}
	for _, tc := range []struct {
		name          string
		rule          Rule
		q, c          MetricResult
		promote, wrse bool
	}{
		{"saving: both", CostSavingRule, ni, better, true, false},
		{"saving: quality pending", CostSavingRule, ok, better, false, false},
		{"saving: cost pending", CostSavingRule, ni, ok, false, false},
		{"saving: quality better is not enough", CostSavingRule, better, ok, false, false},
		{"saving: quality harmful", CostSavingRule, harmful, better, false, true},
		{"saving: cost worse", CostSavingRule, ni, worse, false, true},
		{"saving: invalid quality", CostSavingRule, invalidNI, better, false, false},
		{"budget: both", QualityWithinBudgetRule, better, ni, true, false},
		{"budget: over budget", QualityWithinBudgetRule, better, harmful, false, true},
		{"budget: quality worse", QualityWithinBudgetRule, worse, ni, false, true},
		{"budget: quality only non-inferior", QualityWithinBudgetRule, ni, ni, false, false},
		{"primary rule never calls", PrimaryRule, better, better, false, false},
		{"unknown rule never calls", Rule("x"), ni, better, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := TradeOff(tc.rule, HigherIsBetter, LowerIsBetter, tc.q, tc.c)
			if c.Promote != tc.promote || c.Worse != tc.wrse {
				t.Errorf("TradeOff = %+v, want promote %v worse %v", c, tc.promote, tc.wrse)
			}
		})
	}
}

func TestDecideTradeOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		rule   Rule
		in     Input
		want   Verdict
		reason ReasonCode
	}{
		// Same quality, 20% cheaper: a cost saving, but not better quality.
		{"saving promotes", CostSavingRule, tradeOffInput(20000, 0.7, 0.7, 1, 0.8), Promote, ReasonRulePromote},
		{"budget does not promote a saving", QualityWithinBudgetRule, tradeOffInput(20000, 0.7, 0.7, 1, 0.8), Continue, ReasonPrimaryPending},
		{"primary rule does not promote a saving", PrimaryRule, tradeOffInput(20000, 0.7, 0.7, 1, 0.8), Continue, ReasonPrimaryPending},
		// Better quality at the same cost.
		{"budget promotes", QualityWithinBudgetRule, tradeOffInput(20000, 0.7, 0.75, 1, 1), Promote, ReasonRulePromote},
		{"saving needs a saving", CostSavingRule, tradeOffInput(20000, 0.7, 0.75, 1, 1), Continue, ReasonPrimaryPending},
		// Much cheaper but clearly worse beyond the margin.
		{"saving refuses a quality loss", CostSavingRule, tradeOffInput(20000, 0.7, 0.6, 1, 0.5), Rollback, ReasonAllCandidatesWorse},
		// Better but clearly over budget.
		{"budget refuses overspend", QualityWithinBudgetRule, tradeOffInput(20000, 0.7, 0.8, 1, 1.5), Rollback, ReasonAllCandidatesWorse},
		{"missing cost metric", CostSavingRule, Input{Users: []float64{500, 500}, Metrics: map[string][]Summary{
			"quality": {meanSummary(500, 0.7, 0.4), meanSummary(500, 0.7, 0.4)}}}, Continue, ReasonMissingMetric},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := Decide(tc.in, tradeOffPolicy(tc.rule))
			if d.Verdict != tc.want || !hasCode(d, tc.reason) {
				t.Fatalf("verdict %s, reasons %+v; want %s with %s", d.Verdict, d.Reasons, tc.want, tc.reason)
			}
			if (d.Verdict == Promote) != (d.Rule != "") || (d.Rule != "" && d.Rule != tc.rule) {
				t.Errorf("Decision.Rule = %q with verdict %s, rule %q", d.Rule, d.Verdict, tc.rule)
			}
			if tc.rule != PrimaryRule && len(d.Variants) == 1 {
				roles := map[string]bool{}
				for _, m := range d.Variants[0].Metrics {
					roles[m.Role] = true
				}
				if !roles["primary"] || !roles[RoleCost] {
					t.Errorf("variant metrics' roles %v, want primary and cost", roles)
				}
			}
		})
	}
}

func hasCode(d Decision, c ReasonCode) bool {
	for _, r := range d.Reasons {
		if r.Code == c {
			return true
		}
	}
	return false
}

func TestDecideTradeOffPolicyChecks(t *testing.T) {
	t.Parallel()
	in := tradeOffInput(20000, 0.7, 0.7, 1, 0.8)
	for name, mod := range map[string]func(*Policy){
		"unknown rule":    func(p *Policy) { p.Rule = "cheapest" },
		"no cost metric":  func(p *Policy) { p.CostMetric = Metric{} },
		"negative margin": func(p *Policy) { p.QualityMargin = -1 },
		"infinite margin": func(p *Policy) { p.CostMargin = math.Inf(1) },
		"NaN margin":      func(p *Policy) { p.CostMargin = math.NaN() },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := tradeOffPolicy(CostSavingRule)
			mod(&p)
			if d := Decide(in, p); d.Verdict != Continue || !hasCode(d, ReasonInvalidPolicy) {
				t.Errorf("verdict %s, reasons %+v; want continue with invalid_policy", d.Verdict, d.Reasons)
			}
		})
	}
	// Ramp mode decides on guardrails only: the rule is not consulted.
	p := tradeOffPolicy("cheapest")
	p.Mode = RampMode
	if d := Decide(in, p); d.Verdict != Advance {
		t.Errorf("ramp mode with a bad rule: verdict %s, want advance", d.Verdict)
	}
}

// FuzzTradeOff: degenerate results never promote, and a promotion always
// rests on both component calls.
func FuzzTradeOff(f *testing.F) {
	f.Add(uint16(0xffff), 0.1, -0.2)
	f.Add(uint16(0), math.NaN(), math.Inf(1))
	f.Add(uint16(0x5555), 0.0, 0.0)
	f.Fuzz(func(t *testing.T, bits uint16, ql, cl float64) {
		b := func(i int) bool { return bits&(1<<i) != 0 }
		q := MetricResult{Valid: b(0), Better: b(1), Worse: b(2), NonInferior: b(3), Harmful: b(4), Lift: fp(ql)}
		c := MetricResult{Valid: b(5), Better: b(6), Worse: b(7), NonInferior: b(8), Harmful: b(9), Lift: fp(cl)}
		rule := []Rule{CostSavingRule, QualityWithinBudgetRule, PrimaryRule, "x"}[bits>>10&3]
		call := TradeOff(rule, HigherIsBetter, LowerIsBetter, q, c)
		if call.Promote && call.Worse {
			t.Fatalf("promote and worse: %+v", call)
		}
		if call.Promote {
			if !q.Valid || !c.Valid {
				t.Fatalf("promoted on an invalid result: %+v %+v", q, c)
			}
			if rule == CostSavingRule && !(q.NonInferior && c.Better) || rule == QualityWithinBudgetRule && !(q.Better && c.NonInferior) {
				t.Fatalf("%s promoted without both calls: %+v %+v", rule, q, c)
			}
			if rule != CostSavingRule && rule != QualityWithinBudgetRule {
				t.Fatalf("rule %q promoted", rule)
			}
		}
	})
}

// FuzzDecideTradeOff: Decide under either rule never panics, stays
// JSON-encodable, and promotes only what TradeOff's calls allow.
func FuzzDecideTradeOff(f *testing.F) {
	f.Add(1000.0, 1000.0, 700.0, 700.0, 1000.0, 800.0, 1000.0, 900.0, false, false)
	f.Add(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, true, true)
	f.Add(5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, true, false) // zero variance
	f.Add(math.Inf(1), 3.0, math.NaN(), -1.0, 2.0, 1e308, -1e308, 5.0, false, true)
	f.Fuzz(func(t *testing.T, n0, n1, q0, q1, c0, c1, s0, s1 float64, budget, bounded bool) {
		ss := func(x0, x1 float64) []Summary {
			return []Summary{{N: n0, SumX: x0, SumX2: s0, SumY: n0, SumY2: n0, SumXY: x0, SumR: x0, SumR2: s0},
				{N: n1, SumX: x1, SumX2: s1, SumY: n1, SumY2: n1, SumXY: x1, SumR: x1, SumR2: s1}}
		}
		in := Input{Users: []float64{n0, n1}, Metrics: map[string][]Summary{"quality": ss(q0, q1), "cost": ss(c0, c1)}}
		p := tradeOffPolicy(CostSavingRule)
		p.Guardrails, p.MinUsers = nil, 1
		if budget {
			p.Rule = QualityWithinBudgetRule
		}
		if bounded {
			p.Primary.Bounds, p.CostMetric.Kind, p.CostMetric.Bounds = &Bounds{0, 1}, Ratio, &Bounds{0, 10}
		}
		d := Decide(in, p)
		if _, err := json.Marshal(d); err != nil {
			t.Fatalf("decision not JSON-encodable: %v", err)
		}
		if d.Verdict != Promote {
			return
		}
		if d.Winner == nil || *d.Winner != 1 || d.Rule != p.Rule || len(d.Variants) != 1 {
			t.Fatalf("bad promotion: %+v", d)
		}
		var q, c MetricResult
		for _, m := range d.Variants[0].Metrics {
			if m.Role == RoleCost {
				c = m
			} else {
				q = m
			}
		}
		if !TradeOff(p.Rule, p.Primary.Better, p.CostMetric.Better, q, c).Promote {
			t.Fatalf("promoted against TradeOff's call: %+v %+v", q, c)
		}
	})
}

// TestDecideTradeOffWinner: among candidates the rule promotes, the
// winner is the one with the largest improvement the rule is after.
func TestDecideTradeOffWinner(t *testing.T) {
	t.Parallel()
	const n = 20000
	in := Input{Users: []float64{n, n, n}, Metrics: map[string][]Summary{
		// Candidate 1 has the better quality, candidate 2 the larger saving.
		"quality": {meanSummary(n, 0.7, 0.4), meanSummary(n, 0.75, 0.4), meanSummary(n, 0.7, 0.4)},
		"cost":    {meanSummary(n, 1, 0.5), meanSummary(n, 0.9, 0.5), meanSummary(n, 0.7, 0.5)},
		"error":   {meanSummary(n, 0.01, 0.1), meanSummary(n, 0.01, 0.1), meanSummary(n, 0.01, 0.1)},
	}}
	d := Decide(in, tradeOffPolicy(CostSavingRule))
	if d.Verdict != Promote || *d.Winner != 2 {
		t.Errorf("cost_saving: verdict %s winner %v, want promote 2", d.Verdict, d.Winner)
	}
	p := tradeOffPolicy(QualityWithinBudgetRule)
	d = Decide(in, p)
	if d.Verdict != Promote || *d.Winner != 1 {
		t.Errorf("quality_within_budget: verdict %s winner %v, want promote 1", d.Verdict, d.Winner)
	}
}
