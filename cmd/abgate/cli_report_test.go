package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/api"
	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

func TestReportCLI(t *testing.T) {
	t.Parallel()
	exp := &experiments.Experiment{ID: "e1", Variants: []experiments.Variant{{Name: "base"}, {Name: "ft", Weight: 50}}}
	rep := api.BuildReport(exp, api.ReportStatus{Status: "running", Step: -1}, nil, experiments.Snapshot{}, nil, time.Unix(1_800_000_000, 0))
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		if r.URL.Path != "/api/v1/experiments/e1/report" {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": "no experiment", "type": "invalid_request_error", "code": "experiment_not_found"}})
			return
		}
		json.NewEncoder(w).Encode(rep)
	}))
	defer srv.Close()

	for _, format := range []string{"text", "markdown", "json"} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"report", "e1", "--server", srv.URL, "--token", "tok-123", "--format", format}, &out, &errb)
		if code != 0 || !strings.Contains(out.String(), "e1") {
			t.Errorf("%s: code %d, stdout %q, stderr %q", format, code, out.String(), errb.String())
		}
	}
	if gotAuth != "Bearer tok-123" {
		t.Errorf("Authorization %q", gotAuth)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"report", "--server", srv.URL, "missing"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no experiment") {
		t.Errorf("unknown id: code %d, stderr %q", code, errb.String())
	}
	if code := run(context.Background(), []string{"report", "--format", "pdf", "e1"}, &out, &errb); code != 2 {
		t.Errorf("bad format: code %d", code)
	}
	if code := run(context.Background(), []string{"report"}, &out, &errb); code != 2 {
		t.Errorf("no id: code %d", code)
	}
}

func TestPlanCLI(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"plan", "--baseline", "0.10", "--mde", "0.10", "--daily_users", "5000", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("code %d: %s", code, errb.String())
	}
	var res api.PlanResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	// The CLI and GET /api/v1/plan answer the same question the same way.
	want, err := api.MakePlan(api.PlanRequest{Baseline: 0.10, MDE: 0.10, Relative: true, Power: 0.8, Alpha: 0.05,
		Method: "confidence-sequence", Variants: 2, DailyUsers: 5000, Coverage: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary != want.Summary {
		t.Errorf("CLI plan %q\nwant %q", res.Summary, want.Summary)
	}
	out.Reset()
	if code := run(context.Background(), []string{"plan", "--baseline", "1.5", "--mde", "0.1"}, &out, &errb); code == 0 {
		t.Error("a rate of 1.5 accepted")
	}
}

// TestPlanTinyEffect: a vanishing effect is a usage error with a message,
// not a panic (issue 11).
func TestPlanTinyEffect(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"plan", "--baseline", "0.1", "--mde", "1e-300"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "mde") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

// TestPlanCLIExperiment: `abgate plan --experiment` plans for the
// configured design: the last step's share, the level of a step's first
// test, and rollout.expected_daily_users for the days.
func TestPlanCLIExperiment(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "abgate.yaml")
	cfg := `
upstreams:
  - name: up
    url: http://127.0.0.1:9
experiments:
  - id: file-exp
    variants:
      - {name: base, upstream: up, model: m0}
      - {name: cand, upstream: up, model: m1}
    rollout: {steps: [{percent: 5}, {percent: 25}], expected_daily_users: 8000}
routes:
  - {alias: file-alias, experiment: file-exp}
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	plan := func(args ...string) api.PlanResult {
		t.Helper()
		var out, errb bytes.Buffer
		args = append([]string{"plan", "--config", path, "--experiment", "file-exp", "--baseline", "0.10", "--mde", "0.10", "--json"}, args...)
		if code := run(context.Background(), args, &out, &errb); code != 0 {
			t.Fatalf("code %d: %s", code, errb.String())
		}
		var res api.PlanResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := plan()
	q := res.Request
	if q.Share != 25 || q.DailyUsers != 8000 || res.Traffic != "configured" || res.Days == nil || math.Abs(q.Alpha-stats.RestartAlpha(0.05, 1)) > 1e-12 {
		t.Fatalf("plan %+v, traffic %q, days %+v", q, res.Traffic, res.Days)
	}
	if want := stats.DaysToDecision(res.UsersPerVariant.Sequential, 8000, 0.25); math.Abs(res.Days.Sequential-math.Ceil(want*10)/10) > 1e-9 {
		t.Errorf("days %v, want %.1f", res.Days.Sequential, want)
	}
	if res := plan("--step", "1"); res.Request.Share != 5 {
		t.Errorf("--step 1: share %v, want 5", res.Request.Share)
	}
}
