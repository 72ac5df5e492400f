package experiments_test

import (
	"math"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/stats"
)

// TestRestartAlpha: a step's first test runs at 0.9α and its restarts (a
// restart after a rollback, a set_step back to it, a reshuffle) share the
// other 0.1α as 0.1α·6/π²·(1, 1/4, …), so their levels sum to less than
// α; an advance opens test 1 of the next step (issue 11, item 6).
func TestRestartAlpha(t *testing.T) {
	t.Parallel()
	e := storetest.RolloutExperiment("ra", 1, 5, 25, 50)
	e.Rollout.Alpha = 0.05
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := experiments.Draft(&e)
	do := func(c experiments.Command) experiments.Transition {
		t.Helper()
		c.Experiment = e.ID
		n, tr, err := experiments.Next(&e, s, c, now)
		if err != nil {
			t.Fatalf("%s: %v", c.Action, err)
		}
		s = n
		return tr
	}
	restarts := 0.1 * 0.05 * 6 / (math.Pi * math.Pi)
	level := func(test int) float64 {
		if test == 1 {
			return 0.9 * 0.05
		}
		return restarts / float64((test-1)*(test-1))
	}
	check := func(tr experiments.Transition, test int) {
		t.Helper()
		want := level(test)
		if s.TestIndex() != test || tr.Test != test || math.Abs(tr.Alpha-want) > 1e-15 {
			t.Fatalf("after %s: test %d (transition %d), alpha %g; want test %d at %g", tr.Action, s.TestIndex(), tr.Test, tr.Alpha, test, want)
		}
		if p := e.PolicyAt(e.StepIndex(s.Step), s.TestIndex(), experiments.Prior{}); math.Abs(p.Alpha-want) > 1e-15 {
			t.Fatalf("policy alpha %g, want %g", p.Alpha, want)
		}
	}
	check(do(experiments.Command{Action: experiments.ActionStart}), 1)
	check(do(experiments.Command{Action: experiments.ActionRollback}), 1) // ends: no new test
	check(do(experiments.Command{Action: experiments.ActionStart}), 2)    // restart
	check(do(experiments.Command{Action: experiments.ActionPause}), 2)    // same period, same test
	check(do(experiments.Command{Action: experiments.ActionSetStep, Step: 2}), 3)
	sum := 0.0
	for i := 1; i <= 3; i++ {
		sum += e.TestAlpha(i)
	}
	if spent := e.AlphaSpent(3); math.Abs(spent-sum) > 1e-15 || !(spent < 0.05) {
		t.Fatalf("spent %g (sum %g), want the sum and < 0.05", spent, sum)
	}
	if math.Abs(e.AlphaSpent(3)-(0.9*0.05+restarts*(1+0.25))) > 1e-15 {
		t.Fatalf("spent %g, want 0.9α + 0.1α·6/π²·(1+1/4)", e.AlphaSpent(3))
	}
	check(do(experiments.Command{Action: experiments.ActionResume}), 3)
	check(do(experiments.Command{Action: experiments.ActionSetStep, Step: 1}), 4)
	check(do(experiments.Command{Action: experiments.ActionAdvance}), 1)
	// A state stored before StepTests existed reads as test 1.
	if (experiments.State{}).TestIndex() != 1 {
		t.Fatal("zero StepTests must read as test 1")
	}
	// Without a rollout the policy keeps its alpha.
	plain := storetest.RolloutExperiment("plain", 1, 5)
	plain.Rollout = nil
	if p := plain.PolicyAt(-1, 3, experiments.Prior{}); p.Alpha != 0 {
		t.Fatalf("no rollout: alpha %g, want the default (0)", p.Alpha)
	}
}

// TestCarriedLogE: only the unbroken chain of advances into the current
// period carries, and only bounded guardrail e-values.
func TestCarriedLogE(t *testing.T) {
	t.Parallel()
	fp := func(x float64) *float64 { return &x }
	dec := func(le float64, method string) *stats.Decision {
		return &stats.Decision{Variants: []stats.VariantResult{{Variant: 1, Metrics: []stats.MetricResult{
			{Metric: "error", Role: "guardrail", Method: method, LogE: fp(le)},
			{Metric: "thumbs", Role: "primary", Method: "bounded", LogE: fp(9)},
		}}}}
	}
	h := []experiments.Transition{
		{Action: experiments.ActionStart},
		{Action: experiments.ActionAdvance, Decision: dec(5, "bounded")},
		{Action: experiments.ActionSetStep},
		{Action: experiments.ActionAdvance, Decision: dec(3, "bounded")},
		{Action: experiments.ActionPause},
		{Action: experiments.ActionResume},
		{Action: experiments.ActionAdvance, Decision: dec(2, "bounded")},
		{Action: experiments.ActionAdvance, Decision: dec(7, "one-sided-cs")}, // asymptotic: not combined
	}
	got := experiments.CarriedLogE(h)
	if len(got) != 1 || len(got["error"]) != 1 || got["error"][0] != 5 {
		t.Fatalf("CarriedLogE = %v, want error: [5] (3+2 since the set_step)", got)
	}
	e := storetest.RolloutExperiment("co", 1, 5, 25, 50)
	e.Rollout.Guardrails = []experiments.Guardrail{{Metric: experiments.MetricError, Margin: 0.005}}
	if p := e.PolicyAt(1, 1, experiments.Prior{LogE: got}); p.Guardrails[0].PriorLogE != nil {
		t.Fatal("carry_over off: prior e-values used")
	}
	e.Rollout.CarryOver = true
	if p := e.PolicyAt(1, 1, experiments.Prior{LogE: got}); len(p.Guardrails[0].PriorLogE) != 1 || p.Guardrails[0].PriorLogE[0] != 5 {
		t.Fatalf("carry_over on: prior %v, want [5]", p.Guardrails[0].PriorLogE)
	}
}
