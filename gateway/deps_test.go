package gateway

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the data plane's imports pointing the right way (see
// STYLE.md, package layout), in the style of tailscale's deptest: go
// list -deps catches transitive imports too.
func TestDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	bad := map[string]string{
		"github.com/abgate/abgate/api":                    "gateway must not import the admin API",
		"github.com/abgate/abgate/experiments/redisstore": "the data plane talks to stores only through experiments",
		"github.com/redis/go-redis/v9":                    "only experiments/redisstore imports go-redis",
		"github.com/abgate/abgate/cmd/abgate":             "cmd wires packages, nobody imports it",
		"testing":                                         "do not use the testing package in production code",
	}
	for _, p := range strings.Fields(string(out)) {
		if why, ok := bad[p]; ok {
			t.Errorf("gateway depends on %s: %s", p, why)
		}
	}
}
