package rollout_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/rollout"
	"github.com/abgate/abgate/stats"
)

// newRampJudgeFixture is ctlFixture's experiment (steps 10% for at least
// 10 minutes, then 50%; an error guardrail) with a judge, a shadow stage
// and live judging of 20% of candidate users during the ramp, in
// judge.ramp mode mode. It is started and passed out of shadow by an
// operator, so it runs ramp step 1.
func newRampJudgeFixture(t *testing.T, mode string) *ctlFixture {
	t.Helper()
	ctx := context.Background()
	f := &ctlFixture{clock: storetest.NewClock()}
	f.e = storetest.RolloutExperiment("ctl", 1)
	f.e.Rollout.Steps = []experiments.RampStep{{Percent: 10, MinDuration: experiments.Duration(10 * time.Minute)}, {Percent: 50}}
	f.e.Rollout.Guardrails = []experiments.Guardrail{{Metric: experiments.MetricError, Margin: 0.02}}
	f.e.Rollout.MinUsers = 100
	f.e.Judge = &experiments.Judge{URL: "http://judge.invalid", Model: "judge", Ramp: mode}
	f.e.Shadow = &experiments.Shadow{MinUsers: 30, LivePercent: 20}
	f.cfg = &experiments.Config{Experiments: []experiments.Experiment{f.e}}
	f.cfg.SetDefaults()
	f.e = f.cfg.Experiments[0]
	f.stats = memstore.New()
	f.lcs = memstore.NewLifecycle(memstore.WithLifecycleClock(f.clock.Now))
	f.lc = rollout.NewLifecycle(f.lcs, f.cfg, rollout.WithClock(f.clock.Now))
	f.ctl = rollout.NewController(f.lc, f.stats, f.lcs, experiments.Controller{},
		rollout.WithClock(f.clock.Now), rollout.WithHolderID("t"), rollout.WithLogger(quiet))
	if _, err := f.lc.Start(ctx, "ctl", "api:t", "go"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.lc.ShadowPass(ctx, "ctl", "api:ops", "the judge is slow; we have seen enough"); err != nil {
		t.Fatal(err)
	}
	if s := f.state(t); s.Status != experiments.StatusRunning || s.Step != 0 {
		t.Fatalf("after shadow_pass: %+v", s)
	}
	return f
}

// TestControllerJudgeRamp: during a ramp step the live judge is a
// guardrail: a candidate it shows worse is rolled back with the judge's
// reason (win rate and interval in the audit trail) even though every
// metric guardrail holds; a better one advances; under judge.ramp
// guardrail an advance waits for the judge's non-inferiority, and a
// position-biased judge neither rolls back nor lets the step advance.
func TestControllerJudgeRamp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name       string
		mode       string
		judged     int     // users judged (all in one go)
		win        float64 // the candidate's win probability
		firstPref  float64 // the judge's preference for the first-shown answer
		wantStatus experiments.Status
		wantStep   int
		wantCode   stats.ReasonCode // on the decision ("" none from the judge)
	}{
		{"worse rolls back, watch", experiments.JudgeRampWatch, 300, 0.25, 0.5, experiments.StatusRolledBack, 0, stats.ReasonJudgeWorse},
		{"worse rolls back, guardrail", experiments.JudgeRampGuardrail, 300, 0.25, 0.5, experiments.StatusRolledBack, 0, stats.ReasonJudgeWorse},
		{"better advances, guardrail", experiments.JudgeRampGuardrail, 300, 0.8, 0.5, experiments.StatusRunning, 1, ""},
		{"too few judged: watch advances", experiments.JudgeRampWatch, 20, 0.5, 0.5, experiments.StatusRunning, 1, ""},
		{"too few judged: guardrail waits", experiments.JudgeRampGuardrail, 20, 0.5, 0.5, experiments.StatusRunning, 0, stats.ReasonJudgePending},
		{"biased judge: guardrail waits, no rollback", experiments.JudgeRampGuardrail, 300, 0.1, 0.95, experiments.StatusRunning, 0, stats.ReasonPositionBias},
		{"biased judge: watch advances on the guardrails", experiments.JudgeRampWatch, 300, 0.1, 0.95, experiments.StatusRunning, 1, stats.ReasonPositionBias},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newRampJudgeFixture(t, tc.mode)
			s0 := f.state(t)
			f.feed(t, 20000) // the error guardrail is non-inferior
			f.judge(t, tc.judged, tc.win, tc.firstPref, 7)
			f.clock.Add(11 * time.Minute)
			f.ctl.Tick(ctx)
			s := f.state(t)
			if s.Status != tc.wantStatus || s.Step != tc.wantStep {
				rec, _ := f.lc.LatestDecision(ctx, "ctl")
				t.Fatalf("state %s step %d, want %s step %d; recommendation %+v", s.Status, s.Step, tc.wantStatus, tc.wantStep, rec)
			}
			rec, err := f.lc.LatestDecision(ctx, "ctl")
			if err != nil || rec.Decision == nil || rec.Period != s0.Period {
				t.Fatalf("recommendation %+v, %v", rec, err)
			}
			d := *rec.Decision
			jd := d.Variants[0].Judge
			if jd == nil {
				t.Fatalf("no judge decision in %+v", d)
			}
			if want := f.e.TestAlpha(1); jd.Alpha != want {
				t.Errorf("judge ran at α %g, want the step's %g", jd.Alpha, want)
			}
			hasCode := slices.ContainsFunc(d.Reasons, func(r stats.Reason) bool { return r.Code == tc.wantCode })
			if tc.wantCode != "" && !hasCode {
				t.Errorf("decision %s lacks %s: %+v", d.Verdict, tc.wantCode, d.Reasons)
			}
			if tc.wantStatus != experiments.StatusRolledBack {
				if d.Verdict == stats.Rollback {
					t.Fatalf("rollback recommended: %+v", d.Reasons)
				}
				return
			}
			h, _ := f.lc.History(ctx, "ctl", 0)
			last := h[len(h)-1]
			t.Logf("rollback: %s", last.Reason)
			if last.Action != experiments.ActionRollback || last.Actor != experiments.ControllerActor ||
				!slices.Contains(last.Codes, string(stats.ReasonJudgeWorse)) ||
				!strings.Contains(last.Reason, "live judge") || !strings.Contains(last.Reason, "judge win rate") || !strings.Contains(last.Reason, "CI") {
				t.Fatalf("rollback transition %+v", last)
			}
			if last.Decision == nil || last.Decision.Variants[0].Judge == nil || last.Decision.Variants[0].Judge.Verdict != stats.JudgeStopWorse {
				t.Fatalf("the transition does not carry the judge's decision: %+v", last.Decision)
			}
		})
	}
}

// TestControllerJudgeRampRestart: a step's second test runs the judge at
// the restart's share of α (RestartAlpha), like the guardrails.
func TestControllerJudgeRampRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newRampJudgeFixture(t, experiments.JudgeRampWatch)
	// set_step opens the new step's test 2 (the counter carries on), and
	// at the last step the judge guards the promotion too.
	if _, err := f.lc.SetStep(ctx, "ctl", 1, "api:ops", "restart"); err != nil {
		t.Fatal(err)
	}
	if s := f.state(t); s.TestIndex() != 2 {
		t.Fatalf("test index %d after set_step", s.TestIndex())
	}
	f.feed(t, 20000)
	f.judge(t, 300, 0.5, 0.5, 3)
	f.clock.Add(time.Minute)
	f.ctl.Tick(ctx)
	rec, err := f.lc.LatestDecision(ctx, "ctl")
	if err != nil || rec.Decision == nil || rec.Decision.Variants[0].Judge == nil {
		t.Fatalf("recommendation %+v, %v", rec, err)
	}
	if got, want := rec.Decision.Variants[0].Judge.Alpha, f.e.TestAlpha(2); got != want || want >= f.e.TestAlpha(1) {
		t.Errorf("judge α %g on the restarted test, want %g", got, want)
	}
}
