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
	type shape struct {
		name   string
		metric string
		g      experiments.Guardrail
		caps   map[string]float64
		user   func(r *rand.Rand, cand bool) (x, y float64)
	}
	bern := func(p0, p1 float64) func(*rand.Rand, bool) (float64, float64) {
		return func(r *rand.Rand, cand bool) (float64, float64) {
			p := p0
			if cand {
				p = p1
			}
			if r.Float64() < p {
				return 1, 1
			}
			return 0, 1
		}
	}
	pois := func(r *rand.Rand, l float64) int {
		k, p, L := 0, 1.0, math.Exp(-l)
		for {
			p *= r.Float64()
			if p <= L {
				return k
			}
			k++
		}
	}
	shapes := []shape{
		{"Bernoulli 10%", experiments.MetricError, experiments.Guardrail{Metric: experiments.MetricError, Margin: 0.02}, nil, bern(0.10, 0.12)},
		{"rare 0.4%", experiments.MetricError, experiments.Guardrail{Metric: experiments.MetricError, Margin: 0.005}, nil, bern(0.004, 0.009)},
		{"clustered errors", experiments.MetricError, experiments.Guardrail{Metric: experiments.MetricError, Margin: 0.005}, nil,
			func(r *rand.Rand, cand bool) (float64, float64) {
				h := 0.03
				if cand {
					h = 0.05 // 0.25·h: +0.5 points
				}
				n := 1 + pois(r, 4)
				x := 0
				if r.Float64() < h {
					for range n {
						if r.Float64() < 0.25 {
							x++
						}
					}
				}
				return float64(x), float64(n)
			}},
		{"rating 1-5", experiments.MetricRating, experiments.Guardrail{Metric: experiments.MetricRating, Margin: 0.1}, nil,
			func(r *rand.Rand, cand bool) (float64, float64) {
				ps := []float64{0.04, 0.06, 0.15, 0.35, 0.40}
				u, v := r.Float64(), 1
				for i, p := range ps {
					if u < p {
						v = i + 1
						break
					}
					u -= p
					v = i + 2
				}
				v = min(v, 5)
				if cand && v > 1 && r.Float64() < 0.1/(1-ps[0]) {
					v-- // exactly 0.1 lower on average
				}
				return float64(v), 1
			}},
		{"latency log-normal, capped", experiments.MetricLatencyMS, experiments.Guardrail{Metric: experiments.MetricLatencyMS, Margin: 0.10, Relative: true},
			map[string]float64{experiments.MetricLatencyMS: 33000},
			func(r *rand.Rand, cand bool) (float64, float64) {
				n := 1 + pois(r, 2)
				x := 0.0
				for range n {
					v := math.Min(300*math.Exp(1.5*r.NormFloat64()), 30000)
					if cand {
						v *= 1.1 // capped mean exactly +10%; within the 33 s cap
					}
					x += v
				}
				return x, float64(n)
			}},
	}
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
