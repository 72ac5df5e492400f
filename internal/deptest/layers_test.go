package deptest

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// allowed lists, for each package of the module, the module's packages it
// may import directly (its production code; tests may reach further). The
// flow is cmd → api, gateway → services (recorder, rollout, drift,
// webhook) → experiments → stats; stores implement experiments'
// interfaces and only cmd picks one. A new package or a new edge is a
// decision: add it here with the reason in the package's doc comment.
// internal/oaierr is the one writer of OpenAI's error shape: gateway, api,
// telemetry (/metrics) and cmd answer errors through it, and it imports
// nothing of ours.
var allowed = map[string][]string{
	"stats":                  {},
	"experiments":            {"stats"},
	"experiments/memstore":   {"experiments", "internal/yield"},
	"experiments/redisstore": {"experiments", "internal/yield"},
	"experiments/storetest":  {"experiments", "stats"},
	"recorder":               {"experiments", "internal/yield"},
	"rollout":                {"experiments", "stats"},
	"drift":                  {"experiments", "stats"},
	"webhook":                {"experiments", "drift"},
	"gateway":                {"experiments", "internal/oaierr"},
	"api":                    {"experiments", "stats", "recorder", "rollout", "drift", "internal/oaierr"},
	"telemetry":              {"experiments", "internal/oaierr"},
	// judge is a client service: it reads its config from experiments.
	"judge": {"experiments"},
	// shadow is the shadow stage's replay service: it replays the
	// gateway's samples to the candidates and asks the judge; verdicts go
	// to the recorder through an interface.
	"shadow":             {"experiments", "judge"},
	"internal/deptest":   {},
	"internal/fakemodel": {},
	"internal/oaierr":    {},
	// gcfloor tunes the process's garbage collector; only cmd starts it.
	"internal/gcfloor": {},
	// yield lets the stores' and the recorder's background loops give a
	// one-core gateway's requests the core; it imports nothing.
	"internal/yield": {},
	// otlpexport is the OTLP/HTTP span exporter (protowire, no proto
	// structs); only cmd builds it, and it imports nothing of ours.
	"internal/otlpexport": {},
	"cmd/abgate": {"api", "gateway", "experiments", "experiments/memstore", "experiments/redisstore",
		"recorder", "rollout", "drift", "webhook", "telemetry", "internal/fakemodel", "internal/oaierr", "internal/gcfloor", "internal/otlpexport", "shadow"},
}

// TestLayers: every package's direct imports of the module's packages are
// in allowed, and every package of the module is in allowed (bench/, e2e/
// and deploy/'s tests are harnesses and may import anything).
func TestLayers(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", Module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, Module), "/")
		if strings.HasPrefix(rel, "bench/") || rel == "e2e" || rel == "deploy" {
			continue
		}
		ok, known := allowed[rel]
		if !known {
			t.Errorf("package %s is not in the layer table: add it with what it may import", rel)
			continue
		}
		seen++
		for _, imp := range p.Imports {
			dep, ours := strings.CutPrefix(imp, Module+"/")
			if !ours {
				continue
			}
			if !slices.Contains(ok, dep) {
				t.Errorf("%s imports %s: not an allowed edge (allowed: %v)", rel, dep, ok)
			}
		}
	}
	if seen < len(allowed)-1 {
		t.Errorf("go list saw %d of the %d packages in the table", seen, len(allowed))
	}
}
