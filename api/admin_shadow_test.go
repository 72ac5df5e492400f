package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
)

// TestAdminShadowPass: an operator ends the shadow stage as passed (the
// decision the shadow rule leaves to a person): ramp step 1 begins on a
// new period, the audit trail records the token's name, the action and
// the reason; the route refuses what the other actions refuse, and
// answers 409 when the experiment is not in shadow.
func TestAdminShadowPass(t *testing.T) {
	t.Parallel()
	env := newAdminEnv(t)
	var def map[string]any
	if err := json.Unmarshal([]byte(admDef("shadowed", "shadowed-alias")), &def); err != nil {
		t.Fatal(err)
	}
	def["judge"] = map[string]any{"upstream": "up", "model": "judge-model"}
	def["shadow"] = map[string]any{"percent": 5, "max_duration": "48h"}
	body, _ := json.Marshal(def)
	if w := env.call(t, "POST", "/api/v1/experiments", adminTok, string(body), nil); w.Code != http.StatusCreated {
		t.Fatalf("create = %d: %s", w.Code, w.Body.String())
	}
	const path = "/api/v1/experiments/shadowed/shadow_pass"

	// Before the start it is a draft, not in shadow.
	env.expectError(t, "POST", path, "", http.StatusConflict, "invalid_transition")
	var res ActionResult
	if w := env.call(t, "POST", "/api/v1/experiments/shadowed/start", adminTok, "", &res); w.Code != 200 || res.State.Status != experiments.StatusShadow {
		t.Fatalf("start = %d %+v", w.Code, res.State)
	}
	shadowPeriod := res.State.Period

	// Roles, body checks, unknown experiments.
	if w := env.call(t, "POST", path, viewerTok, "", nil); w.Code != http.StatusForbidden {
		t.Fatalf("viewer = %d", w.Code)
	}
	if w := env.call(t, "POST", path, "", "", nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("no token = %d", w.Code)
	}
	env.expectError(t, "POST", path, `{"variant":"cand"}`, http.StatusUnprocessableEntity, "validation_failed", "variant")
	env.expectError(t, "POST", path, `{"step":2}`, http.StatusUnprocessableEntity, "validation_failed", "step")
	env.expectError(t, "POST", path, `{"reason":`, http.StatusBadRequest, "invalid_json")
	env.expectError(t, "POST", "/api/v1/experiments/nope/shadow_pass", "", http.StatusNotFound, "experiment_not_found")
	env.expectError(t, "POST", "/api/v1/experiments/fixed-exp/shadow_pass", "", http.StatusConflict, "invalid_transition")

	res = ActionResult{}
	if w := env.call(t, "POST", path, adminTok, `{"reason":"the judge is position-biased; the offline eval is clean"}`, &res); w.Code != 200 {
		t.Fatalf("shadow_pass = %d: %s", w.Code, w.Body.String())
	}
	tr := res.Transition
	if tr.Action != experiments.ActionShadowPass || tr.Actor != "api:admin1" || tr.Reason != "the judge is position-biased; the offline eval is clean" ||
		tr.From != experiments.StatusShadow || tr.To != experiments.StatusRunning {
		t.Fatalf("transition = %+v", tr)
	}
	if res.State.Status != experiments.StatusRunning || res.State.Step != 1 || res.State.Period <= shadowPeriod {
		t.Fatalf("state = %+v, want running at step 1 on a new period", res.State)
	}

	// Passed already: no longer in shadow.
	e := env.expectError(t, "POST", path, "", http.StatusConflict, "invalid_transition")
	if want := "shadow"; !containsAll(e.Error.Message, want, "running") {
		t.Errorf("409 message %q should name the status and the allowed one", e.Error.Message)
	}
	// A running experiment of the file is not in shadow either.
	if w := env.call(t, "POST", "/api/v1/experiments/file-exp/start", adminTok, "", nil); w.Code != 200 {
		t.Fatalf("start file-exp = %d", w.Code)
	}
	env.expectError(t, "POST", "/api/v1/experiments/file-exp/shadow_pass", "", http.StatusConflict, "invalid_transition")

	var tl TransitionList
	env.call(t, "GET", "/api/v1/experiments/shadowed/transitions", viewerTok, "", &tl)
	if n := len(tl.Transitions); n != 2 || tl.Transitions[1].Action != experiments.ActionShadowPass || tl.Transitions[1].Actor != "api:admin1" {
		t.Fatalf("audit trail = %+v", tl.Transitions)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
