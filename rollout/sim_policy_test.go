//go:build simulation

package rollout_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// TestSimPolicyAtMargin (issue 11): the controller's own call at a 5% ramp
// step, through the real Experiment.Policy and stats.Decide, with each
// metric shape's truth exactly at its guardrail margin. A false advance
// is a look at which Decide says Advance. "old" is the policy as it was
// (two-sided, no bounds, default N*); "new" is Experiment.Policy today
// (one-sided, bounded metrics). Looks every 5% growth of the candidate
// arm from 100 users; seeded.
//
//	go test -tags simulation -run TestSimPolicyAtMargin -v ./rollout/
func TestSimPolicyAtMargin(t *testing.T) {
	const (
		runs  = 1000
		share = 0.05
		maxN1 = 5000 // candidate users
	)
	marks := []float64{200, 1000, 5000}
	shapes := marginShapes()
	type row struct{ old, new [3]float64 }
	results := make([]row, len(shapes))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for si, sh := range shapes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			e := experiments.Experiment{ID: "sim", Caps: sh.caps, Primary: experiments.MetricThumbs,
				Variants: []experiments.Variant{{Name: "base"}, {Name: "cand"}},
				Rollout:  &experiments.Rollout{Alpha: 0.05, MinUsers: 100, Guardrails: []experiments.Guardrail{sh.g}, Steps: []experiments.RampStep{{Percent: 5}, {Percent: 50}}}}
			pNew := e.Policy(0)
			pOld := pNew
			pOld.OneSided = false
			pOld.Guardrails = append([]stats.Guardrail(nil), pNew.Guardrails...)
			for i := range pOld.Guardrails {
				pOld.Guardrails[i].Bounds = nil
			}
			var oldHits, newHits [3]int
			for run := range runs {
				r := rand.New(rand.NewPCG(uint64(si), uint64(run)))
				var ss [2]stats.Summary
				oldAt, newAt := math.Inf(1), math.Inf(1)
				next := 100.0
				for ss[1].N < maxN1 && (math.IsInf(oldAt, 1) || math.IsInf(newAt, 1)) {
					v := 0
					if r.Float64() < share {
						v = 1
					}
					x, y := sh.user(r, v == 1)
					ss[v] = ss[v].Add(experiments.SummaryDelta(true, 0, 0, x, y, 0))
					if ss[1].N < next || ss[0].N < 100 {
						continue
					}
					next = math.Ceil(ss[1].N * 1.05)
					in := stats.Input{Users: []float64{ss[0].N, ss[1].N}, ExpectedSplit: []float64{1 - share, share},
						Metrics: map[string][]stats.Summary{sh.metric: {ss[0], ss[1]}}}
					if math.IsInf(oldAt, 1) && stats.Decide(in, pOld).Verdict == stats.Advance {
						oldAt = ss[1].N
					}
					if math.IsInf(newAt, 1) && stats.Decide(in, pNew).Verdict == stats.Advance {
						newAt = ss[1].N
					}
				}
				for k, m := range marks {
					if oldAt <= m {
						oldHits[k]++
					}
					if newAt <= m {
						newHits[k]++
					}
				}
			}
			for k := range marks {
				results[si].old[k] = float64(oldHits[k]) / runs
				results[si].new[k] = float64(newHits[k]) / runs
			}
		}()
	}
	wg.Wait()
	t.Logf("false-advance rate at a 5%% step, truth at the margin, %d runs (MC SE of 5%%: %.3f)", runs, math.Sqrt(0.05*0.95/runs))
	t.Logf("| shape | policy | by 200 cand. users | by 1 000 | by 5 000 |")
	t.Logf("|---|---|---|---|---|")
	bound := 0.05 + 3*math.Sqrt(0.05*0.95/runs)
	for si, sh := range shapes {
		t.Logf("| %s | old | %.4f | %.4f | %.4f |", sh.name, results[si].old[0], results[si].old[1], results[si].old[2])
		t.Logf("| | **new** | %.4f | %.4f | %.4f |", results[si].new[0], results[si].new[1], results[si].new[2])
		if results[si].new[2] > bound {
			t.Errorf("%s: new policy false-advance rate %.4f > α + 3 SE = %.4f", sh.name, results[si].new[2], bound)
		}
	}
	fmt.Println()
}
