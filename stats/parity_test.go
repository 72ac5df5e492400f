package stats

import (
	"math"
	"testing"
)

// Peer parity: designs and tests reproduced against the published values
// of the tools they come from. Each case names its source.

func equalFractions(k int) []float64 {
	f := make([]float64, k)
	for i := range f {
		f[i] = float64(i+1) / float64(k)
	}
	f[k-1] = 1
	return f
}

// TestParityWangTsiatis: classical Wang-Tsiatis boundaries, two-sided
// α = 0.05 (gsDesign test.type = 2, α = 0.025 per side).
func TestParityWangTsiatis(t *testing.T) {
	t.Parallel()
	// gsDesign tests/testthat/test-base.R, test.Deming.OFbound:
	// gsDesign(k = 4, test.type = 2, sfu = "OF") bounds, rounded to 2 d.p.
	d := NewWangTsiatis(0.05, 0, equalFractions(4), 2)
	for k, want := range []float64{4.05, 2.86, 2.34, 2.02} {
		near(t, "OF k=4 bound", math.Round(d.Bounds[k]*100)/100, want, 1e-9)
	}
	// Jennison & Turnbull (2000) Tables 2.1 and 2.3, K = 5, α = 0.05:
	// Pocock C_P = 2.413, O'Brien-Fleming C_B = 2.040 (c_K = C_B).
	near(t, "Pocock C_P(5)", NewWangTsiatis(0.05, 0.5, equalFractions(5), 2).Bounds[0], 2.413, 6e-4)
	near(t, "OBF C_B(5)", NewWangTsiatis(0.05, 0, equalFractions(5), 2).Bounds[4], 2.040, 6e-4)
	// gsDesign test-base.R test.JT.WT: final bound and max sample size
	// ratio n.I[K] (3 d.p.).
	for _, tc := range []struct {
		delta      float64
		k          int
		power      float64
		bound, inf float64
	}{
		{0.1, 9, 0.9, 2.113, 1.048},
		{0.25, 6, 0.8, 2.154, 1.077},
		{0.4, 7, 0.8, 2.313, 1.159},
	} {
		d := NewWangTsiatis(0.05, tc.delta, equalFractions(tc.k), 2)
		near(t, "WT final bound", d.Bounds[tc.k-1], tc.bound, 6e-4)
		near(t, "WT inflation", d.InflationFactor(tc.power), tc.inf, 6e-4)
	}
	// test.JT.OFss and test.JT.Pocock: n.I[K]·100 to 1 d.p.
	for _, tc := range []struct {
		delta float64
		k     int
		power float64
		want  float64
	}{
		{0, 5, 0.8, 1.028}, {0.5, 4, 0.8, 1.202}, {0.5, 15, 0.9, 1.305},
	} {
		d := NewWangTsiatis(0.05, tc.delta, equalFractions(tc.k), 2)
		near(t, "OF/Pocock inflation", d.InflationFactor(tc.power), tc.want, 6e-4)
	}
}

// TestParitySpending: the power family and Hwang-Shih-DeCani.
func TestParitySpending(t *testing.T) {
	t.Parallel()
	// gsDesign test-base.R test.JT.Power.symm: symmetric two-sided sfPower
	// designs, n.I[K]·100 to 1 d.p.
	for _, tc := range []struct {
		rho   float64
		k     int
		power float64
		want  float64
	}{
		{1, 3, 0.8, 1.117}, {2, 10, 0.8, 1.081}, {3, 2, 0.8, 1.010},
	} {
		d := NewSpendingDesign(0.05, "power", PowerSpending(tc.rho), equalFractions(tc.k), 2)
		near(t, "sfPower inflation", d.InflationFactor(tc.power), tc.want, 6e-4)
	}
	// gsDesign tests/testthat/_snaps/independent-test-gsBoundSummary.md:
	// gsDesign(k = 5, test.type = 1, n.fix = 1), i.e. one-sided α = 0.025,
	// sfHSD γ = −4, 90% power: efficacy Z, cumulative P(cross | δ = 0),
	// N/fixed N = 1.02.
	d := NewSpendingDesign(0.025, "hsd(-4)", HSDSpending(-4), equalFractions(5), 1)
	cum := d.CumulativeAlpha()
	for k, tc := range []struct{ z, p float64 }{
		{3.2527, 0.0006}, {2.9860, 0.0018}, {2.6917, 0.0047}, {2.3737, 0.0110}, {2.0253, 0.0250},
	} {
		near(t, "HSD(-4) one-sided bound", d.Bounds[k], tc.z, 2e-4)
		near(t, "HSD(-4) cumulative alpha", cum[k], tc.p, 5e-5)
	}
	near(t, "HSD(-4) N/fixed", math.Round(d.InflationFactor(0.9)*100)/100, 1.02, 1e-9)
	// Spotify Confidence (tests/frequentist/test_bounds.py,
	// test_many_days): power spending ρ = 2, two-sided α = 0.00333, 181
	// looks. The first bound is closed form: Φ⁻¹(1 − α/2·t₁²).
	const spotifyAlpha = 0.003333333
	t1 := 0.0016169976338740648
	sd := NewSpendingDesign(spotifyAlpha, "power(2)", PowerSpending(2), []float64{t1, 0.0057857955498163615, 0.012200379088315757, 1}, 2)
	near(t, "Spotify first bound", sd.Bounds[0], 5.75400023, 1e-6)
	// Spending values themselves.
	near(t, "HSD γ=0", HSDSpending(0)(0.05, 0.3), 0.015, 1e-15)
	near(t, "HSD γ=1", HSDSpending(1)(0.05, 0.5), 0.05*(1-math.Exp(-0.5))/(1-math.Exp(-1)), 1e-15)
	near(t, "power ρ=3", PowerSpending(3)(0.05, 0.5), 0.05/8, 1e-15)
}

// TestParityGrowthBook: gbstats (packages/stats/tests/frequentist/
// test_tests.py) values, rounded there to 5 decimals.
func TestParityGrowthBook(t *testing.T) {
	t.Parallel()
	a := Summary{N: 3407, SumX: 1396.87, SumX2: 52377.9767}
	b := Summary{N: 3461, SumX: 2422.7, SumX2: 134698.29}
	// TestTwoSidedTTest.test_two_sided_ttest (relative) and
	// test_two_sided_ttest_absolute: Welch t on the lift, delta method.
	rel := WelchLift(a, b, true, 0.05)
	near(t, "gb rel estimate", rel.Estimate, 0.70732, 6e-6)
	near(t, "gb rel se", rel.StdErr, 0.37879, 6e-6)
	near(t, "gb rel ci low", rel.CI.Low, -0.03526, 6e-6)
	near(t, "gb rel ci high", rel.CI.High, 1.44989, 6e-6)
	near(t, "gb rel p", rel.PValue, 0.06191, 6e-6)
	abs := WelchLift(a, b, false, 0.05)
	near(t, "gb abs estimate", abs.Estimate, 0.29, 6e-6)
	near(t, "gb abs ci low", abs.CI.Low, 0.04538, 6e-6)
	near(t, "gb abs ci high", abs.CI.High, 0.53462, 6e-6)
	near(t, "gb abs p", abs.PValue, 0.02016, 6e-6)
	// WelchLift absolute equals WelchT.
	w := WelchT(a, b, 0.05)
	near(t, "WelchT = WelchLift abs", w.PValue, abs.PValue, 1e-12)

	// Sequential: control n = 3000.
	a3 := Summary{N: 3000, SumX: 1396.87, SumX2: 52377.9767}
	e := Lift(MeanEstimate(a3), MeanEstimate(b), true)
	n := a3.N + b.N
	// TestSequentialTTest.test_sequential_test_runs: tuning 1000.
	cs := ConfidenceSequence(e, 0, n, 1000, 0.05)
	near(t, "gb seq estimate", cs.Estimate, 0.50336, 6e-6)
	near(t, "gb seq ci low", cs.CI.Low, -0.55844, 6e-6)
	near(t, "gb seq ci high", cs.CI.High, 1.56516, 6e-6)
	// TestSequentialOneSided{Greater,Lesser}TTest (default tuning 5000),
	// relative and absolute, given there to full precision.
	for _, tc := range []struct {
		relative bool
		side     Side
		want     float64
	}{
		{true, Greater, -0.42356454602790883},
		{false, Greater, -0.12656844172804982},
		{true, Less, 1.4302867177403806},
		{false, Less, 0.5953217750613832},
	} {
		e := Lift(MeanEstimate(a3), MeanEstimate(b), tc.relative)
		o := OneSidedConfidenceSequence(e, 0, n, 5000, 0.05, tc.side)
		near(t, "gb one-sided sequential bound", o.Bound, tc.want, 1e-9)
	}
	// test_sequential_test_runs_prop: proportions, variance p(1−p)/n.
	pa, pb := 1396.0/3000, 2422.0/3461
	ep := Lift(Estimate{pa, pa * (1 - pa) / 3000}, Estimate{pb, pb * (1 - pb) / 3461}, true)
	csp := ConfidenceSequence(ep, 0, n, 5000, 0.05)
	near(t, "gb seq prop ci low", csp.CI.Low, 0.40098, 6e-6)
	near(t, "gb seq prop ci high", csp.CI.High, 0.60675, 6e-6)
}
