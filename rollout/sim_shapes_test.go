//go:build simulation

package rollout_test

import (
	"math"
	"math/rand/v2"

	"github.com/abgate/abgate/experiments"
)

// marginShape is one metric shape of the validity simulations: the
// guardrail, the caps, and a user's totals (x, y) under the control or
// the candidate, with the truth exactly at the guardrail's margin. The
// two outcomes of a user drawn from equal generator states are coupled
// (common random numbers), so a user's control outcome can serve as a
// pre-exposure covariate that is also correlated with their candidate
// outcome.
type marginShape struct {
	name   string
	metric string
	g      experiments.Guardrail
	caps   map[string]float64
	user   func(r *rand.Rand, cand bool) (x, y float64)
}

// marginShapes are the shapes of TestSimPolicyAtMargin and TestSimCUPEDAtMargin.
func marginShapes() []marginShape {
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
	return []marginShape{
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
}
