package api

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// moneyReport builds a report after hours of the fixture's traffic with
// the given arms, now minutes after the last hour began.
func moneyReport(t *testing.T, exp *experiments.Experiment, arms []arm, hours int, now time.Time) Report {
	t.Helper()
	st := simulation{exp: exp, arms: arms, hours: hours, perHour: 150, seed: 1}.run(t) // as the report fixture: the bounded error-rate test needs the users
	snap, err := st.Summaries(context.Background(), exp.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := st.Hourly(context.Background(), exp.ID, 1, reportT0, now)
	if err != nil {
		t.Fatal(err)
	}
	return BuildReport(exp, fixtureStatus(), fixtureTransitions(), snap, hs, now)
}

// TestCostRegressionNamed is the demo's case: the fine-tune is better on
// the primary and costs about twice as much per request. The decision
// promotes it; the verdict must say what it costs, in words and money.
func TestCostRegressionNamed(t *testing.T) {
	t.Parallel()
	exp := reportExperiment()
	exp.Report = &experiments.ReportConfig{Currency: "EUR"}
	now := reportT0.Add(72*time.Hour + 5*time.Minute)
	r := moneyReport(t, exp, []arm{{thumbs: 0.55, latencyMS: 820, errRate: 0.004}, {thumbs: 0.585, latencyMS: 790, errRate: 0.004, costMul: 2}}, 72, now)
	if r.Verdict.Kind != VerdictPromote {
		t.Fatalf("verdict %s: %s", r.Verdict.Kind, r.Verdict.Sentence)
	}
	s := r.Verdict.Sentence
	for _, want := range []string{"recommendation: promote", "1 significant regression: worse cost per request (+", "better mean latency", "costs €", "more a month"} {
		if !strings.Contains(s, want) {
			t.Errorf("verdict lacks %q:\n%s", want, s)
		}
	}
	m := r.Money
	if m == nil || len(m.Candidates) != 1 || m.Currency != "EUR" || m.Symbol != "€" {
		t.Fatalf("money %+v", m)
	}
	c := m.Candidates[0]
	// The fine-tune costs about $0.0005 more per request (base ~0.0005).
	perDay := -0.0005 * m.RequestsPerDay
	if !c.Significant || *c.PerDay > 0.8*perDay || *c.PerDay < 1.2*perDay || !(*c.PerDayLow <= *c.PerDay && *c.PerDay <= *c.PerDayHigh) || *c.PerDayHigh >= 0 {
		t.Errorf("saving per day %v [%v, %v], want about %v with an interval below zero", *c.PerDay, *c.PerDayLow, *c.PerDayHigh, perDay)
	}
	if got := *c.PerMonth / *c.PerDay; got < 30.4 || got > 30.5 {
		t.Errorf("month/day = %v", got)
	}
	// Every renderer carries the verdict and the money.
	for name, render := range map[string]func(*bytes.Buffer) error{
		"text": func(b *bytes.Buffer) error { return RenderText(b, r) },
		"md":   func(b *bytes.Buffer) error { return RenderMarkdown(b, r) },
		"html": func(b *bytes.Buffer) error { return renderPage(b, r, "") },
		"json": func(b *bytes.Buffer) error { return json.NewEncoder(b).Encode(r) },
	} {
		var b bytes.Buffer
		if err := render(&b); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		switch name {
		case "json":
			out = strings.NewReplacer(`\u0026`, "&", `\"`, `"`).Replace(out)
		case "md":
			out = strings.NewReplacer(`\_`, "_", `\*`, "*").Replace(out)
		case "html":
			out = html.UnescapeString(out)
		}
		if !strings.Contains(out, "significant regression") || !strings.Contains(out, c.Sentence[:40]) {
			t.Errorf("%s rendering lacks the regression or the money sentence", name)
		}
	}
}

// TestTimeToDecisionIgnoresObservedLift: the estimate is planned from the
// design and the base's data and traffic, so two candidates with
// different lifts on identical base data get the same plan.
func TestTimeToDecisionIgnoresObservedLift(t *testing.T) {
	t.Parallel()
	now := reportT0.Add(6*time.Hour + 20*time.Minute)
	var plans []*ReportETA
	for _, thumbs := range []float64{0.555, 0.60} {
		r := moneyReport(t, reportExperiment(), []arm{{thumbs: 0.55, latencyMS: 820, errRate: 0.004}, {thumbs: thumbs, latencyMS: 820, errRate: 0.004}}, 7, now)
		if r.TimeToDecision == nil {
			t.Fatalf("thumbs %v: no time to decision; verdict %s: %s", thumbs, r.Decision.Verdict, r.Verdict.Sentence)
		}
		plans = append(plans, r.TimeToDecision)
	}
	a, b := plans[0], plans[1]
	if a.UsersPerVariant != b.UsersPerVariant || a.UsersPerDay != b.UsersPerDay || a.Effect != 0.05 {
		t.Errorf("plans differ with the candidate's lift: %+v vs %+v", a, b)
	}
	if a.Days == nil || !(*a.Days > 0) || !strings.Contains(a.Sentence, "A decision is expected within about") {
		t.Errorf("eta %+v", a)
	}
}

// TestFirstMinutesChart: a report minutes into the first hour still
// draws lines: the period start at zero users and now.
func TestFirstMinutesChart(t *testing.T) {
	t.Parallel()
	now := reportT0.Add(10 * time.Minute)
	r := moneyReport(t, reportExperiment(), []arm{{thumbs: 0.55, latencyMS: 820}, {thumbs: 0.55, latencyMS: 820}}, 1, now)
	if len(r.Hourly) != 1 || !r.Hourly[0].AsOf.Equal(now) {
		t.Fatalf("hourly %+v, want one point as of %v", r.Hourly, now)
	}
	c := trafficChart(&r)
	for _, s := range c.Series {
		if len(s.Line) != 1 || strings.Count(s.Line[0], ",") < 2 {
			t.Errorf("%s: line %q, want at least two points", s.Name, s.Line)
		}
	}
	if len(c.XTicks) < 1 {
		t.Errorf("no time ticks on a 10-minute axis")
	}
}

// TestRelativeOnlyWhereTheBaseSupportsIt: a rare event's relative lift
// is not printed; its absolute lift is.
func TestRelativeOnlyWhereTheBaseSupportsIt(t *testing.T) {
	t.Parallel()
	r := fixtureReport(t)
	row := r.metric(experiments.MetricError).row(1)
	if row.RelReadable || row.RelLift == nil {
		t.Fatalf("error rate row %+v: want a relative lift marked unreadable", row)
	}
	for _, mv := range r.metricViews() {
		if mv.Name == experiments.MetricError && (mv.Rows[1].Lift != "n/a" || !strings.Contains(mv.Rows[1].AbsCI, "pp to")) {
			t.Errorf("error rate cells %+v", mv.Rows[1])
		}
	}
}
