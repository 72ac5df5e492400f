package stats

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"
)

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if !scalar.EqualWithinAbsOrRel(got, want, tol, tol) {
		t.Errorf("%s = %.10g, want %.10g (tol %g)", name, got, want, tol)
	}
}

// summarize builds a Summary from raw per-user (x, y).
func summarize(x, y []float64) Summary {
	var s Summary
	for i := range x {
		s.N++
		s.SumX += x[i]
		s.SumX2 += x[i] * x[i]
		s.SumY += y[i]
		s.SumY2 += y[i] * y[i]
		s.SumXY += x[i] * y[i]
	}
	return s
}

func TestEstimates(t *testing.T) {
	t.Parallel()
	x := []float64{3, 0, 5, 2, 8, 1, 4}
	y := []float64{4, 1, 6, 2, 9, 3, 5}
	s := summarize(x, y)
	n := float64(len(x))

	// Mean: direct two-pass computation.
	m := 0.0
	for _, v := range x {
		m += v
	}
	m /= n
	ss := 0.0
	for _, v := range x {
		ss += (v - m) * (v - m)
	}
	me := MeanEstimate(s)
	near(t, "mean", me.Value, m, 1e-12)
	near(t, "mean var", me.Variance, ss/(n-1)/n, 1e-12)

	// Ratio: the delta-method variance equals the variance of the mean of
	// the linearised per-user residuals (x − R·y)/ȳ, computed here
	// independently in two passes.
	sx, sy := 0.0, 0.0
	for i := range x {
		sx += x[i]
		sy += y[i]
	}
	r, ybar := sx/sy, sy/n
	lin := make([]float64, len(x))
	lm := 0.0
	for i := range x {
		lin[i] = (x[i] - r*y[i]) / ybar
		lm += lin[i] / n
	}
	lv := 0.0
	for _, v := range lin {
		lv += (v - lm) * (v - lm)
	}
	re := RatioEstimate(s)
	near(t, "ratio", re.Value, r, 1e-12)
	near(t, "ratio var", re.Variance, lv/(n-1)/n, 1e-10)

	tests := []struct {
		name     string
		c, tr    Estimate
		relative bool
		want     Estimate
	}{
		{"absolute", Estimate{10, 0.04}, Estimate{11, 0.09}, false, Estimate{1, 0.13}},
		// relative: 11/10−1 = 0.1; Var = 0.09/100 + 121·0.04/10⁴ = 0.0009+0.000484
		{"relative", Estimate{10, 0.04}, Estimate{11, 0.09}, true, Estimate{0.1, 0.001384}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Lift(tc.c, tc.tr, tc.relative)
			near(t, "lift", got.Value, tc.want.Value, 1e-12)
			near(t, "var", got.Variance, tc.want.Variance, 1e-12)
		})
	}
}

func TestEstimateDegenerate(t *testing.T) {
	t.Parallel()
	// One user tells nothing about variation; several identical users do
	// (see TestZeroVarianceGuardrail), so they are not degenerate.
	for _, s := range []Summary{{}, {N: 1, SumX: 3, SumX2: 9, SumY: 1, SumY2: 1, SumXY: 3}, {N: 5, SumX: 5, SumX2: 5}} {
		if s.N >= 2 {
			s.SumY = 0 // a ratio with no observations stays degenerate
		}
		for _, k := range []Kind{Mean, Ratio} {
			if k == Mean && s.N >= 2 {
				continue
			}
			e := k.Estimate(s)
			if e.valid() {
				t.Errorf("%v %+v: degenerate estimate reported valid: %+v", k, s, e)
			}
		}
	}
	if e := Lift(Estimate{0, 1}, Estimate{1, 1}, true); e.valid() {
		t.Errorf("relative lift with zero control: %+v", e)
	}
}

func TestMSPRT(t *testing.T) {
	t.Parallel()
	// Reference values from the closed form Λ = sqrt(v/(v+τ²))·exp(τ²Δ²/(2v(v+τ²))),
	// evaluated by hand (Python math, see docs/statistics.md).
	tests := []struct {
		name                 string
		est, v, tau2, alpha  float64
		wantP, wantHalfWidth float64
	}{
		{"v1 tau1 d3", 3, 1, 1, 0.05, 0.14905701283899597, 3.6563948713638483},
		{"v.04 tau.01 d.5", 0.5, 0.04, 0.01, 0.1, 0.5984404699510534, 0.9826814068966911},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := MSPRT(Estimate{tc.est, tc.v}, 0, tc.tau2, tc.alpha)
			near(t, "p", got.PValue, tc.wantP, 1e-12)
			near(t, "half-width", (got.CI.High-got.CI.Low)/2, tc.wantHalfWidth, 1e-12)
		})
	}
	// Johari et al. eq. (11) in its own parametrisation: n per arm, σ² per
	// observation, V = 2σ², Λ_n = sqrt(V/(V+nτ²))·exp(n²τ²(Ȳ−X̄)²/(2V(V+nτ²))).
	n, sigma2, tau2, diff := 400.0, 2.5, 0.01, 0.31
	V := 2 * sigma2
	lambda := math.Sqrt(V/(V+n*tau2)) * math.Exp(n*n*tau2*diff*diff/(2*V*(V+n*tau2)))
	got := MSPRT(Estimate{diff, V / n}, 0, tau2, 0.05)
	near(t, "Johari eq. 11", got.PValue, 1/lambda, 1e-12)

	// The CI is exactly {θ0 : p(θ0) > α}.
	e := Estimate{0.7, 0.05}
	ci := MSPRT(e, 0, 0.2, 0.05).CI
	near(t, "p at CI edge", MSPRT(e, ci.High, 0.2, 0.05).PValue, 0.05, 1e-9)
	near(t, "p at CI edge", MSPRT(e, ci.Low, 0.2, 0.05).PValue, 0.05, 1e-9)
}

// TestConfidenceSequenceEqualsMSPRT shows that the asymptotic confidence
// sequence of Waudby-Smith et al. (as in GrowthBook), written out here
// directly from the paper,
//
//	μ̂ ± σ̂·sqrt( 2(tρ²+1)/(t²ρ²) · log(sqrt(tρ²+1)/α) ),
//
// is the normal-mixture mSPRT interval with τ² = ρ²σ̂² (σ̂² = t·Var(μ̂)).
func TestConfidenceSequenceEqualsMSPRT(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ est, sigma2, n, nStar, alpha float64 }{
		{0.1, 1, 100, 1000, 0.05},
		{-2, 30, 5000, 5000, 0.05},
		{0.003, 0.09, 1e6, 2e4, 0.01},
		{5, 400, 20, 1e5, 0.2},
	} {
		rho2 := ConfSeqRho2(tc.nStar, tc.alpha)
		tt := tc.n
		paperHW := math.Sqrt(tc.sigma2) * math.Sqrt(2*(tt*rho2+1)/(tt*tt*rho2)*math.Log(math.Sqrt(tt*rho2+1)/tc.alpha))
		e := Estimate{tc.est, tc.sigma2 / tc.n}
		cs := ConfidenceSequence(e, 0, tc.n, tc.nStar, tc.alpha)
		near(t, "CS half-width vs paper", (cs.CI.High-cs.CI.Low)/2, paperHW, 1e-12)
		ms := MSPRT(e, 0, rho2*tc.sigma2, tc.alpha)
		near(t, "CS p vs mSPRT p", cs.PValue, ms.PValue, 1e-12)
	}
}

// TestConfSeqRho2 checks ρ²(N*) against the closed form and that it
// (approximately) minimises the half-width at t = N*.
func TestConfSeqRho2(t *testing.T) {
	t.Parallel()
	// α = 0.05: 2·log 20 = 5.991465, log(1+5.991465) = 1.944691.
	near(t, "rho2", ConfSeqRho2(1000, 0.05), (5.991464547107982+1.9446909418)/1000, 1e-9)
	margin := func(rho2, tt float64) float64 {
		return math.Sqrt(2 * (tt*rho2 + 1) / (tt * tt * rho2) * math.Log(math.Sqrt(tt*rho2+1)/0.05))
	}
	nStar := 5000.0
	r := ConfSeqRho2(nStar, 0.05)
	best := math.Inf(1)
	for f := 0.2; f < 5; f *= 1.01 {
		best = math.Min(best, margin(r*f, nStar))
	}
	if m := margin(r, nStar); m > best*1.01 {
		t.Errorf("margin at N* with ρ²(N*) = %g, best over ρ² = %g", m, best)
	}
}

func TestFixedHorizon(t *testing.T) {
	t.Parallel()
	// Welch: reference by numerical integration of the Student t density.
	c := []float64{3.1, 2.9, 4.0, 3.5, 2.2, 3.3}
	tr := []float64{4.1, 3.8, 5.0, 3.9, 4.4, 4.6, 3.7}
	w := WelchT(summarize(c, make([]float64, len(c))), summarize(tr, make([]float64, len(tr))), 0.05)
	near(t, "welch diff", w.Estimate, 1.047619047619047, 1e-12)
	near(t, "welch t", w.Estimate/w.StdErr, 3.431222984597709, 1e-10)
	near(t, "welch p", w.PValue, 0.006965871949879456, 1e-6)

	z := TwoProportionZ(120, 1000, 150, 1000, 0.05)
	near(t, "2prop p", z.PValue, 0.04964038686536881, 1e-9)
	near(t, "2prop hw", (z.CI.High-z.CI.Low)/2, 0.029923971178702213, 1e-9)

	if got := TwoProportionZ(0, 100, 0, 100, 0.05); got.Valid || got.PValue != 1 {
		t.Errorf("degenerate two-proportion: %+v", got)
	}
}

func TestSRM(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		counts, split  []float64
		wantChi, wantP float64
		wantLogBF      float64 // from numerical integration of the Beta-binomial (2 cells)
	}{
		{"2 cells 5100/4900", []float64{5100, 4900}, []float64{1, 1}, 4, 0.045500263896358396, math.NaN()},
		{"3 cells df=2", []float64{1000, 1100, 900}, []float64{1, 1, 1}, 20, 4.5399929762484854e-05, math.NaN()},
		{"520/480", []float64{520, 480}, []float64{0.5, 0.5}, 1.6, math.NaN(), -0.4731252336707801},
		{"60/40", []float64{60, 40}, []float64{50, 50}, 4, math.NaN(), 0.6588918180466249},
		{"300/100 at 70/30", []float64{300, 100}, []float64{70, 30}, 4.761904761904762, math.NaN(), 1.1943465644543414},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			chi, p := ChiSquareSRM(tc.counts, tc.split)
			near(t, "chi2", chi, tc.wantChi, 1e-12)
			if !math.IsNaN(tc.wantP) {
				near(t, "p", p, tc.wantP, 1e-9)
			}
			if !math.IsNaN(tc.wantLogBF) {
				lbf, ap := SequentialSRM(tc.counts, tc.split, 100)
				near(t, "logBF", lbf, tc.wantLogBF, 1e-5)
				near(t, "anytime p", ap, math.Min(1, math.Exp(-lbf)), 1e-12)
			}
		})
	}
	// A blatant mismatch halts; degenerate input does not.
	if _, p := SequentialSRM([]float64{6000, 4000}, []float64{1, 1}, 0); p > 1e-6 {
		t.Errorf("60/40 with 10000 users: anytime p = %g", p)
	}
	for _, c := range [][]float64{{0, 0}, {1}, {math.NaN(), 3}, {math.Inf(1), 1}} {
		if _, p := SequentialSRM(c, []float64{1, 1}, 0); p != 1 {
			t.Errorf("degenerate counts %v: p = %g", c, p)
		}
	}
}

func TestBinarySPRT(t *testing.T) {
	t.Parallel()
	// Wald thresholds for α = 0.05, β = 0.2: log 16 and log(0.2/0.95).
	r := BinarySPRT(0, 0, 0.1, 0.15, 0.05, 0.2)
	near(t, "upper", r.Upper, math.Log(16), 1e-12)
	near(t, "lower", r.Lower, math.Log(0.2/0.95), 1e-12)
	tests := []struct {
		s, n float64
		want int
	}{
		{30, 100, 1}, // 30·log1.5 + 70·log(.85/.9) = 12.16 − 4.00 > 2.77
		{5, 100, -1}, // 5·0.405 − 95·0.0572 = 2.03 − 5.43 < −1.56
		{12, 100, 0}, // 4.87 − 5.03 = −0.17
	}
	for _, tc := range tests {
		got := BinarySPRT(tc.s, tc.n, 0.1, 0.15, 0.05, 0.2)
		want := tc.s*math.Log(1.5) + (tc.n-tc.s)*math.Log(0.85/0.9)
		near(t, "llr", got.LogLR, want, 1e-12)
		if got.Decision != tc.want {
			t.Errorf("s=%v n=%v: decision %d, want %d", tc.s, tc.n, got.Decision, tc.want)
		}
	}
}

func TestGroupSequentialBoundaries(t *testing.T) {
	t.Parallel()
	eq5 := []float64{0.2, 0.4, 0.6, 0.8, 1}
	tests := []struct {
		name string
		s    Spending
		fr   []float64
		want []float64
	}{
		// Reboussin, DeMets, Kim & Lan (2000) ld98 / R ldbounds / gsDesign
		// sfLDOF and sfLDPocock, two-sided α = 0.05 (α/2 per side).
		{"OBF K=5", OBrienFleming, eq5, []float64{4.877, 3.357, 2.680, 2.290, 2.031}},
		{"Pocock K=5", Pocock, eq5, []float64{2.438, 2.427, 2.410, 2.397, 2.386}},
		{"K=1", Pocock, []float64{1}, []float64{1.960}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := NewDesign(0.05, tc.s, tc.fr)
			for i, w := range tc.want {
				if math.Abs(d.Bounds[i]-w) > 0.0015 {
					t.Errorf("bound %d = %.4f, want %.3f", i, d.Bounds[i], w)
				}
			}
			near(t, "type I error", d.Power(0), 0.05, 1e-6)
		})
	}
	// Unequal spacing: the recursion must spend exactly α*(t_k) by each
	// look; checked by Monte Carlo in the simulation tests as well.
	d := NewDesign(0.05, OBrienFleming, []float64{0.1, 0.25, 0.7, 1})
	near(t, "unequal type I error", d.Power(0), 0.05, 1e-6)
	// The first boundary has a closed form: z_{1−α*(t1)/2}.
	near(t, "first bound", d.Bounds[0], unitNormal.Quantile(1-OBrienFleming.Spend(0.05, 0.1)/2), 1e-12)
	// K=1: two-sided power also counts the (tiny) wrong-direction tail, so
	// the factor is 1 only to about 1e-5.
	if got := NewDesign(0.05, Pocock, []float64{1}).InflationFactor(0.8); math.Abs(got-1) > 1e-5 {
		t.Errorf("K=1 inflation = %g, want 1", got)
	}
}

func TestSpendingFunctions(t *testing.T) {
	t.Parallel()
	for _, s := range []Spending{OBrienFleming, Pocock} {
		near(t, string(s)+" at 1", s.Spend(0.05, 1), 0.05, 1e-15)
		near(t, string(s)+" at 1 (formula)", s.Spend(0.05, 1-1e-12), 0.05, 1e-9)
		if s.Spend(0.05, 0) != 0 {
			t.Errorf("%s spends at t=0", s)
		}
	}
	// Pocock-type at t = 0.5: 0.05·log(1+(e−1)/2) = 0.05·0.620115.
	near(t, "pocock(0.5)", Pocock.Spend(0.05, 0.5), 0.05*math.Log(1+(math.E-1)/2), 1e-15)
}

func TestPanicsOnProgrammerError(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(){
		"alpha 0":       func() { MSPRT(Estimate{1, 1}, 0, 1, 0) },
		"alpha 1":       func() { ZTest(Estimate{1, 1}, 0, 1) },
		"tau2 0":        func() { MSPRT(Estimate{1, 1}, 0, 0, 0.05) },
		"decide alpha":  func() { Decide(Input{}, Policy{Alpha: 1.5}) },
		"design order":  func() { NewDesign(0.05, Pocock, []float64{0.5, 0.4, 1}) },
		"design end":    func() { NewDesign(0.05, Pocock, []float64{0.5}) },
		"sprt p0 == p1": func() { BinarySPRT(1, 2, 0.1, 0.1, 0.05, 0.2) },
		"negative margin": func() {
			NonInferiorityTest(Estimate{1, 1}, HigherIsBetter, -1, func(e Estimate, th float64) Test { return ZTest(e, th, 0.05) })
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		})
	}
}

// TestGroupSequentialMonteCarlo checks the recursive integration
// independently: simulate the z-statistics of a Brownian motion at
// unequally spaced fractions and compare the cumulative crossing
// probability with the spending function at every look.
func TestGroupSequentialMonteCarlo(t *testing.T) {
	t.Parallel()
	fr := []float64{0.1, 0.25, 0.7, 1}
	for _, s := range []Spending{OBrienFleming, Pocock} {
		d := NewDesign(0.05, s, fr)
		rng := rand.New(rand.NewPCG(7, 7))
		const reps = 200000
		crossed := make([]int, len(fr))
		for range reps {
			w, tp := 0.0, 0.0
			for k, tk := range fr {
				w += math.Sqrt(tk-tp) * rng.NormFloat64()
				tp = tk
				if math.Abs(w/math.Sqrt(tk)) >= d.Bounds[k] {
					for j := k; j < len(fr); j++ {
						crossed[j]++
					}
					break
				}
			}
		}
		for k, tk := range fr {
			want := s.Spend(0.05, tk)
			got := float64(crossed[k]) / reps
			se := math.Sqrt(want * (1 - want) / reps)
			if math.Abs(got-want) > 4*se+1e-5 {
				t.Errorf("%s look %d: cumulative crossing %.5f, spending %.5f (4 SE = %.5f)", s, k, got, want, 4*se)
			}
		}
	}
}
