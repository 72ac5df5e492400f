package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// testLCRestore: Restore writes a state only where none is stored, fenced
// like Commit, and raises the fence counter above the restored state's
// fence; SeedFence raises it too, never lowers it.
func testLCRestore(t *testing.T, newStore LifecycleFactory) {
	s, _ := newStore(t)
	r, ok := s.(experiments.StateRestorer)
	if !ok {
		t.Fatalf("%T does not implement experiments.StateRestorer", s)
	}
	ctx := context.Background()
	exp := NewID("restore")
	f1, ok, err := s.Acquire(ctx, "a", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Acquire: %d %v %v", f1, ok, err)
	}
	last := experiments.State{Experiment: exp, Status: experiments.StatusRunning, Step: 2, Period: 4, SaltPhase: 1, Version: 7, Fence: 40}
	next := last
	next.Version, next.Fence = 8, 40
	tr := experiments.Transition{Seq: 8, Experiment: exp, Action: experiments.ActionRestore, From: last.Status, To: last.Status,
		FromStep: 2, ToStep: 2, Period: 4, Reason: experiments.ReasonStoreLoss, Fence: f1 + 1}
	if err := r.Restore(ctx, next, tr); !errors.Is(err, experiments.ErrFenced) {
		t.Fatalf("Restore with a stale fence: %v, want ErrFenced", err)
	}
	tr.Fence = f1
	if err := r.Restore(ctx, next, tr); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	got, err := s.State(ctx, exp)
	if err != nil || got.Status != experiments.StatusRunning || got.Step != 2 || got.Period != 4 || got.Version != 8 {
		t.Fatalf("State after Restore: %+v, %v", got, err)
	}
	if ts, err := s.Transitions(ctx, exp, 0); err != nil || len(ts) != 1 || ts[0].Action != experiments.ActionRestore || ts[0].Reason != experiments.ReasonStoreLoss {
		t.Fatalf("Transitions after Restore: %+v, %v", ts, err)
	}
	if err := r.Restore(ctx, next, tr); !errors.Is(err, experiments.ErrConflict) {
		t.Fatalf("Restore over a stored state: %v, want ErrConflict", err)
	}
	// The next lease's fence is above the restored state's fence (40).
	if err := s.Release(ctx, "a", f1); err != nil {
		t.Fatal(err)
	}
	f2, ok, err := s.Acquire(ctx, "b", time.Minute)
	if err != nil || !ok || f2 <= 40 {
		t.Fatalf("Acquire after Restore: fence %d (%v, %v), want > 40", f2, ok, err)
	}
	if err := s.Release(ctx, "b", f2); err != nil {
		t.Fatal(err)
	}
	if err := r.SeedFence(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if err := r.SeedFence(ctx, 50); err != nil { // never lowers
		t.Fatal(err)
	}
	f3, ok, err := s.Acquire(ctx, "c", time.Minute)
	if err != nil || !ok || f3 != 101 {
		t.Fatalf("Acquire after SeedFence(100): fence %d (%v, %v), want 101", f3, ok, err)
	}
}
