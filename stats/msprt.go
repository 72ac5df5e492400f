package stats

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

var unitNormal = distuv.UnitNormal

// checkAlpha panics when alpha is not in (0,1): a programmer error.
func checkAlpha(alpha float64) {
	if !(alpha > 0 && alpha < 1) {
		panic("stats: alpha must be in (0,1)")
	}
}

// Interval is a two-sided confidence interval (or one time-slice of a
// confidence sequence).
type Interval struct {
	Low, High float64
}

// Test is the outcome of a test of an effect against a null value.
type Test struct {
	Estimate float64  // the effect estimate Δ̂
	StdErr   float64  // its standard error
	PValue   float64  // (always-valid, for sequential tests) p-value, in [0,1]
	CI       Interval // (always-valid) confidence interval for Δ at level 1−alpha
	Valid    bool     // false when the data were degenerate; then PValue = 1 and CI is (−Inf, +Inf)
}

func invalidTest(e Estimate) Test {
	t := Test{PValue: 1, CI: Interval{math.Inf(-1), math.Inf(1)}}
	if finite(e.Value) {
		t.Estimate = e.Value
	}
	return t
}

// MSPRT is the mixture sequential probability ratio test with a normal
// mixing distribution N(θ0, τ²) over the effect (Johari, Koomen, Pekelis,
// Walsh 2017/2022, "Always Valid Inference: Continuous Monitoring of A/B
// Tests"). For an asymptotically normal effect estimate Δ̂ with variance v
// the mixture likelihood ratio against H0: Δ = θ0 is
//
//	Λ = sqrt(v/(v+τ²)) · exp( τ²(Δ̂−θ0)² / (2v(v+τ²)) ).
//
// With v = 2σ²/n this is eq. (11) of the paper. The always-valid p-value
// at this look is min(1, 1/Λ) and the always-valid confidence interval is
// {θ0 : Λ(θ0) < 1/α}, i.e. Δ̂ ± sqrt( 2v(v+τ²)/τ² · (log(1/α) + ½log((v+τ²)/v)) ).
//
// Rejecting at the first look with p ≤ α keeps the type I error ≤ α under
// any monitoring schedule. The running minimum of the p-values (and the
// running intersection of the intervals) is also valid; Decide is
// stateless and uses the current values, which is sufficient when the
// caller stops at the first rejection.
//
// tau2 must be > 0 (it is in squared units of the effect). It panics if
// alpha ∉ (0,1) or tau2 ≤ 0.
func MSPRT(effect Estimate, theta0, tau2, alpha float64) Test {
	checkAlpha(alpha)
	if !(tau2 > 0) || math.IsInf(tau2, 0) {
		panic("stats: mSPRT mixing variance tau2 must be finite and > 0")
	}
	if !effect.valid() {
		return invalidTest(effect)
	}
	v := effect.Variance
	d := effect.Value - theta0
	r := (v + tau2) / v
	logLR := -0.5*math.Log(r) + tau2*d*d/(2*v*(v+tau2))
	p := 1.0
	if logLR > 0 {
		p = math.Exp(-logLR)
	}
	hw := math.Sqrt(2 * v * r / tau2 * v * (math.Log(1/alpha) + 0.5*math.Log(r)))
	return Test{
		Estimate: effect.Value,
		StdErr:   math.Sqrt(v),
		PValue:   p,
		CI:       Interval{effect.Value - hw, effect.Value + hw},
		Valid:    finite(p) && finite(hw),
	}
}

// ConfSeqRho2 returns the tuning ρ² of the asymptotic confidence sequence
// that makes it tightest (approximately) at sample size nStar:
//
//	ρ² = (2·log(1/α) + log(1 + 2·log(1/α))) / N*
//
// (Waudby-Smith et al., "Time-uniform central limit theory and asymptotic
// confidence sequences", Ann. Statist. 2024; the approximate optimiser used
// by GrowthBook). It panics on alpha ∉ (0,1) or nStar ≤ 0.
func ConfSeqRho2(nStar, alpha float64) float64 {
	checkAlpha(alpha)
	if !(nStar > 0) || math.IsInf(nStar, 0) {
		panic("stats: N* must be finite and > 0")
	}
	l := math.Log(1 / alpha)
	return (2*l + math.Log(1+2*l)) / nStar
}

// ConfidenceSequence is the two-sided asymptotic confidence sequence of
// Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas (built on the normal
// mixture boundary of Howard, Ramdas, McAuliffe, Sekhon), as used by
// GrowthBook for sequential testing. At sample size n with per-unit
// variance σ̂² it is
//
//	Δ̂ ± σ̂ · sqrt( 2(nρ²+1)/(n²ρ²) · log( sqrt(nρ²+1)/α ) ),
//
// tightest around n = nStar (see ConfSeqRho2). Here n is the number of
// users in the comparison (control + treatment) and σ̂² = n·Var(Δ̂).
//
// This interval is exactly the normal-mixture mSPRT interval with the
// data-scaled mixing variance τ² = ρ²σ̂² = ρ²·n·Var(Δ̂), and it is computed
// that way (the equivalence is shown in TestConfidenceSequenceEqualsMSPRT).
// The p-value is the matching mSPRT p-value.
func ConfidenceSequence(effect Estimate, theta0, n, nStar, alpha float64) Test {
	rho2 := ConfSeqRho2(nStar, alpha)
	if !effect.valid() || !(n > 0) || math.IsInf(n, 0) {
		return invalidTest(effect)
	}
	tau2 := rho2 * n * effect.Variance
	if !(tau2 > 0) || math.IsInf(tau2, 0) {
		return invalidTest(effect)
	}
	return MSPRT(effect, theta0, tau2, alpha)
}
