//go:build simulation

package stats

import (
	"math"
	"testing"
)

// Heavy Monte Carlo: go test -tags simulation -run Sim -v ./stats/
// The figures are reproduced in docs/statistics.md.

func TestSimHeavyAA(t *testing.T) {
	t.Parallel()
	for _, cfg := range []simConfig{
		{experiments: 10000, looks: 100, batch: 100, p0: 0.1, alpha: 0.05, seed: 11, withDecide: true},
		{experiments: 10000, looks: 100, batch: 100, mu: 10, sd: 3, alpha: 0.05, seed: 12},
		{experiments: 10000, looks: 100, batch: 20, p0: 0.02, alpha: 0.05, seed: 13},
	} {
		res := simulate(cfg)
		t.Log("\n" + formatSim(cfg, res))
		checkAA(t, cfg, res)
	}
}

func TestSimHeavyAB(t *testing.T) {
	t.Parallel()
	// 10% base rate, up to 20000 users/arm, effects of +5%, +10%, +15%
	// relative; mSPRT uses the default τ (5% of the base rate).
	for i, eff := range []float64{0.005, 0.01, 0.015} {
		cfg := simConfig{experiments: 4000, looks: 100, batch: 200, p0: 0.1, effect: eff, alpha: 0.05, seed: uint64(21 + i), withDecide: true}
		res := simulate(cfg)
		t.Log("\n" + formatSim(cfg, res))
	}
}

// TestSimHeavyPlan checks the planning helper: the sequential sample size
// gives at least the requested power for the confidence sequence.
func TestSimHeavyPlan(t *testing.T) {
	t.Parallel()
	in := PlanInput{BaselineMean: 0.1, Lift: 0.1, Relative: true, Power: 0.8}
	pl := SampleSize(in, ConfidenceSequenceMethod, 0, 0, nil)
	looks := 100
	batch := int(math.Ceil(pl.Sequential / float64(looks)))
	cfg := simConfig{experiments: 4000, looks: looks, batch: batch, p0: 0.1, effect: 0.01, alpha: 0.05, seed: 31}
	res := simulate(cfg)
	t.Logf("plan %+v\n%s", pl, formatSim(cfg, res))
	pw := float64(res[2].correct) / float64(cfg.experiments)
	if pw < 0.8-3*math.Sqrt(0.8*0.2/float64(cfg.experiments)) {
		t.Errorf("confidence sequence power at the planned size %.3f < 0.8", pw)
	}
	fpw := float64(res[1].correct) / float64(cfg.experiments)
	t.Logf("power at planned sequential size: CS %.4f; fixed-horizon at that size %.4f (plan fixed n = %.0f)", pw, fpw, pl.Fixed)
}
