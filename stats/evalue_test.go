package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestAlphaAccounting(t *testing.T) {
	t.Parallel()
	near(t, "first test", RestartAlpha(0.05, 1), 0.9*0.05, 1e-15)
	near(t, "first restart", RestartAlpha(0.05, 2), 0.1*0.05*6/(math.Pi*math.Pi), 1e-15)
	near(t, "second restart", RestartAlpha(0.05, 3), 0.1*0.05*6/(math.Pi*math.Pi)/4, 1e-15)
	if s := AlphaSpent(0.05, 100000); !(s < 0.05 && s > 0.04999) {
		t.Errorf("spent after 1e5 restarts %g", s)
	}
	near(t, "combine", CombineLogE(1, 2, math.NaN(), math.Inf(1)), 3, 0)
	if CombineLogE(1e9) != 700 || !RejectLogE(math.Log(20), 0.05) || RejectLogE(2.9, 0.05) {
		t.Error("combine cap or reject")
	}
}

// TestCarryOverAtMargin: combining the bounded test's e-values over three
// fresh ramp periods (5%, 25%, 50%), each monitored continuously and
// stopped at a rejection of the combined evidence, keeps the false
// non-inferiority rate at the margin ≤ α.
func TestCarryOverAtMargin(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 9))
	const runs, alpha, margin = 200, 0.05, 0.02
	b := Bounds{0, 1}
	fa := 0
	for range runs {
		carried, rejected := 0.0, false
		for _, share := range []float64{0.05, 0.25, 0.5} {
			var m [2]Moments
			for i := 1; i <= 4000 && !rejected; i++ {
				a := 0
				if rng.Float64() < share {
					a = 1
				}
				p := 0.1 + margin*float64(a)
				u := 0.0
				if rng.Float64() < p {
					u = 1
				}
				m[a] = Moments{N: m[a].N + 1, Sum: m[a].Sum + u, Sum2: m[a].Sum2 + u*u}
				if i%50 == 0 && m[0].N > 0 && m[1].N > 0 {
					r := BoundedTest(m[0], m[1], b, share, BoundedNull{Theta0: margin, Side: Less}, 0.1, alpha)
					if RejectLogE(CombineLogE(carried, r.LogE), alpha) {
						rejected = true
					}
				}
			}
			if m[0].N > 0 && m[1].N > 0 {
				carried = CombineLogE(carried, BoundedTest(m[0], m[1], b, share, BoundedNull{Theta0: margin, Side: Less}, 0.1, alpha).LogE)
			}
		}
		if rejected {
			fa++
		}
	}
	t.Logf("carry-over over 3 periods at the margin: %d/%d false advances", fa, runs)
	if float64(fa)/runs > alpha+3*math.Sqrt(alpha*(1-alpha)/runs) {
		t.Errorf("carry-over false advance rate %.3f", float64(fa)/runs)
	}
}
