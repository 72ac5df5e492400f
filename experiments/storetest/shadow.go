package storetest

import (
	"context"
	"reflect"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// testLCShadow: the shadow status, the shadow_pass action and the judge
// gate's decisions (transition and recommendation) survive the store.
func testLCShadow(t *testing.T, newStore LifecycleFactory) {
	s, _ := newStore(t)
	ctx := context.Background()
	exp := NewID("lcshadow")
	w := 0.31
	jd := []stats.JudgeDecision{{
		Verdict: stats.JudgeStopWorse, Users: 40, Comparisons: 40, WinRate: &w,
		WinRateCI: stats.Interval{Low: 0.12, High: 0.41}, PValueNonInferior: 1, PValueSuperior: 1, Worse: true,
		Reasons: []stats.JudgeReason{{Code: stats.ReasonJudgeWorse, Message: "worse"}}, Alpha: 0.05,
	}}
	st1 := lcState(exp, 1, experiments.StatusShadow)
	tr1 := lcTrans(exp, 1, 0)
	tr1.Action, tr1.From, tr1.To = experiments.ActionStart, experiments.StatusDraft, experiments.StatusShadow
	if err := s.Commit(ctx, 0, st1, tr1); err != nil {
		t.Fatal(err)
	}
	if got, err := s.State(ctx, exp); err != nil || got.Status != experiments.StatusShadow {
		t.Fatalf("State = %+v, %v; want status shadow", got, err)
	}
	rec := experiments.Recommendation{Experiment: exp, At: t0, Period: 1, Judge: jd}
	if err := s.PutRecommendation(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Recommendation(ctx, exp); err != nil || !reflect.DeepEqual(got.Judge, jd) {
		t.Fatalf("Recommendation judge = %+v, %v; want %+v", got.Judge, err, jd)
	}
	st2 := lcState(exp, 2, experiments.StatusStopped)
	tr2 := lcTrans(exp, 2, 0)
	tr2.Action, tr2.From, tr2.To, tr2.Judge = experiments.ActionStop, experiments.StatusShadow, experiments.StatusStopped, jd
	if err := s.Commit(ctx, 1, st2, tr2); err != nil {
		t.Fatal(err)
	}
	h, err := s.Transitions(ctx, exp, 0)
	if err != nil || len(h) != 2 {
		t.Fatalf("Transitions = %d, %v", len(h), err)
	}
	if h[0].To != experiments.StatusShadow || h[1].From != experiments.StatusShadow || !reflect.DeepEqual(h[1].Judge, jd) {
		t.Fatalf("history lost the shadow stage or its judge decision: %+v", h)
	}
}
