// Package deptest checks what a package depends on, over its transitive
// imports, in the style of tailscale's tstest/deptest. It is for tests
// only. A check that cannot run `go list` fails rather than skips, so a
// broken toolchain never passes for a clean graph.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

// Module is abgate's module path.
const Module = "github.com/abgate/abgate"

// Deps returns the transitive dependencies of the package in dir (".":
// the calling test's package), itself included.
func Deps(t testing.TB, dir string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", dir).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", dir, err)
	}
	return strings.Fields(string(out))
}

// Check fails t for every dependency of the package in dir that bad
// names, with bad's reason. A key ending in "/..." matches that path and
// everything below it.
func Check(t testing.TB, dir string, bad map[string]string) {
	t.Helper()
	for _, dep := range Deps(t, dir) {
		for forbidden, why := range bad {
			if dep == forbidden || (strings.HasSuffix(forbidden, "/...") &&
				(dep == strings.TrimSuffix(forbidden, "/...") || strings.HasPrefix(dep, strings.TrimSuffix(forbidden, "...")))) {
				t.Errorf("%s depends on %s: %s", dir, dep, why)
			}
		}
	}
}

// CheckService is Check with the rules every service package (recorder,
// rollout, drift, webhook) shares, plus the package's own in extra.
func CheckService(t testing.TB, dir string, extra map[string]string) {
	t.Helper()
	rules := map[string]string{
		Module + "/api":                    "services never import the admin API",
		Module + "/gateway":                "services never import the data plane",
		Module + "/cmd/abgate":             "cmd wires packages, nobody imports it",
		Module + "/experiments/redisstore": "services reach stores through experiments' interfaces",
		"github.com/redis/go-redis/v9/...": "only experiments/redisstore imports go-redis",
		"testing":                          "do not use the testing package in production code",
	}
	for k, v := range extra {
		rules[k] = v
	}
	Check(t, dir, rules)
}
