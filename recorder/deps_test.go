package recorder_test

import (
	"testing"

	"github.com/abgate/abgate/internal/deptest"
)

// TestDeps guards the edges the package comment promises.
func TestDeps(t *testing.T) {
	t.Parallel()
	deptest.Check(t, ".", map[string]string{
		"github.com/abgate/abgate/api":                    "services never import the admin API",
		"github.com/abgate/abgate/gateway":                "services never import the data plane",
		"github.com/abgate/abgate/cmd/abgate":             "cmd wires packages, nobody imports it",
		"github.com/abgate/abgate/experiments/redisstore": "services reach stores through experiments' interfaces",
		"github.com/redis/go-redis/v9/...":                "only experiments/redisstore imports go-redis",
		"testing":                                         "do not use the testing package in production code",
		"github.com/abgate/abgate/rollout":                "the recorder writes statistics; decisions read them through experiments.Store",
	})
}
