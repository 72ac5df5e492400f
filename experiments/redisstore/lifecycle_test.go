package redisstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/experiments/redisstore"
	"github.com/abgate/abgate/experiments/storetest"
)

func TestLifecycleConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	c := newClient(t)
	var n atomic.Int64
	storetest.RunLifecycle(t, func(t *testing.T) (storetest.LifecycleStore, func(time.Duration)) {
		// A prefix per subtest: each gets its own lease.
		return redisstore.NewLifecycle(c, fmt.Sprintf("lc%d", n.Add(1))), time.Sleep
	})
}

// On Redis Cluster every lifecycle key shares one hash tag, so the fenced
// compare-and-set still runs as one script.
func TestLifecycleConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server and redis-cli")
	}
	addrs := storetest.StartRedisCluster(t)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { c.Close() })
	var n atomic.Int64
	storetest.RunLifecycle(t, func(t *testing.T) (storetest.LifecycleStore, func(time.Duration)) {
		return redisstore.NewLifecycle(c, fmt.Sprintf("lcc%d", n.Add(1))), time.Sleep
	})
}
