package redisstore_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/experiments/storetest"
)

// newClient starts a redis-server for tb (storetest.StartRedis) and
// returns a client of it, closed when tb ends.
func newClient(tb testing.TB) *redis.Client {
	tb.Helper()
	srv := storetest.StartRedis(tb)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	tb.Cleanup(func() { c.Close() })
	return c
}
