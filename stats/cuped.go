package stats

import "math"

// CovariateSummary is one arm's sufficient statistics of an outcome y and
// a pre-exposure covariate z per user: N, Σy, Σy², Σz, Σz², Σyz. For a
// Summary of a Mean metric they are N, SumX, SumX2, SumZ, SumZ2, SumXZ
// (see Summary.Covariate).
type CovariateSummary struct {
	N     float64
	SumY  float64
	SumY2 float64
	SumZ  float64
	SumZ2 float64
	SumYZ float64
}

// Covariate returns the CUPED statistics of a Mean metric's Summary.
func (s Summary) Covariate() CovariateSummary {
	return CovariateSummary{N: s.N, SumY: s.SumX, SumY2: s.SumX2, SumZ: s.SumZ, SumZ2: s.SumZ2, SumYZ: s.SumXZ}
}

// CUPEDResult is a CUPED-adjusted comparison of two arms.
type CUPEDResult struct {
	// Theta is the pooled regression coefficient Cov(y,z)/Var(z) over
	// both arms (within-arm, so a treatment effect on y does not leak in).
	Theta float64
	// Control and Treatment are the adjusted per-arm means
	// ȳ − θ(z̄_arm − z̄) (z̄ the pooled covariate mean) and their
	// variances (s²_y − 2θ·s_yz + θ²·s²_z)/N.
	Control, Treatment Estimate
	// Effect is Treatment − Control (absolute) with variance the sum.
	Effect Estimate
	// Unadjusted is the plain difference in means, for comparison.
	Unadjusted Estimate
	// VarianceRemoved is 1 − Var(adjusted)/Var(unadjusted) ∈ [0,1]: ρ²
	// of y on z within arms, in large samples.
	VarianceRemoved float64
	// ExtraUsers is the factor of users the unadjusted test would need
	// to reach the adjusted precision, minus one: 1/(1−VarianceRemoved)
	// − 1 (0.33 = "worth 33% more users").
	ExtraUsers float64
	Valid      bool
}

// CUPED is the variance-reduction estimator of Deng, Xu, Kohavi and
// Walker (2013, "Improving the sensitivity of online controlled
// experiments by utilizing pre-experiment data", WSDM '13), computed
// from sufficient statistics. With θ = Σ_arms Σ(y−ȳ)(z−z̄) /
// Σ_arms Σ(z−z̄)² (pooled within-arm), each arm's adjusted mean is
// ȳ_a − θ(z̄_a − z̄) with z̄ the pooled mean of z; the effect is the
// difference of adjusted means, unbiased because z is measured before
// exposure (so E z̄_1 = E z̄_0). Estimating θ from the same data costs
// O(1/N) in the variance (Deng et al. §3.3), negligible at the sample
// sizes Decide acts on; the simulation TestSimCUPEDAA checks A/A error
// under continuous monitoring.
//
// Degenerate input (an empty arm, no covariate variation, NaN) gives
// Valid = false and the unadjusted comparison when it exists.
func CUPED(control, treatment CovariateSummary) CUPEDResult {
	r := CUPEDResult{}
	c := MeanEstimate(Summary{N: control.N, SumX: control.SumY, SumX2: control.SumY2})
	t := MeanEstimate(Summary{N: treatment.N, SumX: treatment.SumY, SumX2: treatment.SumY2})
	r.Unadjusted = Lift(c, t, false)
	ok := func(s CovariateSummary) bool {
		return s.N >= 2 && finite(s.N) && finite(s.SumY) && finite(s.SumY2) && finite(s.SumZ) && finite(s.SumZ2) && finite(s.SumYZ)
	}
	if !ok(control) || !ok(treatment) || !r.Unadjusted.valid() {
		return r
	}
	n := control.N + treatment.N
	szz := (control.N-1)*sampleVar(control.N, control.SumZ, control.SumZ2) + (treatment.N-1)*sampleVar(treatment.N, treatment.SumZ, treatment.SumZ2)
	syz := (control.N-1)*sampleCov(control.N, control.SumY, control.SumZ, control.SumYZ) + (treatment.N-1)*sampleCov(treatment.N, treatment.SumY, treatment.SumZ, treatment.SumYZ)
	if !(szz > 0) || !finite(szz) || !finite(syz) {
		return r
	}
	theta := syz / szz
	zbar := (control.SumZ + treatment.SumZ) / n
	adj := func(s CovariateSummary) Estimate {
		vy := sampleVar(s.N, s.SumY, s.SumY2)
		vz := sampleVar(s.N, s.SumZ, s.SumZ2)
		cyz := sampleCov(s.N, s.SumY, s.SumZ, s.SumYZ)
		v := (vy - 2*theta*cyz + theta*theta*vz) / s.N
		if !(v > 0) {
			v = zeroVarianceFloor(s.SumY/s.N, s.N)
		}
		return Estimate{Value: s.SumY/s.N - theta*(s.SumZ/s.N-zbar), Variance: v}
	}
	r.Theta = theta
	r.Control, r.Treatment = adj(control), adj(treatment)
	r.Effect = Lift(r.Control, r.Treatment, false)
	if !r.Effect.valid() {
		return CUPEDResult{Unadjusted: r.Unadjusted}
	}
	r.VarianceRemoved = math.Max(0, math.Min(1, 1-r.Effect.Variance/r.Unadjusted.Variance))
	if r.VarianceRemoved < 1 {
		r.ExtraUsers = 1/(1-r.VarianceRemoved) - 1
	}
	r.Valid = true
	return r
}
