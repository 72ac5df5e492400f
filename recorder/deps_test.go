package recorder_test

import (
	"testing"

	"github.com/abgate/abgate/internal/deptest"
)

// TestDeps guards the edges the package comment promises.
func TestDeps(t *testing.T) {
	t.Parallel()
	deptest.CheckService(t, ".", map[string]string{
		"github.com/abgate/abgate/rollout": "the recorder writes statistics; decisions read them through experiments.Store",
	})
}
