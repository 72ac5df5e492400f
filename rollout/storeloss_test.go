package rollout_test

import (
	"context"
	"errors"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/rollout"
)

type notifyLog struct{ ts []experiments.Transition }

func (n *notifyLog) Notify(t experiments.Transition, _ experiments.State) { n.ts = append(n.ts, t) }

// TestStoreLossNeverRegresses: a running experiment's state vanishes from
// the store (a Redis restarted without persistence, which also resets
// the fence counter). The watcher keeps serving the last allocation
// instead of falling back to draft, reports the loss once, and the
// leader restores the state with a new version and a transition
// "restored after store loss", under a fence above every fence issued
// before the loss.
func TestStoreLossNeverRegresses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := storetest.RolloutExperiment("loss", 1, 5, 50)
	cfg := &experiments.Config{Experiments: []experiments.Experiment{e}}
	store := memstore.NewLifecycle()
	var notes notifyLog
	lc := rollout.NewLifecycle(store, cfg, rollout.WithNotifier(&notes))
	var log allocLog
	var losses []experiments.State
	var ctl *rollout.Controller
	var w *rollout.Watcher
	restore := func(ctx context.Context, last experiments.State) error {
		f := ctl.Fence()
		if f == 0 {
			return rollout.ErrNotLeader
		}
		_, err := lc.Restore(ctx, last, f, experiments.ControllerActor)
		return err
	}
	w = rollout.NewWatcher(store, cfg, log.set, rollout.WithLogger(quiet),
		rollout.WithStoreLoss(func(s experiments.State) { losses = append(losses, s) }, restore))
	ctl = rollout.NewController(lc, memstore.New(), store, experiments.Controller{Disabled: false},
		rollout.WithLogger(quiet), rollout.WithHolderID("leader"), rollout.WithFenceFloor(w.MaxFence))

	// Leases 1..3 come and go; the third leader advances the experiment.
	for i := 0; i < 3; i++ {
		if err := ctl.Release(ctx); err != nil {
			t.Fatal(err)
		}
		ctl.Tick(ctx)
	}
	fence := ctl.Fence()
	if fence != 3 {
		t.Fatalf("fence %d, want 3", fence)
	}
	if _, err := lc.Start(ctx, "loss", "api:t", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Do(ctx, experiments.Command{Experiment: "loss", Action: experiments.ActionAdvance, Actor: experiments.ControllerActor, Fence: fence}); err != nil {
		t.Fatal(err)
	}
	if err := w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	before, n := log.last("loss")
	if before.Serve != -1 || before.Shares[0] != 5000 {
		t.Fatalf("allocation before the loss: %+v", before)
	}

	store.Forget("loss") // the store comes back empty, fence counter at 0
	if err := ctl.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Refresh(ctx); err != nil { // no leader: nobody restores
		t.Fatal(err)
	}
	if a, n2 := log.last("loss"); n2 != n || a != before {
		t.Fatalf("allocation changed after the loss (%d deliveries, last %+v): it must stay", n2, a)
	}
	if got := w.Lost(); len(got) != 1 || got[0] != "loss" || len(losses) != 1 || losses[0].Step != 1 {
		t.Fatalf("Lost() = %v, losses %+v", got, losses)
	}
	if err := w.Refresh(ctx); err != nil || len(losses) != 1 {
		t.Fatalf("second refresh: %v; loss reported %d times, want once", err, len(losses))
	}

	ctl.Tick(ctx) // a new leader: its fence is above the 3 issued before
	if f := ctl.Fence(); f <= fence {
		t.Fatalf("fence after the loss %d, want above %d", f, fence)
	}
	if err := w.Refresh(ctx); err != nil { // the leader restores
		t.Fatal(err)
	}
	s, err := store.State(ctx, "loss")
	if err != nil || s.Status != experiments.StatusRunning || s.Step != 1 || s.Version != 3 || s.Fence <= fence {
		t.Fatalf("restored state %+v, %v; want running at step 1, version 3, fence above %d", s, err, fence)
	}
	if last := notes.ts[len(notes.ts)-1]; last.Action != experiments.ActionRestore || last.Reason != experiments.ReasonStoreLoss {
		t.Fatalf("last notification %+v, want the restore", last)
	}
	if err := w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.Lost(); len(got) != 0 {
		t.Fatalf("Lost() = %v after the restore", got)
	}
	if a, _ := log.last("loss"); a.Serve != -1 || a.Shares[0] != 5000 {
		t.Fatalf("allocation after the restore: %+v", a)
	}
	// A second restore finds the state stored: ErrConflict, nothing written.
	if _, err := lc.Restore(ctx, s, ctl.Fence(), experiments.ControllerActor); !errors.Is(err, experiments.ErrConflict) {
		t.Fatalf("second Restore: %v, want ErrConflict", err)
	}
}
