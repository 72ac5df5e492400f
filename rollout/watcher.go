package rollout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/abgate/abgate/experiments"
)

// StateReader reads lifecycle states (LifecycleStore implements it).
type StateReader interface {
	State(ctx context.Context, experiment string) (experiments.State, error)
}

// DefaultPollInterval is how often a Watcher re-reads every state as a
// fallback to the change feed: half a second, so a replica that missed an
// announcement still follows within a second.
const DefaultPollInterval = 500 * time.Millisecond

// Watcher keeps a replica's allocations in step with the lifecycle
// states: it calls fn(id, AllocationFor(state)) for every experiment with
// a rollout when its state version changes (and once at the start), and
// fn(id, nil) when a config update takes an experiment's rollout away. It
// hears changes on the store's ChangeFeed, if it has one, and polls every
// PollInterval as a fallback, so every replica follows a change within
// about a second even when pub/sub messages are lost. A state that
// can't be read gets no callback: the replica keeps serving its last
// known allocation.
//
// A state that disappears while the watcher knew one (the store lost it:
// a Redis restarted without persistence) never falls back to draft: the
// replica keeps serving the last known allocation, Lost reports the
// experiment (readiness shows "degraded"), the loss is logged at error
// level and handed to WithStoreLoss's callbacks, which restore it
// (docs/rollout.md, "Store loss").
type Watcher struct {
	store StateReader
	fn    func(string, *experiments.Allocation)
	poll  time.Duration
	log   *slog.Logger

	onLoss  func(experiments.State)
	restore func(context.Context, experiments.State) error

	mu   sync.Mutex // serialises refreshes, so fn is never called concurrently
	exps map[string]*experiments.Experiment
	last map[string]int64 // delivered state version (-1: none yet)
	// known is the last stored state read per experiment (kept across
	// config updates); lost holds the experiments whose known state
	// disappeared from the store.
	known map[string]experiments.State
	lost  map[string]experiments.State
	// maxFence is atomic, not under mu: the Controller reads it while
	// holding its own lock, and restore callbacks take the Controller's
	// lock (no lock-order inversion).
	maxFence atomic.Int64
}

// NewWatcher returns a watcher of cfg's rollout experiments; Run starts it.
func NewWatcher(store StateReader, cfg *experiments.Config, fn func(experimentID string, a *experiments.Allocation), opts ...Option) *Watcher {
	o := newOptions(opts)
	w := &Watcher{store: store, fn: fn, poll: cmp.Or(o.poll, DefaultPollInterval), log: o.log,
		onLoss: o.onLoss, restore: o.restore,
		known: make(map[string]experiments.State), lost: make(map[string]experiments.State)}
	w.Update(cfg)
	return w
}

// Update replaces the watched experiments (config reload); every one is
// delivered again at the next refresh, since its allocation derives from
// the config too. An experiment that is still configured but lost its
// rollout gets fn(id, nil) at once: back to its configured allocation, as
// a replica started with the new config serves it, rather than the last
// lifecycle allocation for as long as this replica runs.
func (w *Watcher) Update(cfg *experiments.Config) {
	exps := make(map[string]*experiments.Experiment)
	for i := range cfg.Experiments {
		if e := cfg.Experiments[i]; e.Rollout != nil {
			exps[e.ID] = &e
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var dropped []string
	for id := range w.exps {
		if exps[id] == nil && cfg.Experiment(id) != nil {
			dropped = append(dropped, id)
		}
	}
	w.exps, w.last = exps, make(map[string]int64)
	for id := range w.known {
		if exps[id] == nil {
			delete(w.known, id)
			delete(w.lost, id)
		}
	}
	for _, id := range dropped {
		w.fn(id, nil)
	}
}

// Run refreshes at once, then on every change announcement and every
// poll interval, until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	follow(ctx, w.store, w.poll, w.log, "lifecycle watcher",
		func(id string) { _ = w.refresh(ctx, id) },
		func() {
			if err := w.Refresh(ctx); err != nil && ctx.Err() == nil {
				w.log.Warn("lifecycle watcher: refresh (keeping last allocations)", "err", err)
			}
		})
}

// Refresh reads every watched experiment's state and delivers the changed
// ones. It returns the read errors (those experiments keep their last
// allocation).
func (w *Watcher) Refresh(ctx context.Context) error {
	w.mu.Lock()
	ids := make([]string, 0, len(w.exps))
	for id := range w.exps {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if err := w.refresh(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (w *Watcher) refresh(ctx context.Context, id string) error {
	lost, first, err := w.refreshLocked(ctx, id)
	if lost != nil {
		// Outside mu: the callbacks reach the Controller and the store.
		w.storeLost(ctx, *lost, first)
	}
	return err
}

// refreshLocked reads and delivers id's state; when the store lost a
// known state it returns it (first: newly lost) instead.
func (w *Watcher) refreshLocked(ctx context.Context, id string) (lost *experiments.State, first bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.exps[id]
	if e == nil {
		return nil, false, nil
	}
	s, err := w.store.State(ctx, id)
	switch {
	case errors.Is(err, experiments.ErrNotFound):
		if k, ok := w.known[id]; ok && k.Version > 0 {
			// Keep serving the last known allocation.
			_, already := w.lost[id]
			w.lost[id] = k
			return &k, !already, nil
		}
		s = experiments.Draft(e)
	case err != nil:
		return nil, false, fmt.Errorf("watch %q: %w", id, err)
	default:
		if _, wasLost := w.lost[id]; wasLost {
			delete(w.lost, id)
			w.log.Info("lifecycle state is back in the store", "experiment", id, "status", s.Status, "step", s.Step, "version", s.Version)
		}
		w.known[id] = s
		for f := w.maxFence.Load(); s.Fence > f && !w.maxFence.CompareAndSwap(f, s.Fence); f = w.maxFence.Load() {
		}
	}
	if v, seen := w.last[id]; seen && v == s.Version {
		return nil, false, nil
	}
	w.last[id] = s.Version
	w.fn(id, e.AllocationFor(s))
	return nil, false, nil
}

// storeLost handles a known state gone from the store: it reports a new
// loss and asks for a restore. Call without w.mu.
func (w *Watcher) storeLost(ctx context.Context, k experiments.State, first bool) {
	id := k.Experiment
	if first {
		w.log.Error("lifecycle state lost from the store (restarted without persistence?); serving the last known allocation until it is restored",
			"experiment", id, "status", k.Status, "step", k.Step, "period", k.Period, "version", k.Version, "fence", k.Fence)
		if w.onLoss != nil {
			w.onLoss(k)
		}
	}
	if w.restore != nil {
		if err := w.restore(ctx, k); err != nil && !errors.Is(err, ErrNotLeader) {
			w.log.Warn("lifecycle state not restored yet", "experiment", id, "err", err)
		}
	}
}

// ErrNotLeader: a restore callback declines because this replica does not
// hold the controller lease (the leader restores).
var ErrNotLeader = errors.New("not the controller leader")

// Lost returns the experiments whose lifecycle state the store lost and
// that are not restored yet, sorted.
func (w *Watcher) Lost() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.lost))
	for id := range w.lost {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// IsLost reports whether id's lifecycle state is lost and not restored.
func (w *Watcher) IsLost(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.lost[id]
	return ok
}

// MaxFence is the highest lease fence seen in any state read (see
// WithFenceFloor); it survives a store loss.
func (w *Watcher) MaxFence() int64 { return w.maxFence.Load() }
