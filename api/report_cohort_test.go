package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
)

// TestReportCohort: at a later ramp step the report says which users the
// verdict reads (rollout.cohort) and counts the returning users per arm;
// with "new" the traffic table, the SRM check and the verdict read the
// newly exposed users, so an arm that keeps more of its users (an
// engagement effect) no longer halts the step; with "all" the same data
// halt it, with the engagement sentence.
func TestReportCohort(t *testing.T) {
	t.Parallel()
	step2 := ReportStatus{Status: "running", Step: 1}
	exp := func(cohort string) *experiments.Experiment {
		return twoArms(func(e *experiments.Experiment) {
			e.Rollout = &experiments.Rollout{Cohort: cohort, Steps: []experiments.RampStep{{Percent: 10}, {Percent: 50}, {Percent: 100}}}
		})
	}
	// Every active user: the candidate kept more of its users (5 000
	// against 4 000). First exposed in step 2: 600 and 604 at 50/50.
	snap := snapshotOf(armData{4000, 0.5, 0.01, 800}, armData{5000, 0.5, 0.01, 800})
	fresh := snapshotOf(armData{600, 0.5, 0.01, 800}, armData{604, 0.5, 0.01, 800})
	snap.Fresh = fresh.Stats

	r := BuildReport(exp(experiments.CohortNew), step2, nil, snap, nil, reportT0)
	c := r.Cohort
	if c == nil || !c.FirstExposedOnly || c.Unavailable || c.Cohort != "new" {
		t.Fatalf("cohort section %+v", c)
	}
	for _, want := range []string{
		"Step 2 is analysed on the 1,204 users first exposed in it; 7,796 users returning from earlier steps are not in the verdict",
		"base 3,400, ft 4,396",
	} {
		if !strings.Contains(c.Sentence, want) {
			t.Errorf("sentence %q lacks %q", c.Sentence, want)
		}
	}
	if r.Variants[0].Users != 600 || r.Variants[1].Users != 604 || r.SRM.Status != "ok" || r.Verdict.Kind == VerdictSRM {
		t.Errorf("cohort new: users %v/%v, SRM %s, verdict %s: want the first-exposed users, no SRM halt",
			r.Variants[0].Users, r.Variants[1].Users, r.SRM.Status, r.Verdict.Kind)
	}
	var txt strings.Builder
	if err := RenderText(&txt, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(txt.String(), c.Sentence) {
		t.Error("the text report lacks the cohort sentence")
	}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"first_exposed_only":true`, `"users":[600,604]`, `"returning":[3400,4396]`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON lacks %s", want)
		}
	}

	// The first step: everyone is first exposed in it.
	first := fresh
	first.Fresh = fresh.Stats
	if r := BuildReport(exp(experiments.CohortNew), ReportStatus{Status: "running", Step: 0}, nil, first, nil, reportT0); r.Cohort == nil ||
		r.Cohort.Sentence != "Step 1 is analysed on the 1,204 users first exposed in it; no user has returned from an earlier step." {
		t.Errorf("step 1: %+v", r.Cohort)
	}

	r = BuildReport(exp(experiments.CohortAll), step2, nil, snap, nil, reportT0)
	if c := r.Cohort; c == nil || c.FirstExposedOnly || !strings.Contains(c.Sentence, "Step 2 is analysed on all 9,000 active users, including users returning from earlier steps") {
		t.Errorf("cohort all: %+v", c)
	}
	if r.Verdict.Kind != VerdictSRM || !strings.Contains(r.Verdict.Sentence, "an engagement effect") {
		t.Errorf("cohort all: verdict %s %q, want the SRM halt with the engagement sentence", r.Verdict.Kind, r.Verdict.Sentence)
	}

	if r := BuildReport(twoArms(nil), ReportStatus{Status: "running", Step: -1}, nil, snap, nil, reportT0); r.Cohort != nil {
		t.Errorf("no rollout: cohort section %+v", r.Cohort)
	}
}
