package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRatioCUPED: RatioCUPED from sums equals the direct per-user
// computation of the delta method's linearisation l = (x − R·y)/ȳ, its
// pooled within-arm regression on z and the adjusted ratios (1e-9).
func TestRatioCUPED(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(11, 5))
	type user struct{ x, y, z float64 }
	var us [2][]user
	var ss [2]Summary
	for arm := range 2 {
		for range 5000 {
			// y requests, a per-user error propensity p persisting from the
			// pre-period (z: the user's earlier rate, 0 for new users).
			p := 0.6 * rng.Float64()
			y := float64(1 + rng.IntN(6))
			x := 0.0
			for range int(y) {
				if rng.Float64() < p*(1+0.1*float64(arm)) {
					x++
				}
			}
			z := 0.0
			if rng.Float64() < 0.7 {
				z = math.Min(1, math.Max(0, p+0.05*rng.NormFloat64()))
			}
			us[arm] = append(us[arm], user{x, y, z})
			ss[arm] = ss[arm].Add(Summary{N: 1, SumX: x, SumX2: x * x, SumY: y, SumY2: y * y, SumXY: x * y,
				SumZ: z, SumZ2: z * z, SumXZ: x * z, SumYZ: y * z})
		}
	}
	r := RatioCUPED(ss[0], ss[1])
	if !r.Valid {
		t.Fatal("invalid")
	}
	var ls, zs [2][]float64
	var R [2]float64
	var num, den, zsum float64
	for arm := range 2 {
		var sx, sy float64
		for _, u := range us[arm] {
			sx, sy = sx+u.x, sy+u.y
		}
		R[arm] = sx / sy
		ybar := sy / float64(len(us[arm]))
		for _, u := range us[arm] {
			ls[arm] = append(ls[arm], (u.x-R[arm]*u.y)/ybar)
			zs[arm] = append(zs[arm], u.z)
			zsum += u.z
		}
		ml, mz := meanOf(ls[arm]), meanOf(zs[arm])
		for i := range ls[arm] {
			num += (ls[arm][i] - ml) * (zs[arm][i] - mz)
			den += (zs[arm][i] - mz) * (zs[arm][i] - mz)
		}
	}
	theta := num / den
	zbar := zsum / 10000
	near(t, "theta", r.Theta, theta, 1e-9)
	var adj [2]Estimate
	for arm := range 2 {
		a := make([]float64, len(ls[arm]))
		for i := range a {
			a[i] = ls[arm][i] - theta*zs[arm][i]
		}
		m := meanOf(a)
		v := 0.0
		for _, x := range a {
			v += (x - m) * (x - m)
		}
		n := float64(len(a))
		adj[arm] = Estimate{R[arm] - theta*(meanOf(zs[arm])-zbar), v / (n - 1) / n}
	}
	near(t, "control", r.Control.Value, adj[0].Value, 1e-12)
	near(t, "treatment", r.Treatment.Value, adj[1].Value, 1e-12)
	near(t, "control variance", r.Control.Variance, adj[0].Variance, 1e-9*adj[0].Variance)
	near(t, "effect variance", r.Effect.Variance, adj[0].Variance+adj[1].Variance, 1e-9*r.Effect.Variance)
	if !(r.VarianceRemoved > 0.05 && r.VarianceRemoved < 1) {
		t.Errorf("variance removed %.3f: the propensity covariate should explain some", r.VarianceRemoved)
	}
	// The unadjusted comparison is RatioEstimate's.
	u := Lift(RatioEstimate(ss[0]), RatioEstimate(ss[1]), false)
	near(t, "unadjusted", r.Unadjusted.Value, u.Value, 1e-15)
	near(t, "unadjusted variance", r.Unadjusted.Variance, u.Variance, 1e-15)

	// Degenerate: covariate sums without Σyz (an old store), no z
	// variation, an empty arm, NaN.
	old := ss[0]
	old.SumYZ = 0
	for name, c := range map[string][2]Summary{
		"no SumYZ": {old, ss[1]}, "no z": {{N: 10, SumX: 3, SumX2: 3, SumY: 10, SumY2: 10, SumXY: 3}, {N: 10, SumX: 2, SumX2: 2, SumY: 10, SumY2: 10, SumXY: 2}},
		"empty": {{}, ss[1]}, "NaN": {{N: 10, SumX: math.NaN(), SumY: 10}, ss[1]},
	} {
		if RatioCUPED(c[0], c[1]).Valid {
			t.Errorf("%s: valid", name)
		}
	}

	// In Decide: a Ratio metric with CUPED is adjusted (asymptotic path).
	p := Policy{Primary: Metric{Name: "m", Kind: Ratio, CUPED: true}, MinUsers: 10, OneSided: true}
	d := Decide(Input{Users: []float64{5000, 5000}, Metrics: map[string][]Summary{"m": {ss[0], ss[1]}}}, p)
	m := d.Variants[0].Metrics[0]
	if m.VarianceRemoved == nil || math.Abs(*m.VarianceRemoved-r.VarianceRemoved) > 1e-12 || m.CUPEDTheta == nil || *m.CUPEDTheta != r.Theta {
		t.Errorf("Decide Ratio CUPED: %+v", m)
	}
	if m.Lift == nil || math.Abs(*m.Lift-r.Effect.Value) > 1e-12 {
		t.Errorf("Decide Ratio CUPED lift %v, want %v", m.Lift, r.Effect.Value)
	}
}

func meanOf(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// boundedCUPEDDirect is BoundedTestCUPED's log e-value from the per-user
// definition for one centre (original units) and one θ: D_i =
// side·(A_i−π)·(ũ_i − m_i), m_i = (1−θ)m + θz_i, and c the worst case
// over z ∈ [min(Lo,0), max(Hi,0)], written out in original units.
func boundedCUPEDDirect(us, zs []float64, arm []int, b Bounds, pi float64, null BoundedNull, center, theta float64) float64 {
	w := b.Hi - b.Lo
	s := float64(null.Side)
	tilde := func(u float64) float64 {
		if null.Relative {
			return u / (1 + null.Theta0)
		}
		return u - null.Theta0
	}
	var S, V float64
	for i, u := range us {
		mi := (1-theta)*center + theta*zs[i]
		var d float64
		if arm[i] == 0 {
			d = -pi * (u - mi) / w
		} else {
			d = (1 - pi) * (tilde(u) - mi) / w
		}
		d *= s
		S += d
		V += d * d
	}
	zLo, zHi := math.Min(b.Lo, 0), math.Max(b.Hi, 0)
	mLo, mHi := (1-theta)*center+theta*zLo, (1-theta)*center+theta*zHi
	tLo, tHi := math.Min(tilde(b.Lo), tilde(b.Hi)), math.Max(tilde(b.Lo), tilde(b.Hi))
	var low float64
	if s > 0 {
		low = math.Min(-pi*(b.Hi-mLo), (1-pi)*(tLo-mHi)) / w
	} else {
		low = math.Min(-pi*(mHi-b.Lo), -(1-pi)*(tHi-mLo)) / w
	}
	c := -low
	le := math.Inf(-1)
	for _, l := range boundedLambdas {
		le = logAddExp(le, l*S/c-psiE(l)*V/(c*c))
	}
	return le - math.Log(float64(len(boundedLambdas)))
}

// TestBoundedCUPEDFromSums: BoundedTestCUPED from the sums equals the
// per-user definition (1e-9) for a fixed θ and for the θ mixture, on a
// rating scale whose covariate is 0 for users without history (outside
// [Lo, Hi]); θ = 0 is BoundedTest exactly.
func TestBoundedCUPEDFromSums(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 9))
	b := Bounds{Lo: 1, Hi: 5}
	var us, zs []float64
	var arm []int
	var mom [2]Moments
	for range 800 {
		a := 0
		if rng.Float64() < 0.3 {
			a = 1
		}
		base := 1 + 4*rng.Float64()
		u := math.Min(5, math.Max(1, base+rng.NormFloat64()))
		z := 0.0
		if rng.Float64() < 0.8 {
			z = math.Min(5, math.Max(1, base+rng.NormFloat64()))
		}
		us, zs, arm = append(us, u), append(zs, z), append(arm, a)
		m := &mom[a]
		m.N++
		m.Sum, m.Sum2, m.SumZ, m.SumZ2, m.SumUZ = m.Sum+u, m.Sum2+u*u, m.SumZ+z, m.SumZ2+z*z, m.SumUZ+u*z
	}
	for _, null := range []BoundedNull{
		{Theta0: -0.2, Side: Greater}, {Theta0: 0.3, Side: Less}, {Theta0: -0.1, Relative: true, Side: Greater}, {Theta0: 0.1, Relative: true, Side: Less},
	} {
		for _, th := range []float64{0, 0.3, 1} {
			got := BoundedTestCUPED(mom[0], mom[1], b, 0.3, null, 2.6, th, 0, 0.05)
			want := boundedCUPEDDirect(us, zs, arm, b, 0.3, null, 2.6, th)
			near(t, "logE", got.LogE, want, 1e-9*math.Max(1, math.Abs(want)))
		}
		// The mixture over θ ∈ {0, 1/2}.
		got := BoundedTestCUPED(mom[0], mom[1], b, 0.3, null, 2.6, math.NaN(), 0, 0.05)
		want := logAddExp(boundedCUPEDDirect(us, zs, arm, b, 0.3, null, 2.6, 0), boundedCUPEDDirect(us, zs, arm, b, 0.3, null, 2.6, 0.5)) - math.Log(2)
		near(t, "mixture logE", got.LogE, want, 1e-9*math.Max(1, math.Abs(want)))
		// θ = 0 ignores the covariate: BoundedTest.
		plain := BoundedTest(mom[0], mom[1], b, 0.3, null, 2.6, 0.05)
		near(t, "θ=0", BoundedTestCUPED(mom[0], mom[1], b, 0.3, null, 2.6, 0, 0, 0.05).LogE, plain.LogE, 1e-12*math.Max(1, math.Abs(plain.LogE)))
	}
	// A strongly predictive covariate gives more evidence against a false
	// null: a candidate clearly better on a [0,1] value.
	var m2 [2]Moments
	for i := range 4000 {
		a := i % 2
		z := rng.Float64()
		u := math.Min(1, math.Max(0, z+0.04*float64(a)+0.05*rng.NormFloat64()))
		m := &m2[a]
		m.N++
		m.Sum, m.Sum2, m.SumZ, m.SumZ2, m.SumUZ = m.Sum+u, m.Sum2+u*u, m.SumZ+z, m.SumZ2+z*z, m.SumUZ+u*z
	}
	u01 := Bounds{Lo: 0, Hi: 1}
	null := BoundedNull{Side: Greater}
	plain := BoundedTest(m2[0], m2[1], u01, 0.5, null, 0.5, 0.05)
	cu := BoundedTestCUPED(m2[0], m2[1], u01, 0.5, null, 0.5, 1, 0, 0.05)
	if !(cu.LogE > plain.LogE+5) || !cu.Reject {
		t.Errorf("CUPED logE %.2f, plain %.2f: want far more evidence with z explaining most of u", cu.LogE, plain.LogE)
	}
	lo := BoundedBoundCUPED(m2[0], m2[1], u01, 0.5, false, Greater, 0.5, 1, 0, 0.025)
	loPlain := BoundedBound(m2[0], m2[1], u01, 0.5, false, Greater, 0.5, 0.025)
	if !(lo > loPlain) || !(lo < 0.04) {
		t.Errorf("CUPED lower bound %.4f, plain %.4f: want tighter and below the truth 0.04", lo, loPlain)
	}
	// Degenerate: covariate sums outside the bounds of z, NaN, an empty arm.
	bad := mom[0]
	bad.SumZ = 6 * bad.N
	for name, c := range map[string][2]Moments{"z out of range": {bad, mom[1]}, "NaN": {{N: 3, Sum: 1, Sum2: 1, SumUZ: math.NaN()}, mom[1]}, "empty": {{}, mom[1]}} {
		if r := BoundedTestCUPED(c[0], c[1], b, 0.3, BoundedNull{Side: Greater}, 2.6, math.NaN(), 0, 0.05); r.Valid || r.PValue != 1 {
			t.Errorf("%s: %+v", name, r)
		}
	}
}

// TestDecideBoundedCUPED: a bounded metric with CUPED goes through
// BoundedTestCUPED with the policy's θ (or the mixture without one), and
// reports the coefficient fitted on the period for the next one.
func TestDecideBoundedCUPED(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(8, 1))
	var ss [2]Summary
	for i := range 6000 {
		a := i % 2
		p := 0.1 * rng.Float64() * 2
		x := 0.0
		if rng.Float64() < p*(1+0.3*float64(a)) {
			x = 1
		}
		z := 0.0
		if rng.Float64() < p {
			z = 1
		}
		ss[a] = ss[a].Add(Summary{N: 1, SumX: x, SumX2: x, SumY: 1, SumY2: 1, SumXY: x, SumR: x, SumR2: x, SumZ: z, SumZ2: z, SumXZ: x * z, SumYZ: z, SumRZ: x * z})
	}
	b := &Bounds{Lo: 0, Hi: 1}
	in := Input{Users: []float64{3000, 3000}, Metrics: map[string][]Summary{"m": {ss[0], ss[1]}}}
	moms := func(k Kind) [2]Moments {
		c, _ := userMoments(ss[0], k)
		t, _ := userMoments(ss[1], k)
		return [2]Moments{c, t}
	}
	center, theta := 0.1, 0.2
	for _, k := range []Kind{Mean, Ratio} {
		for _, th := range []*float64{nil, &theta} {
			p := Policy{Primary: Metric{Name: "m", Kind: k, Bounds: b, CUPED: true, Center: &center, CUPEDTheta: th}, MinUsers: 10}
			m := Decide(in, p).Variants[0].Metrics[0]
			mm := moms(k)
			want := BoundedTestCUPED(mm[0], mm[1], *b, 0.5, BoundedNull{Side: Greater}, center, math.NaN(), DefaultNStar, 0.05)
			if th != nil {
				want = BoundedTestCUPED(mm[0], mm[1], *b, 0.5, BoundedNull{Side: Greater}, center, theta, DefaultNStar, 0.05)
			}
			if m.LogE == nil || math.Abs(*m.LogE-want.LogE) > 1e-12 {
				t.Errorf("%s θ %v: LogE %v, want %v", k, th, m.LogE, want.LogE)
			}
			cu := CUPED(CovariateSummary{mm[0].N, mm[0].Sum, mm[0].Sum2, mm[0].SumZ, mm[0].SumZ2, mm[0].SumUZ},
				CovariateSummary{mm[1].N, mm[1].Sum, mm[1].Sum2, mm[1].SumZ, mm[1].SumZ2, mm[1].SumUZ})
			if m.CUPEDTheta == nil || *m.CUPEDTheta != cu.Theta || m.VarianceRemoved == nil {
				t.Errorf("%s: fitted θ %v, want %v", k, m.CUPEDTheta, cu.Theta)
			}
		}
	}
}

// TestBetWeights: the bet weights sum to 1, are equal without a centre or
// a plan, and peak at the bet best for an effect at the threshold at N*;
// a test with them gains evidence over equal weights at the planned size.
func TestBetWeights(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		c, pi, m, nStar float64
		tuned           bool
	}{{0.45, 0.5, 0.1, 40000, true}, {0.45, 0.5, 0.1, 40000, false}, {0.45, 0.5, 0, 40000, true}, {0.45, 0.5, 0.1, math.NaN(), true}, {0.95, 0.05, 0.004, 1e9, true}} {
		w := betWeights(tc.c, tc.pi, tc.m, tc.nStar, tc.tuned)
		sum := 0.0
		for _, x := range w {
			if !(x >= 0) {
				t.Fatalf("%+v: weight %g", tc, x)
			}
			sum += x
		}
		near(t, "Σw", sum, 1, 1e-12)
		uniform := w[0] == w[len(w)-1]
		if want := !(tc.tuned && tc.m > 0 && tc.nStar > 0); uniform != want {
			t.Errorf("%+v: uniform %v, want %v", tc, uniform, want)
		}
	}
	w := betWeights(0.45, 0.5, 0.1, 40000, true)
	l0 := 0.45 * math.Sqrt(2*betPlanEvidence/(40000*0.25*0.09))
	best := 0
	for i := range w {
		if w[i] > w[best] {
			best = i
		}
	}
	if r := boundedLambdas[best] / l0; r < 1/math.Sqrt2 || r > math.Sqrt2 {
		t.Errorf("heaviest bet %g, planned %g", boundedLambdas[best], l0)
	}
	// 20 000 per arm, 10% against 11%: the tuned weights (N* = 40 000)
	// find more evidence than equal ones.
	c := Moments{N: 20000, Sum: 2000, Sum2: 2000}
	tr := Moments{N: 20000, Sum: 2200, Sum2: 2200}
	null := BoundedNull{Side: Greater}
	eq := BoundedTest(c, tr, Bounds{0, 1}, 0.5, null, 0.1, 0.05)
	tu := BoundedTestCUPED(c, tr, Bounds{0, 1}, 0.5, null, 0.1, 0, 40000, 0.05)
	if !(tu.LogE > eq.LogE+0.5) {
		t.Errorf("tuned logE %.3f, equal weights %.3f", tu.LogE, eq.LogE)
	}
	// No centre: the nine-centre mixture keeps equal weights.
	if a, b := BoundedTestCUPED(c, tr, Bounds{0, 1}, 0.5, null, math.NaN(), 0, 40000, 0.05), BoundedTest(c, tr, Bounds{0, 1}, 0.5, null, math.NaN(), 0.05); a.LogE != b.LogE {
		t.Errorf("without a centre: %g ≠ %g", a.LogE, b.LogE)
	}
}
