package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.yaml.in/yaml/v3"

	"github.com/abgate/abgate/stats"
)

func TestGateOf(t *testing.T) {
	t.Parallel()
	winner := 1
	for _, tc := range []struct {
		decision stats.Verdict
		status   string
		want     string
	}{
		{stats.Promote, "running", GatePromote},
		{stats.Advance, "running", GateContinue},
		{stats.Continue, "running", GateContinue},
		{"", "draft", GateContinue},
		{stats.Rollback, "running", GateRollback},
		{stats.StopFutility, "running", GateRollback},
		{stats.HaltSRM, "running", GateInconclusive},
		{stats.Continue, "paused", GateInconclusive},
		{stats.Continue, "promoted", GatePromote},
		{stats.Promote, "rolled_back", GateRollback},
		{stats.Promote, "stopped", GateRollback},
	} {
		r := Report{Experiment: "e", Status: tc.status, Step: 2, Steps: 4, // the report counts steps from 1
			Variants: []ReportVariant{{Name: "base"}, {Name: "ft"}},
			Decision: stats.Decision{Verdict: tc.decision, Winner: &winner,
				Reasons:  []stats.Reason{{Code: stats.ReasonGuardrailOK}},
				Variants: []stats.VariantResult{{Variant: 1, Metrics: []stats.MetricResult{{Metric: "thumbs", Role: "primary", Relative: true}}}}}}
		g := gateOf(r)
		if g.Verdict != tc.want {
			t.Errorf("decision %q status %q: verdict %q, want %q", tc.decision, tc.status, g.Verdict, tc.want)
		}
		if g.Step != 2 || g.Steps != 4 || len(g.ReasonCodes) != 1 || g.Primary == nil || g.Primary.Variant != "ft" {
			t.Errorf("gate = %+v", g)
		}
	}
}

// docBlock returns the fenced yaml block of docs/integrations.md that
// contains marker.
func docBlock(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile("../docs/integrations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		if strings.Contains(m[1], marker) {
			return m[1]
		}
	}
	t.Fatalf("docs/integrations.md has no yaml block with %q", marker)
	return ""
}

// TestArgoContract: the documented AnalysisTemplate reads the field the
// gate writes and its conditions cover every verdict as intended.
func TestArgoContract(t *testing.T) {
	t.Parallel()
	var at struct {
		Kind string
		Spec struct {
			Metrics []struct {
				SuccessCondition string `yaml:"successCondition"`
				FailureCondition string `yaml:"failureCondition"`
				Provider         struct {
					Web struct {
						URL      string
						JSONPath string `yaml:"jsonPath"`
						Headers  []struct{ Key, Value string }
					}
				}
			}
		}
	}
	if err := yaml.Unmarshal([]byte(docBlock(t, "kind: AnalysisTemplate")), &at); err != nil {
		t.Fatal(err)
	}
	if at.Kind != "AnalysisTemplate" || len(at.Spec.Metrics) != 1 {
		t.Fatalf("template = %+v", at)
	}
	m := at.Spec.Metrics[0]
	if m.Provider.Web.JSONPath != "{$.verdict}" || !strings.HasSuffix(m.Provider.Web.URL, "/api/v1/experiments/{{args.experiment}}/gate") ||
		len(m.Provider.Web.Headers) != 1 || m.Provider.Web.Headers[0].Key != "Authorization" {
		t.Errorf("provider = %+v", m.Provider.Web)
	}
	// Evaluate the conditions' string comparisons for each verdict.
	eval := func(cond, result string) bool {
		any := false
		for _, part := range strings.Split(cond, "||") {
			part = strings.TrimSpace(part)
			want := strings.Trim(strings.TrimSpace(strings.TrimPrefix(part, "result ==")), `"`)
			any = any || want == result
		}
		return any
	}
	for verdict, want := range map[string]string{GatePromote: "success", GateContinue: "success", GateRollback: "failure", GateInconclusive: "inconclusive"} {
		got := "inconclusive"
		if eval(m.SuccessCondition, verdict) {
			got = "success"
		}
		if eval(m.FailureCondition, verdict) {
			got = "failure"
		}
		if got != want {
			t.Errorf("verdict %s: Argo measures %s, want %s", verdict, got, want)
		}
	}
	// The gate's JSON has the field the jsonPath reads.
	h, _ := fixtureServer(t)
	w := get(t, reportEngine(h), "/api/v1/experiments/support-bot-ft/gate")
	var doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if doc["verdict"] != GatePromote || doc["decision"] != "promote" {
		t.Errorf("gate = %s", w.Body)
	}
}

// TestFlaggerContract: the documented Canary's webhooks reach the gate
// routes with Flagger's payload, and each hook type passes or fails as
// the table says.
func TestFlaggerContract(t *testing.T) {
	t.Parallel()
	var canary struct {
		Kind string
		Spec struct {
			Analysis struct {
				Webhooks []struct {
					Name, Type, URL string
					Metadata        map[string]string
				}
			}
		}
	}
	if err := yaml.Unmarshal([]byte(docBlock(t, "kind: Canary")), &canary); err != nil {
		t.Fatal(err)
	}
	if len(canary.Spec.Analysis.Webhooks) != 3 {
		t.Fatalf("canary = %+v", canary)
	}
	h, _ := fixtureServer(t) // support-bot-ft: the decision is promote
	toks := sessionTokens(t)
	gin.SetMode(gin.ReleaseMode)
	eng := gin.New()
	h.Register(eng, toks.RequireRead())
	want := map[string]int{"rollout": 200, "confirm-promotion": 200, "rollback": http.StatusPreconditionFailed}
	for _, wh := range canary.Spec.Analysis.Webhooks {
		path := wh.URL[strings.Index(wh.URL, "/api/"):]
		if path != "/api/v1/gates/flagger/"+wh.Type {
			t.Errorf("webhook %s posts to %s, not its type's route", wh.Name, path)
		}
		payload := map[string]any{"name": "model-server", "namespace": "prod", "phase": "Progressing", "checksum": "x",
			"metadata": map[string]string{"experiment": "support-bot-ft", "token": viewerTok}}
		b, _ := json.Marshal(payload)
		rec := httptest.NewRecorder()
		eng.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(b))))
		if rec.Code != want[wh.Type] || !strings.Contains(rec.Body.String(), `"verdict":"promote"`) {
			t.Errorf("%s: %d %s, want %d", wh.Type, rec.Code, rec.Body, want[wh.Type])
		}
	}
	post := func(path, body, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		eng.ServeHTTP(rec, req)
		return rec
	}
	for _, tc := range []struct {
		name, path, body, auth, code string
		status                       int
	}{
		{"no token", "/api/v1/gates/flagger/rollout", `{"metadata":{"experiment":"support-bot-ft"}}`, "", "missing_api_token", 401},
		{"feedback token", "/api/v1/gates/flagger/rollout", `{"metadata":{"experiment":"support-bot-ft","token":"` + feedbackTok + `"}}`, "", "forbidden", 403},
		{"header token", "/api/v1/gates/flagger/confirm-promotion", `{"metadata":{"experiment":"support-bot-ft"}}`, "Bearer " + viewerTok, "", 200},
		{"no experiment", "/api/v1/gates/flagger/rollout", `{"metadata":{}}`, "Bearer " + viewerTok, "missing_experiment", 400},
		{"unknown experiment", "/api/v1/gates/flagger/rollout", `{"metadata":{"experiment":"nope"}}`, "Bearer " + viewerTok, "experiment_not_found", 404},
		{"unknown hook", "/api/v1/gates/flagger/event", `{"metadata":{"experiment":"support-bot-ft"}}`, "Bearer " + viewerTok, "unknown_hook", 404},
		{"bad json", "/api/v1/gates/flagger/rollout", `{`, "Bearer " + viewerTok, "invalid_json", 400},
	} {
		rec := post(tc.path, tc.body, tc.auth)
		if rec.Code != tc.status || (tc.code != "" && !strings.Contains(rec.Body.String(), `"code":"`+tc.code+`"`)) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, rec.Code, rec.Body, tc.status, tc.code)
		}
	}
}
