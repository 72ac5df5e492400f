package shadow_test

import (
	"testing"

	"github.com/abgate/abgate/internal/deptest"
)

// TestDeps guards the edges the package comment promises.
func TestDeps(t *testing.T) {
	t.Parallel()
	deptest.Check(t, ".", map[string]string{
		"github.com/abgate/abgate/api":                    "services never import the admin API",
		"github.com/abgate/abgate/gateway":                "the gateway offers samples through its Shadower interface; cmd wires them",
		"github.com/abgate/abgate/cmd/abgate":             "cmd wires packages, nobody imports it",
		"github.com/abgate/abgate/recorder":               "verdicts go through the Recorder interface",
		"github.com/abgate/abgate/rollout":                "the controller reads the verdicts from the store, never from the replay",
		"github.com/abgate/abgate/experiments/redisstore": "the replay keeps no state in a store",
		"github.com/abgate/abgate/experiments/memstore":   "the replay keeps no state in a store",
		"github.com/redis/go-redis/v9/...":                "only experiments/redisstore imports go-redis",
		"github.com/gin-gonic/gin":                        "the replay is a client, not a server",
		"testing":                                         "do not use the testing package in production code",
	})
}
