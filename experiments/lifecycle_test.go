package experiments_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
)

// fakeClock is a settable clock for simulated time.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func rolloutExp(id string, candidates int, steps ...float64) experiments.Experiment {
	e := experiments.Experiment{ID: id, Primary: experiments.MetricThumbs, Rollout: &experiments.Rollout{}}
	e.Variants = append(e.Variants, experiments.Variant{Name: "base", Upstream: "up", Model: "m0"})
	for i := 1; i <= candidates; i++ {
		e.Variants = append(e.Variants, experiments.Variant{Name: "cand" + string(rune('0'+i)), Upstream: "up", Model: "m"})
	}
	for _, p := range steps {
		e.Rollout.Steps = append(e.Rollout.Steps, experiments.RampStep{Percent: p})
	}
	return e
}

func TestTransitionTable(t *testing.T) {
	t.Parallel()
	e := rolloutExp("tt", 1, 5, 25, 50)
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
	e := rolloutExp("af", 2, 1, 5, 25, 50) // 50 caps at 50 for two candidates
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
	e := rolloutExp("cap", 3)
	got := experiments.RolloutSteps(&e)
	var pcts []float64
	for _, s := range got {
		pcts = append(pcts, s.Percent)
	}
	if want := []float64{1, 5, 25, 33.33}; len(pcts) != 4 || pcts[3] != want[3] || pcts[0] != 1 {
		t.Errorf("default steps for 3 candidates = %v, want %v", pcts, want)
	}
}

func TestLifecycleServiceCAS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := rolloutExp("svc", 1, 5, 50)
	cfg := &experiments.Config{Experiments: []experiments.Experiment{e}}
	store := memstore.NewLifecycle()
	clock := newFakeClock()
	var got []experiments.Transition
	var mu sync.Mutex
	lc := experiments.NewLifecycle(store, cfg, experiments.WithLifecycleClock(clock.Now),
		experiments.WithNotifier(notifierFunc(func(tr experiments.Transition, _ experiments.State) {
			mu.Lock()
			got = append(got, tr)
			mu.Unlock()
		})))

	if _, err := lc.Pause(ctx, "svc", "api:ann", "before start"); !errors.Is(err, experiments.ErrInvalidTransition) {
		t.Fatalf("pause a draft: %v, want ErrInvalidTransition", err)
	}
	if _, err := lc.Start(ctx, "nope", "api:ann", ""); !errors.Is(err, experiments.ErrNotFound) {
		t.Fatalf("start unknown: %v, want ErrNotFound", err)
	}
	if _, err := lc.Start(ctx, "svc", "", ""); err == nil {
		t.Fatal("command without actor accepted")
	}
	if _, err := lc.Start(ctx, "svc", "api:ann", "go"); err != nil {
		t.Fatal(err)
	}
	// The controller evaluated version 1, an operator pauses meanwhile:
	// the controller's command loses.
	if _, err := lc.Pause(ctx, "svc", "api:bob", "looking into latency"); err != nil {
		t.Fatal(err)
	}
	_, err := lc.Do(ctx, experiments.Command{Experiment: "svc", Action: experiments.ActionAdvance, Actor: experiments.ControllerActor, IfVersion: 1})
	if !errors.Is(err, experiments.ErrConflict) {
		t.Fatalf("controller command on a stale version: %v, want ErrConflict", err)
	}
	// Concurrent operators: both resume; one wins, the other is re-checked
	// against the new state and refused (can't resume a running experiment).
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = lc.Resume(ctx, "svc", "api:op", "") }()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("concurrent resumes: %v, %v; want exactly one success", errs[0], errs[1])
	}
	st, _ := lc.State(ctx, "svc")
	if st.Status != experiments.StatusRunning || st.Version != 3 || st.UpdatedBy != "api:op" {
		t.Fatalf("state = %+v", st)
	}
	h, _ := lc.History(ctx, "svc", 0)
	if len(h) != 3 || len(got) != 3 {
		t.Fatalf("history %d, notified %d; want 3 and 3", len(h), len(got))
	}
	for i, tr := range h {
		if tr.Seq != int64(i+1) || got[i].Seq != tr.Seq {
			t.Errorf("transition %d: seq %d, notified %d", i, tr.Seq, got[i].Seq)
		}
	}
	if h[1].Actor != "api:bob" || h[1].Reason != "looking into latency" || h[1].Action != experiments.ActionPause {
		t.Errorf("audit entry = %+v", h[1])
	}
}

type notifierFunc func(experiments.Transition, experiments.State)

func (f notifierFunc) Notify(t experiments.Transition, s experiments.State) { f(t, s) }
