package e2e

import (
	"math"
	"slices"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

var (
	baseArm   = arm{Thumbs: 0.55, ErrRate: 0.01, LatencyMS: 800}
	betterArm = arm{Thumbs: 0.65, ErrRate: 0.01, LatencyMS: 800}
	worseArm  = arm{Thumbs: 0.45, ErrRate: 0.01, LatencyMS: 800}
	brokenArm = arm{Thumbs: 0.55, ErrRate: 0.30, LatencyMS: 800}
)

// actions lists the transitions' actions in order.
func actions(h []experiments.Transition) []experiments.Action {
	var out []experiments.Action
	for _, t := range h {
		out = append(out, t.Action)
	}
	return out
}

func TestRolloutScenarios(t *testing.T) {
	t.Parallel()
	A := experiments.ActionStart
	adv, promote, rollback := experiments.ActionAdvance, experiments.ActionPromote, experiments.ActionRollback
	tests := []struct {
		name    string
		arms    []arm
		status  experiments.Status
		actions []experiments.Action
	}{
		// Better on thumbs, same errors and latency: ramps through every
		// step and is promoted at the last.
		{"better candidate is promoted", []arm{baseArm, betterArm}, experiments.StatusPromoted, []experiments.Action{A, adv, adv, promote}},
		// Guardrails hold while ramping; at the last step the primary
		// shows it worse: rolled back.
		{"worse candidate is rolled back", []arm{baseArm, worseArm}, experiments.StatusRolledBack, []experiments.Action{A, adv, adv, rollback}},
		// No errors at all on either arm (the error guardrail has zero
		// variance): still ramps and promotes.
		{"error-free arms still ramp", []arm{{Thumbs: 0.55, LatencyMS: 800}, {Thumbs: 0.65, LatencyMS: 800}}, experiments.StatusPromoted, []experiments.Action{A, adv, adv, promote}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := scenario{arms: tc.arms, rollout: defaultRollout(), usersPerTick: 2000, maxTicks: 120, seed: 7}.run(t)
			if o.state.Status != tc.status || !slices.Equal(actions(o.history), tc.actions) {
				t.Fatalf("got %v, want %s via %v\n%s", actions(o.history), tc.status, tc.actions, o)
			}
			last := o.history[len(o.history)-1]
			if last.Actor != experiments.ControllerActor || last.Decision == nil || last.Reason == "" || len(last.Codes) == 0 {
				t.Errorf("controller transition lacks its explanation: %+v", last)
			}
			// Every step ran for its minimum duration on its own period.
			for i, tr := range o.history[1:] {
				prev := o.history[i]
				if tr.Action == adv {
					if tr.Period != prev.Period+1 {
						t.Errorf("advance #%d did not start a new period: %d after %d", tr.Seq, tr.Period, prev.Period)
					}
					if d := tr.At.Sub(prev.At); d < 5*60e9 {
						t.Errorf("advance #%d after %v, before the step's 5m minimum", tr.Seq, d)
					}
				}
			}
			t.Log(o)
			if tc.status == experiments.StatusPromoted && (last.Winner == nil || *last.Winner != 1 || o.state.Winner != 1) {
				t.Errorf("promoted without winner 1: %+v", last)
			}
		})
	}
}

// A candidate that fails 30% of its requests is rolled back at the first
// ramp step, having served about that step's share (5%) of users.
func TestErroringCandidateRolledBackAtFirstStep(t *testing.T) {
	t.Parallel()
	o := scenario{arms: []arm{baseArm, brokenArm}, rollout: defaultRollout(), usersPerTick: 2000, maxTicks: 60, seed: 3}.run(t)
	if o.state.Status != experiments.StatusRolledBack || len(o.history) != 2 || o.history[1].FromStep != 0 {
		t.Fatalf("want a rollback from step 0\n%s", o)
	}
	tr := o.history[1]
	if !contains(tr.Codes, string(stats.ReasonGuardrailHarm)) {
		t.Errorf("rollback codes %v lack %s", tr.Codes, stats.ReasonGuardrailHarm)
	}
	var total, cand int
	for period, n := range o.pop.served {
		if period != tr.Period {
			t.Errorf("users served in period %d; only period %d existed", period, tr.Period)
		}
		total += n[0] + n[1]
		cand += n[1]
	}
	// The last round of users came after the rollback: none of them got
	// the candidate.
	share := float64(cand) / float64(total-2000)
	if math.Abs(share-0.05) > 0.01 {
		t.Errorf("candidate served %.2f%% of users while running, want about 5%%", 100*share)
	}
	t.Logf("rolled back after %d ticks; candidate served %d of %d users (%.2f%%)", o.ticks, cand, total-2000, 100*share)
}

// Events of a third of the candidate's users are lost: the sample-ratio
// check halts the experiment.
func TestBrokenSplitHaltsOnSRM(t *testing.T) {
	t.Parallel()
	o := scenario{arms: []arm{baseArm, baseArm}, rollout: defaultRollout(), usersPerTick: 2000, maxTicks: 60, seed: 5, drop: 0.33}.run(t)
	if o.state.Status != experiments.StatusStopped {
		t.Fatalf("want stopped by SRM\n%s", o)
	}
	last := o.history[len(o.history)-1]
	if last.Action != experiments.ActionHaltSRM || !contains(last.Codes, string(stats.ReasonSRM)) || last.Decision.SRM == nil {
		t.Fatalf("last transition %+v, want halt_srm with the SRM result", last)
	}
	t.Log(o)
}

// With Rollout.Manual the controller records what it would do and does
// nothing.
func TestManualRolloutOnlyRecommends(t *testing.T) {
	t.Parallel()
	r := defaultRollout()
	r.Manual = true
	o := scenario{arms: []arm{baseArm, brokenArm}, rollout: r, usersPerTick: 2000, maxTicks: 15, seed: 3}.run(t)
	if o.state.Status != experiments.StatusRunning || len(o.history) != 1 {
		t.Fatalf("manual rollout acted\n%s", o)
	}
	if o.rec.Action != experiments.ActionRollback || o.rec.Applied || o.rec.Decision.Verdict != stats.Rollback {
		t.Fatalf("recommendation = %+v, want an unapplied rollback", o.rec)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
