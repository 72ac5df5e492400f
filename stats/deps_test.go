package stats

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps enforces the STYLE.md rule for package stats: only the standard
// library and gonum, and none of net/http, context, log, time or our own
// packages (checked over transitive imports, like tailscale's deptest).
func TestDeps(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list failed (deps tests fail, never skip): %v", err)
	}
	bad := map[string]string{
		"net/http": "no I/O in stats",
		"context":  "stats is pure math",
		"log":      "no logging in stats",
		"log/slog": "no logging in stats",
	}
	for _, dep := range strings.Fields(string(out)) {
		if why, ok := bad[dep]; ok {
			t.Errorf("forbidden dependency %s: %s", dep, why)
		}
		std := !strings.Contains(strings.SplitN(dep, "/", 2)[0], ".")
		if !std && !strings.HasPrefix(dep, "gonum.org/v1/gonum/") && dep != "github.com/abgate/abgate/stats" {
			t.Errorf("non-stdlib, non-gonum dependency %s", dep)
		}
	}
}
