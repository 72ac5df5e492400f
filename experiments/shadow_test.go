package experiments_test

import (
	"errors"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

func shadowExperiment() *experiments.Experiment {
	e := &experiments.Experiment{
		ID: "sh",
		Variants: []experiments.Variant{
			{Name: "base", Upstream: "b", Model: "m0"},
			{Name: "cand", Upstream: "c", Model: "m1"},
		},
		Rollout: &experiments.Rollout{Steps: []experiments.RampStep{{Percent: 5}, {Percent: 50}}},
		Judge:   &experiments.Judge{URL: "http://judge", Model: "j"},
		Shadow:  &experiments.Shadow{},
	}
	cfg := &experiments.Config{Experiments: []experiments.Experiment{*e}}
	cfg.SetDefaults()
	return &cfg.Experiments[0]
}

// TestShadowLifecycle: with a shadow block, start leads to shadow, which
// serves the base to everyone; shadow_pass opens ramp step 1 on a new
// period; stop and rollback end the stage; nothing else applies.
func TestShadowLifecycle(t *testing.T) {
	t.Parallel()
	e := shadowExperiment()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, tr, err := experiments.Next(e, experiments.Draft(e), experiments.Command{Action: experiments.ActionStart, Actor: "api:t"}, now)
	if err != nil || s.Status != experiments.StatusShadow || tr.To != experiments.StatusShadow {
		t.Fatalf("start: %+v %v", s, err)
	}
	a := e.AllocationFor(s)
	if a.Serve != 0 || !a.Shadow {
		t.Fatalf("shadow allocation %+v: want the base for everyone, Shadow set", a)
	}
	for i := range 1000 {
		if as := experiments.Assign(a, "u"+string(rune('a'+i%26))+time.Duration(i).String()); as.Variant != 0 {
			t.Fatalf("a user got variant %d in shadow", as.Variant)
		}
	}
	for _, act := range []experiments.Action{experiments.ActionAdvance, experiments.ActionPromote, experiments.ActionPause, experiments.ActionSetStep} {
		if _, _, err := experiments.Next(e, s, experiments.Command{Action: act, Winner: 1, Step: 1}, now); !errors.Is(err, experiments.ErrInvalidTransition) {
			t.Errorf("%s from shadow: %v, want ErrInvalidTransition", act, err)
		}
	}
	r, tr, err := experiments.Next(e, s, experiments.Command{Action: experiments.ActionShadowPass}, now.Add(time.Minute))
	if err != nil || r.Status != experiments.StatusRunning || r.Step != 0 || r.Period <= s.Period || !r.StepStarted.Equal(now.Add(time.Minute)) {
		t.Fatalf("shadow_pass: %+v %+v %v", r, tr, err)
	}
	if a := e.AllocationFor(r); a.Shadow || a.Serve != -1 {
		t.Fatalf("running allocation %+v", a)
	}
	for _, act := range []experiments.Action{experiments.ActionStop, experiments.ActionRollback} {
		n, _, err := experiments.Next(e, s, experiments.Command{Action: act}, now)
		if err != nil || n.Status == experiments.StatusShadow {
			t.Errorf("%s from shadow: %+v %v", act, n, err)
		}
		if a := e.AllocationFor(n); a.Serve != 0 || a.Shadow {
			t.Errorf("%s: allocation %+v", act, a)
		}
	}
	// Without a shadow block, start goes straight to ramp step 1.
	e2 := *e
	e2.Shadow = nil
	if s, _, _ := experiments.Next(&e2, experiments.Draft(&e2), experiments.Command{Action: experiments.ActionStart}, now); s.Status != experiments.StatusRunning {
		t.Fatalf("start without shadow: %s", s.Status)
	}
}

// TestJudgePolicyFromConfig: the gate's policy reads the judge and
// shadow blocks.
func TestJudgePolicyFromConfig(t *testing.T) {
	t.Parallel()
	e := shadowExperiment()
	e.Shadow.MinUsers, e.Shadow.MaxPerUser, e.Shadow.MaxUsers = 40, 2, 500
	p := e.JudgePolicy()
	if p.MinUsers != 40 || p.MaxPerUser != 2 || p.MaxUsers != 500 || p.NonInferiorityMargin != experiments.DefaultJudgeNonInferiority ||
		p.Alpha != e.Judge.Alpha || p.PositionBiasLimit != experiments.DefaultJudgePositionBiasLimit {
		t.Fatalf("policy %+v", p)
	}
}

// TestRampJudgePolicy: the live judge guardrail is in the policy only
// with live judging, with the gate's margins and caps but the ramp's
// question (non-inferiority, no max_users), judge.ramp's Require, and
// the step's test's level over the candidates (restarts included); the
// input carries each candidate's judge sums.
func TestRampJudgePolicy(t *testing.T) {
	t.Parallel()
	e := shadowExperiment()
	if p := e.PolicyAt(0, 1, experiments.Prior{}); p.Judge != nil {
		t.Fatalf("no live judging, yet a judge guardrail: %+v", p.Judge)
	}
	e.Shadow.LivePercent, e.Shadow.MaxUsers, e.Shadow.MaxPerUser = 10, 500, 2
	e.Judge.RequireSuperiority = true
	for _, tc := range []struct {
		mode    string
		require bool
	}{{experiments.JudgeRampWatch, false}, {experiments.JudgeRampGuardrail, true}} {
		e.Judge.Ramp = tc.mode
		for test := 1; test <= 3; test++ {
			p := e.PolicyAt(0, test, experiments.Prior{})
			j := p.Judge
			if j == nil || j.Require != tc.require || j.Policy.MaxUsers != 0 || j.Policy.RequireSuperiority ||
				j.Policy.MaxPerUser != 2 || j.Policy.NonInferiorityMargin != 0.05 || j.Policy.Alpha != e.TestAlpha(test) {
				t.Fatalf("%s, test %d: judge guardrail %+v", tc.mode, test, j)
			}
		}
	}
	snap := experiments.Snapshot{Stats: map[experiments.VariantMetric]experiments.Summary{
		{Variant: 1, Metric: experiments.MetricJudgeScore}: {N: 3, SumX: 2, SumY: 3},
		{Variant: 1, Metric: experiments.MetricJudgeFirst}: {N: 1, SumX: 1, SumY: 1},
	}}
	p := e.PolicyAt(0, 1, experiments.Prior{})
	in := experiments.RolloutInput(e, snap, e.Allocation(), p)
	if len(in.Judge) != 2 || in.Judge[1].Preference.N != 3 || in.Judge[1].FirstShown.N != 1 || in.Judge[0].Preference.N != 0 {
		t.Fatalf("input judge %+v", in.Judge)
	}
	e.Rollout = nil
	if e.RampJudge() != nil {
		t.Fatal("a judge guardrail without a rollout")
	}
}
