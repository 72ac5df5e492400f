package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// TestLiveJudgeRollsBackAtRampStep: an operator passes the shadow stage
// before the judge concluded (shadow_pass, as POST
// /api/v1/experiments/:id/shadow_pass does), with a candidate the fake
// judge prefers less than the base (quality 0.4 against 0.7). At ramp
// step 1 the live judge (shadow.live_percent 100, judge.ramp guardrail)
// compares the candidate's answers with base replays, and the controller
// rolls the experiment back on the judge alone: the reason names the
// judge and its win rate, and the step never advanced.
func TestLiveJudgeRollsBackAtRampStep(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end through the gateway")
	}
	t.Parallel()
	s := startShadowStack(t, 0.7, 0.4, true, func(e *experiments.Experiment) {
		e.Shadow.LivePercent = 100
		e.Judge.Ramp = experiments.JudgeRampGuardrail
	})
	ctx := context.Background()
	if _, err := s.lc.Start(ctx, s.exp.ID, "api:test", "go"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.lc.ShadowPass(ctx, s.exp.ID, "api:ops", "offline eval looked fine"); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	deadline := time.Now().Add(60 * time.Second)
	var st experiments.State
	for i := 0; ; i++ {
		var err error
		if st, err = s.lc.State(ctx, s.exp.ID); err != nil {
			t.Fatal(err)
		}
		if st.Status != experiments.StatusRunning || st.Step != 0 {
			break
		}
		if time.Now().After(deadline) {
			rec, _ := s.lc.LatestDecision(ctx, s.exp.ID)
			t.Fatalf("still at step 1 after %d users; latest recommendation %+v", i, rec)
		}
		if _, err := s.ask(client, fmt.Sprintf("r%d", i), i%2 == 1); err != nil {
			t.Fatal(err)
		}
	}
	h, _ := s.lc.History(ctx, s.exp.ID, 0)
	last := h[len(h)-1]
	if st.Status != experiments.StatusRolledBack || last.Action != experiments.ActionRollback || last.Actor != experiments.ControllerActor ||
		last.FromStep != 0 || !slices.Contains(last.Codes, string(stats.ReasonJudgeWorse)) || !strings.Contains(last.Reason, "live judge") {
		t.Fatalf("state %+v; last transition %+v", st, last)
	}
	jd := last.Decision.Variants[0].Judge
	if jd == nil || jd.Verdict != stats.JudgeStopWorse || jd.WinRate == nil || jd.WinRateCI.High >= 0.45 {
		t.Fatalf("the rollback's judge decision: %+v", jd)
	}
	// Users did get the candidate at step 1: the judge acted on live
	// traffic, not on the shadow replays.
	if n, ok := s.served.Load("tuned"); !ok || n.(interface{ Load() int64 }).Load() == 0 {
		t.Fatal("no user was served the candidate at step 1")
	}
	t.Logf("rolled back: %s", last.Reason)
}
