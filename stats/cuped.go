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

// linearArm is one arm of a CUPED comparison on the linear scale: the
// estimate, and the per-user sample moments of its linearised
// contribution l (the value itself for a mean; the delta method's
// (x − R·y)/ȳ for a ratio) and of the covariate z.
type linearArm struct {
	n, value float64
	vl       float64 // sample variance of l
	clz      float64 // sample covariance of l and z
	zbar, vz float64 // mean and sample variance of z
	floor    float64 // variance used when the adjusted one is 0
}

func (a linearArm) ok() bool {
	return a.n >= 2 && finite(a.value) && finite(a.vl) && finite(a.clz) && finite(a.zbar) && finite(a.vz)
}

// cupedAdjust is CUPED on two linearised arms: the pooled within-arm θ,
// the adjusted estimates and the effect. unadjusted is the plain effect.
func cupedAdjust(c, t linearArm, unadjusted Estimate) CUPEDResult {
	r := CUPEDResult{Unadjusted: unadjusted}
	if !c.ok() || !t.ok() || !unadjusted.valid() {
		return r
	}
	szz := (c.n-1)*c.vz + (t.n-1)*t.vz
	slz := (c.n-1)*c.clz + (t.n-1)*t.clz
	if !(szz > 0) || !finite(szz) || !finite(slz) {
		return r
	}
	theta := slz / szz
	zbar := (c.n*c.zbar + t.n*t.zbar) / (c.n + t.n)
	adj := func(a linearArm) Estimate {
		v := (a.vl - 2*theta*a.clz + theta*theta*a.vz) / a.n
		if !(v > 0) {
			v = a.floor
		}
		return Estimate{Value: a.value - theta*(a.zbar-zbar), Variance: v}
	}
	r.Theta = theta
	r.Control, r.Treatment = adj(c), adj(t)
	r.Effect = Lift(r.Control, r.Treatment, false)
	if !r.Effect.valid() {
		return CUPEDResult{Unadjusted: unadjusted}
	}
	r.VarianceRemoved = math.Max(0, math.Min(1, 1-r.Effect.Variance/r.Unadjusted.Variance))
	if r.VarianceRemoved < 1 {
		r.ExtraUsers = 1/(1-r.VarianceRemoved) - 1
	}
	r.Valid = true
	return r
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
	c := MeanEstimate(Summary{N: control.N, SumX: control.SumY, SumX2: control.SumY2})
	t := MeanEstimate(Summary{N: treatment.N, SumX: treatment.SumY, SumX2: treatment.SumY2})
	arm := func(s CovariateSummary) linearArm {
		if !(s.N >= 2) || !finite(s.SumY) || !finite(s.SumY2) || !finite(s.SumZ) || !finite(s.SumZ2) || !finite(s.SumYZ) {
			return linearArm{}
		}
		return linearArm{n: s.N, value: s.SumY / s.N,
			vl: sampleVar(s.N, s.SumY, s.SumY2), clz: sampleCov(s.N, s.SumY, s.SumZ, s.SumYZ),
			zbar: s.SumZ / s.N, vz: sampleVar(s.N, s.SumZ, s.SumZ2), floor: zeroVarianceFloor(s.SumY/s.N, s.N)}
	}
	return cupedAdjust(arm(control), arm(treatment), Lift(c, t, false))
}

// RatioCUPED is CUPED for a Ratio metric R = Σx/Σy by the delta method
// (Deng, Knoblich and Lu 2018, "Applying the Delta Method in Metric
// Analytics: A Practical Guide with Novel Ideas", KDD '18, §3.4 and
// Appendix B; the regression adjustment of Deng et al. 2013 applied to
// the ratio's linearisation). Each user's contribution to the ratio of
// their arm is, to first order,
//
//	l_i = (x_i − R·y_i)/ȳ,   R̂ − R ≈ mean(l),
//
// so Var(l) = (s²x − 2R·sxy + R²·s²y)/ȳ² (N times RatioEstimate's
// variance) and Cov(l, z) = (sxz − R·syz)/ȳ, from Σxz (SumXZ) and Σyz
// (SumYZ). CUPED then regresses l on the pre-exposure covariate z with
// the pooled within-arm θ = Σ_arms (N−1)·Cov(l,z) / Σ_arms (N−1)·Var(z);
// each arm's adjusted ratio is R̂_a − θ(z̄_a − z̄) with variance
// (Var(l) − 2θ·Cov(l,z) + θ²·Var(z))/N_a, and the effect is their
// difference (Lift makes it relative). The estimate stays unbiased to
// first order because E z̄₁ = E z̄₀ for a pre-exposure z.
//
// A summary with covariate sums but no SumYZ (Σz ≠ 0 and Σyz = 0 while
// Σy > 0: a store that predates SumYZ) cannot be adjusted. Degenerate
// input gives Valid = false and the unadjusted comparison when it
// exists.
func RatioCUPED(control, treatment Summary) CUPEDResult {
	arm := func(s Summary) linearArm {
		if !(s.N >= 2) || !(s.SumY > 0) || !finite(s.SumY) || !finite(s.SumX) || !finite(s.SumZ) || !finite(s.SumZ2) ||
			!finite(s.SumXZ) || !finite(s.SumYZ) || (s.SumZ != 0 && s.SumYZ == 0) {
			return linearArm{}
		}
		my := s.SumY / s.N
		R := s.SumX / s.SumY
		vx := sampleVar(s.N, s.SumX, s.SumX2)
		vy := sampleVar(s.N, s.SumY, s.SumY2)
		cxy := sampleCov(s.N, s.SumX, s.SumY, s.SumXY)
		cxz := sampleCov(s.N, s.SumX, s.SumZ, s.SumXZ)
		cyz := sampleCov(s.N, s.SumY, s.SumZ, s.SumYZ)
		return linearArm{n: s.N, value: R,
			vl: math.Max(0, (vx-2*R*cxy+R*R*vy)/(my*my)), clz: (cxz - R*cyz) / my,
			zbar: s.SumZ / s.N, vz: sampleVar(s.N, s.SumZ, s.SumZ2), floor: zeroVarianceFloor(R, s.SumY)}
	}
	return cupedAdjust(arm(control), arm(treatment), Lift(RatioEstimate(control), RatioEstimate(treatment), false))
}

// BoundedPrior is what one arm's summary of a bounded metric fixes for a
// later period's BoundedTest: the centre, the arm's per-user mean of the
// analysed value u (x for a Mean metric, the user's own ratio r for a
// Ratio metric), and the CUPED coefficient θ = Cov(u,z)/Var(z) of u on
// its pre-exposure covariate within the arm, clamped to [0,1] (NaN
// without covariate variation). Pass the control arm of a period that is
// over: the numbers are then fixed before the next period's data, which
// is all BoundedTestCUPED needs for validity. ok is false when the
// summary cannot give a centre (no users, missing ratio sums, NaN).
func BoundedPrior(s Summary, k Kind) (center, theta float64, ok bool) {
	m, has := userMoments(s, k)
	if !has || !m.ok() || !finite(m.SumZ) || !finite(m.SumZ2) || !finite(m.SumUZ) {
		return math.NaN(), math.NaN(), false
	}
	center, theta = m.Sum/m.N, math.NaN()
	if !finite(center) {
		return math.NaN(), math.NaN(), false
	}
	if vz := sampleVar(m.N, m.SumZ, m.SumZ2); vz > 0 {
		if th := sampleCov(m.N, m.Sum, m.SumZ, m.SumUZ) / vz; finite(th) {
			theta = math.Max(0, math.Min(1, th))
		}
	}
	return center, theta, true
}
