package gateway

import (
	"testing"

	"github.com/abgate/abgate/internal/deptest"
)

// TestDeps keeps the data plane's imports pointing the right way (see
// STYLE.md, package layout), in the style of tailscale's deptest: go
// list -deps catches transitive imports too.
func TestDeps(t *testing.T) {
	t.Parallel()
	deptest.Check(t, ".", map[string]string{
		"github.com/abgate/abgate/api":                    "gateway must not import the admin API",
		"github.com/abgate/abgate/experiments/redisstore": "the data plane talks to stores only through experiments",
		"github.com/redis/go-redis/v9/...":                "only experiments/redisstore imports go-redis",
		"github.com/abgate/abgate/cmd/abgate":             "cmd wires packages, nobody imports it",
		"github.com/abgate/abgate/rollout":                "the data plane follows allocations it is handed; it never drives the lifecycle",
		"testing":                                         "do not use the testing package in production code",
	})
}
