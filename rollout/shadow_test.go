package rollout_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/rollout"
	"github.com/abgate/abgate/stats"
)

// newShadowFixture is ctlFixture's experiment with a judge and a shadow
// stage (min 30 users).
func newShadowFixture(t *testing.T) *ctlFixture {
	t.Helper()
	f := &ctlFixture{clock: storetest.NewClock()}
	f.e = storetest.RolloutExperiment("ctl", 1)
	f.e.Rollout.Steps = []experiments.RampStep{{Percent: 10}, {Percent: 50}}
	f.e.Judge = &experiments.Judge{URL: "http://judge.invalid", Model: "judge"}
	f.e.Shadow = &experiments.Shadow{MinUsers: 30}
	f.cfg = &experiments.Config{Experiments: []experiments.Experiment{f.e}}
	f.cfg.SetDefaults()
	f.e = f.cfg.Experiments[0]
	f.stats = memstore.New()
	f.lcs = memstore.NewLifecycle(memstore.WithLifecycleClock(f.clock.Now))
	f.lc = rollout.NewLifecycle(f.lcs, f.cfg, rollout.WithClock(f.clock.Now))
	f.ctl = rollout.NewController(f.lc, f.stats, f.lcs, experiments.Controller{},
		rollout.WithClock(f.clock.Now), rollout.WithHolderID("t"), rollout.WithLogger(quiet))
	return f
}

// judge records n users' judge verdicts on the candidate for the current
// period: the candidate wins with probability win; with bias the judge
// prefers the first-shown answer that much more often (both orders asked
// for every comparison).
func (f *ctlFixture) judge(t *testing.T, n int, win, firstPref float64, seed uint64) {
	t.Helper()
	ctx := context.Background()
	st, _ := f.lc.State(ctx, "ctl")
	rng := rand.New(rand.NewPCG(seed, 1))
	f.batch++
	b := &experiments.Batch{ID: fmt.Sprint("j", f.batch), Experiment: "ctl", Phase: st.Period}
	for u := range n {
		var unit experiments.UnitKey
		binary.LittleEndian.PutUint64(unit[:], uint64(f.batch*100000+u))
		s := 0.0
		if rng.Float64() < win {
			s = 1
		}
		b.Deltas = append(b.Deltas, experiments.Delta{Variant: 1, Unit: unit, Metric: experiments.MetricJudgeScore, DX: s, DY: 1})
		if firstPref >= 0 {
			fp := 0.0
			for range 2 {
				if rng.Float64() < firstPref {
					fp += 0.5
				}
			}
			b.Deltas = append(b.Deltas, experiments.Delta{Variant: 1, Unit: unit, Metric: experiments.MetricJudgeFirst, DX: fp, DY: 1})
		}
	}
	if _, err := f.stats.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
}

// TestControllerShadowGate: the shadow stage's rule. A candidate the
// judge shows worse is stopped from shadow (no user exposed, the
// decision in the audit trail); a better one moves to ramp step 1 on a
// new period; a position-biased judge keeps it in shadow.
func TestControllerShadowGate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name      string
		win       float64
		firstPref float64
		want      experiments.Status
		action    experiments.Action
	}{
		{"worse is stopped in shadow", 0.25, 0.5, experiments.StatusStopped, experiments.ActionStop},
		{"better passes to step 1", 0.8, 0.5, experiments.StatusRunning, experiments.ActionShadowPass},
		{"biased judge stays in shadow", 0.8, 0.95, experiments.StatusShadow, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newShadowFixture(t)
			if _, err := f.lc.Start(ctx, "ctl", "api:t", "go"); err != nil {
				t.Fatal(err)
			}
			s0 := f.state(t)
			if s0.Status != experiments.StatusShadow {
				t.Fatalf("start: %s", s0.Status)
			}
			f.judge(t, 10, tc.win, tc.firstPref, 1) // below min_users: waits
			f.clock.Add(time.Minute)
			f.ctl.Tick(ctx)
			if s := f.state(t); s.Status != experiments.StatusShadow {
				t.Fatalf("acted below min_users: %s", s.Status)
			}
			for i := range 20 {
				f.judge(t, 50, tc.win, tc.firstPref, uint64(i+2))
				f.clock.Add(time.Minute)
				f.ctl.Tick(ctx)
				if f.state(t).Status != experiments.StatusShadow {
					break
				}
			}
			s := f.state(t)
			if s.Status != tc.want {
				t.Fatalf("status %s, want %s", s.Status, tc.want)
			}
			rec, err := f.lcs.Recommendation(ctx, "ctl")
			if err != nil || len(rec.Judge) != 1 {
				t.Fatalf("recommendation %+v, %v: want the judge decision", rec, err)
			}
			h, _ := f.lc.History(ctx, "ctl", 0)
			last := h[len(h)-1]
			if tc.action == "" {
				if rec.Judge[0].Verdict != stats.JudgeInconclusive || !rec.Judge[0].Biased {
					t.Fatalf("biased judge: %+v", rec.Judge[0])
				}
				return
			}
			if last.Action != tc.action || last.From != experiments.StatusShadow || len(last.Judge) != 1 || last.Actor != experiments.ControllerActor {
				t.Fatalf("last transition %+v", last)
			}
			switch tc.action {
			case experiments.ActionStop:
				if !strings.HasPrefix(last.Reason, rollout.ReasonJudgeWorse) || last.Judge[0].Verdict != stats.JudgeStopWorse {
					t.Fatalf("stop reason %q, judge %+v", last.Reason, last.Judge[0])
				}
				// Nobody saw the candidate: every allocation so far served the base.
				for _, tr := range h {
					if tr.To == experiments.StatusRunning {
						t.Fatalf("a ramp step ran: %+v", tr)
					}
				}
			case experiments.ActionShadowPass:
				if s.Step != 0 || s.Period <= s0.Period || last.Judge[0].Verdict != stats.JudgePass {
					t.Fatalf("pass: state %+v, judge %+v", s, last.Judge[0])
				}
			}
		})
	}
}
