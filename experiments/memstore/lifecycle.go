package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/abgate/abgate/experiments"
)

var (
	_ experiments.LifecycleStore = (*Lifecycle)(nil)
	_ experiments.Leaser         = (*Lifecycle)(nil)
	_ experiments.ChangeFeed     = (*Lifecycle)(nil)
	_ experiments.StateRestorer  = (*Lifecycle)(nil)
)

// Lifecycle is the in-memory lifecycle store, lease and change feed for a
// single process: the same contracts as redisstore.Lifecycle (see
// storetest.RunLifecycle), with the lease kept against an injectable
// clock. The zero value is not usable; call NewLifecycle.
type Lifecycle struct {
	now func() time.Time

	mu          sync.Mutex
	states      map[string]experiments.State
	transitions map[string][][]byte // JSON, so callers can't alias stored values
	recs        map[string][]byte
	holder      string
	fence       int64 // current lease's fence (0: none ever)
	expires     time.Time
	fenceSeq    int64
	subs        map[chan string]struct{}
}

// LifecycleOption configures a Lifecycle.
type LifecycleOption func(*Lifecycle)

// WithLifecycleClock replaces time.Now (lease expiry), for tests.
func WithLifecycleClock(now func() time.Time) LifecycleOption {
	return func(l *Lifecycle) { l.now = now }
}

// NewLifecycle returns an empty Lifecycle.
func NewLifecycle(opts ...LifecycleOption) *Lifecycle {
	l := &Lifecycle{
		now:         time.Now,
		states:      make(map[string]experiments.State),
		transitions: make(map[string][][]byte),
		recs:        make(map[string][]byte),
		subs:        make(map[chan string]struct{}),
	}
	for _, o := range opts {
		o(l)
	}
	return l
}

// State implements experiments.LifecycleStore.
func (l *Lifecycle) State(_ context.Context, exp string) (experiments.State, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.states[exp]
	if !ok {
		return experiments.State{}, fmt.Errorf("lifecycle state of %q: %w", exp, experiments.ErrNotFound)
	}
	return s, nil
}

// Commit implements experiments.LifecycleStore.
func (l *Lifecycle) Commit(_ context.Context, prev int64, next experiments.State, t experiments.Transition) error {
	if next.Version != prev+1 || t.Seq != next.Version || next.Experiment == "" || t.Experiment != next.Experiment {
		return fmt.Errorf("lifecycle commit of %q: version %d after %d, seq %d: inconsistent", next.Experiment, next.Version, prev, t.Seq)
	}
	tj, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode transition: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur := l.states[next.Experiment]; cur.Version != prev {
		return fmt.Errorf("lifecycle commit of %q at version %d (stored %d): %w", next.Experiment, prev, cur.Version, experiments.ErrConflict)
	}
	if t.Fence != 0 && !(t.Fence == l.fence && l.now().Before(l.expires)) {
		return fmt.Errorf("lifecycle commit of %q with fence %d: %w", next.Experiment, t.Fence, experiments.ErrFenced)
	}
	l.states[next.Experiment] = next
	l.transitions[next.Experiment] = append(l.transitions[next.Experiment], tj)
	for ch := range l.subs {
		select {
		case ch <- next.Experiment:
		default: // a slow subscriber misses it; watchers poll as well
		}
	}
	return nil
}

// Restore implements experiments.StateRestorer.
func (l *Lifecycle) Restore(_ context.Context, next experiments.State, t experiments.Transition) error {
	if t.Seq != next.Version || next.Version < 1 || next.Experiment == "" || t.Experiment != next.Experiment {
		return fmt.Errorf("lifecycle restore of %q: version %d, seq %d: inconsistent", next.Experiment, next.Version, t.Seq)
	}
	tj, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode transition: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.states[next.Experiment]; ok {
		return fmt.Errorf("lifecycle restore of %q: a state is stored: %w", next.Experiment, experiments.ErrConflict)
	}
	if t.Fence != 0 && !(t.Fence == l.fence && l.now().Before(l.expires)) {
		return fmt.Errorf("lifecycle restore of %q with fence %d: %w", next.Experiment, t.Fence, experiments.ErrFenced)
	}
	l.states[next.Experiment] = next
	l.transitions[next.Experiment] = append(l.transitions[next.Experiment], tj)
	l.fenceSeq = max(l.fenceSeq, next.Fence)
	for ch := range l.subs {
		select {
		case ch <- next.Experiment:
		default:
		}
	}
	return nil
}

// SeedFence implements experiments.StateRestorer.
func (l *Lifecycle) SeedFence(_ context.Context, floor int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fenceSeq = max(l.fenceSeq, floor)
	return nil
}

// Forget deletes everything the store holds about an experiment's
// lifecycle and resets the fence counter, as a Redis restarted without
// persistence would: for tests of store loss.
func (l *Lifecycle) Forget(exp string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.states, exp)
	delete(l.transitions, exp)
	delete(l.recs, exp)
	l.fenceSeq, l.fence, l.holder, l.expires = 0, 0, "", time.Time{}
}

// Transitions implements experiments.LifecycleStore.
func (l *Lifecycle) Transitions(_ context.Context, exp string, limit int) ([]experiments.Transition, error) {
	l.mu.Lock()
	all := l.transitions[exp]
	if limit > 0 && len(all) > limit {
		all = all[len(all)-limit:]
	}
	all = append([][]byte(nil), all...)
	l.mu.Unlock()
	out := make([]experiments.Transition, len(all))
	for i, b := range all {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			return nil, fmt.Errorf("decode transition: %w", err)
		}
	}
	return out, nil
}

// PutRecommendation implements experiments.LifecycleStore.
func (l *Lifecycle) PutRecommendation(_ context.Context, r experiments.Recommendation) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode recommendation: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Fence != 0 && !(r.Fence == l.fence && l.now().Before(l.expires)) {
		return fmt.Errorf("recommendation of %q with fence %d: %w", r.Experiment, r.Fence, experiments.ErrFenced)
	}
	l.recs[r.Experiment] = b
	return nil
}

// Recommendation implements experiments.LifecycleStore.
func (l *Lifecycle) Recommendation(_ context.Context, exp string) (experiments.Recommendation, error) {
	l.mu.Lock()
	b, ok := l.recs[exp]
	l.mu.Unlock()
	var r experiments.Recommendation
	if !ok {
		return r, fmt.Errorf("recommendation of %q: %w", exp, experiments.ErrNotFound)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode recommendation: %w", err)
	}
	return r, nil
}

// Acquire implements experiments.Leaser.
func (l *Lifecycle) Acquire(_ context.Context, holder string, ttl time.Duration) (int64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Before(l.expires) {
		if l.holder != holder {
			return 0, false, nil
		}
		l.expires = now.Add(ttl)
		return l.fence, true, nil
	}
	l.fenceSeq++
	l.holder, l.fence, l.expires = holder, l.fenceSeq, now.Add(ttl)
	return l.fence, true, nil
}

// Renew implements experiments.Leaser.
func (l *Lifecycle) Renew(_ context.Context, holder string, fence int64, ttl time.Duration) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.holder != holder || l.fence != fence || !now.Before(l.expires) {
		return false, nil
	}
	l.expires = now.Add(ttl)
	return true, nil
}

// Release implements experiments.Leaser.
func (l *Lifecycle) Release(_ context.Context, holder string, fence int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder == holder && l.fence == fence {
		l.expires = time.Time{}
	}
	return nil
}

// Subscribe implements experiments.ChangeFeed.
func (l *Lifecycle) Subscribe(ctx context.Context) (<-chan string, error) {
	ch := make(chan string, 64)
	l.mu.Lock()
	l.subs[ch] = struct{}{}
	l.mu.Unlock()
	go func() {
		<-ctx.Done()
		l.mu.Lock()
		delete(l.subs, ch)
		close(ch)
		l.mu.Unlock()
	}()
	return ch, nil
}
