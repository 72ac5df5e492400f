package drift_test

import (
	"testing"

	"github.com/abgate/abgate/internal/deptest"
)

// TestDeps guards the edges the package comment promises.
func TestDeps(t *testing.T) {
	t.Parallel()
	deptest.CheckService(t, ".", map[string]string{
		"github.com/abgate/abgate/webhook":  "alerts leave through a callback; cmd plugs webhooks in",
		"github.com/abgate/abgate/recorder": "the monitor reads histograms from the store",
		"net/http":                          "the monitor does no networking",
	})
}
