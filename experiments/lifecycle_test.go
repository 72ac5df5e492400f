package experiments_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/storetest"
)

func TestTransitionTable(t *testing.T) {
	t.Parallel()
	e := storetest.RolloutExperiment("tt", 1, 5, 25, 50)
	at := func(st experiments.Status, step int, v int64) experiments.State {
		return experiments.State{Experiment: "tt", Status: st, Step: step, Period: 3, SaltPhase: 1, Version: v}
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		from   experiments.State
		cmd    experiments.Command
		status experiments.Status
		step   int
		period int
		err    string
	}{
		{"start draft: fresh period", experiments.Draft(&e), experiments.Command{Action: experiments.ActionStart}, experiments.StatusRunning, 0, 2, ""},
		{"restart after rollback: new period", at(experiments.StatusRolledBack, 1, 4), experiments.Command{Action: experiments.ActionStart}, experiments.StatusRunning, 0, 4, ""},
		{"start running", at(experiments.StatusRunning, 0, 2), experiments.Command{Action: experiments.ActionStart}, "", 0, 0, "cannot start"},
		{"advance", at(experiments.StatusRunning, 0, 2), experiments.Command{Action: experiments.ActionAdvance}, experiments.StatusRunning, 1, 4, ""},
		{"advance past last", at(experiments.StatusRunning, 2, 2), experiments.Command{Action: experiments.ActionAdvance}, "", 0, 0, "last step"},
		{"advance paused", at(experiments.StatusPaused, 0, 2), experiments.Command{Action: experiments.ActionAdvance}, "", 0, 0, "it is paused"},
		{"pause keeps period", at(experiments.StatusRunning, 1, 2), experiments.Command{Action: experiments.ActionPause}, experiments.StatusPaused, 1, 3, ""},
		{"resume keeps period", at(experiments.StatusPaused, 1, 2), experiments.Command{Action: experiments.ActionResume}, experiments.StatusRunning, 1, 3, ""},
		{"resume promoted", at(experiments.StatusPromoted, 2, 5), experiments.Command{Action: experiments.ActionResume}, "", 0, 0, "cannot resume"},
		{"set step", at(experiments.StatusPaused, 0, 2), experiments.Command{Action: experiments.ActionSetStep, Step: 2}, experiments.StatusPaused, 2, 4, ""},
		{"set step out of range", at(experiments.StatusRunning, 0, 2), experiments.Command{Action: experiments.ActionSetStep, Step: 3}, "", 0, 0, "out of range"},
		{"set same step", at(experiments.StatusRunning, 1, 2), experiments.Command{Action: experiments.ActionSetStep, Step: 1}, "", 0, 0, "already at step"},
		{"promote", at(experiments.StatusRunning, 2, 2), experiments.Command{Action: experiments.ActionPromote, Winner: 1}, experiments.StatusPromoted, 2, 3, ""},
		{"promote base", at(experiments.StatusRunning, 2, 2), experiments.Command{Action: experiments.ActionPromote, Winner: 0}, "", 0, 0, "not a candidate"},
		{"rollback promoted", at(experiments.StatusPromoted, 2, 5), experiments.Command{Action: experiments.ActionRollback}, experiments.StatusRolledBack, 2, 3, ""},
		{"rollback draft", experiments.Draft(&e), experiments.Command{Action: experiments.ActionRollback}, "", 0, 0, "cannot rollback"},
		{"stop", at(experiments.StatusPaused, 1, 2), experiments.Command{Action: experiments.ActionStop}, experiments.StatusStopped, 1, 3, ""},
		{"stop stopped", at(experiments.StatusStopped, 1, 2), experiments.Command{Action: experiments.ActionStop}, "", 0, 0, "cannot stop"},
		{"halt srm", at(experiments.StatusRunning, 1, 2), experiments.Command{Action: experiments.ActionHaltSRM}, experiments.StatusStopped, 1, 3, ""},
		{"futility paused", at(experiments.StatusPaused, 1, 2), experiments.Command{Action: experiments.ActionFutility}, "", 0, 0, "cannot futility"},
		{"unknown", at(experiments.StatusRunning, 1, 2), experiments.Command{Action: "explode"}, "", 0, 0, "unknown action"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cmd.Actor = "api:test"
			next, tr, err := experiments.Next(&e, tc.from, tc.cmd, now)
			if tc.err != "" {
				if !errors.Is(err, experiments.ErrInvalidTransition) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want ErrInvalidTransition mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if next.Status != tc.status || next.Step != tc.step || next.Period != tc.period {
				t.Errorf("next = %s step %d period %d, want %s step %d period %d", next.Status, next.Step, next.Period, tc.status, tc.step, tc.period)
			}
			if next.Version != tc.from.Version+1 || tr.Seq != next.Version || tr.From != tc.from.Status || tr.To != next.Status {
				t.Errorf("transition %+v for %+v -> %+v", tr, tc.from, next)
			}
			if next.SaltPhase != 1 {
				t.Errorf("salt phase changed to %d", next.SaltPhase)
			}
		})
	}
}

func TestAllocationFor(t *testing.T) {
	t.Parallel()
	e := storetest.RolloutExperiment("af", 2, 1, 5, 25, 50) // 50 caps at 50 for two candidates
	running := func(step int) experiments.State {
		return experiments.State{Status: experiments.StatusRunning, Step: step, SaltPhase: 2, Period: 7}
	}
	tests := []struct {
		name   string
		s      experiments.State
		shares []uint16
		serve  int
	}{
		{"draft", experiments.Draft(&e), []uint16{0, 0}, 0},
		{"step 0", running(0), []uint16{100, 100}, -1},
		{"step 2", running(2), []uint16{2500, 2500}, -1},
		{"last", running(3), []uint16{5000, 5000}, -1},
		{"paused keeps split", experiments.State{Status: experiments.StatusPaused, Step: 1, SaltPhase: 2, Period: 7}, []uint16{500, 500}, -1},
		{"promoted", experiments.State{Status: experiments.StatusPromoted, Winner: 2, Step: 3, SaltPhase: 2, Period: 7}, []uint16{0, 0}, 2},
		{"rolled back", experiments.State{Status: experiments.StatusRolledBack, SaltPhase: 2, Period: 7}, []uint16{0, 0}, 0},
		{"stopped", experiments.State{Status: experiments.StatusStopped, SaltPhase: 2, Period: 7}, []uint16{0, 0}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := e.AllocationFor(tc.s)
			if a.Serve != tc.serve {
				t.Errorf("Serve = %d, want %d", a.Serve, tc.serve)
			}
			if tc.serve < 0 {
				for i, s := range a.Shares {
					if s != tc.shares[i] {
						t.Errorf("Shares = %v, want %v", a.Shares, tc.shares)
					}
				}
			}
			if tc.s.Status != experiments.StatusDraft {
				if a.Period != 7 || a.Salt != experiments.PhaseSalt("af", 2) {
					t.Errorf("period %d salt %q, want 7 and the phase-2 salt", a.Period, a.Salt)
				}
			}
		})
	}
	// Ramping never reshuffles: same salt and candidates at every step.
	prev := e.AllocationFor(running(0))
	for step := 1; step < 4; step++ {
		a := e.AllocationFor(running(step))
		if experiments.Reshuffles(prev, a) {
			t.Errorf("step %d reshuffles", step)
		}
		prev = a
	}
}

func TestRolloutStepsCapped(t *testing.T) {
	t.Parallel()
	e := storetest.RolloutExperiment("cap", 3)
	got := experiments.RolloutSteps(&e)
	var pcts []float64
	for _, s := range got {
		pcts = append(pcts, s.Percent)
	}
	if want := []float64{1, 5, 25, 33.33}; len(pcts) != 4 || pcts[3] != want[3] || pcts[0] != 1 {
		t.Errorf("default steps for 3 candidates = %v, want %v", pcts, want)
	}
}
