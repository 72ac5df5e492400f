package stats

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// ZTest is the fixed-horizon two-sided Wald z-test of Δ = theta0 for an
// asymptotically normal estimate, with a 1−alpha confidence interval. It is
// valid only when analysed once, at a sample size fixed in advance.
func ZTest(effect Estimate, theta0, alpha float64) Test {
	checkAlpha(alpha)
	if !effect.valid() {
		return invalidTest(effect)
	}
	se := math.Sqrt(effect.Variance)
	z := (effect.Value - theta0) / se
	p := 2 * unitNormal.Survival(math.Abs(z))
	hw := unitNormal.Quantile(1-alpha/2) * se
	return Test{Estimate: effect.Value, StdErr: se, PValue: p, CI: Interval{effect.Value - hw, effect.Value + hw}, Valid: true}
}

// WelchT is Welch's two-sample t-test of mean(treatment) − mean(control)
// on per-user values (x of each Summary), with the Welch–Satterthwaite
// degrees of freedom
//
//	ν = (v0+v1)² / (v0²/(n0−1) + v1²/(n1−1)),  v = s²/n.
//
// It is a fixed-horizon test for reference.
func WelchT(control, treatment Summary, alpha float64) Test {
	checkAlpha(alpha)
	c, t := MeanEstimate(control), MeanEstimate(treatment)
	e := Lift(c, t, false)
	if !e.valid() || control.N < 2 || treatment.N < 2 {
		return invalidTest(e)
	}
	v0, v1 := c.Variance, t.Variance
	df := (v0 + v1) * (v0 + v1) / (v0*v0/(control.N-1) + v1*v1/(treatment.N-1))
	if !(df > 0) || math.IsInf(df, 0) {
		return invalidTest(e)
	}
	surv, quant := studentT(df)
	se := math.Sqrt(e.Variance)
	tt := e.Value / se
	p := 2 * surv(math.Abs(tt))
	hw := quant(1-alpha/2) * se
	if !finite(hw) || !(p >= 0 && p <= 1) {
		return invalidTest(e)
	}
	return Test{Estimate: e.Value, StdErr: se, PValue: p, CI: Interval{e.Value - hw, e.Value + hw}, Valid: true}
}

// TwoProportionZ is the classical two-proportion z-test of p1 − p0 with the
// pooled variance under H0 for the p-value and the unpooled (Wald)
// variance for the confidence interval. s0/s1 are success counts out of
// n0/n1 trials.
func TwoProportionZ(s0, n0, s1, n1, alpha float64) Test {
	checkAlpha(alpha)
	if !(n0 > 0 && n1 > 0) || s0 < 0 || s1 < 0 || s0 > n0 || s1 > n1 {
		return invalidTest(Estimate{Value: math.NaN()})
	}
	p0, p1 := s0/n0, s1/n1
	d := p1 - p0
	pp := (s0 + s1) / (n0 + n1)
	sePool := math.Sqrt(pp * (1 - pp) * (1/n0 + 1/n1))
	seW := math.Sqrt(p0*(1-p0)/n0 + p1*(1-p1)/n1)
	if !(sePool > 0) || !finite(sePool) {
		return invalidTest(Estimate{Value: d})
	}
	z := d / sePool
	hw := unitNormal.Quantile(1-alpha/2) * seW
	return Test{Estimate: d, StdErr: seW, PValue: 2 * unitNormal.Survival(math.Abs(z)), CI: Interval{d - hw, d + hw}, Valid: true}
}

// WelchLift is Welch's t-test of the lift of treatment over control on
// per-user values x, absolute (t − c) or relative (t/c − 1, delta-method
// variance as in Lift), with the Welch–Satterthwaite degrees of freedom of
// the two means:
//
//	ν = (v0+v1)² / (v0²/(n0−1) + v1²/(n1−1)),  v = s²/n.
//
// This is GrowthBook's frequentist TwoSidedTTest (gbstats
// frequentist/tests.py: Welch dof, delta-method relative variance,
// t quantiles for the interval; TestParityGrowthBook reproduces its
// published values). It is fixed-horizon. Degenerate input gives an
// invalid Test.
func WelchLift(control, treatment Summary, relative bool, alpha float64) Test {
	checkAlpha(alpha)
	c, t := MeanEstimate(control), MeanEstimate(treatment)
	e := Lift(c, t, relative)
	if !e.valid() || control.N < 2 || treatment.N < 2 || !c.valid() || !t.valid() {
		return invalidTest(e)
	}
	v0, v1 := c.Variance, t.Variance
	df := (v0 + v1) * (v0 + v1) / (v0*v0/(control.N-1) + v1*v1/(treatment.N-1))
	if !(df > 0) || math.IsInf(df, 0) {
		return invalidTest(e)
	}
	surv, quant := studentT(df)
	se := math.Sqrt(e.Variance)
	tt := e.Value / se
	p := 2 * surv(math.Abs(tt))
	hw := quant(1-alpha/2) * se
	if !finite(hw) || !(p >= 0 && p <= 1) {
		return invalidTest(e)
	}
	return Test{Estimate: e.Value, StdErr: se, PValue: p, CI: Interval{e.Value - hw, e.Value + hw}, Valid: true}
}

// studentT returns the survival and quantile functions of Student's t
// with df degrees of freedom; beyond 1e7 df (where gonum's incomplete
// beta loses its way and t equals the normal to 1e-7) the normal's.
func studentT(df float64) (surv, quant func(float64) float64) {
	if df > 1e7 {
		return unitNormal.Survival, unitNormal.Quantile
	}
	st := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}
	return st.Survival, st.Quantile
}
