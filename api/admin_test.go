package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/rollout"
	"github.com/abgate/abgate/stats"
)

// The admin tests use the tokens of auth_test.go (adminTok, viewerTok,
// feedbackTok), named admin1, viewer1 and fb1.

const admFileYAML = `
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
  - id: fixed-exp
    variants:
      - {name: base, upstream: up, model: m0}
      - {name: cand, upstream: up, model: m1, weight: 30}
routes:
  - {alias: file-alias, experiment: file-exp}
  - {alias: fixed-alias, experiment: fixed-exp}
`

var admNow = time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)

type admEnv struct {
	r       *gin.Engine
	cat     *rollout.Catalog
	lc      *rollout.Lifecycle
	defs    *memstore.Definitions
	lcs     *memstore.Lifecycle
	changes int
}

func newAdminEnv(t *testing.T) *admEnv {
	t.Helper()
	file, err := experiments.Parse([]byte(admFileYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	env := &admEnv{defs: memstore.NewDefinitions(), lcs: memstore.NewLifecycle()}
	env.lc = rollout.NewLifecycle(env.lcs, file, rollout.WithClock(func() time.Time { return admNow }))
	env.cat = rollout.NewCatalog(file, env.defs, func(c *experiments.Config) {
		env.changes++ // onChange calls are serialised by the catalog
		env.lc.Update(c)
	}, rollout.WithLogger(slog.New(slog.DiscardHandler)))
	if err := env.cat.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	toks, err := NewTokens(experiments.Auth{Tokens: []experiments.AuthToken{
		{Name: "admin1", Role: "admin", Token: adminTok},
		{Name: "viewer1", Role: "viewer", Token: viewerTok},
		{Name: "fb1", Role: "feedback", Token: feedbackTok},
	}})
	if err != nil {
		t.Fatal(err)
	}
	env.r = gin.New()
	NewAdmin(env.cat, env.lc, WithAdminClock(func() time.Time { return admNow })).Register(env.r, toks)
	return env
}

// call sends a request with the given token ("" for none) and decodes
// the JSON answer into out (if not nil).
func (env *admEnv) call(t *testing.T, method, path, tok, body string, out any) *httptest.ResponseRecorder {
	t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	} else {
		rd = strings.NewReader("")
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	w := httptest.NewRecorder()
	env.r.ServeHTTP(w, req)
	if out != nil && w.Code < 300 {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: decode %T: %v\n%s", method, path, out, err, w.Body.String())
		}
	}
	return w
}

// admErr is an error answer.
type admErr struct {
	Error  errorDetail       `json:"error"`
	Fields []fieldErrorEntry `json:"fields"`
}

func (env *admEnv) expectError(t *testing.T, method, path, body string, status int, code string, fields ...string) admErr {
	t.Helper()
	w := env.call(t, method, path, adminTok, body, nil)
	var e admErr
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("%s %s: error body is not JSON: %v\n%s", method, path, err, w.Body.String())
	}
	if w.Code != status || e.Error.Code != code {
		t.Fatalf("%s %s = %d %q, want %d %q\n%s", method, path, w.Code, e.Error.Code, status, code, w.Body.String())
	}
	if e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("error without message or type: %s", w.Body.String())
	}
	got := map[string]bool{}
	for _, f := range e.Fields {
		got[f.Field] = true
	}
	for _, f := range fields {
		if !got[f] {
			t.Fatalf("%s %s: fields %+v lack %q", method, path, e.Fields, f)
		}
	}
	if status == http.StatusUnprocessableEntity && len(e.Fields) == 0 {
		t.Fatalf("422 without fields: %s", w.Body.String())
	}
	return e
}

func admDef(id string, routes ...string) string {
	b, _ := json.Marshal(map[string]any{
		"id": id, "description": "created by a test",
		"variants": []map[string]any{
			{"name": "base", "upstream": "up", "model": "m0"},
			{"name": "cand", "upstream": "up", "model": "m1", "weight": 10},
		},
		"rollout": map[string]any{"steps": []map[string]any{{"percent": 5}, {"percent": 20}, {"percent": 50}}},
		"routes":  routes,
	})
	return string(b)
}

func (env *admEnv) create(t *testing.T, id string, routes ...string) {
	t.Helper()
	if w := env.call(t, "POST", "/api/v1/experiments", adminTok, admDef(id, routes...), nil); w.Code != http.StatusCreated {
		t.Fatalf("create %s = %d: %s", id, w.Code, w.Body.String())
	}
}

func TestAdminRolesOnEveryRoute(t *testing.T) {
	t.Parallel()
	env := newAdminEnv(t)
	env.create(t, "api-exp", "api-alias")
	writes := [][3]string{
		{"POST", "/api/v1/experiments", admDef("other", "other-alias")},
		{"PUT", "/api/v1/experiments/api-exp", admDef("api-exp", "api-alias")},
	}
	for _, a := range adminActions {
		body := `{"reason":"roles"}`
		if a == "step" {
			body = `{"step":1}`
		}
		writes = append(writes, [3]string{"POST", "/api/v1/experiments/api-exp/" + a, body})
	}
	reads := [][3]string{
		{"GET", "/api/v1/experiments", ""},
		{"GET", "/api/v1/experiments/api-exp", ""},
		{"GET", "/api/v1/experiments/api-exp/transitions", ""},
		{"GET", "/api/v1/openapi.json", ""},
	}
	if n := len(reads) + len(writes); n != len(env.r.Routes()) {
		t.Fatalf("the test covers %d routes, Register mounts %d", n, len(env.r.Routes()))
	}
	check := func(rt [3]string, tok string, want int) {
		t.Helper()
		w := env.call(t, rt[0], rt[1], tok, rt[2], nil)
		switch want {
		case 0: // allowed: anything but an auth error
			if w.Code == http.StatusUnauthorized || w.Code == http.StatusForbidden {
				t.Errorf("%s %s with %.5s token = %d, want it allowed: %s", rt[0], rt[1], tok, w.Code, w.Body.String())
			}
		default:
			if w.Code != want {
				t.Errorf("%s %s with %.5s token = %d, want %d", rt[0], rt[1], tok, w.Code, want)
			}
			if want == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 without WWW-Authenticate", rt[0], rt[1])
			}
		}
	}
	for _, rt := range reads {
		check(rt, "", http.StatusUnauthorized)
		check(rt, "not-a-valid-token-at-all", http.StatusUnauthorized)
		check(rt, feedbackTok, http.StatusForbidden)
		check(rt, viewerTok, 0)
		check(rt, adminTok, 0)
	}
	for _, rt := range writes {
		check(rt, "", http.StatusUnauthorized)
		check(rt, feedbackTok, http.StatusForbidden)
		check(rt, viewerTok, http.StatusForbidden)
		check(rt, adminTok, 0)
	}
}

func TestAdminOpenReads(t *testing.T) {
	t.Parallel()
	file, _ := experiments.Parse([]byte(admFileYAML), nil)
	toks, err := NewTokens(experiments.Auth{OpenReads: true, Tokens: []experiments.AuthToken{{Name: "admin1", Role: "admin", Token: adminTok}}})
	if err != nil {
		t.Fatal(err)
	}
	lc := rollout.NewLifecycle(memstore.NewLifecycle(), file)
	r := gin.New()
	NewAdmin(rollout.NewCatalog(file, memstore.NewDefinitions(), lc.Update), lc).Register(r, toks)
	for _, p := range []string{"/api/v1/experiments", "/api/v1/openapi.json"} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		if w.Code != http.StatusOK {
			t.Errorf("GET %s without a token under open_reads = %d", p, w.Code)
		}
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("POST", "/api/v1/experiments/file-exp/start", nil))
	if w.Code != http.StatusUnauthorized {
		t.Errorf("a write without a token under open_reads = %d, want 401", w.Code)
	}
}

func TestAdminCreateReadUpdate(t *testing.T) {
	t.Parallel()
	env := newAdminEnv(t)
	w := env.call(t, "POST", "/api/v1/experiments", adminTok, admDef("api-exp", "api-alias", "api-alias-2"), nil)
	if w.Code != http.StatusCreated || w.Header().Get("Location") != "/api/v1/experiments/api-exp" {
		t.Fatalf("create = %d, Location %q: %s", w.Code, w.Header().Get("Location"), w.Body.String())
	}
	var created ExperimentDetail
	if err := json.Unmarshal(w.Body.Bytes(), &created); err != nil {
		t.Fatal(err)
	}
	if created.Source != "api" || created.Status != "draft" || created.Version != 1 || created.UpdatedBy != "api:admin1" ||
		len(created.Routes) != 2 || created.Steps != 3 || created.Definition.Experiment.Salt != "api-exp" {
		t.Fatalf("created = %+v", created)
	}
	// This replica serves it at once: the catalog told the lifecycle service.
	if _, err := env.lc.Experiment("api-exp"); err != nil {
		t.Fatalf("lifecycle does not know the new experiment: %v", err)
	}

	var list ExperimentList
	env.call(t, "GET", "/api/v1/experiments", viewerTok, "", &list)
	var got []string
	for _, s := range list.Experiments {
		got = append(got, s.ID+"/"+s.Source+"/"+s.Status)
	}
	if want := "file-exp/config/draft fixed-exp/config/fixed api-exp/api/draft"; strings.Join(got, " ") != want {
		t.Fatalf("list = %v, want %s", got, want)
	}

	var fileDetail ExperimentDetail
	env.call(t, "GET", "/api/v1/experiments/fixed-exp", viewerTok, "", &fileDetail)
	if fileDetail.Source != "config" || fileDetail.Status != StatusFixed || fileDetail.State != nil || fileDetail.Routes[0] != "fixed-alias" {
		t.Fatalf("fixed-exp = %+v", fileDetail)
	}

	// Update the description (no reshuffle) with the same body shape, id left out.
	body := strings.Replace(admDef("", "api-alias"), "created by a test", "second version", 1)
	var updated ExperimentDetail
	if w := env.call(t, "PUT", "/api/v1/experiments/api-exp", adminTok, body, &updated); w.Code != http.StatusOK {
		t.Fatalf("update = %d: %s", w.Code, w.Body.String())
	}
	if updated.Version != 2 || updated.Description != "second version" || len(updated.Routes) != 1 {
		t.Fatalf("updated = %+v", updated)
	}
	// If-Match guards against lost updates.
	if w := env.call(t, "GET", "/api/v1/experiments/api-exp", viewerTok, "", nil); w.Header().Get("ETag") != `"2"` {
		t.Fatalf("ETag = %q, want \"2\"", w.Header().Get("ETag"))
	}
	req := httptest.NewRequest("PUT", "/api/v1/experiments/api-exp", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminTok)
	req.Header.Set("If-Match", `"1"`)
	rec := httptest.NewRecorder()
	env.r.ServeHTTP(rec, req)
	if rec.Code != http.StatusPreconditionFailed || !strings.Contains(rec.Body.String(), "precondition_failed") {
		t.Fatalf("stale If-Match = %d: %s", rec.Code, rec.Body.String())
	}
	req = httptest.NewRequest("PUT", "/api/v1/experiments/api-exp", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminTok)
	req.Header.Set("If-Match", `"2"`)
	rec = httptest.NewRecorder()
	env.r.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get("ETag") != `"3"` {
		t.Fatalf("current If-Match = %d, ETag %q: %s", rec.Code, rec.Header().Get("ETag"), rec.Body.String())
	}
	if env.call(t, "GET", "/api/v1/experiments/file-exp", viewerTok, "", nil).Header().Get("ETag") != "" {
		t.Fatal("a config-file experiment has an ETag")
	}
	// The dropped alias is free again.
	env.create(t, "api-exp-2", "api-alias-2")
}

func TestAdminCreateErrors(t *testing.T) {
	t.Parallel()
	env := newAdminEnv(t)
	env.create(t, "taken", "taken-alias")
	big := `{"id":"big","description":"` + strings.Repeat("x", experiments.MaxDefinitionBytes) + `"}`
	tests := []struct {
		name   string
		body   string
		status int
		code   string
		fields []string
	}{
		{"syntax", `{"id":`, 400, "invalid_json", nil},
		{"too large", big, 413, "body_too_large", nil},
		{"unknown field", `{"id":"x","variants":[],"colour":"red"}`, 422, "validation_failed", []string{"colour"}},
		{"wrong type", strings.Replace(admDef("x", "x-alias"), `"weight":10`, `"weight":"ten"`, 1), 422, "validation_failed", []string{"variants[1].weight"}},
		{"missing id", admDef("", "x-alias"), 422, "validation_failed", []string{"id"}},
		{"undeclared upstream", strings.Replace(admDef("x", "x-alias"), `"upstream":"up","weight":10`, `"upstream":"evil","weight":10`, 1), 422, "validation_failed", []string{"variants[1].upstream"}},
		{"weight out of range", strings.Replace(admDef("x", "x-alias"), `"weight":10`, `"weight":100.5`, 1), 422, "validation_failed", []string{"variants[1].weight"}},
		{"alias of the file", admDef("x", "file-alias"), 422, "validation_failed", []string{"routes[0]"}},
		{"alias of a stored one", admDef("x", "ok-alias", "taken-alias"), 422, "validation_failed", []string{"routes[1]"}},
		{"invalid alias", admDef("x", "has space"), 422, "validation_failed", []string{"routes[0]"}},
		{"id of the file", admDef("file-exp", "x-alias"), 409, "defined_in_config", nil},
		{"id already stored", admDef("taken", "x-alias"), 409, "experiment_exists", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env.expectError(t, "POST", "/api/v1/experiments", tc.body, tc.status, tc.code, tc.fields...)
		})
	}
	var list ExperimentList
	env.call(t, "GET", "/api/v1/experiments", adminTok, "", &list)
	if len(list.Experiments) != 3 {
		t.Fatalf("failed creates stored something: %+v", list.Experiments)
	}
}

func TestAdminUpdateErrors(t *testing.T) {
	t.Parallel()
	env := newAdminEnv(t)
	env.create(t, "api-exp", "api-alias")
	tests := []struct {
		name, path, body string
		status           int
		code             string
		fields           []string
	}{
		{"file experiment", "/api/v1/experiments/file-exp", admDef("file-exp", "file-alias"), 409, "defined_in_config", nil},
		{"unknown", "/api/v1/experiments/nope", admDef("nope"), 404, "experiment_not_found", nil},
		{"id mismatch", "/api/v1/experiments/api-exp", admDef("other", "api-alias"), 422, "validation_failed", []string{"id"}},
		{"bad new_phase", "/api/v1/experiments/api-exp?new_phase=maybe", admDef("api-exp"), 422, "validation_failed", []string{"new_phase"}},
		{"invalid", "/api/v1/experiments/api-exp", `{"variants":[{"name":"only","upstream":"up","model":"m"}]}`, 422, "validation_failed", []string{"variants"}},
		{"syntax", "/api/v1/experiments/api-exp", `[`, 400, "invalid_json", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env.expectError(t, "PUT", tc.path, tc.body, tc.status, tc.code, tc.fields...)
		})
	}
	// The phase never goes down.
	raised := strings.Replace(admDef("api-exp", "api-alias"), `"id":"api-exp"`, `"id":"api-exp","phase":3`, 1)
	if w := env.call(t, "PUT", "/api/v1/experiments/api-exp", adminTok, raised, nil); w.Code != 200 {
		t.Fatalf("raise phase = %d: %s", w.Code, w.Body.String())
	}
	lowered := strings.Replace(raised, `"phase":3`, `"phase":2`, 1)
	env.expectError(t, "PUT", "/api/v1/experiments/api-exp", lowered, 422, "validation_failed", "phase")
}

func TestAdminUpdateReshuffle(t *testing.T) {
	t.Parallel()
	env := newAdminEnv(t)
	env.create(t, "api-exp", "api-alias")
	lowerCoverage := strings.Replace(admDef("api-exp", "api-alias"), `"id":"api-exp"`, `"id":"api-exp","coverage":50`, 1)
	// Not live yet: anything goes.
	if w := env.call(t, "PUT", "/api/v1/experiments/api-exp", adminTok, admDef("api-exp", "api-alias"), nil); w.Code != 200 {
		t.Fatalf("update of a draft = %d: %s", w.Code, w.Body.String())
	}
	if w := env.call(t, "POST", "/api/v1/experiments/api-exp/start", adminTok, "", nil); w.Code != 200 {
		t.Fatalf("start = %d: %s", w.Code, w.Body.String())
	}
	env.expectError(t, "PUT", "/api/v1/experiments/api-exp", lowerCoverage, 409, "reshuffle_requires_new_phase")
	// A change that only widens the experiment is fine while running.
	if w := env.call(t, "PUT", "/api/v1/experiments/api-exp", adminTok, strings.Replace(admDef("api-exp", "api-alias"), "created by", "edited by", 1), nil); w.Code != 200 {
		t.Fatalf("harmless update while running = %d: %s", w.Code, w.Body.String())
	}
	var d ExperimentDetail
	if w := env.call(t, "PUT", "/api/v1/experiments/api-exp?new_phase=true", adminTok, lowerCoverage, &d); w.Code != 200 {
		t.Fatalf("update with new_phase = %d: %s", w.Code, w.Body.String())
	}
	if d.Definition.Experiment.Phase != 2 || d.State == nil || d.State.SaltPhase != 2 || d.State.Status != experiments.StatusRunning {
		t.Fatalf("after new_phase: phase %d, state %+v", d.Definition.Experiment.Phase, d.State)
	}
	var tl TransitionList
	env.call(t, "GET", "/api/v1/experiments/api-exp/transitions", viewerTok, "", &tl)
	last := tl.Transitions[len(tl.Transitions)-1]
	if last.Action != experiments.ActionReshuffle || last.Actor != "api:admin1" {
		t.Fatalf("last transition = %+v, want a reshuffle by api:admin1", last)
	}

	// Experiments without a rollout are always live.
	env.create(t, "fixed-api", "fixed-api-alias")
	noRollout := strings.Replace(admDef("fixed-api", "fixed-api-alias"), `"rollout":{"steps":[{"percent":5},{"percent":20},{"percent":50}]}`, `"rollout":null`, 1)
	if w := env.call(t, "PUT", "/api/v1/experiments/fixed-api", adminTok, noRollout, nil); w.Code != 200 {
		t.Fatalf("drop the rollout of a draft = %d: %s", w.Code, w.Body.String())
	}
	threeVariants := strings.Replace(noRollout, `"weight":10}`, `"weight":10},{"name":"c2","upstream":"up","model":"m2","weight":10}`, 1)
	env.expectError(t, "PUT", "/api/v1/experiments/fixed-api", threeVariants, 409, "reshuffle_requires_new_phase")
	if w := env.call(t, "PUT", "/api/v1/experiments/fixed-api?new_phase=1", adminTok, threeVariants, &d); w.Code != 200 || d.Definition.Experiment.Phase != 2 {
		t.Fatalf("add a variant with new_phase = %d, phase %d: %s", w.Code, d.Definition.Experiment.Phase, w.Body.String())
	}
}

func TestAdminLifecycleActions(t *testing.T) {
	t.Parallel()
	env := newAdminEnv(t)
	post := func(action, body string) ActionResult {
		t.Helper()
		var res ActionResult
		if w := env.call(t, "POST", "/api/v1/experiments/file-exp/"+action, adminTok, body, &res); w.Code != 200 {
			t.Fatalf("%s = %d: %s", action, w.Code, w.Body.String())
		}
		return res
	}
	res := post("start", `{"reason":"go"}`)
	if res.Transition.Actor != "api:admin1" || res.Transition.Reason != "go" || res.State.Status != experiments.StatusRunning {
		t.Fatalf("start = %+v", res)
	}
	// Steps count from 1 in the API: step 2 is the second ramp step.
	if res := post("step", `{"step":2,"reason":"ramp"}`); res.State.Step != 2 || res.Transition.ToStep != 2 || res.Transition.Action != experiments.ActionSetStep {
		t.Fatalf("step = %+v", res)
	}
	post("pause", "")
	post("resume", `{}`)
	if res := post("promote", `{"reason":"won"}`); res.State.Status != experiments.StatusPromoted || res.State.Winner != 1 {
		t.Fatalf("promote (the only candidate) = %+v", res)
	}
	post("rollback", `{"reason":"changed our mind"}`)
	post("start", "")
	if res := post("promote", `{"variant":"cand"}`); res.State.Winner != 1 {
		t.Fatalf("promote cand = %+v", res)
	}
	post("rollback", "")
	post("start", "")
	post("stop", `{"reason":"done"}`)

	var d ExperimentDetail
	env.call(t, "GET", "/api/v1/experiments/file-exp", viewerTok, "", &d)
	if d.Status != "stopped" || d.State == nil || d.State.UpdatedBy != "api:admin1" {
		t.Fatalf("detail after stop = %+v", d)
	}
	var tl TransitionList
	env.call(t, "GET", "/api/v1/experiments/file-exp/transitions", viewerTok, "", &tl)
	if len(tl.Transitions) != 11 || tl.Transitions[0].Action != experiments.ActionStart || tl.Transitions[10].Reason != "done" {
		t.Fatalf("transitions = %+v", tl.Transitions)
	}
	env.call(t, "GET", "/api/v1/experiments/file-exp/transitions?limit=2", viewerTok, "", &tl)
	if len(tl.Transitions) != 2 || tl.Transitions[1].Seq != 11 {
		t.Fatalf("last 2 transitions = %+v", tl.Transitions)
	}
}

func TestAdminActionErrors(t *testing.T) {
	t.Parallel()
	env := newAdminEnv(t)
	// A second candidate and no recommendation: promote needs a variant.
	threeVariants := strings.Replace(admDef("multi", "multi-alias"), `"weight":10}`, `"weight":10},{"name":"c2","upstream":"up","model":"m2","weight":10}`, 1)
	if w := env.call(t, "POST", "/api/v1/experiments", adminTok, threeVariants, nil); w.Code != 201 {
		t.Fatalf("create multi = %d: %s", w.Code, w.Body.String())
	}
	if w := env.call(t, "POST", "/api/v1/experiments/multi/start", adminTok, "", nil); w.Code != 200 {
		t.Fatalf("start multi = %d", w.Code)
	}
	long := `{"reason":"` + strings.Repeat("r", maxReasonLen+1) + `"}`
	tests := []struct {
		name, path, body string
		status           int
		code             string
		fields           []string
	}{
		{"unknown experiment", "/api/v1/experiments/nope/start", "", 404, "experiment_not_found", nil},
		{"resume a draft", "/api/v1/experiments/file-exp/resume", "", 409, "invalid_transition", nil},
		{"no rollout", "/api/v1/experiments/fixed-exp/start", "", 409, "invalid_transition", nil},
		{"step out of range", "/api/v1/experiments/multi/step", `{"step":9}`, 409, "invalid_transition", nil},
		{"step missing", "/api/v1/experiments/multi/step", `{"reason":"x"}`, 422, "validation_failed", []string{"step"}},
		{"step not a number", "/api/v1/experiments/multi/step", `{"step":"two"}`, 422, "validation_failed", []string{"step"}},
		{"step on start", "/api/v1/experiments/file-exp/start", `{"step":1}`, 422, "validation_failed", []string{"step"}},
		{"variant on stop", "/api/v1/experiments/multi/stop", `{"variant":"cand"}`, 422, "validation_failed", []string{"variant"}},
		{"promote unknown variant", "/api/v1/experiments/multi/promote", `{"variant":"zzz"}`, 422, "validation_failed", []string{"variant"}},
		{"promote the base", "/api/v1/experiments/multi/promote", `{"variant":"base"}`, 422, "validation_failed", []string{"variant"}},
		{"promote without a winner", "/api/v1/experiments/multi/promote", `{}`, 422, "validation_failed", []string{"variant"}},
		{"reason too long", "/api/v1/experiments/multi/pause", long, 422, "validation_failed", []string{"reason"}},
		{"unknown field", "/api/v1/experiments/multi/pause", `{"why":"x"}`, 422, "validation_failed", []string{"why"}},
		{"syntax", "/api/v1/experiments/multi/pause", `{"reason":`, 400, "invalid_json", nil},
		{"two values", "/api/v1/experiments/multi/pause", `{} {}`, 400, "invalid_json", nil},
		{"too large", "/api/v1/experiments/multi/pause", `{"reason":"` + strings.Repeat("r", maxActionBody) + `"}`, 413, "body_too_large", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env.expectError(t, "POST", tc.path, tc.body, tc.status, tc.code, tc.fields...)
		})
	}
	// With the controller's recommendation, promote picks its winner.
	w := 2
	if err := env.lcs.PutRecommendation(context.Background(), experiments.Recommendation{
		Experiment: "multi", At: admNow, Decision: &stats.Decision{Winner: &w},
	}); err != nil {
		t.Fatal(err)
	}
	var res ActionResult
	if rec := env.call(t, "POST", "/api/v1/experiments/multi/promote", adminTok, "", &res); rec.Code != 200 || res.State.Winner != 2 {
		t.Fatalf("promote the recommended winner = %d, %+v: %s", rec.Code, res.State, rec.Body.String())
	}
}

func TestAdminTransitionsErrors(t *testing.T) {
	t.Parallel()
	env := newAdminEnv(t)
	env.expectError(t, "GET", "/api/v1/experiments/nope/transitions", "", 404, "experiment_not_found")
	for _, q := range []string{"0", "-1", "x", "1001"} {
		env.expectError(t, "GET", "/api/v1/experiments/file-exp/transitions?limit="+q, "", 422, "validation_failed", "limit")
	}
	var tl TransitionList
	if w := env.call(t, "GET", "/api/v1/experiments/file-exp/transitions", adminTok, "", &tl); w.Code != 200 || tl.Transitions == nil {
		t.Fatalf("empty transitions = %d %s", w.Code, w.Body.String())
	}
	env.expectError(t, "GET", "/api/v1/experiments/nope", "", 404, "experiment_not_found")
}

func TestAdminErrorMapping(t *testing.T) {
	t.Parallel()
	secret := errors.New("dial tcp 10.0.0.7:6379: connection refused")
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("read: %w", context.Canceled), 499, "client_closed_request"},
		{fmt.Errorf("read: %w", context.DeadlineExceeded), 503, "timeout"},
		{fmt.Errorf("x: %w", experiments.ErrNotFound), 404, "experiment_not_found"},
		{experiments.ValidationError{{Field: "id", Reason: "required"}}, 422, "validation_failed"},
		{fmt.Errorf("%w: cannot resume", experiments.ErrInvalidTransition), 409, "invalid_transition"},
		{fmt.Errorf("commit: %w", experiments.ErrConflict), 409, "conflict"},
		{errDefinedInFile, 409, "defined_in_config"},
		{errExists, 409, "experiment_exists"},
		{errReshuffle, 409, "reshuffle_requires_new_phase"},
		{errStale, 412, "precondition_failed"},
		{fmt.Errorf("%w: yaml: bad", experiments.ErrInvalidConfig), 400, "invalid_json"},
		{secret, 500, "internal_error"},
	}
	for _, tc := range tests {
		e, fields := adminError(tc.err)
		if e.Status != tc.status || e.Detail.Code != tc.code {
			t.Errorf("adminError(%v) = %d %s, want %d %s", tc.err, e.Status, e.Detail.Code, tc.status, tc.code)
		}
		if (tc.status == 422) != (fields != nil) {
			t.Errorf("adminError(%v): fields %v", tc.err, fields)
		}
		if strings.Contains(e.Detail.Message, "10.0.0.7") {
			t.Errorf("adminError leaks internals: %q", e.Detail.Message)
		}
	}
}

// A stored experiment that stops fitting (here: its alias was taken by
// the file after a reload) is listed as invalid, readable and fixable.
func TestAdminInvalidStoredExperiment(t *testing.T) {
	t.Parallel()
	env := newAdminEnv(t)
	env.create(t, "api-exp", "api-alias")
	file2, err := experiments.Parse([]byte(admFileYAML+"  - {alias: api-alias, experiment: fixed-exp}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.cat.SetFile(context.Background(), file2); err != nil {
		t.Fatal(err)
	}
	var d ExperimentDetail
	if w := env.call(t, "GET", "/api/v1/experiments/api-exp", viewerTok, "", &d); w.Code != 200 || d.Status != StatusInvalid || !strings.Contains(d.Problem, `already routes to experiment "fixed-exp"`) {
		t.Fatalf("invalid stored experiment = %d %+v", w.Code, d)
	}
	var list ExperimentList
	env.call(t, "GET", "/api/v1/experiments", viewerTok, "", &list)
	if n := len(list.Experiments); n != 3 || list.Experiments[2].Status != StatusInvalid {
		t.Fatalf("list = %+v", list.Experiments)
	}
	env.expectError(t, "POST", "/api/v1/experiments/api-exp/start", "", 404, "experiment_not_found")
	if w := env.call(t, "PUT", "/api/v1/experiments/api-exp", adminTok, admDef("api-exp", "api-alias-new"), &d); w.Code != 200 || d.Status != "draft" {
		t.Fatalf("fix = %d %+v", w.Code, d)
	}
}

func TestAdminGolden(t *testing.T) {
	t.Parallel()
	env := newAdminEnv(t)
	env.create(t, "api-exp", "api-alias")
	if w := env.call(t, "POST", "/api/v1/experiments/file-exp/start", adminTok, `{"reason":"golden"}`, nil); w.Code != 200 {
		t.Fatal(w.Body.String())
	}
	for _, tc := range []struct{ name, path string }{
		{"list", "/api/v1/experiments"},
		{"detail_api", "/api/v1/experiments/api-exp"},
		{"detail_config", "/api/v1/experiments/file-exp"},
		{"transitions", "/api/v1/experiments/file-exp/transitions"},
	} {
		w := env.call(t, "GET", tc.path, viewerTok, "", nil)
		// "definition" mirrors the config schema, which other changes
		// extend; TestDefinitionJSONRoundTrip covers its encoding.
		var v map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		delete(v, "definition")
		b, _ := json.Marshal(v)
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		out.WriteByte('\n')
		path := filepath.Join("testdata", "admin", tc.name+".json.golden")
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestAdminGolden -update)", err)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Errorf("%s differs from %s (run with -update if intended):\n%s", tc.path, path, out.String())
		}
	}
}
