//go:build simulation

package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// Speed and A/A validity of the primary call, today's default against the
// new settings: go test -tags simulation -run SimSpeed -v ./stats/
//
// Conversion 10% in the control, +10% relative (11%) in the candidate,
// 50/50 split, a look every 100 users per arm up to 20 000 per arm. The
// covariate z is a pre-exposure value correlated 0.5 with the outcome:
// y = 1{L < Φ⁻¹(p)} for a latent L ~ N(0,1) and z = −r·L + sqrt(1−r²)·ε
// with r = 0.5/0.585 (corr(1{L<c}, L) = −φ(c)/sqrt(p(1−p)) = −0.585 at
// p = 0.1), so that corr(y, z) = 0.5 and CUPED removes about 25% of the
// variance.

type speedMethod struct {
	name     string
	promote  int     // correct-direction "better" calls (power) or false promotes (A/A)
	anyCall  int     // any call, better or worse
	users    float64 // Σ users per arm at the decision (the maximum if none)
	oneSided bool
	nStar    float64
	cuped    bool
}

func runSpeed(p1 float64, runs int, seed uint64) []speedMethod {
	const p0, maxN, step, alpha = 0.10, 20000, 100, 0.05
	methods := []speedMethod{
		{name: "today: two-sided CS, N* = 10 000", nStar: DefaultNStar},
		{name: "today + CUPED (ρ = 0.5)", nStar: DefaultNStar, cuped: true},
		{name: "two-sided CS, N* = 2·20 000", nStar: NStarFor(maxN)},
		{name: "new: one-sided CS, N* = NStarFor(20 000)", oneSided: true, nStar: NStarFor(maxN)},
		{name: "new + CUPED (ρ = 0.5)", oneSided: true, nStar: NStarFor(maxN), cuped: true},
	}
	rng := rand.New(rand.NewPCG(seed, 77))
	r := 0.5 / 0.585
	c := [2]float64{unitNormal.Quantile(p0), unitNormal.Quantile(p1)}
	fixedHits := 0
	for range runs {
		var s [2]Summary
		done := make([]bool, len(methods))
		for n := step; n <= maxN; n += step {
			for arm := range 2 {
				for range step {
					l := rng.NormFloat64()
					y := 0.0
					if l < c[arm] {
						y = 1
					}
					z := -r*l + math.Sqrt(1-r*r)*rng.NormFloat64()
					s[arm] = s[arm].Add(Summary{N: 1, SumX: y, SumX2: y, SumY: 1, SumY2: 1, SumXY: y, SumZ: z, SumZ2: z * z, SumXZ: y * z})
				}
			}
			plain := Lift(MeanEstimate(s[0]), MeanEstimate(s[1]), true)
			var adj Estimate
			if cu := CUPED(s[0].Covariate(), s[1].Covariate()); cu.Valid {
				adj = Lift(cu.Control, cu.Treatment, true)
			}
			nn := float64(2 * n)
			for i := range methods {
				m := &methods[i]
				if done[i] {
					continue
				}
				e := plain
				if m.cuped {
					e = adj
				}
				var better, worse bool
				if m.oneSided {
					better = OneSidedConfidenceSequence(e, 0, nn, m.nStar, alpha, Greater).Reject
					worse = OneSidedConfidenceSequence(e, 0, nn, m.nStar, alpha, Less).Reject
				} else {
					cs := ConfidenceSequence(e, 0, nn, m.nStar, alpha)
					better, worse = cs.Valid && cs.CI.Low > 0, cs.Valid && cs.CI.High < 0
				}
				if better || worse {
					done[i] = true
					m.anyCall++
					if better {
						m.promote++
					}
					m.users += float64(n)
				} else if n == maxN {
					m.users += maxN
				}
			}
			if n == maxN {
				if z := ZTest(plain, 0, alpha); z.Valid && z.Estimate > 0 && z.PValue <= alpha {
					fixedHits++
				}
			}
		}
	}
	methods = append(methods, speedMethod{name: "fixed horizon, two-sided z at 20 000 (one look)", promote: fixedHits, anyCall: fixedHits, users: maxN * float64(runs)})
	return methods
}

func formatSpeed(title string, ms []speedMethod, runs int, aa bool) string {
	var b strings.Builder
	col := "power (better, by 20 000/arm)"
	if aa {
		col = "false promote rate"
	}
	fmt.Fprintf(&b, "%s (%d runs)\n| method | %s | any call (better or worse) | mean users/arm at decision |\n|---|---|---|---|\n", title, runs, col)
	for _, m := range ms {
		fmt.Fprintf(&b, "| %s | %.4f | %.4f | %.0f |\n", m.name, float64(m.promote)/float64(runs), float64(m.anyCall)/float64(runs), m.users/float64(runs))
	}
	return b.String()
}

func TestSimSpeed(t *testing.T) {
	t.Parallel()
	const runs = 2000
	ms := runSpeed(0.11, runs, 41)
	t.Log("\n" + formatSpeed("A/B: 10% → 11% (+10% relative), 50/50, look every 100 users/arm", ms, runs, false))
	if pw := float64(ms[4].promote) / runs; pw < 0.85-3*math.Sqrt(0.85*0.15/runs) {
		t.Errorf("new + CUPED power %.4f < 0.85", pw)
	}
}

// TestSimSpeedAA: the same designs in A/A (11% is replaced by 10%), the
// CUPED one included: false promotions ≤ α under continuous monitoring.
func TestSimSpeedAA(t *testing.T) {
	t.Parallel()
	const runs, alpha = 4000, 0.05
	ms := runSpeed(0.10, runs, 43)
	t.Log("\n" + formatSpeed("A/A: 10% vs 10%, 50/50, look every 100 users/arm, with CUPED rows", ms[:5], runs, true))
	for _, m := range ms[:5] {
		if fp := float64(m.promote) / runs; fp > validBound(alpha, runs) {
			t.Errorf("%s: false promote rate %.4f > %.4f", m.name, fp, validBound(alpha, runs))
		}
	}
}
