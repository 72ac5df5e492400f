package rollout_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/rollout"
)

func TestLifecycleServiceCAS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := storetest.RolloutExperiment("svc", 1, 5, 50)
	cfg := &experiments.Config{Experiments: []experiments.Experiment{e}}
	store := memstore.NewLifecycle()
	clock := storetest.NewClock()
	var got []experiments.Transition
	var mu sync.Mutex
	lc := rollout.NewLifecycle(store, cfg, rollout.WithClock(clock.Now),
		rollout.WithNotifier(notifierFunc(func(tr experiments.Transition, _ experiments.State) {
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
