package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"html"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (-update rewrites it):\n--- got ---\n%s", path, got)
	}
}

func TestReportGolden(t *testing.T) {
	r := fixtureReport(t)
	for _, tc := range []struct {
		file   string
		render func(*bytes.Buffer, Report) error
	}{
		{"report.txt.golden", func(b *bytes.Buffer, r Report) error { return RenderText(b, r) }},
		{"report.md.golden", func(b *bytes.Buffer, r Report) error { return RenderMarkdown(b, r) }},
		{"report.html.golden", func(b *bytes.Buffer, r Report) error { return renderPage(b, r, "") }},
		{"report.json.golden", func(b *bytes.Buffer, r Report) error {
			r.Hourly = r.Hourly[len(r.Hourly)-3:] // keep the file reviewable
			e := json.NewEncoder(b)
			e.SetIndent("", "  ")
			return e.Encode(r)
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

func near(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return math.Abs(*a-*b) <= 1e-12*math.Max(1, math.Abs(*b))
}

// The report's own intervals must be exactly the decision's, and the
// last hourly point must be the current state.
func TestReportAgreesWithDecision(t *testing.T) {
	r := fixtureReport(t)
	if len(r.Decision.Variants) != 1 {
		t.Fatalf("decision variants = %d", len(r.Decision.Variants))
	}
	for _, mr := range r.Decision.Variants[0].Metrics {
		row := r.metric(mr.Metric).row(1)
		lift, lo, hi := row.AbsLift, row.AbsCILow, row.AbsCIHigh
		if mr.Relative {
			lift, lo, hi = row.RelLift, row.RelCILow, row.RelCIHigh
		}
		if !near(lift, mr.Lift) || !near(lo, mr.CILow) || !near(hi, mr.CIHigh) {
			t.Errorf("%s: report %v [%v, %v], decision %v [%v, %v]", mr.Metric, *lift, *lo, *hi, *mr.Lift, *mr.CILow, *mr.CIHigh)
		}
	}
	last := r.Hourly[len(r.Hourly)-1]
	primary := r.metric("thumbs").row(1)
	if p := last.Lift[0]; !near(p.Lift, primary.RelLift) || !near(p.CILow, primary.RelCILow) || !near(p.CIHigh, primary.RelCIHigh) {
		t.Errorf("last hour lift %v, report %v", *p.Lift, *primary.RelLift)
	}
	for v, u := range last.Users {
		if u != r.Variants[v].Users {
			t.Errorf("variant %d: last hour has %v users, report %v", v, u, r.Variants[v].Users)
		}
	}
	if last.Verdict != r.Decision.Verdict {
		t.Errorf("last hour verdict %s, decision %s", last.Verdict, r.Decision.Verdict)
	}
	// Cumulative users never decrease, and the CI narrows as data comes in.
	for i := 1; i < len(r.Hourly); i++ {
		for v := range r.Hourly[i].Users {
			if r.Hourly[i].Users[v] < r.Hourly[i-1].Users[v] {
				t.Fatalf("hour %d: users of variant %d decrease", i, v)
			}
		}
	}
	var first *ReportPoint
	for i := range r.Hourly {
		if p := r.Hourly[i].Lift[0]; p.Lift != nil {
			first = &p
			break
		}
	}
	if first == nil || *first.CIHigh-*first.CILow <= *primary.RelCIHigh-*primary.RelCILow {
		t.Error("the first interval should be wider than the last")
	}
}

// binSum is a 0/1 metric with one observation per user.
func binSum(n, rate float64) experiments.Summary {
	k := math.Round(n * rate)
	// One observation per user: the user's own ratio is x (issue 11's SumR).
	return experiments.Summary{N: n, SumX: k, SumX2: k, SumY: n, SumY2: n, SumXY: k, SumR: k, SumR2: k}
}

// contSum is a continuous metric with one observation per user.
func contSum(n, mean, sd float64) experiments.Summary {
	sx := n * mean
	sx2 := (n-1)*sd*sd + n*mean*mean
	return experiments.Summary{N: n, SumX: sx, SumX2: sx2, SumY: n, SumY2: n, SumXY: sx, SumR: sx, SumR2: sx2}
}

type armData struct {
	users, thumbs, errRate, latency float64
}

func snapshotOf(arms ...armData) experiments.Snapshot {
	s := experiments.Snapshot{Stats: map[experiments.VariantMetric]experiments.Summary{}}
	for v, a := range arms {
		if a.users == 0 {
			continue
		}
		vm := func(m string) experiments.VariantMetric { return experiments.VariantMetric{Variant: v, Metric: m} }
		s.Stats[vm(experiments.MetricRequests)] = binSum(a.users, 1)
		s.Stats[vm(experiments.MetricThumbs)] = binSum(a.users, a.thumbs)
		s.Stats[vm(experiments.MetricError)] = binSum(a.users, a.errRate)
		s.Stats[vm(experiments.MetricLatencyMS)] = contSum(a.users, a.latency, 300)
	}
	return s
}

func twoArms(mod func(*experiments.Experiment)) *experiments.Experiment {
	e := &experiments.Experiment{
		ID: "e", Primary: "thumbs",
		Variants: []experiments.Variant{{Name: "base", Model: "m"}, {Name: "ft", Model: "m-ft", Weight: 50}},
	}
	if mod != nil {
		mod(e)
	}
	return e
}

func TestReportVerdicts(t *testing.T) {
	t.Parallel()
	running := ReportStatus{Status: "running", Step: -1}
	base := armData{users: 20000, thumbs: 0.50, errRate: 0.01, latency: 800}
	cases := []struct {
		name   string
		exp    *experiments.Experiment
		status ReportStatus
		snap   experiments.Snapshot
		kind   string
		rec    string
		want   []string // substrings of the sentence
		more   bool     // MoreUsersNeeded set
	}{
		{
			name: "promote", exp: twoArms(nil), status: running,
			snap: snapshotOf(base, armData{20000, 0.53, 0.01, 800}),
			kind: VerdictPromote, rec: "promote",
			want: []string{`Candidate "ft" raises the thumbs-up rate by 6.0% (anytime-valid 95% CI +`, "guardrails hold; recommendation: promote."},
		},
		{
			name: "inconclusive", exp: twoArms(nil), status: running,
			snap: snapshotOf(armData{2000, 0.50, 0.01, 800}, armData{2000, 0.51, 0.01, 800}),
			kind: VerdictInconclusve, rec: "keep running", more: true,
			want: []string{`Not enough evidence yet: candidate "ft" changes the thumbs-up rate by +2.0% (anytime-valid 95% CI -`, "more users per variant needed to detect a change of 5.0%"},
		},
		{
			name: "harm on error rate", exp: twoArms(nil), status: running,
			snap: snapshotOf(base, armData{20000, 0.53, 0.03, 800}),
			kind: VerdictHarm, rec: "roll back",
			want: []string{`Candidate "ft" makes the error rate worse by 2 pp (anytime-valid 95% CI +`, "more than the allowed 0.5 pp; recommendation: roll back."},
		},
		{
			name: "harm on latency", exp: twoArms(nil), status: running,
			snap: snapshotOf(base, armData{20000, 0.50, 0.01, 1000}),
			kind: VerdictHarm, rec: "roll back",
			want: []string{"makes the mean latency worse by 25.0%", "more than the allowed 10.0%"},
		},
		{
			name: "worse", exp: twoArms(nil), status: running,
			snap: snapshotOf(base, armData{20000, 0.46, 0.01, 800}),
			kind: VerdictWorse, rec: "roll back",
			want: []string{`Candidate "ft" lowers the thumbs-up rate by 8.0%`, "worse than the base model; recommendation: roll back."},
		},
		{
			name: "srm", exp: twoArms(nil), status: running,
			snap: snapshotOf(armData{20000, 0.5, 0.01, 800}, armData{18000, 0.5, 0.01, 800}),
			kind: VerdictSRM, rec: "check the assignment",
			want: []string{"The traffic split is broken: expected 50.0% / 50.0%, observed 52.6% / 47.4%", "Don't trust these numbers; check the assignment."},
		},
		{
			name: "srm against a ramp step", exp: twoArms(func(e *experiments.Experiment) {
				e.Rollout = &experiments.Rollout{Steps: []experiments.RampStep{{Percent: 10}, {Percent: 50}}}
			}), status: ReportStatus{Status: "running", Step: 0},
			snap: snapshotOf(armData{5000, 0.5, 0.01, 800}, armData{5000, 0.5, 0.01, 800}),
			kind: VerdictSRM, rec: "check the assignment",
			want: []string{"expected 90.0% / 10.0%, observed 50.0% / 50.0%"},
		},
		{
			name: "srm at a later ramp step", exp: twoArms(func(e *experiments.Experiment) {
				e.Rollout = &experiments.Rollout{Steps: []experiments.RampStep{{Percent: 10}, {Percent: 50}}}
			}), status: ReportStatus{Status: "running", Step: 1},
			snap: snapshotOf(armData{5000, 0.5, 0.01, 800}, armData{4000, 0.5, 0.01, 800}),
			kind: VerdictSRM, rec: "check the assignment",
			want: []string{"expected 50.0% / 50.0%", "an engagement effect"},
		},
		{
			name: "too few users", exp: twoArms(nil), status: running,
			snap: snapshotOf(armData{40, 0.5, 0.01, 800}, armData{42, 0.6, 0.01, 800}),
			kind: VerdictTooFew, rec: "keep running",
			want: []string{"Too few users to judge yet: the smallest variant has 40 users and the analysis starts at 100 per variant"},
		},
		{
			name: "no data", exp: twoArms(nil), status: running, snap: snapshotOf(),
			kind: VerdictNoData, rec: "keep running",
			want: []string{"No data yet: no user has reached this experiment"},
		},
		{
			name: "draft", exp: twoArms(nil), status: ReportStatus{Status: "draft", Step: -1}, snap: snapshotOf(),
			kind: VerdictNoData, rec: "start it when ready",
			want: []string{"the experiment has not started"},
		},
		{
			name: "futility", exp: twoArms(func(e *experiments.Experiment) {
				e.Rollout = &experiments.Rollout{MaxUsers: 20000}
			}), status: running,
			snap: snapshotOf(base, armData{20000, 0.501, 0.01, 800}),
			kind: VerdictFutility, rec: "stop and keep the base model",
			want: []string{"No clear difference after the maximum of 20,000 users per variant: candidate \"ft\" changes the thumbs-up rate by +0.20%"},
		},
		{
			name: "guardrails pending", exp: twoArms(nil), status: running,
			snap: snapshotOf(armData{3000, 0.50, 0.01, 800}, armData{3000, 0.58, 0.01, 800}),
			kind: VerdictGuardrails, rec: "keep running",
			want: []string{`Candidate "ft" raises the thumbs-up rate by 16.0%`, "but the guardrails can't rule out harm yet (error rate)"},
		},
		{
			name: "lower is better primary with msprt", exp: twoArms(func(e *experiments.Experiment) {
				e.Primary = "latency_ms"
				e.Rollout = &experiments.Rollout{Method: "msprt", Guardrails: []experiments.Guardrail{{Metric: "error", Margin: 0.01}}}
			}), status: running,
			snap: snapshotOf(base, armData{20000, 0.50, 0.01, 700}),
			kind: VerdictPromote, rec: "promote",
			want: []string{`Candidate "ft" lowers the mean latency by 12.5%`},
		},
		{
			name: "three candidates", exp: &experiments.Experiment{ID: "e3", Primary: "thumbs", Variants: []experiments.Variant{
				{Name: "base"}, {Name: "a", Weight: 25}, {Name: "b", Weight: 25}, {Name: "c", Weight: 25},
			}}, status: running,
			snap: snapshotOf(base, armData{20000, 0.50, 0.01, 800}, armData{20000, 0.54, 0.01, 800}, armData{20000, 0.52, 0.03, 800}),
			kind: VerdictHarm, rec: "roll back",
			want: []string{`Candidate "c" makes the error rate worse`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := BuildReport(tc.exp, tc.status, nil, tc.snap, nil, reportT0)
			v := r.Verdict
			t.Logf("%s %q", v.Sentence, v.Details)
			if v.Kind != tc.kind || v.Recommendation != tc.rec {
				t.Errorf("kind %q rec %q, want %q %q (decision %s %v)\n%s", v.Kind, v.Recommendation, tc.kind, tc.rec, r.Decision.Verdict, r.Decision.Reasons, v.Sentence)
			}
			for _, w := range tc.want {
				if !strings.Contains(v.Sentence, w) {
					t.Errorf("sentence %q\n lacks %q", v.Sentence, w)
				}
			}
			if (v.MoreUsersNeeded != nil) != tc.more {
				t.Errorf("MoreUsersNeeded = %v, want set %v", v.MoreUsersNeeded, tc.more)
			}
			if len(tc.exp.Variants) > 2 && len(v.Details) != len(tc.exp.Variants)-1 {
				t.Errorf("details = %q", v.Details)
			}
			if _, err := json.Marshal(r); err != nil {
				t.Errorf("report does not encode: %v", err)
			}
			for _, render := range []func(*bytes.Buffer, Report) error{
				func(b *bytes.Buffer, r Report) error { return RenderText(b, r) },
				func(b *bytes.Buffer, r Report) error { return RenderMarkdown(b, r) },
				func(b *bytes.Buffer, r Report) error { return renderPage(b, r, "") },
			} {
				var b bytes.Buffer
				if err := render(&b, r); err != nil {
					t.Fatal(err)
				}
				if head := v.Sentence[:20]; !strings.Contains(html.UnescapeString(b.String()), head) {
					t.Errorf("rendering lacks the verdict %q", head)
				}
			}
		})
	}
}

func TestReportMetricStatuses(t *testing.T) {
	t.Parallel()
	r := BuildReport(twoArms(nil), ReportStatus{Status: "running", Step: -1}, nil,
		snapshotOf(armData{20000, 0.5, 0.01, 800}, armData{20000, 0.53, 0.01, 800}), nil, reportT0)
	want := map[string]string{"thumbs": RowBetter, "error": RowNonInferior, "latency_ms": RowNonInferior}
	for _, m := range r.Metrics {
		if m.Rows[0].Status != RowControl {
			t.Errorf("%s control status %q", m.Name, m.Rows[0].Status)
		}
		if got := m.Rows[1].Status; got != want[m.Name] {
			t.Errorf("%s status %q, want %q", m.Name, got, want[m.Name])
		}
	}
	if got := []string{r.Metrics[0].Label, r.Metrics[1].Label, r.Metrics[2].Label}; strings.Join(got, "|") != "thumbs-up rate|error rate|mean latency (ms)" {
		t.Errorf("labels %q", got)
	}
	if r.SRM.Status != "ok" || r.Policy.Guardrails[0].Margin != 0.005 || !r.Policy.Guardrails[1].Relative {
		t.Errorf("srm %+v policy %+v", r.SRM, r.Policy)
	}
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{fmtPct(0.041), "4.1%"},
		{fmtSignedPct(0.012), "+1.2%"},
		{fmtSignedPct(-0.0708), "-7.1%"},
		{fmtSignedPct(0.0031), "+0.31%"},
		{fmtCount(1234567), "1,234,567"},
		{fmtCount(-1200), "-1,200"},
		{fmtAbout(12345), "12,000"},
		{fmtAbout(87), "87"},
		{fmtP(0.0312), "0.031"},
		{fmtP(2.5e-7), "< 0.001"},
		{fmtP(7.3e-50), "< 0.001"},
		{pEq(0), "p < 0.001"},
		{fmtValue("cost", 0.000499), "0.000499"},
		{fmtNum(1.52e-06), "0.0000015"},
		{fmtSig(1234.5, 3), "1230"},
		{fmtDays(0.2), "5 hours"},
		{fmtDays(3.2), "3.5 days"},
		{fmtDays(12.1), "13 days"},
		{fmtP(1), "1"},
		{fmtValue("rate", 0.0039), "0.39%"},
		{fmtValue("ms", 822.4), "822 ms"},
		{fmtSignedAbs("rate", 0.005), "+0.5 pp"},
		{fmtSignedAbs("ms", -32.88), "-32.9 ms"},
		{fmtConfidence(0.95), "95%"},
		{fmtConfidence(0.99), "99%"},
		{fmtTickPct(0.1), "+10%"},
		{fmtTickPct(-0.025), "-2.5%"},
		{fmtTickPct(0), "0%"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestReportSourceErrors(t *testing.T) {
	t.Parallel()
	h, _ := fixtureServer(t)
	if _, err := h.Report(context.Background(), "nope"); !errors.Is(err, experiments.ErrNotFound) {
		t.Errorf("unknown experiment: %v", err)
	}
	h.src.(*fakeSource).err = errors.New("lifecycle down")
	if _, err := h.Report(context.Background(), "support-bot-ft"); err == nil || !strings.Contains(err.Error(), "lifecycle down") {
		t.Errorf("status error: %v", err)
	}
}

// BenchmarkBuildReport: a 90-day experiment with two candidates, hourly.
func BenchmarkBuildReport(b *testing.B) {
	exp := &experiments.Experiment{ID: "bench", Primary: "thumbs", Variants: []experiments.Variant{
		{Name: "base"}, {Name: "a", Weight: 33.33}, {Name: "b", Weight: 33.33},
	}}
	var hours []experiments.HourSummaries
	snap := experiments.Snapshot{Stats: map[experiments.VariantMetric]experiments.Summary{}}
	for h := range 90 * 24 {
		one := snapshotOf(armData{50, 0.5, 0.01, 800}, armData{50, 0.51, 0.01, 790}, armData{50, 0.5, 0.01, 810})
		hours = append(hours, experiments.HourSummaries{Hour: reportT0.Add(time.Duration(h) * time.Hour), Stats: one.Stats})
		for k, v := range one.Stats {
			snap.Stats[k] = snap.Stats[k].Add(v)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		r := BuildReport(exp, ReportStatus{Status: "running", Step: -1}, nil, snap, hours, reportT0)
		if len(r.Hourly) != len(hours) || r.Decision.Verdict == stats.HaltSRM {
			b.Fatal("unexpected report")
		}
	}
}
