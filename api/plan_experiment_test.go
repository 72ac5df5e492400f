package api

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// TestPlanForExperiment: GET /api/v1/plan?experiment= plans for the
// experiment's configured design (the current step's share, the level
// of the step's current test, its variants) and the traffic observed in
// its current period, in users per arm and days (stats.PlanSchedule).
func TestPlanForExperiment(t *testing.T) {
	t.Parallel()
	h, st := fixtureServer(t)
	eng := reportEngine(h)
	exp, _ := h.src.Experiment("support-bot-ft")

	w := get(t, eng, "/api/v1/plan?experiment=support-bot-ft&baseline=0.55&mde=0.05")
	var res PlanResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	q := res.Request
	if q.Experiment != exp.ID || q.Share != 50 || q.Variants != 2 || math.Abs(q.Alpha-exp.TestAlpha(1)) > 1e-15 || q.Method != stats.ConfidenceSequenceMethod {
		t.Errorf("request %+v: want the experiment's step share 50, 2 variants, alpha %g", q, exp.TestAlpha(1))
	}
	// Observed: the current period's users over the 72 h 5 min since it began.
	snap, err := st.Summaries(context.Background(), exp.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	users := 0.0
	for v := range exp.Variants {
		users += snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricRequests}].N
	}
	daily := users / ((72 + 5.0/60) / 24)
	if res.Traffic != "observed" || math.Abs(q.DailyUsers-daily) > 1e-6*daily || q.Coverage != 100 {
		t.Errorf("traffic %q, daily users %g (want %g observed), coverage %g", res.Traffic, q.DailyUsers, daily, q.Coverage)
	}
	want := stats.DaysToDecision(res.UsersPerVariant.Sequential, daily, 0.5)
	if res.Days == nil || math.Abs(res.Days.Sequential-math.Ceil(want*10)/10) > 1e-9 {
		t.Errorf("days %+v, want %.1f sequential", res.Days, want)
	}

	// Given daily users and alpha win over the experiment's.
	w = get(t, eng, "/api/v1/plan?experiment=support-bot-ft&baseline=0.55&mde=0.05&daily_users=1000&alpha=0.1")
	res = PlanResult{}
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if res.Traffic != "given" || res.Request.DailyUsers != 1000 || res.Request.Alpha != 0.1 {
		t.Errorf("given: %q %+v", res.Traffic, res.Request)
	}

	// An unknown experiment is a 404.
	if w := get(t, eng, "/api/v1/plan?experiment=nope&baseline=0.55&mde=0.05"); w.Code != 404 {
		t.Errorf("unknown experiment: %d %s", w.Code, w.Body)
	}
}
