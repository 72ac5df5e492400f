package storetest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// LifecycleStore is everything a lifecycle backend provides.
type LifecycleStore interface {
	experiments.LifecycleStore
	experiments.Leaser
	experiments.ChangeFeed
}

// LifecycleFactory returns a fresh store (its own lease) and a function
// that lets lease time pass: advancing an injected clock (memstore) or
// sleeping (Redis).
type LifecycleFactory func(t *testing.T) (s LifecycleStore, elapse func(time.Duration))

// RunLifecycle is the conformance suite of lifecycle stores.
func RunLifecycle(t *testing.T, newStore LifecycleFactory) {
	t.Run("CommitAndRead", func(t *testing.T) { testLCCommit(t, newStore) })
	t.Run("ConcurrentCASOneWinner", func(t *testing.T) { testLCRace(t, newStore) })
	t.Run("HistoryOrderAndLimit", func(t *testing.T) { testLCHistory(t, newStore) })
	t.Run("Recommendation", func(t *testing.T) { testLCRec(t, newStore) })
	t.Run("LeaseAndFencing", func(t *testing.T) { testLCLease(t, newStore) })
	t.Run("RecommendationFencing", func(t *testing.T) { testLCRecFence(t, newStore) })
	t.Run("ChangeFeed", func(t *testing.T) { testLCFeed(t, newStore) })
	t.Run("RestoreAndSeedFence", func(t *testing.T) { testLCRestore(t, newStore) })
	t.Run("ShadowStage", func(t *testing.T) { testLCShadow(t, newStore) })
}

var t0 = time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)

func lcState(exp string, v int64, st experiments.Status) experiments.State {
	// StepTests (the α accounting of restarts, issue 11) must round-trip
	// like every other field.
	return experiments.State{Experiment: exp, Status: st, Step: int(v), Period: int(v), SaltPhase: 1,
		Version: v, StepStarted: t0, UpdatedAt: t0.Add(time.Duration(v) * time.Second), UpdatedBy: "api:test", StepTests: int(v) + 1}
}

func lcTrans(exp string, v int64, fence int64) experiments.Transition {
	return experiments.Transition{Seq: v, Experiment: exp, At: t0.Add(time.Duration(v) * time.Second), Actor: "api:test",
		Action: experiments.ActionAdvance, From: experiments.StatusRunning, To: experiments.StatusRunning,
		FromStep: int(v - 1), ToStep: int(v), Period: int(v), Reason: "test", Codes: []string{"x"}, Fence: fence,
		Test: int(v) + 1, Alpha: 0.05 / float64(v+1)}
}

func testLCCommit(t *testing.T, newStore LifecycleFactory) {
	s, _ := newStore(t)
	ctx := context.Background()
	exp := NewID("lc")
	if _, err := s.State(ctx, exp); !errors.Is(err, experiments.ErrNotFound) {
		t.Fatalf("State of unknown experiment: %v, want ErrNotFound", err)
	}
	st1 := lcState(exp, 1, experiments.StatusRunning)
	if err := s.Commit(ctx, 0, st1, lcTrans(exp, 1, 0)); err != nil {
		t.Fatalf("first commit: %v", err)
	}
	got, err := s.State(ctx, exp)
	if err != nil || !reflect.DeepEqual(got, st1) {
		t.Fatalf("State = %+v, %v; want %+v", got, err, st1)
	}
	// Stale writer: expects version 0 again.
	st1b := lcState(exp, 1, experiments.StatusPaused)
	if err := s.Commit(ctx, 0, st1b, lcTrans(exp, 1, 0)); !errors.Is(err, experiments.ErrConflict) {
		t.Fatalf("stale commit: %v, want ErrConflict", err)
	}
	// Inconsistent versions are refused outright.
	if err := s.Commit(ctx, 1, lcState(exp, 3, experiments.StatusRunning), lcTrans(exp, 3, 0)); err == nil {
		t.Fatal("commit skipping a version succeeded")
	}
	if got, _ := s.State(ctx, exp); got.Status != experiments.StatusRunning || got.Version != 1 {
		t.Fatalf("state changed by refused commits: %+v", got)
	}
	if err := s.Commit(ctx, 1, lcState(exp, 2, experiments.StatusPaused), lcTrans(exp, 2, 0)); err != nil {
		t.Fatalf("second commit: %v", err)
	}
	if h, _ := s.Transitions(ctx, exp, 0); len(h) != 2 {
		t.Fatalf("history has %d entries, want 2", len(h))
	}
}

func testLCRace(t *testing.T, newStore LifecycleFactory) {
	s, _ := newStore(t)
	ctx := context.Background()
	exp := NewID("lcrace")
	if err := s.Commit(ctx, 0, lcState(exp, 1, experiments.StatusRunning), lcTrans(exp, 1, 0)); err != nil {
		t.Fatal(err)
	}
	var wins, conflicts atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Commit(ctx, 1, lcState(exp, 2, experiments.StatusPaused), lcTrans(exp, 2, 0))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, experiments.ErrConflict):
				conflicts.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != 15 {
		t.Fatalf("%d winners, %d conflicts; want 1 and 15", wins.Load(), conflicts.Load())
	}
	if h, _ := s.Transitions(ctx, exp, 0); len(h) != 2 {
		t.Fatalf("history has %d entries, want 2 (no transition applied twice)", len(h))
	}
}

func testLCHistory(t *testing.T, newStore LifecycleFactory) {
	s, _ := newStore(t)
	ctx := context.Background()
	exp := NewID("lchist")
	w := 1
	dec := &stats.Decision{Verdict: stats.Promote, Winner: &w, Reasons: []stats.Reason{{Code: stats.ReasonBestCandidate, Message: "m"}}, Variants: []stats.VariantResult{}}
	var want []experiments.Transition
	for v := int64(1); v <= 5; v++ {
		tr := lcTrans(exp, v, 0)
		if v == 5 {
			tr.Decision, tr.Winner = dec, &w
		}
		if err := s.Commit(ctx, v-1, lcState(exp, v, experiments.StatusRunning), tr); err != nil {
			t.Fatal(err)
		}
		want = append(want, tr)
	}
	all, err := s.Transitions(ctx, exp, 0)
	if err != nil || !reflect.DeepEqual(all, want) {
		t.Fatalf("Transitions = %+v, %v\nwant %+v", all, err, want)
	}
	last2, err := s.Transitions(ctx, exp, 2)
	if err != nil || !reflect.DeepEqual(last2, want[3:]) {
		t.Fatalf("Transitions(limit 2) = %+v, %v", last2, err)
	}
	if none, err := s.Transitions(ctx, NewID("none"), 0); err != nil || len(none) != 0 {
		t.Fatalf("Transitions of unknown experiment = %v, %v", none, err)
	}
}

func testLCRec(t *testing.T, newStore LifecycleFactory) {
	s, _ := newStore(t)
	ctx := context.Background()
	exp := NewID("lcrec")
	if _, err := s.Recommendation(ctx, exp); !errors.Is(err, experiments.ErrNotFound) {
		t.Fatalf("Recommendation of unknown: %v, want ErrNotFound", err)
	}
	r := experiments.Recommendation{Experiment: exp, At: t0, Step: 2, Period: 3, Action: experiments.ActionAdvance, Note: "n",
		Decision: &stats.Decision{Verdict: stats.Advance, Reasons: []stats.Reason{}, Variants: []stats.VariantResult{}}}
	for i := 0; i < 2; i++ {
		r.Step += i
		if err := s.PutRecommendation(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Recommendation(ctx, exp)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("Recommendation = %+v, %v; want %+v", got, err, r)
	}
}

func testLCLease(t *testing.T, newStore LifecycleFactory) {
	s, elapse := newStore(t)
	ctx := context.Background()
	const ttl = 1500 * time.Millisecond
	fa, ok, err := s.Acquire(ctx, "a", ttl)
	if err != nil || !ok || fa <= 0 {
		t.Fatalf("a acquires: %d, %v, %v", fa, ok, err)
	}
	if _, ok, err := s.Acquire(ctx, "b", ttl); err != nil || ok {
		t.Fatalf("b acquires a held lease: %v, %v", ok, err)
	}
	if f, ok, _ := s.Acquire(ctx, "a", ttl); !ok || f != fa {
		t.Fatalf("a re-acquires: %d, %v; want its fence %d", f, ok, fa)
	}
	if ok, err := s.Renew(ctx, "a", fa, ttl); err != nil || !ok {
		t.Fatalf("a renews: %v, %v", ok, err)
	}
	if ok, _ := s.Renew(ctx, "b", fa, ttl); ok {
		t.Fatal("b renewed a's lease")
	}
	if err := s.Release(ctx, "b", fa); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Acquire(ctx, "b", ttl); ok {
		t.Fatal("b's release freed a's lease")
	}

	exp := NewID("lcfence")
	if err := s.Commit(ctx, 0, lcState(exp, 1, experiments.StatusRunning), lcTrans(exp, 1, fa)); err != nil {
		t.Fatalf("leader's fenced commit: %v", err)
	}

	// a stops renewing (a paused process); the lease expires and b takes it.
	elapse(ttl + 200*time.Millisecond)
	fb, ok, err := s.Acquire(ctx, "b", ttl)
	if err != nil || !ok || fb <= fa {
		t.Fatalf("b acquires the expired lease: %d, %v, %v; want fence > %d", fb, ok, err, fa)
	}
	if ok, _ := s.Renew(ctx, "a", fa, ttl); ok {
		t.Fatal("a renewed a lease it lost")
	}
	err = s.Commit(ctx, 1, lcState(exp, 2, experiments.StatusPaused), lcTrans(exp, 2, fa))
	if !errors.Is(err, experiments.ErrFenced) {
		t.Fatalf("old leader's commit: %v, want ErrFenced", err)
	}
	if got, _ := s.State(ctx, exp); got.Version != 1 {
		t.Fatalf("fenced commit changed the state: %+v", got)
	}
	if err := s.Commit(ctx, 1, lcState(exp, 2, experiments.StatusPaused), lcTrans(exp, 2, fb)); err != nil {
		t.Fatalf("new leader's commit: %v", err)
	}
	// Unfenced (API) writes don't need the lease.
	if err := s.Commit(ctx, 2, lcState(exp, 3, experiments.StatusRunning), lcTrans(exp, 3, 0)); err != nil {
		t.Fatalf("unfenced commit: %v", err)
	}
	if err := s.Release(ctx, "b", fb); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, 3, lcState(exp, 4, experiments.StatusPaused), lcTrans(exp, 4, fb)); !errors.Is(err, experiments.ErrFenced) {
		t.Fatalf("commit after release: %v, want ErrFenced", err)
	}
	fa2, ok, _ := s.Acquire(ctx, "a", ttl)
	if !ok || fa2 <= fb {
		t.Fatalf("a acquires after release: %d, %v; want fence > %d", fa2, ok, fb)
	}
}

// testLCRecFence: a leader that lost its lease must not overwrite the
// new leader's recommendation.
func testLCRecFence(t *testing.T, newStore LifecycleFactory) {
	s, elapse := newStore(t)
	ctx := context.Background()
	const ttl = 1500 * time.Millisecond
	fa, ok, err := s.Acquire(ctx, "a", ttl)
	if err != nil || !ok {
		t.Fatalf("a acquires: %v, %v", ok, err)
	}
	exp := NewID("lcrecfence")
	rec := func(step int, fence int64) experiments.Recommendation {
		return experiments.Recommendation{Experiment: exp, At: t0, Step: step, Period: 1, Fence: fence,
			Decision: &stats.Decision{Verdict: stats.Continue, Reasons: []stats.Reason{}, Variants: []stats.VariantResult{}}}
	}
	if err := s.PutRecommendation(ctx, rec(1, fa)); err != nil {
		t.Fatalf("leader's recommendation: %v", err)
	}
	elapse(ttl + 200*time.Millisecond)
	fb, ok, err := s.Acquire(ctx, "b", ttl)
	if err != nil || !ok {
		t.Fatalf("b acquires the expired lease: %v, %v", ok, err)
	}
	if err := s.PutRecommendation(ctx, rec(2, fb)); err != nil {
		t.Fatalf("new leader's recommendation: %v", err)
	}
	if err := s.PutRecommendation(ctx, rec(3, fa)); !errors.Is(err, experiments.ErrFenced) {
		t.Fatalf("old leader's recommendation: %v, want ErrFenced", err)
	}
	if got, err := s.Recommendation(ctx, exp); err != nil || got.Step != 2 {
		t.Fatalf("Recommendation = %+v, %v; want the new leader's (step 2)", got, err)
	}
	// Unfenced writes don't need the lease.
	if err := s.PutRecommendation(ctx, rec(4, 0)); err != nil {
		t.Fatalf("unfenced recommendation: %v", err)
	}
}

func testLCFeed(t *testing.T, newStore LifecycleFactory) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exp := NewID("lcfeed")
	if err := s.Commit(ctx, 0, lcState(exp, 1, experiments.StatusRunning), lcTrans(exp, 1, 0)); err != nil {
		t.Fatal(err)
	}
	expectAnnouncement(t, ch, exp, cancel, 2*time.Second)
}
