package telemetry_test

import (
	"testing"

	"github.com/abgate/abgate/internal/deptest"
)

// TestDeps: telemetry reads outcomes and config, and is wired to the
// services by callbacks; it imports none of them.
func TestDeps(t *testing.T) {
	t.Parallel()
	deptest.Check(t, ".", map[string]string{
		"github.com/abgate/abgate/recorder":             "outcomes reach the recorder through the Observer it wraps",
		"github.com/abgate/abgate/rollout":              "transitions arrive through the Notifier interface",
		"github.com/abgate/abgate/drift":                "alerts arrive through a callback",
		"github.com/abgate/abgate/gateway":              "the gateway hands outcomes to an Observer; it is not imported",
		"github.com/abgate/abgate/api":                  "telemetry serves /metrics through a plain http.Handler",
		"github.com/redis/go-redis/v9/...":              "only experiments/redisstore imports go-redis",
		"github.com/abgate/abgate/cmd/abgate":           "cmd wires packages, nobody imports it",
		"github.com/prometheus/client_golang/...":       "the exposition is written here (prometheus.go says why); client_golang is for the equivalence test only",
		"go.opentelemetry.io/otel/exporters/prometheus": "the equivalence test's reference, not linked",
	})
}
