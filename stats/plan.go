package stats

import "math"

// PlanInput describes the effect a PM wants to detect.
type PlanInput struct {
	// BaselineMean is the control's expected per-user mean (for a
	// proportion, the rate).
	BaselineMean float64
	// BaselineSD is the per-user standard deviation of x. Zero with
	// 0 < BaselineMean < 1 means a proportion: SD = sqrt(p(1−p)) per arm.
	BaselineSD float64
	// Lift is the effect to detect: absolute (metric units) or, with
	// Relative, a fraction of BaselineMean (0.02 = +2%).
	Lift     float64
	Relative bool
	Alpha    float64 // two-sided; default 0.05
	Power    float64 // default 0.8
	// Candidates splits Alpha (Bonferroni); default 1.
	Candidates int
}

// Plan is the users needed per variant.
type Plan struct {
	// Fixed is the fixed-horizon sample size per variant (one analysis).
	Fixed float64 `json:"fixed"`
	// Sequential is the per-variant maximum sample size for the chosen
	// sequential method to reach the power (see SampleSize).
	Sequential float64 `json:"sequential"`
	// Inflation is Sequential/Fixed.
	Inflation float64 `json:"inflation"`
}

// planSetup returns the per-arm variances, absolute effect and levels.
func (in PlanInput) setup() (v0, v1, delta, alpha, power float64, ok bool) {
	alpha = orDefault(in.Alpha, DefaultAlpha)
	checkAlpha(alpha)
	power = orDefault(in.Power, 0.8)
	if !(power > 0 && power < 1) {
		panic("stats: power must be in (0,1)")
	}
	if in.Candidates > 1 {
		alpha /= float64(in.Candidates)
	}
	delta = in.Lift
	if in.Relative {
		delta = in.Lift * in.BaselineMean
	}
	p0 := in.BaselineMean
	switch {
	case in.BaselineSD > 0:
		v0 = in.BaselineSD * in.BaselineSD
		v1 = v0
	case p0 > 0 && p0 < 1:
		p1 := p0 + delta
		if !(p1 > 0 && p1 < 1) {
			return 0, 0, 0, alpha, power, false
		}
		v0, v1 = p0*(1-p0), p1*(1-p1)
	default:
		return 0, 0, 0, alpha, power, false
	}
	ok = delta != 0 && finite(delta) && finite(v0) && finite(v1)
	return v0, v1, math.Abs(delta), alpha, power, ok
}

// SampleSize returns the users needed per variant to detect the lift with
// the given power, for a fixed horizon and for the given sequential
// method. Unusable input (zero lift, unknown variance) gives a zero Plan.
//
// Fixed horizon: n = (z_{1−α/2} + z_{power})² · (σ0² + σ1²) / δ².
//
// Confidence sequence / mSPRT: the smallest n at which the probability that
// the estimate lies outside the always-valid interval at n itself reaches
// the power, i.e. δ − h(n) = z_{power}·SE(n) where h(n) is the interval
// half-width at n. Crossing earlier only adds power, so this is a
// simulation-free, slightly conservative maximum sample size (checked by
// simulation in docs/statistics.md). For the confidence sequence, N*
// is set to the resulting total sample 2n (pass nStar > 0 to fix it).
// For mSPRT, tau is the relative mixing SD (0 = DefaultTau).
//
// Group sequential: n = Fixed · Design.InflationFactor(power) (design built
// at the same alpha).
func SampleSize(in PlanInput, method Method, tau, nStar float64, design *Design) Plan {
	v0, v1, delta, alpha, power, ok := in.setup()
	if !ok {
		return Plan{}
	}
	za, zb := unitNormal.Quantile(1-alpha/2), unitNormal.Quantile(power)
	fixed := math.Ceil((za + zb) * (za + zb) * (v0 + v1) / (delta * delta))
	pl := Plan{Fixed: fixed}
	switch method {
	case GroupSequentialMethod:
		if design == nil {
			return pl
		}
		pl.Sequential = math.Ceil(fixed * design.InflationFactor(power))
	case MSPRTMethod, ConfidenceSequenceMethod, "":
		tau = orDefault(tau, DefaultTau)
		tauAbs2 := tau * tau * in.BaselineMean * in.BaselineMean
		gap := func(n float64) float64 { // > 0 when n is large enough
			v := (v0 + v1) / n
			e := Estimate{Value: delta, Variance: v}
			var t Test
			if method == MSPRTMethod && tauAbs2 > 0 {
				t = MSPRT(e, 0, tauAbs2, alpha)
			} else {
				ns := nStar
				if !(ns > 0) {
					ns = 2 * n
				}
				t = ConfidenceSequence(e, 0, 2*n, ns, alpha)
			}
			hw := (t.CI.High - t.CI.Low) / 2
			return delta - hw - zb*math.Sqrt(v)
		}
		lo, hi := fixed, fixed
		for gap(hi) < 0 {
			lo = hi
			hi *= 2
			if hi > 1e15 {
				return pl
			}
		}
		for hi-lo > 0.5 {
			mid := 0.5 * (lo + hi)
			if gap(mid) < 0 {
				lo = mid
			} else {
				hi = mid
			}
		}
		pl.Sequential = math.Ceil(hi)
	}
	if pl.Sequential > 0 {
		pl.Inflation = pl.Sequential / fixed
	}
	return pl
}
