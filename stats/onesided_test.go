package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestOneSidedMixtureClosedForm: M⁺ equals the half-normal mixture of the
// Gaussian likelihood ratio, integrated numerically (Simpson, 1e-7).
func TestOneSidedMixtureClosedForm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ d, v, tau2 float64 }{
		{0.01, 1e-4, 4e-4}, {-0.01, 1e-4, 4e-4}, {0.05, 1e-4, 1e-4}, {0, 2e-3, 1e-2}, {0.003, 1e-6, 2.5e-5},
	} {
		tau := math.Sqrt(tc.tau2)
		// ∫₀^∞ exp(θd/v − θ²/(2v)) · 2φ(θ/τ)/τ dθ
		f := func(th float64) float64 {
			return math.Exp(th*tc.d/tc.v-th*th/(2*tc.v)) * 2 * normPDF(th/tau) / tau
		}
		hi := 12 * tau
		const m = 20000
		h := hi / m
		sum := f(0) + f(hi)
		for i := 1; i < m; i++ {
			w := 2.0
			if i%2 == 1 {
				w = 4
			}
			sum += w * f(float64(i)*h)
		}
		want := sum * h / 3
		got := math.Exp(logOneSidedMixture(tc.d, tc.v, tc.tau2))
		near(t, "M+", got, want, 1e-7*math.Max(1, want))
	}
}

// TestOneSidedMSPRT: the bound is where p = α, the one-sided bound is
// tighter than the two-sided interval at the same α and close to the
// two-sided one at 2α, and the sides mirror each other.
func TestOneSidedMSPRT(t *testing.T) {
	t.Parallel()
	e := Estimate{Value: 0.02, Variance: 1e-4}
	tau2 := 4e-4
	const alpha = 0.05
	g := OneSidedMSPRT(e, 0, tau2, alpha, Greater)
	at := OneSidedMSPRT(e, g.Bound, tau2, alpha, Greater)
	near(t, "p at bound", at.PValue, alpha, 1e-9)
	two := MSPRT(e, 0, tau2, alpha)
	two2 := MSPRT(e, 0, tau2, 2*alpha)
	if !(g.Bound > two.CI.Low) {
		t.Errorf("one-sided bound %g not tighter than two-sided %g", g.Bound, two.CI.Low)
	}
	if math.Abs(g.Bound-two2.CI.Low) > 0.1*math.Sqrt(e.Variance) {
		t.Errorf("one-sided bound %g far from two-sided at 2α %g", g.Bound, two2.CI.Low)
	}
	l := OneSidedMSPRT(Estimate{Value: -0.02, Variance: 1e-4}, 0, tau2, alpha, Less)
	near(t, "mirror bound", l.Bound, -g.Bound, 1e-12)
	near(t, "mirror p", l.PValue, g.PValue, 1e-12)
	// p-value monotone in the estimate.
	if OneSidedMSPRT(Estimate{0.03, 1e-4}, 0, tau2, alpha, Greater).PValue >= g.PValue {
		t.Error("p-value not decreasing in the estimate")
	}
	// Confidence sequence: the closed form (eq. 134) is slightly more
	// conservative than the exact half-normal mixture with τ² = ρ²(2α)·n·v,
	// and its p-value is α at its bound.
	n, ns := 20000.0, 20000.0
	cs := OneSidedConfidenceSequence(e, 0, n, ns, alpha, Greater)
	ms := OneSidedMSPRT(e, 0, ConfSeqRho2(ns, 2*alpha)*n*e.Variance, alpha, Greater)
	if !(cs.Bound <= ms.Bound && ms.Bound-cs.Bound < 0.05*math.Sqrt(e.Variance)) {
		t.Errorf("closed form %g vs exact mixture %g", cs.Bound, ms.Bound)
	}
	near(t, "cs p at bound", OneSidedConfidenceSequence(e, cs.Bound, n, ns, alpha, Greater).PValue, alpha, 1e-9)
	if d := OneSidedConfidenceSequence(Estimate{0, 0}, 0, n, ns, alpha, Greater); d.Valid || d.PValue != 1 || !math.IsInf(d.Bound, -1) {
		t.Errorf("degenerate: %+v", d)
	}
}

// TestOneSidedFewerUsers: at the tuning point, the one-sided sequence
// concludes with fewer users than the two-sided one used one-sidedly
// (the issue's ~19%).
func TestOneSidedFewerUsers(t *testing.T) {
	t.Parallel()
	const alpha, sd, delta = 0.05, 1.0, 0.05
	users := func(one bool) float64 {
		lo, hi := 10.0, 1e7
		for hi-lo > 1 {
			n := 0.5 * (lo + hi) // per arm
			e := Estimate{Value: delta, Variance: 2 * sd * sd / n}
			var ok bool
			if one {
				ok = OneSidedConfidenceSequence(e, 0, 2*n, 2*n, alpha, Greater).Reject
			} else {
				ok = ConfidenceSequence(e, 0, 2*n, 2*n, alpha).CI.Low > 0
			}
			if ok {
				hi = n
			} else {
				lo = n
			}
		}
		return hi
	}
	one, two := users(true), users(false)
	t.Logf("users/arm to clear 0 at N* = 2n: one-sided %.0f, two-sided %.0f (%.1f%% more)", one, two, 100*(two/one-1))
	if !(two > 1.1*one) {
		t.Errorf("one-sided %.0f vs two-sided %.0f: expected ≥ 10%% saving", one, two)
	}
}

// TestOneSidedAAQuick: a light A/A check of the one-sided confidence
// sequence under continuous monitoring (the heavy one is in
// sim_valid_test.go).
func TestOneSidedAAQuick(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	const runs, looks, batch, alpha = 400, 40, 100, 0.05
	fp := 0
	for range runs {
		var s [2]Summary
		for look := 1; look <= looks; look++ {
			for arm := range 2 {
				for range batch {
					x := 10 + 3*rng.NormFloat64()
					s[arm] = s[arm].Add(Summary{N: 1, SumX: x, SumX2: x * x})
				}
			}
			e := Lift(MeanEstimate(s[0]), MeanEstimate(s[1]), false)
			if OneSidedConfidenceSequence(e, 0, s[0].N+s[1].N, 8000, alpha, Greater).Reject {
				fp++
				break
			}
		}
	}
	bound := alpha + 3*math.Sqrt(alpha*(1-alpha)/runs)
	t.Logf("one-sided CS A/A: %.4f", float64(fp)/runs)
	if float64(fp)/runs > bound {
		t.Errorf("one-sided CS A/A false positives %.4f > %.4f", float64(fp)/runs, bound)
	}
}
