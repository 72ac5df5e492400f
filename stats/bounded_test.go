package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// boundedDirect computes BoundedTest's log e-value from the per-user
// sequence, written out from the definition (D_i per user), for one
// centre given in original units.
func boundedDirect(us []float64, arm []int, b Bounds, pi float64, null BoundedNull, center float64) float64 {
	w := b.Hi - b.Lo
	m := (center - b.Lo) / w
	s := float64(null.Side)
	var S, V float64
	for i, u := range us {
		up := (u - b.Lo) / w
		var d float64
		if arm[i] == 0 {
			d = -pi * (up - m)
		} else {
			ut := u - null.Theta0
			if null.Relative {
				ut = u / (1 + null.Theta0)
			}
			d = (1 - pi) * ((ut-b.Lo)/w - m)
		}
		d *= s
		S += d
		V += d * d
	}
	// c from the bounds, in [0,1] units.
	a, sh := 1.0, null.Theta0/w
	if null.Relative {
		a = 1 / (1 + null.Theta0)
		sh = b.Lo * (1 - a) / w
	}
	var low float64
	if s > 0 {
		low = math.Min(-pi*(1-m), (1-pi)*(-sh-m))
	} else {
		low = math.Min(-pi*m, -(1-pi)*(a-sh-m))
	}
	c := -low
	le := math.Inf(-1)
	for _, l := range boundedLambdas {
		le = logAddExp(le, l*S/c-psiE(l)*V/(c*c))
	}
	return le - math.Log(float64(len(boundedLambdas)))
}

// TestBoundedFromSums: the sums-only computation equals the per-user
// definition (1e-9), absolute and relative, both sides, Lo ≠ 0.
func TestBoundedFromSums(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	b := Bounds{Lo: 1, Hi: 5}
	var us []float64
	var arm []int
	var mom [2]Moments
	for range 500 {
		a := 0
		if rng.Float64() < 0.3 {
			a = 1
		}
		u := 1 + 4*rng.Float64()*rng.Float64()
		us, arm = append(us, u), append(arm, a)
		mom[a] = Moments{N: mom[a].N + 1, Sum: mom[a].Sum + u, Sum2: mom[a].Sum2 + u*u}
	}
	for _, null := range []BoundedNull{
		{Theta0: -0.2, Side: Greater}, {Theta0: 0.3, Side: Less}, {Theta0: -0.1, Relative: true, Side: Greater}, {Theta0: 0.1, Relative: true, Side: Less},
	} {
		got := BoundedTest(mom[0], mom[1], b, 0.3, null, 2.2, 0.05)
		want := boundedDirect(us, arm, b, 0.3, null, 2.2)
		near(t, "logE", got.LogE, want, 1e-9*math.Max(1, math.Abs(want)))
	}
}

// TestBoundedBehaviour: large effects are detected on the right side,
// the bound brackets the estimate, degenerate input is invalid.
func TestBoundedBehaviour(t *testing.T) {
	t.Parallel()
	b := Bounds{Lo: 0, Hi: 1}
	c := Moments{N: 5000, Sum: 500, Sum2: 500}  // 10%
	tr := Moments{N: 5000, Sum: 650, Sum2: 650} // 13%
	if r := BoundedTest(c, tr, b, 0.5, BoundedNull{Side: Greater}, math.NaN(), 0.05); !r.Reject || !r.Valid {
		t.Errorf("10%% vs 13%% at 5000/arm not detected: %+v", r)
	}
	if r := BoundedTest(c, tr, b, 0.5, BoundedNull{Side: Less}, math.NaN(), 0.05); r.Reject {
		t.Errorf("wrong side rejected: %+v", r)
	}
	lo := BoundedBound(c, tr, b, 0.5, false, Greater, 0.1, 0.05)
	hi := BoundedBound(c, tr, b, 0.5, false, Less, 0.1, 0.05)
	if !(lo > 0 && lo < 0.03 && hi > 0.03 && hi < 0.1) {
		t.Errorf("bounds [%g, %g] around 0.03", lo, hi)
	}
	rl := BoundedBound(c, tr, b, 0.5, true, Greater, 0.1, 0.05)
	if !(rl > 0 && rl < 0.3) {
		t.Errorf("relative lower bound %g", rl)
	}
	for _, tc := range []struct {
		c, t Moments
		b    Bounds
		pi   float64
	}{
		{Moments{}, tr, b, 0.5},
		{c, tr, Bounds{1, 1}, 0.5},
		{c, tr, b, 0},
		{c, Moments{N: math.NaN()}, b, 0.5},
		{c, tr, Bounds{0, math.Inf(1)}, 0.5},
	} {
		if r := BoundedTest(tc.c, tc.t, tc.b, tc.pi, BoundedNull{Side: Greater}, math.NaN(), 0.05); r.Valid || r.PValue != 1 || r.Reject {
			t.Errorf("degenerate %+v gave %+v", tc, r)
		}
	}
	if Events(Moments{N: 1000, Sum: 3, Sum2: 3}, b) != 3 || Events(Moments{N: 10, Sum: 9, Sum2: 9}, b) != 1 {
		t.Error("Events")
	}
}

// TestBoundedRareEventsAtMargin: light continuous-monitoring check at the
// margin for rare events (the heavy table is in sim_valid_test.go).
func TestBoundedRareEventsAtMargin(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 5))
	const runs, alpha = 200, 0.05
	b := Bounds{0, 1}
	fa := 0
	for range runs {
		var m [2]Moments
		for i := 1; i <= 4000; i++ {
			a := rng.IntN(2)
			p := 0.004 + 0.004*float64(a) // harm exactly at the margin 0.004
			u := 0.0
			if rng.Float64() < p {
				u = 1
			}
			m[a] = Moments{N: m[a].N + 1, Sum: m[a].Sum + u, Sum2: m[a].Sum2 + u*u}
			if i%20 == 0 && m[0].N > 0 && m[1].N > 0 {
				if BoundedTest(m[0], m[1], b, 0.5, BoundedNull{Theta0: 0.004, Side: Less}, math.NaN(), alpha).Reject {
					fa++
					break
				}
			}
		}
	}
	bound := alpha + 3*math.Sqrt(alpha*(1-alpha)/runs)
	t.Logf("bounded test, rare events at the margin: %.4f", float64(fa)/runs)
	if float64(fa)/runs > bound {
		t.Errorf("false non-inferiority %.4f > %.4f", float64(fa)/runs, bound)
	}
}
