package redisstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/redisstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/rollout"
)

func TestDefinitionsConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	c := newClient(t)
	var n atomic.Int64
	storetest.RunDefinitions(t, func(t *testing.T) storetest.DefinitionsStore {
		// A prefix per subtest: each starts empty.
		return redisstore.NewDefinitions(c, fmt.Sprintf("defs%d", n.Add(1)))
	})
}

// TestCatalogFollowsOtherReplica: a definition written through one
// replica's store reaches another replica's catalog through pub/sub.
func TestCatalogFollowsOtherReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	srv := storetest.StartRedis(t)
	c1 := redis.NewClient(&redis.Options{Addr: srv.Addr})
	c2 := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c1.Close(); c2.Close() })
	file, err := experiments.Parse([]byte("upstreams: [{name: up, url: 'http://127.0.0.1:9'}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	changed := make(chan *experiments.Config, 16)
	cat := rollout.NewCatalog(file, redisstore.NewDefinitions(c2, "rep"), func(c *experiments.Config) { changed <- c },
		rollout.WithPollInterval(time.Hour)) // only pub/sub can deliver in time
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cat.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-changed // the initial refresh

	d := storetest.StoredDefinition("replicated", 1)
	if err := redisstore.NewDefinitions(c1, "rep").Put(ctx, 0, d); err != nil {
		t.Fatal(err)
	}
	select {
	case cfg := <-changed:
		if cfg.Experiment("replicated") == nil {
			t.Fatalf("the other replica's config lacks the experiment")
		}
		if e, ok := cfg.RouteFor("replicated-alias"); !ok || e.ID != "replicated" {
			t.Fatalf("route not merged")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the other replica did not hear of the new definition within 5s")
	}
}
