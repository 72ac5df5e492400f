package experiments_test

import (
	"math"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/storetest"
)

// TestPeriodPrior: the control arm's per-user mean of the analysed value
// (the user's own ratio for a Ratio metric) and the within-arm CUPED
// coefficient, for the bounded metrics the experiment decides on; PriorOf
// takes the newest transition that has them; PolicyAt centres the
// bounded metrics with them (and gives θ), leaving the rest alone.
func TestPeriodPrior(t *testing.T) {
	t.Parallel()
	e := storetest.RolloutExperiment("x", 1, 10, 50)
	e.Rollout.Guardrails = []experiments.Guardrail{{Metric: experiments.MetricError, Margin: 0.02}}
	snap := experiments.Snapshot{Stats: map[experiments.VariantMetric]experiments.Summary{}}
	add := func(v int, m string, x, y, z float64) {
		k := experiments.VariantMetric{Variant: v, Metric: m}
		snap.Stats[k] = snap.Stats[k].Add(experiments.SummaryDelta(true, 0, 0, x, y, z))
	}
	// Control: four users; error rates 0, 1/2, 1, 0 with covariates 0, 0.5, 1, 0 (θ = 1);
	// thumbs 1, 0, 1, 1 without covariates.
	for i, u := range [][2]float64{{0, 2}, {1, 2}, {3, 3}, {0, 1}} {
		add(0, experiments.MetricError, u[0], u[1], []float64{0, 0.5, 1, 0}[i])
		add(0, experiments.MetricThumbs, []float64{1, 0, 1, 1}[i], 1, 0)
		add(1, experiments.MetricError, 1, 1, 0.3) // the candidate does not count
	}
	pr := experiments.PeriodPrior(&e, snap)
	er, th := pr[experiments.MetricError], pr[experiments.MetricThumbs]
	if math.Abs(er.Center-0.375) > 1e-12 || er.Theta == nil || math.Abs(*er.Theta-1) > 1e-12 {
		t.Errorf("error prior %+v, want centre 0.375 (mean of the users' own rates), θ 1", er)
	}
	if math.Abs(th.Center-0.75) > 1e-12 || th.Theta != nil {
		t.Errorf("thumbs prior %+v, want centre 0.75 and no θ (no covariate)", th)
	}
	if _, ok := pr[experiments.MetricLatencyMS]; ok {
		t.Error("latency has no bounds without a cap: no prior")
	}

	h := []experiments.Transition{
		{Action: experiments.ActionStart},
		{Action: experiments.ActionAdvance, Prior: map[string]experiments.MetricPrior{experiments.MetricError: {Center: 0.9}}},
		{Action: experiments.ActionAdvance, Prior: pr},
		{Action: experiments.ActionPause}, {Action: experiments.ActionResume},
	}
	prior := experiments.PriorOf(h)
	if prior.Metrics[experiments.MetricError].Center != 0.375 {
		t.Errorf("PriorOf took %+v, want the newest", prior.Metrics)
	}
	p := e.PolicyAt(1, 1, prior)
	if c := p.Primary.Center; c == nil || *c != 0.75 {
		t.Errorf("primary centre %v, want 0.75", c)
	}
	g := p.Guardrails[0]
	if g.Center == nil || *g.Center != 0.375 || g.CUPEDTheta == nil || *g.CUPEDTheta != 1 {
		t.Errorf("guardrail %+v, want centre 0.375 and θ 1", g.Metric)
	}
	// A centre outside the metric's bounds (a changed cap) is not used.
	bad := experiments.Prior{Metrics: map[string]experiments.MetricPrior{experiments.MetricThumbs: {Center: 7}}}
	if p := e.PolicyAt(1, 1, bad); p.Primary.Center != nil {
		t.Errorf("centre 7 on [0,1] used: %v", *p.Primary.Center)
	}
	// Without any prior: no centre, the policy as before.
	if p := e.PolicyAt(1, 1, experiments.Prior{}); p.Primary.Center != nil || p.Guardrails[0].CUPEDTheta != nil {
		t.Error("centre without a prior")
	}
}
