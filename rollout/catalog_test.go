package rollout_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/rollout"
)

func TestCatalog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	file := storetest.DefinitionsFile(t)
	defs := memstore.NewDefinitions()
	var mu sync.Mutex
	var got []*experiments.Config
	cat := rollout.NewCatalog(file, defs, func(c *experiments.Config) {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
	})
	calls := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	if cat.Config() != file || cat.Source("file-exp") != experiments.SourceConfig || cat.Source("a") != "" {
		t.Fatal("a new catalog is not the file's")
	}
	if err := cat.Refresh(ctx); err != nil || calls() != 1 {
		t.Fatalf("first refresh: %v, %d calls", err, calls())
	}
	if err := cat.Refresh(ctx); err != nil || calls() != 1 {
		t.Fatalf("refresh without change: %v, %d calls", err, calls())
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := defs.Put(ctx, 0, storetest.Stored(storetest.Definition("a", "alias-a"), 1, t0)); err != nil {
		t.Fatal(err)
	}
	// Older wins an alias race; the newer one is skipped, not fatal.
	if err := defs.Put(ctx, 0, storetest.Stored(storetest.Definition("b", "alias-a"), 1, t0.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	if err := cat.Refresh(ctx); err != nil || calls() != 2 {
		t.Fatalf("refresh after puts: %v, %d calls", err, calls())
	}
	if cat.Source("a") != experiments.SourceAPI || cat.Source("b") != "" || len(cat.Skipped()) != 1 {
		t.Fatalf("sources a=%q b=%q, skipped %v", cat.Source("a"), cat.Source("b"), cat.Skipped())
	}
	if _, ok := cat.Stored("b"); !ok {
		t.Fatal("a skipped definition is not listed as stored")
	}

	// A new file that takes a stored id leaves the stored one out.
	file2 := storetest.DefinitionsFile(t)
	file2.Experiments[0].ID = "a"
	file2.Routes[0].Experiment = "a"
	if err := cat.SetFile(ctx, file2); err != nil || calls() != 3 {
		t.Fatalf("SetFile: %v, %d calls", err, calls())
	}
	if cat.Source("a") != experiments.SourceConfig || cat.File() != file2 {
		t.Fatalf("after SetFile: source of a = %q", cat.Source("a"))
	}
}

func TestCatalogRunFollowsChanges(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defs := memstore.NewDefinitions()
	changed := make(chan *experiments.Config, 16)
	cat := rollout.NewCatalog(storetest.DefinitionsFile(t), defs, func(c *experiments.Config) { changed <- c },
		rollout.WithPollInterval(time.Hour)) // only the feed can deliver in time
	done := make(chan struct{})
	go func() { cat.Run(ctx); close(done) }()
	<-changed // the initial refresh
	if err := defs.Put(ctx, 0, storetest.Stored(storetest.Definition("a", "alias-a"), 1, time.Now())); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-changed:
		if c.Experiment("a") == nil {
			t.Fatal("the change does not hold the new experiment")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no change delivered within 5s")
	}
	cancel()
	<-done
}
