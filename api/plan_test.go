package api

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestPlanEndpointErrors(t *testing.T) {
	t.Parallel()
	h, _ := fixtureServer(t)
	eng := reportEngine(h)
	for _, tc := range []struct{ query, param string }{
		{"mde=0.05", "baseline"},
		{"baseline=abc&mde=0.05", "baseline"},
		{"baseline=0&mde=0.05", "baseline"},
		{"baseline=1.5&mde=0.05", "baseline"},
		{"baseline=0.1", "mde"},
		{"baseline=0.1&mde=-0.05", "mde"},
		{"baseline=0.9&mde=0.2", "mde"},
		{"baseline=0.1&mde=0.05&power=1", "power"},
		{"baseline=0.1&mde=0.05&power=0", "power"},
		{"baseline=0.1&mde=0.05&alpha=0.7", "alpha"},
		{"baseline=0.1&mde=0.05&method=bayes", "method"},
		{"baseline=0.1&mde=0.05&daily_users=-3", "daily_users"},
		{"baseline=0.1&mde=0.05&variants=1", "variants"},
		{"baseline=0.1&mde=0.05&variants=2.5", "variants"},
		{"baseline=0.1&mde=0.05&variants=3&share=60", "share"},
		{"baseline=0.1&mde=0.05&coverage=120", "coverage"},
		{"baseline=0.1&mde=0.05&relative=maybe", "relative"},
		{"baseline=0.1&mde=0.05&sd=-1", "sd"},
		{"baseline=0.1&mde=0.05&method=group-sequential&looks=50", "looks"},
		{"baseline=0.1&mde=0.05&lift=0.1", "lift"},
		{"baseline=0.1&mde=NaN", "mde"},
	} {
		w := get(t, eng, "/api/v1/plan?"+tc.query)
		var eb errorBody
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || w.Code != 400 {
			t.Errorf("%s: %d %s", tc.query, w.Code, w.Body)
			continue
		}
		if eb.Error.Param == nil || *eb.Error.Param != tc.param || eb.Error.Code != "invalid_parameter" || !strings.HasPrefix(eb.Error.Message, tc.param+": ") {
			t.Errorf("%s: %+v, want param %s", tc.query, eb.Error, tc.param)
		}
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	h, _ := fixtureServer(t)
	eng := reportEngine(h)
	w := get(t, eng, "/api/v1/plan?baseline=0.10&mde=0.10&relative=true&power=0.8&alpha=0.05&method=confidence-sequence&daily_users=5000")
	var res PlanResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	// docs/statistics.md: 10% -> 11%, 80% power: 14,749 fixed, 28,242 confidence sequence.
	if res.UsersPerVariant.Fixed != 14749 || res.UsersPerVariant.Sequential != 28242 {
		t.Errorf("users per variant %+v", res.UsersPerVariant)
	}
	// 2,500 users a day per variant.
	if res.Days == nil || res.Days.Fixed != 5.9 || res.Days.Sequential != 11.3 || res.DailyUsersSmallest != 2500 {
		t.Errorf("days %+v, per day %v", res.Days, res.DailyUsersSmallest)
	}
	if res.TotalUsers.Sequential != 2*28242 || !strings.Contains(res.Summary, "28,242") {
		t.Errorf("total %+v summary %q", res.TotalUsers, res.Summary)
	}

	for _, tc := range []struct {
		name  string
		req   PlanRequest
		check func(PlanResult) bool
	}{
		{"msprt needs more than fixed", PlanRequest{Baseline: 0.1, MDE: 0.1, Relative: true, Method: "msprt"},
			func(r PlanResult) bool {
				return r.UsersPerVariant.Sequential > r.UsersPerVariant.Fixed && r.Days == nil
			}},
		{"group sequential is close to fixed", PlanRequest{Baseline: 0.1, MDE: 0.1, Relative: true, Method: "group-sequential"},
			func(r PlanResult) bool { return r.Inflation > 1 && r.Inflation < 1.1 && r.Request.Looks == 5 }},
		{"absolute effect on a mean", PlanRequest{Baseline: 800, SD: 300, MDE: 20, DailyUsers: 1000},
			func(r PlanResult) bool { return r.AbsoluteEffect == 20 && r.Target == 820 && r.Days != nil }},
		{"a small candidate share sets the pace", PlanRequest{Baseline: 0.1, MDE: 0.1, Relative: true, Share: 10, DailyUsers: 5000},
			func(r PlanResult) bool {
				return r.DailyUsersSmallest == 500 && r.TotalUsers.Fixed == 10*r.UsersPerVariant.Fixed
			}},
		{"more candidates need more users", PlanRequest{Baseline: 0.1, MDE: 0.1, Relative: true, Variants: 4},
			func(r PlanResult) bool { return r.UsersPerVariant.Fixed > 14749 && r.Request.Share == 25 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := MakePlan(tc.req)
			if err != nil || !tc.check(r) {
				t.Errorf("%+v %v", r, err)
			}
		})
	}

	_, err := MakePlan(PlanRequest{Baseline: 0.1})
	var pe *ParamError
	if !errors.As(err, &pe) || pe.Param != "mde" {
		t.Errorf("MakePlan without mde: %v", err)
	}
	if _, err := ParsePlanQuery(url.Values{"baseline": {"0.1"}, "mde": {"0.1"}}); err != nil {
		t.Error(err)
	}
}
