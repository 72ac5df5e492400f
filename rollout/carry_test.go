package rollout_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// TestControllerCarryOver: with rollout.carry_over the controller reads
// the advance transitions' guardrail e-values and a later step advances
// on the product with its own; without it the same data wait. Every
// transition records its test and level (issue 11, items 5 and 6).
func TestControllerCarryOver(t *testing.T) {
	t.Parallel()
	run := func(carry bool) (experiments.State, []experiments.Transition) {
		ctx := context.Background()
		f := newCtlFixture(t)
		f.e.Rollout.Steps = []experiments.RampStep{{Percent: 10}, {Percent: 30}, {Percent: 50}}
		f.e.Rollout.CarryOver = carry // the config shares the Rollout
		if _, err := f.lc.Start(ctx, "ctl", "api:t", ""); err != nil {
			t.Fatal(err)
		}
		f.feed(t, 20000)
		f.clock.Add(time.Minute)
		f.ctl.Tick(ctx)
		if s := f.state(t); s.Step != 1 {
			t.Fatalf("carry %v: step 1 did not advance: %+v", carry, s)
		}
		f.feed(t, 600) // alone too few for the 30% step's guardrail
		f.clock.Add(time.Minute)
		f.ctl.Tick(ctx)
		h, err := f.lc.History(ctx, "ctl", 0)
		if err != nil {
			t.Fatal(err)
		}
		return f.state(t), h
	}
	s, h := run(false)
	if s.Step != 1 {
		t.Fatalf("without carry-over the 30%% step advanced on 600 users: %+v", s)
	}
	adv := h[len(h)-1]
	alpha1 := stats.RestartAlpha(0.05, 1)
	if adv.Action != experiments.ActionAdvance || adv.Test != 1 || math.Abs(adv.Alpha-alpha1) > 1e-15 {
		t.Fatalf("advance transition %+v: want test 1 at %g", adv, alpha1)
	}
	m := adv.Decision.Variants[0].Metrics[0]
	if m.Method != "bounded" || m.LogE == nil || !(*m.LogE >= math.Log(1/alpha1)) || math.Abs(m.Alpha-alpha1) > 1e-15 {
		t.Fatalf("advance decision's guardrail %+v: want a bounded e-value ≥ 1/%g at level %g", m, alpha1, alpha1)
	}

	s, h = run(true)
	if s.Step != 2 {
		t.Fatalf("with carry-over the 30%% step did not advance: %+v", s)
	}
	m = h[len(h)-1].Decision.Variants[0].Metrics[0]
	if !m.CarriedOver || m.CombinedLogE == nil || *m.CombinedLogE < math.Log(1/alpha1) || *m.LogE >= math.Log(1/alpha1) {
		t.Fatalf("second advance's guardrail %+v: want non-inferior by the combined e-value only", m)
	}
}
