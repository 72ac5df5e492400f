package redisstore_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/experiments/redisstore"
	"github.com/abgate/abgate/experiments/storetest"
)

// TestCheckPersistence: CONFIG GET tells AOF and RDB apart; where CONFIG
// is refused (managed Redis renames it) INFO persistence still tells AOF.
func TestCheckPersistence(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	for _, tc := range []struct {
		name      string
		args      []string
		aof, rdb  bool
		source    string
		durable   bool
		wantKnown bool
	}{
		{"ephemeral", nil, false, false, "config", false, true},
		{"aof", []string{"--appendonly", "yes"}, true, false, "config", true, true},
		{"rdb", []string{"--save", "900 1"}, false, true, "config", true, true},
		{"config refused, aof", []string{"--appendonly", "yes", "--rename-command", "CONFIG", ""}, true, false, "info", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := storetest.StartRedis(t, tc.args...)
			c := redis.NewClient(&redis.Options{Addr: srv.Addr})
			defer c.Close()
			ps, err := redisstore.CheckPersistence(context.Background(), c)
			if err != nil || len(ps) != 1 {
				t.Fatalf("CheckPersistence: %v, %v", ps, err)
			}
			p := ps[0]
			if p.AOF != tc.aof || p.RDB != tc.rdb || p.Source != tc.source || p.Durable() != tc.durable || p.Known != tc.wantKnown {
				t.Fatalf("%s: got %+v", tc.name, p)
			}
		})
	}
}
