package experiments_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStoreDeps: experiments declares the Store and never depends on an
// implementation; only experiments/redisstore imports go-redis (in the
// style of Tailscale's deptest, checking transitive dependencies).
func TestStoreDeps(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	bad := map[string]string{
		"github.com/redis/go-redis/v9":                    "only experiments/redisstore talks to Redis",
		"github.com/abgate/abgate/experiments/redisstore": "experiments must not depend on a store implementation",
		"github.com/abgate/abgate/experiments/memstore":   "experiments must not depend on a store implementation",
		"github.com/abgate/abgate/experiments/storetest":  "test helpers stay out of production code",
	}
	for _, p := range strings.Fields(string(out)) {
		if why, ok := bad[p]; ok {
			t.Errorf("experiments depends on %s: %s", p, why)
		}
	}
}
