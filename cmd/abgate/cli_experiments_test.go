package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/api"
	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/gateway"
	"github.com/abgate/abgate/rollout"
)

const cliExpConfig = `
upstreams:
  - name: up
    url: http://127.0.0.1:9
experiments:
  - id: file-exp
    description: from the file
    variants:
      - {name: base, upstream: up, model: m0}
      - {name: cand, upstream: up, model: m1}
    rollout: {steps: [{percent: 5}, {percent: 25}]}
routes:
  - {alias: file-alias, experiment: file-exp}
`

const (
	cliAdminTok  = "cli-admin-token-0123456789"
	cliViewerTok = "cli-viewer-token-0123456789"
)

// adminServer runs the real admin API on an httptest server.
func adminServer(t *testing.T) string {
	t.Helper()
	file, err := experiments.Parse([]byte(cliExpConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	lc := rollout.NewLifecycle(memstore.NewLifecycle(), file)
	cat := rollout.NewCatalog(file, memstore.NewDefinitions(), lc.Update)
	toks, err := api.NewTokens(experiments.Auth{Tokens: []experiments.AuthToken{
		{Name: "ops", Role: "admin", Token: cliAdminTok},
		{Name: "pm", Role: "viewer", Token: cliViewerTok},
	}})
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	api.NewAdmin(cat, lc).Register(r, toks)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv.URL
}

func runExp(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := runExperimentsCLI(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestExperimentsCLI(t *testing.T) {
	t.Parallel()
	url := adminServer(t)
	dir := t.TempDir()
	def := filepath.Join(dir, "exp.yaml")
	if err := os.WriteFile(def, []byte(`
id: cli-exp
description: made by the CLI
variants:
  - {name: base, upstream: up, model: m0}
  - {name: tuned, upstream: up, model: m1}
rollout:
  steps: [{percent: 5}, {percent: 20}, {percent: 50}]
routes: [cli-alias]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	admin := []string{"--server", url, "--token", cliAdminTok}
	with := func(args ...string) []string { return append(append([]string(nil), args...), admin...) }

	steps := []struct {
		args []string
		want []string // substrings of stdout
	}{
		{with("create", "-f", def), []string{"id:", "cli-exp", "source:", "api", "status:", "draft", "definition:", "  id: cli-exp", "routes:"}},
		{with("list"), []string{"ID", "SOURCE", "file-exp", "config", "cli-exp", "api", "draft", "cli-alias"}},
		{with("start", "cli-exp", "--reason", "launch"), []string{"cli-exp: start, draft → running", "by api:ops"}},
		{with("step", "cli-exp", "3"), []string{"set_step", "step 1 → 3"}},
		{with("get", "cli-exp"), []string{"status:", "running", "step 3 of 3 (50%)", "version 2"}},
		{with("pause", "cli-exp"), []string{"running → paused"}},
		{with("resume", "cli-exp"), []string{"paused → running"}},
		{with("promote", "cli-exp", "tuned", "--reason", "it won"), []string{"running → promoted"}},
		{with("rollback", "cli-exp"), []string{"promoted → rolled_back"}},
		{with("start", "cli-exp"), []string{"rolled_back → running"}},
		{with("stop", "cli-exp"), []string{"running → stopped"}},
		{with("transitions", "cli-exp"), []string{"SEQ", "launch", "it won", "api:ops", "set_step"}},
		{with("update", "cli-exp", "-f", def, "--new-phase"), []string{"phase: 2"}},
	}
	for _, s := range steps {
		out, errOut, err := runExp(t, s.args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", s.args[:2], err, errOut)
		}
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Fatalf("%v: output lacks %q:\n%s", s.args[:2], w, out)
			}
		}
	}

	// --json prints the API's answer.
	out, _, err := runExp(t, with("transitions", "cli-exp", "--json", "--limit", "2")...)
	if err != nil {
		t.Fatal(err)
	}
	var tl api.TransitionList
	if err := json.Unmarshal([]byte(out), &tl); err != nil || len(tl.Transitions) != 2 {
		t.Fatalf("--json transitions: %v\n%s", err, out)
	}

	// A viewer reads but can't change.
	if _, _, err := runExp(t, "list", "--server", url, "--token", cliViewerTok); err != nil {
		t.Fatalf("viewer list: %v", err)
	}
	_, _, err = runExp(t, "start", "file-exp", "--server", url, "--token", cliViewerTok)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 403 || !strings.Contains(err.Error(), "viewer") {
		t.Fatalf("viewer start: %v", err)
	}
}

func TestExperimentsCLIErrors(t *testing.T) {
	t.Parallel()
	url := adminServer(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("id: bad\nvariants:\n  - {name: base, upstream: nowhere, model: m}\n  - {name: c, upstream: up, model: m, weight: 200}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		usage bool
		want  []string // substrings of the error
	}{
		{"validation fields", []string{"create", "-f", bad, "--token", cliAdminTok}, false, []string{"422 validation_failed", "variants[0].upstream: no upstream has this name", "variants[1].weight"}},
		{"no token", []string{"list", "--token", ""}, false, []string{"401 missing_api_token", "--token"}},
		{"unknown experiment", []string{"get", "nope", "--token", cliAdminTok}, false, []string{"404 experiment_not_found"}},
		{"invalid transition", []string{"resume", "file-exp", "--token", cliAdminTok}, false, []string{"409 invalid_transition", "draft"}},
		{"config file experiment", []string{"update", "file-exp", "-f", bad, "--token", cliAdminTok}, false, []string{"409 defined_in_config"}},
		{"unknown command", []string{"frobnicate"}, true, nil},
		{"missing id", []string{"start"}, true, nil},
		{"extra argument", []string{"list", "x"}, true, nil},
		{"bad step", []string{"step", "file-exp", "two"}, true, nil},
		{"create without -f", []string{"create"}, true, nil},
		{"bad flag", []string{"list", "--nope"}, true, nil},
	}
	for _, tc := range tests {
		_, _, err := runExp(t, append(tc.args, "--server", url)...)
		if tc.usage {
			if !errors.Is(err, errUsage) {
				t.Errorf("%s: %v, want a usage error", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q:\n%v", tc.name, w, err)
			}
		}
	}
	if _, errOut, err := runExp(t); !errors.Is(err, errUsage) || !strings.Contains(errOut, "abgate experiments <command>") {
		t.Errorf("no arguments: %v\n%s", err, errOut)
	}
}

// TestOpenAPIDocumentsProxyRoutes checks the proxy part of api's OpenAPI
// document against the gateway's routes (api's own test checks the rest;
// api may not import gateway).
func TestOpenAPIDocumentsProxyRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		Paths map[string]map[string]struct {
			Tags []string `json:"tags"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for p, item := range doc.Paths {
		for m, op := range item {
			if slices.Contains(op.Tags, "proxy") {
				documented = append(documented, strings.ToUpper(m)+" "+p)
			}
		}
	}
	var registered []string
	for _, p := range gateway.Paths {
		registered = append(registered, "POST "+p)
	}
	sort.Strings(documented)
	sort.Strings(registered)
	if !slices.Equal(documented, registered) {
		t.Fatalf("proxy routes in api/openapi.json = %v, gateway registers %v", documented, registered)
	}
}

// TestExperimentsCLIShadowPass: "abgate experiments shadow_pass ID" ends
// a shadow stage as passed, with the reason in the audit trail; a second
// one is refused with the API's 409.
func TestExperimentsCLIShadowPass(t *testing.T) {
	t.Parallel()
	url := adminServer(t)
	def := filepath.Join(t.TempDir(), "exp.yaml")
	if err := os.WriteFile(def, []byte(`
id: cli-shadow
variants:
  - {name: base, upstream: up, model: m0}
  - {name: tuned, upstream: up, model: m1}
judge: {upstream: up, model: judge-model}
shadow: {percent: 5}
rollout:
  steps: [{percent: 5}, {percent: 50}]
routes: [cli-shadow-alias]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	admin := []string{"--server", url, "--token", cliAdminTok}
	with := func(args ...string) []string { return append(append([]string(nil), args...), admin...) }
	for _, s := range []struct {
		args []string
		want string
	}{
		{with("create", "-f", def), "cli-shadow"},
		{with("start", "cli-shadow"), "draft → shadow"},
		{with("shadow_pass", "cli-shadow", "--reason", "judge inconclusive; offline eval clean"), "cli-shadow: shadow_pass, shadow → running"},
		{with("transitions", "cli-shadow"), "judge inconclusive; offline eval clean"},
	} {
		out, errOut, err := runExp(t, s.args...)
		if err != nil || !strings.Contains(out, s.want) {
			t.Fatalf("%v: %v %s; output lacks %q:\n%s", s.args[:2], err, errOut, s.want, out)
		}
	}
	_, _, err := runExp(t, with("shadow_pass", "cli-shadow")...)
	if err == nil || !strings.Contains(err.Error(), "409 invalid_transition") {
		t.Fatalf("second shadow_pass: %v, want a 409", err)
	}
}
