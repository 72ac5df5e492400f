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
