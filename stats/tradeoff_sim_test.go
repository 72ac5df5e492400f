//go:build simulation

package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Seeded Monte Carlo of the trade-off rules' intersection-union tests:
//
//	go test -tags simulation -run SimTradeOff -v ./stats/
//
// Each run streams users into both arms (per user a quality score and a
// spend, both normal), looks every 250 users per arm up to 10,000, with
// the controller's settings (one-sided confidence sequences at α = 0.05,
// N* tuned to the maximum), and stops at the first Promote. The figures
// are in docs/statistics.md ("Trade-off rules").

type tradeOffWorld struct {
	rule             Rule
	q0, q1, c0, c1   float64 // true means of quality and cost per arm
	qSD, cSD         float64
	qMargin, cMargin float64
	look, max, reps  int
	seed             uint64
}

// promoteRate returns the share of runs that promoted.
func (w tradeOffWorld) promoteRate() float64 {
	p := Policy{Primary: Metric{Name: "quality"}, CostMetric: Metric{Name: "cost", Better: LowerIsBetter},
		Rule: w.rule, QualityMargin: w.qMargin, CostMargin: w.cMargin, OneSided: true,
		MinUsers: 100, NStar: float64(2 * w.max)}
	promoted := 0
	for r := range w.reps {
		rng := rand.New(rand.NewPCG(w.seed, uint64(r)))
		var s [2][2]Summary // [arm][quality, cost]
		add := func(sm *Summary, x float64) { sm.N++; sm.SumX += x; sm.SumX2 += x * x }
		for n := w.look; n <= w.max; n += w.look {
			for range w.look {
				add(&s[0][0], w.q0+w.qSD*rng.NormFloat64())
				add(&s[0][1], w.c0+w.cSD*rng.NormFloat64())
				add(&s[1][0], w.q1+w.qSD*rng.NormFloat64())
				add(&s[1][1], w.c1+w.cSD*rng.NormFloat64())
			}
			in := Input{Users: []float64{float64(n), float64(n)}, Metrics: map[string][]Summary{
				"quality": {s[0][0], s[1][0]}, "cost": {s[0][1], s[1][1]}}}
			if Decide(in, p).Verdict == Promote {
				promoted++
				break
			}
		}
	}
	return float64(promoted) / float64(w.reps)
}

func TestSimTradeOff(t *testing.T) {
	const alpha, reps = 0.05, 1000
	base := tradeOffWorld{q0: 0.7, qSD: 0.4, c0: 1, cSD: 0.5, qMargin: 0.02, cMargin: 0.05, look: 250, max: 10000, reps: reps}
	for _, tc := range []struct {
		name string
		w    func(tradeOffWorld) tradeOffWorld
		null bool
	}{
		// cost_saving's null at its edge: quality exactly δ worse, cost
		// clearly lower (the cost component rejects almost surely, so the
		// IUT's size is the quality component's).
		{"cost_saving: quality at the margin, cost 20% lower", func(w tradeOffWorld) tradeOffWorld {
			w.rule, w.q1, w.c1 = CostSavingRule, w.q0-w.qMargin, 0.8
			return w
		}, true},
		// The other edge: quality equal, cost not lower.
		{"cost_saving: quality equal, cost equal", func(w tradeOffWorld) tradeOffWorld {
			w.rule, w.q1, w.c1 = CostSavingRule, w.q0, w.c0
			return w
		}, true},
		{"cost_saving power: quality equal, cost 5% lower", func(w tradeOffWorld) tradeOffWorld {
			w.rule, w.q1, w.c1 = CostSavingRule, w.q0, 0.95
			return w
		}, false},
		{"cost_saving power: quality equal, cost 10% lower", func(w tradeOffWorld) tradeOffWorld {
			w.rule, w.q1, w.c1 = CostSavingRule, w.q0, 0.90
			return w
		}, false},
		// The quality component limits power: a wider margin raises it.
		{"cost_saving power: quality equal, cost 10% lower, δ = 0.03", func(w tradeOffWorld) tradeOffWorld {
			w.rule, w.q1, w.c1, w.qMargin = CostSavingRule, w.q0, 0.90, 0.03
			return w
		}, false},
		// quality_within_budget's null at its edge: cost exactly at the
		// budget margin, quality clearly better.
		{"quality_within_budget: cost at the margin, quality +0.05", func(w tradeOffWorld) tradeOffWorld {
			w.rule, w.q1, w.c1 = QualityWithinBudgetRule, w.q0+0.05, w.c0+w.cMargin
			return w
		}, true},
		{"quality_within_budget power: quality +0.03, cost equal", func(w tradeOffWorld) tradeOffWorld {
			w.rule, w.q1, w.c1 = QualityWithinBudgetRule, w.q0+0.03, w.c0
			return w
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.w(base)
			w.seed = 15
			rate := w.promoteRate()
			se := math.Sqrt(alpha * (1 - alpha) / reps)
			if tc.null {
				t.Logf("false-promote rate %.3f (α = %.2f, %d runs)", rate, alpha, reps)
				if rate > alpha+3*se {
					t.Errorf("false-promote rate %.3f > α + 3 SE = %.3f", rate, alpha+3*se)
				}
				return
			}
			t.Logf("power %.3f (%d runs, ≤ %d users per arm)", rate, reps, w.max)
		})
	}
}
