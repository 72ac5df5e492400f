package rollout_test

import (
	"testing"

	"github.com/abgate/abgate/internal/deptest"
)

// TestDeps guards the edges the package comment promises.
func TestDeps(t *testing.T) {
	t.Parallel()
	deptest.CheckService(t, ".", map[string]string{
		"github.com/abgate/abgate/recorder": "the controller reads statistics from the store, not from the recorder",
		"github.com/abgate/abgate/webhook":  "the lifecycle notifies through its Notifier interface; cmd plugs webhooks in",
		"net/http":                          "the rollout services are driven by calls, not HTTP",
		"go.opentelemetry.io/...":           "no telemetry in the rollout services yet",
	})
}
