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
)

// DefinitionsStore is everything a definitions backend provides.
type DefinitionsStore interface {
	experiments.Definitions
	experiments.ChangeFeed
}

// RunDefinitions is the conformance suite of experiments.Definitions.
// newStore returns a fresh, empty store.
func RunDefinitions(t *testing.T, newStore func(t *testing.T) DefinitionsStore) {
	t.Run("PutGetRoundTrip", func(t *testing.T) { testDefRoundTrip(t, newStore) })
	t.Run("CompareAndSet", func(t *testing.T) { testDefCAS(t, newStore) })
	t.Run("ConcurrentCreateOneWinner", func(t *testing.T) { testDefRace(t, newStore) })
	t.Run("ListOrdered", func(t *testing.T) { testDefList(t, newStore) })
	t.Run("ChangeFeed", func(t *testing.T) { testDefFeed(t, newStore) })
}

// StoredDefinition is a small valid stored experiment for tests.
func StoredDefinition(id string, version int64) experiments.StoredExperiment {
	cov := 50.0
	return experiments.StoredExperiment{
		Definition: experiments.Definition{
			Experiment: experiments.Experiment{
				ID: id, Description: "stored ${NOT_EXPANDED}", Coverage: &cov,
				Variants: []experiments.Variant{
					{Name: "base", Upstream: "up", Model: "m-base", Allowlist: []string{"qa-1"}},
					{Name: "cand", Upstream: "up", Model: "m-cand", Weight: 10},
				},
				Rollout: &experiments.Rollout{Steps: []experiments.RampStep{{Percent: 5, MinDuration: experiments.Duration(time.Hour)}}},
			},
			Routes: []string{id + "-alias"},
		},
		Version:   version,
		CreatedAt: t0,
		UpdatedAt: t0.Add(time.Duration(version) * time.Minute),
		UpdatedBy: "api:test",
	}
}

func testDefRoundTrip(t *testing.T, newStore func(t *testing.T) DefinitionsStore) {
	s := newStore(t)
	ctx := context.Background()
	id := NewID("def")
	if _, err := s.Get(ctx, id); !errors.Is(err, experiments.ErrNotFound) {
		t.Fatalf("Get of unknown definition: %v, want ErrNotFound", err)
	}
	want := StoredDefinition(id, 1)
	if err := s.Put(ctx, 0, want); err != nil {
		t.Fatalf("Put: %v", err)
	}
	// The store keeps its own copy.
	want.Definition.Experiment.Variants[0].Allowlist[0] = "changed"
	want = StoredDefinition(id, 1)
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Get = %+v\nwant %+v", got, want)
	}
	got.Definition.Experiment.Variants[0].Model = "mutated"
	again, _ := s.Get(ctx, id)
	if again.Definition.Experiment.Variants[0].Model != "m-base" {
		t.Fatal("a returned value aliases the stored one")
	}
}

func testDefCAS(t *testing.T, newStore func(t *testing.T) DefinitionsStore) {
	s := newStore(t)
	ctx := context.Background()
	id := NewID("def")
	if err := s.Put(ctx, 0, StoredDefinition(id, 1)); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := s.Put(ctx, 0, StoredDefinition(id, 1)); !errors.Is(err, experiments.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	if err := s.Put(ctx, 1, StoredDefinition(id, 3)); err == nil || errors.Is(err, experiments.ErrConflict) {
		t.Fatalf("Put skipping a version: %v, want an inconsistency error", err)
	}
	v2 := StoredDefinition(id, 2)
	v2.Definition.Experiment.Description = "second"
	if err := s.Put(ctx, 1, v2); err != nil {
		t.Fatalf("update: %v", err)
	}
	stale := StoredDefinition(id, 2)
	if err := s.Put(ctx, 1, stale); !errors.Is(err, experiments.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	got, _ := s.Get(ctx, id)
	if got.Version != 2 || got.Definition.Experiment.Description != "second" {
		t.Fatalf("after updates: version %d, %q", got.Version, got.Definition.Experiment.Description)
	}
	if err := s.Put(ctx, 0, experiments.StoredExperiment{Version: 1}); err == nil {
		t.Fatal("Put without an id succeeded")
	}
}

func testDefRace(t *testing.T, newStore func(t *testing.T) DefinitionsStore) {
	s := newStore(t)
	ctx := context.Background()
	id := NewID("def")
	const n = 8
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Put(ctx, 0, StoredDefinition(id, 1))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, experiments.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("Put: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != n-1 {
		t.Fatalf("%d winners and %d conflicts, want 1 and %d", wins.Load(), conflicts.Load(), n-1)
	}
}

func testDefList(t *testing.T, newStore func(t *testing.T) DefinitionsStore) {
	s := newStore(t)
	ctx := context.Background()
	if l, err := s.List(ctx); err != nil || len(l) != 0 {
		t.Fatalf("List of empty store = %v, %v", l, err)
	}
	ids := []string{"c-" + NewID("x"), "a-" + NewID("x"), "b-" + NewID("x")}
	for _, id := range ids {
		if err := s.Put(ctx, 0, StoredDefinition(id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, 1, StoredDefinition(ids[0], 2)); err != nil {
		t.Fatal(err)
	}
	// A failed create leaves nothing visible.
	_ = s.Put(ctx, 5, StoredDefinition("d-"+NewID("x"), 6))
	l, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range l {
		got = append(got, d.ID())
	}
	want := []string{ids[1], ids[2], ids[0]}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("List ids = %v, want %v", got, want)
	}
	if l[2].Version != 2 {
		t.Fatalf("List has version %d of %s, want 2", l[2].Version, ids[0])
	}
}

func testDefFeed(t *testing.T, newStore func(t *testing.T) DefinitionsStore) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	id := NewID("def")
	if err := s.Put(context.Background(), 0, StoredDefinition(id, 1)); err != nil {
		t.Fatal(err)
	}
	expectAnnouncement(t, ch, id, cancel, 5*time.Second)
}
