package rollout_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/rollout"
)

type allocLog struct {
	mu    sync.Mutex
	calls map[string][]*experiments.Allocation
}

func (l *allocLog) set(id string, a *experiments.Allocation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.calls == nil {
		l.calls = map[string][]*experiments.Allocation{}
	}
	l.calls[id] = append(l.calls[id], a)
}

func (l *allocLog) last(id string) (*experiments.Allocation, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.calls[id]
	if len(c) == 0 {
		return nil, 0
	}
	return c[len(c)-1], len(c)
}

// flakyStates fails State while down is set.
type flakyStates struct {
	rollout.StateReader
	down atomic.Bool
}

func (f *flakyStates) State(ctx context.Context, id string) (experiments.State, error) {
	if f.down.Load() {
		return experiments.State{}, errors.New("connection refused")
	}
	return f.StateReader.State(ctx, id)
}

func TestWatcherFollowsChanges(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := storetest.RolloutExperiment("w", 1, 5, 50)
	fixed := storetest.RolloutExperiment("fixed", 1)
	fixed.Rollout = nil
	cfg := &experiments.Config{Experiments: []experiments.Experiment{e, fixed}}
	store := memstore.NewLifecycle()
	lc := rollout.NewLifecycle(store, cfg)
	var log allocLog
	w := rollout.NewWatcher(store, cfg, log.set, rollout.WithPollInterval(time.Hour), rollout.WithLogger(quiet))
	go w.Run(ctx)

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("not within 1s: %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("initial draft allocation", func() bool { a, _ := log.last("w"); return a != nil && a.Serve == 0 })
	if _, n := log.last("fixed"); n != 0 {
		t.Error("experiment without rollout was overridden")
	}
	// Polling is hourly here: the change must arrive through the feed.
	if _, err := lc.Start(ctx, "w", "api:t", ""); err != nil {
		t.Fatal(err)
	}
	waitFor("start", func() bool { a, _ := log.last("w"); return a.Serve == -1 && a.Shares[0] == 500 })
	if _, err := lc.SetStep(ctx, "w", 1, "api:t", ""); err != nil {
		t.Fatal(err)
	}
	waitFor("set step", func() bool { a, _ := log.last("w"); return a.Shares[0] == 5000 && a.Period == 3 })
	_, n := log.last("w")
	if err := w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, n2 := log.last("w"); n2 != n {
		t.Error("unchanged state delivered again")
	}
}

func TestWatcherKeepsLastOnError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := storetest.RolloutExperiment("we", 1, 5, 50)
	cfg := &experiments.Config{Experiments: []experiments.Experiment{e}}
	store := memstore.NewLifecycle()
	lc := rollout.NewLifecycle(store, cfg)
	if _, err := lc.Start(ctx, "we", "api:t", ""); err != nil {
		t.Fatal(err)
	}
	flaky := &flakyStates{StateReader: store}
	var log allocLog
	w := rollout.NewWatcher(flaky, cfg, log.set)
	if err := w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	flaky.down.Store(true)
	if _, err := lc.Rollback(ctx, "we", "api:t", ""); err != nil {
		t.Fatal(err)
	}
	if err := w.Refresh(ctx); err == nil {
		t.Fatal("Refresh hid the store error")
	}
	a, n := log.last("we")
	if n != 1 || a.Serve != -1 {
		t.Fatalf("after a failed read: %d calls, last %+v; want the running allocation kept", n, a)
	}
	flaky.down.Store(false)
	if err := w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := log.last("we"); a.Serve != 0 {
		t.Fatalf("after recovery: %+v, want rolled back (Serve 0)", a)
	}
}

// TestWatcherReleasesExperimentThatLostItsRollout: a reload that removes
// an experiment's rollout hands it back to its configured allocation
// (fn(id, nil)), as a replica started with that config serves it; the
// last lifecycle allocation must not stay in force on this replica.
func TestWatcherReleasesExperimentThatLostItsRollout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := storetest.RolloutExperiment("wr", 1, 5, 50)
	gone := storetest.RolloutExperiment("wgone", 1, 5, 50)
	cfg := &experiments.Config{Experiments: []experiments.Experiment{e, gone}}
	store := memstore.NewLifecycle()
	lc := rollout.NewLifecycle(store, cfg)
	if _, err := lc.Start(ctx, "wr", "api:t", ""); err != nil {
		t.Fatal(err)
	}
	var log allocLog
	w := rollout.NewWatcher(store, cfg, log.set, rollout.WithLogger(quiet))
	if err := w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// "wr" keeps its experiment but loses its rollout; "wgone" is removed
	// altogether (the gateway forgets it by itself).
	fixed := e
	fixed.Rollout = nil
	w.Update(&experiments.Config{Experiments: []experiments.Experiment{fixed}})
	if a, n := log.last("wr"); n != 2 || a != nil {
		t.Fatalf("after the rollout was removed: %d calls, last %+v; want a nil allocation (back to the configured one)", n, a)
	}
	if _, n := log.last("wgone"); n != 1 {
		t.Fatalf("removed experiment: %d calls, want only the initial one", n)
	}
}
