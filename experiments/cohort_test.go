package experiments_test

import (
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// TestCohort: rollout.cohort defaults to "new", which turns the
// first-exposure record on without CUPED (covariates without metrics) and
// makes RolloutInput read the newly exposed users' sums, falling back to
// every active user, visibly, when the store kept none; "all" reads every
// active user.
func TestCohort(t *testing.T) {
	t.Parallel()
	withRollout := strings.Replace(minimalYAML, "    variants:", "    rollout: {steps: [{percent: 10}, {percent: 50}]}\n    variants:", 1)
	def := mustParse(t, withRollout, noEnv).Experiment("exp")
	all := mustParse(t, strings.Replace(withRollout, "rollout: {", "rollout: {cohort: all, ", 1), noEnv).Experiment("exp")
	cuped := mustParse(t, strings.Replace(withRollout, "    variants:", "    cuped: true\n    variants:", 1), noEnv).Experiment("exp")
	norollout := mustParse(t, minimalYAML, noEnv).Experiment("exp")
	if def.CohortOrDefault() != experiments.CohortNew || all.CohortOrDefault() != experiments.CohortAll || norollout.CohortOrDefault() != experiments.CohortAll {
		t.Fatalf("cohorts: default %q, all %q, no rollout %q", def.CohortOrDefault(), all.CohortOrDefault(), norollout.CohortOrDefault())
	}
	if c := experiments.NewCovariates(def); c == nil || len(c.Metrics) != 0 || c.SaltPhase != 1 || c.HistoryTTL <= 0 {
		t.Errorf("cohort new without cuped: covariates %+v, want the record without metrics", c)
	}
	if c := experiments.NewCovariates(all); c != nil {
		t.Errorf("cohort all without cuped: covariates %+v, want none", c)
	}
	if c := experiments.NewCovariates(cuped); c == nil || len(c.Metrics) == 0 {
		t.Errorf("cuped: covariates %+v, want metrics", c)
	}
	if experiments.MetricSpec(def, experiments.MetricThumbs, false).CUPED {
		t.Error("cohort new turned CUPED on")
	}

	vm := func(v int, m string) experiments.VariantMetric {
		return experiments.VariantMetric{Variant: v, Metric: m}
	}
	snap := experiments.Snapshot{
		Stats: map[experiments.VariantMetric]experiments.Summary{
			vm(0, experiments.MetricRequests): {N: 900, SumX: 900, SumY: 900}, vm(1, experiments.MetricRequests): {N: 600, SumX: 600, SumY: 600},
			vm(0, experiments.MetricError): {N: 900, SumX: 90, SumY: 900}, vm(1, experiments.MetricError): {N: 600, SumX: 30, SumY: 600},
		},
		Fresh: map[experiments.VariantMetric]experiments.Summary{
			vm(0, experiments.MetricRequests): {N: 400, SumX: 400, SumY: 400}, vm(1, experiments.MetricRequests): {N: 410, SumX: 410, SumY: 410},
			vm(0, experiments.MetricError): {N: 400, SumX: 40, SumY: 400}, vm(1, experiments.MetricError): {N: 410, SumX: 41, SumY: 410},
		},
	}
	input := func(e *experiments.Experiment, s experiments.Snapshot) stats.Input {
		st := experiments.State{Status: experiments.StatusRunning, Step: 1}
		return experiments.RolloutInput(e, s, e.AllocationFor(st), e.PolicyAt(1, 1, experiments.Prior{}))
	}
	in := input(def, snap)
	if in.Users[0] != 400 || in.Users[1] != 410 || in.Metrics[experiments.MetricError][1].SumX != 41 {
		t.Errorf("cohort new: users %v, error %+v; want the fresh sums", in.Users, in.Metrics[experiments.MetricError])
	}
	c, _ := experiments.AnalysisCohort(def, snap)
	counted, returning := experiments.CohortUsers(def, snap, c)
	if !c.Fresh || c.Unavailable || counted[1] != 410 || returning[0] != 500 || returning[1] != 190 {
		t.Errorf("cohort new: %+v, counted %v, returning %v", c, counted, returning)
	}
	if in := input(all, snap); in.Users[0] != 900 || in.Metrics[experiments.MetricError][1].SumX != 30 {
		t.Errorf("cohort all: users %v, want every active user", in.Users)
	}
	noFresh := snap
	noFresh.Fresh = nil
	c, _ = experiments.AnalysisCohort(def, noFresh)
	if in := input(def, noFresh); in.Users[0] != 900 || c.Fresh || !c.Unavailable {
		t.Errorf("cohort new without fresh sums: users %v, cohort %+v; want all users, marked unavailable", in.Users, c)
	}
	if c, _ := experiments.AnalysisCohort(def, experiments.Snapshot{}); c.Unavailable {
		t.Errorf("no data at all is not a missing record: %+v", c)
	}
}
