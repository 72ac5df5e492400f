package api

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/stats"
)

// shadowExperiment is the report fixture's experiment with a judge and a
// shadow stage before its ramp.
func shadowExperiment() *experiments.Experiment {
	e := reportExperiment()
	e.ID = "support-bot-shadow"
	e.Judge = &experiments.Judge{Model: "judge-large", PositionBiasLimit: experiments.DefaultJudgePositionBiasLimit}
	e.Shadow = &experiments.Shadow{Percent: 10, MaxPerUser: 1, MinUsers: 30, MinBothOrders: 10}
	return e
}

// shadowSnapshot is a shadow stage's data: the base served 400 users;
// 240 of them were judged once each: the candidate won 132, tied 36 and
// lost 72 (win rate 62.5%); 120 comparisons were asked in both orders
// and the first-shown answer was preferred a little more than half the
// time.
func shadowSnapshot() experiments.Snapshot {
	score := stats.Summary{N: 240, SumX: 132 + 18, SumX2: 132 + 36*0.25, SumY: 240, SumY2: 240, SumXY: 132 + 18}
	// judge_first per user: 40 users at 1/2, 50 at 3/4, 30 at 1/4.
	fx := 40*0.5 + 50*0.75 + 30*0.25
	first := stats.Summary{N: 120, SumX: fx, SumX2: 40*0.25 + 50*0.5625 + 30*0.0625, SumY: 120, SumY2: 120, SumXY: fx}
	return experiments.Snapshot{Stats: map[experiments.VariantMetric]experiments.Summary{
		{Variant: 0, Metric: experiments.MetricRequests}:   {N: 400, SumX: 1000, SumX2: 3000, SumY: 1000, SumY2: 3000, SumXY: 3000},
		{Variant: 1, Metric: experiments.MetricJudgeScore}: score,
		{Variant: 1, Metric: experiments.MetricJudgeFirst}: first,
	}}
}

func shadowTransitions() []ReportTransition {
	return []ReportTransition{
		{Seq: 1, At: reportT0.Add(-2 * time.Hour), Actor: "alice@example.com", Action: "start", From: "draft", To: "shadow", Reason: "shadow first: judge the candidate before anyone sees it"},
	}
}

func shadowReport(t testing.TB) Report {
	t.Helper()
	now := reportT0.Add(6 * time.Hour)
	st := ReportStatus{Status: string(experiments.StatusShadow), Step: 0, Period: 1, Started: reportT0}
	r := BuildReport(shadowExperiment(), st, shadowTransitions(), shadowSnapshot(), nil, now)
	h := &Reports{shadow: func(string) (ShadowSpend, bool) {
		return ShadowSpend{Replayed: 251, Judged: 240, Dropped: 11, ReplayCost: 0.42, JudgeCost: 1.37}, true
	}}
	h.addShadowSpend(&r, shadowExperiment(), true)
	return r
}

// The shadow stage's report in every format: the judge section with the
// win rate, position bias, gate and spend, and the shadow status line.
func TestReportShadowGolden(t *testing.T) {
	r := shadowReport(t)
	for _, tc := range []struct {
		file   string
		render func(*bytes.Buffer, Report) error
	}{
		{"report_shadow.txt.golden", func(b *bytes.Buffer, r Report) error { return RenderText(b, r) }},
		{"report_shadow.md.golden", func(b *bytes.Buffer, r Report) error { return RenderMarkdown(b, r) }},
		{"report_shadow.html.golden", func(b *bytes.Buffer, r Report) error { return renderPage(b, r, "") }},
		{"report_shadow.json.golden", func(b *bytes.Buffer, r Report) error {
			e := json.NewEncoder(b)
			e.SetIndent("", "  ")
			return e.Encode(r.Judge)
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.render(&b, r); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, b.Bytes())
		})
	}
}

// The live section is exactly the controller's gate on the same data.
func TestReportJudgeLiveIsTheGate(t *testing.T) {
	r := shadowReport(t)
	exp := shadowExperiment()
	want := stats.JudgeGate(experiments.JudgeInput(shadowSnapshot(), 1), exp.JudgePolicy())
	j := r.Judge
	if j == nil || j.Source != JudgeLive || len(j.Candidates) != 1 {
		t.Fatalf("judge section %+v", j)
	}
	got, _ := json.Marshal(j.Candidates[0].Decision)
	w, _ := json.Marshal(want)
	if !bytes.Equal(got, w) {
		t.Errorf("decision\n got %s\nwant %s", got, w)
	}
	if want.Verdict != stats.JudgePass {
		t.Errorf("fixture verdict %s, want pass (the golden files show a passing gate)", want.Verdict)
	}
	if s := j.Spend; s == nil || s.Currency != "USD" || s.PerJudgment <= 0 {
		t.Errorf("spend %+v", s)
	}
}

// Once the experiment has left shadow, the section is the decision
// recorded with the shadow_pass transition, not the new period's data;
// the transition keeps its words but not the decisions.
func TestReportJudgeRecorded(t *testing.T) {
	exp := shadowExperiment()
	dec := stats.JudgeGate(experiments.JudgeInput(shadowSnapshot(), 1), exp.JudgePolicy())
	at := reportT0.Add(6 * time.Hour)
	trans := append(shadowTransitions(), ReportTransition{Seq: 2, At: at, Actor: "controller", Action: "shadow_pass", From: "shadow", To: "running",
		Reason: "judge gate passed: fine-tuned pass; ramp step 1 begins", Codes: []string{"judge_non_inferior"}, Judge: []stats.JudgeDecision{dec}})
	st := ReportStatus{Status: "running", Step: 0, Period: 2, Started: at}
	r := BuildReport(exp, st, trans, experiments.Snapshot{}, nil, at.Add(time.Hour))
	j := r.Judge
	if j == nil || j.Source != JudgeRecorded || !j.At.Equal(at) || len(j.Candidates) != 1 || j.Candidates[0].Decision.Verdict != stats.JudgePass {
		t.Fatalf("judge section %+v", j)
	}
	if r.Transitions[1].Judge != nil {
		t.Error("the report's transition kept the judge decisions")
	}
	var b bytes.Buffer
	if err := RenderText(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SHADOW JUDGE (recorded)", "shadow_pass: shadow -> running", "judge gate passed", "ramp step 1 of 3"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}

// During a ramp step with the live judge (shadow.live_percent), the
// period's own judge data replace the recorded shadow decision.
func TestReportJudgeLiveDuringRamp(t *testing.T) {
	exp := shadowExperiment()
	dec := stats.JudgeDecision{Verdict: stats.JudgePass}
	trans := append(shadowTransitions(), ReportTransition{Seq: 2, At: reportT0, Actor: "controller", Action: "shadow_pass", From: "shadow", To: "running", Judge: []stats.JudgeDecision{dec}})
	snap := shadowSnapshot()
	r := BuildReport(exp, ReportStatus{Status: "running", Step: 0, Period: 2, Started: reportT0}, trans, snap, nil, reportT0.Add(time.Hour))
	want := stats.JudgeGate(experiments.JudgeInput(snap, 1), exp.JudgePolicy())
	if j := r.Judge; j == nil || j.Source != JudgeLive || j.Candidates[0].Decision.WinRate == nil || *j.Candidates[0].Decision.WinRate != *want.WinRate {
		t.Fatalf("judge section %+v", j)
	}
	if r.Verdict.Kind == VerdictShadow {
		t.Error("a ramp step's verdict is the controller's, not the judge gate's")
	}
}

// Stopped by the gate in shadow: the section and the verdict are the
// recorded decision, and the base serving everyone is no sample ratio
// mismatch.
func TestReportJudgeStoppedInShadow(t *testing.T) {
	exp := shadowExperiment()
	snap := shadowSnapshot()
	worse := stats.Summary{N: 100, SumX: 20, SumX2: 20, SumY: 100, SumY2: 100, SumXY: 20}
	dec := stats.JudgeGate(stats.JudgeInput{Preference: worse}, exp.JudgePolicy())
	at := reportT0.Add(3 * time.Hour)
	trans := append(shadowTransitions(), ReportTransition{Seq: 2, At: at, Actor: "controller", Action: "stop", From: "shadow", To: "stopped",
		Reason: "candidate worse on the judge: fine-tuned stop_worse; no user was exposed to it", Codes: []string{"judge_worse"}, Judge: []stats.JudgeDecision{dec}})
	r := BuildReport(exp, ReportStatus{Status: "stopped", Period: 1, Ended: at}, trans, snap, nil, at.Add(time.Hour))
	if dec.Verdict != stats.JudgeStopWorse {
		t.Fatalf("fixture verdict %s", dec.Verdict)
	}
	if j := r.Judge; j == nil || j.Source != JudgeRecorded || j.Candidates[0].Decision.Verdict != stats.JudgeStopWorse {
		t.Fatalf("judge section %+v", j)
	}
	if r.Verdict.Kind != VerdictShadow || !strings.HasPrefix(r.Verdict.Sentence, "Stopped on") || !strings.Contains(r.Verdict.Sentence, "worse than the base") {
		t.Errorf("verdict %+v", r.Verdict)
	}
	if r.SRM.Status == "mismatch" {
		t.Errorf("SRM %+v: the base served everyone in shadow", r.SRM)
	}
}

// No judge, no judge data: no section.
func TestReportWithoutJudge(t *testing.T) {
	r := BuildReport(reportExperiment(), fixtureStatus(), fixtureTransitions(), experiments.Snapshot{}, nil, reportT0)
	if r.Judge != nil {
		t.Errorf("judge section %+v", r.Judge)
	}
}

// The handlers ask WithReportsShadow's source for full reports only.
func TestReportsShadowOption(t *testing.T) {
	exp := shadowExperiment()
	src := &fakeSource{exps: []*experiments.Experiment{exp},
		status: map[string]ReportStatus{exp.ID: {Status: string(experiments.StatusShadow), Period: 1, Started: reportT0}},
		trans:  map[string][]ReportTransition{exp.ID: shadowTransitions()}}
	calls := 0
	h := NewReports(src, snapStore{memstore.New(), shadowSnapshot()}, WithReportsClock(func() time.Time { return reportT0.Add(time.Hour) }),
		WithReportsShadow(func(id string) (ShadowSpend, bool) {
			calls++
			return ShadowSpend{Judged: 3, JudgeCost: 0.03}, id == exp.ID
		}))
	r, err := h.build(context.Background(), exp, true)
	if err != nil {
		t.Fatal(err)
	}
	if r.Judge == nil || r.Judge.Spend == nil || r.Judge.Spend.Judged != 3 || calls != 1 {
		t.Fatalf("judge %+v, %d calls", r.Judge, calls)
	}
}

// snapStore is a store whose summaries are a fixed snapshot.
type snapStore struct {
	experiments.Store
	snap experiments.Snapshot
}

func (s snapStore) Summaries(context.Context, string, int) (experiments.Snapshot, error) {
	return s.snap, nil
}
