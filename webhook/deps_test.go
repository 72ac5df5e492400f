package webhook_test

import (
	"testing"

	"github.com/abgate/abgate/internal/deptest"
)

// TestDeps guards the edges the package comment promises.
func TestDeps(t *testing.T) {
	t.Parallel()
	deptest.CheckService(t, ".", map[string]string{
		"github.com/abgate/abgate/rollout":  "webhooks implement rollout.Notifier by shape; importing rollout would tie delivery to the controller",
		"github.com/abgate/abgate/recorder": "webhooks deliver transitions and alerts only",
	})
}
