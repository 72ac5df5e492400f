package rollout_test

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
		"github.com/abgate/abgate/recorder":               "the controller reads statistics from the store, not from the recorder",
		"github.com/abgate/abgate/webhook":                "the lifecycle notifies through its Notifier interface; cmd plugs webhooks in",
		"net/http":                                        "the rollout services are driven by calls, not HTTP",
		"go.opentelemetry.io/...":                         "no telemetry in the rollout services yet",
	})
}
