package experiments

import (
	"maps"
	"math"

	"github.com/abgate/abgate/stats"
)

// MetricPrior is what a finished data period fixes for the next
// period's bounded test of one metric (stats.BoundedPrior of the
// period's control arm): the centre and, with CUPED covariates, the CUPED
// coefficient. Both are numbers of data that is over when the next
// period starts, so the next period's test stays valid whatever they are
// (docs/statistics.md §2.9, §2.10); a good centre and θ only make it
// faster.
type MetricPrior struct {
	Center float64  `json:"center"`
	Theta  *float64 `json:"cuped_theta,omitempty"`
}

// Prior is what a period's policy takes from the periods before it, for
// Experiment.PolicyAt: the guardrails' carried log e-values
// (CarriedLogE, used with rollout.carry_over) and each bounded metric's
// MetricPrior from the newest period the controller closed (PriorOf).
// The controller and the reports both build it with PriorOf from the
// history, so they decide with the same policy.
type Prior struct {
	LogE    map[string][]float64
	Metrics map[string]MetricPrior
}

// PeriodPrior is the MetricPrior of every bounded metric the experiment
// decides on (the full policy's primary, cost metric and guardrails),
// from the control arm of a period's snapshot. The controller stores it
// with the advance that closes the period (Transition.Prior).
func PeriodPrior(e *Experiment, snap Snapshot) map[string]MetricPrior {
	p := e.Policy(-1)
	ms := []stats.Metric{p.Primary}
	if p.Rule != stats.PrimaryRule {
		ms = append(ms, p.CostMetric)
	}
	for _, g := range p.Guardrails {
		ms = append(ms, g.Metric)
	}
	var out map[string]MetricPrior
	for _, m := range ms {
		if m.Bounds == nil {
			continue
		}
		if _, done := out[m.Name]; done {
			continue
		}
		c, th, ok := stats.BoundedPrior(snap.Stats[VariantMetric{0, m.Name}], m.Kind)
		if !ok {
			continue
		}
		mp := MetricPrior{Center: c}
		if !math.IsNaN(th) { // the stores kept covariates
			mp.Theta = &th
		}
		if out == nil {
			out = map[string]MetricPrior{}
		}
		out[m.Name] = mp
	}
	return out
}

// PriorOf is the Prior of the period that follows history: CarriedLogE,
// and the MetricPriors of the newest transition that has them (the
// advance that closed the newest finished period; any earlier period
// would be as valid, the newest is the closest to the current one).
func PriorOf(history []Transition) Prior {
	p := Prior{LogE: CarriedLogE(history)}
	for i := len(history) - 1; i >= 0; i-- {
		if len(history[i].Prior) > 0 {
			p.Metrics = maps.Clone(history[i].Prior)
			break
		}
	}
	return p
}

// applyPrior sets a bounded metric's centre and CUPED θ from prior.
func applyPrior(m *stats.Metric, prior map[string]MetricPrior) {
	mp, ok := prior[m.Name]
	if !ok || m.Bounds == nil || !(mp.Center >= m.Bounds.Lo && mp.Center <= m.Bounds.Hi) {
		return
	}
	c := mp.Center
	m.Center = &c
	if mp.Theta != nil && *mp.Theta >= 0 && *mp.Theta <= 1 { // used with m.CUPED
		th := *mp.Theta
		m.CUPEDTheta = &th
	}
}
