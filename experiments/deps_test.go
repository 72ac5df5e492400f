package experiments_test

import (
	"testing"

	"github.com/abgate/abgate/internal/deptest"
)

// TestDeps: experiments is the vocabulary. It declares the store
// interfaces and never depends on an implementation, and it does no
// networking or telemetry of its own: the services around it do.
func TestDeps(t *testing.T) {
	t.Parallel()
	deptest.Check(t, ".", map[string]string{
		"github.com/redis/go-redis/v9/...":                "only experiments/redisstore talks to Redis",
		"github.com/abgate/abgate/experiments/redisstore": "experiments must not depend on a store implementation",
		"github.com/abgate/abgate/experiments/memstore":   "experiments must not depend on a store implementation",
		"github.com/abgate/abgate/experiments/storetest":  "test helpers stay out of production code",
		"net/http":                          "the vocabulary does no networking: gateway, api and webhook do",
		"go.opentelemetry.io/...":           "telemetry belongs to the services (recorder, gateway), not the vocabulary",
		"github.com/abgate/abgate/recorder": "services depend on experiments, never the reverse",
		"github.com/abgate/abgate/rollout":  "services depend on experiments, never the reverse",
		"github.com/abgate/abgate/drift":    "services depend on experiments, never the reverse",
		"github.com/abgate/abgate/webhook":  "services depend on experiments, never the reverse",
	})
}
