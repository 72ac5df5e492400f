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
	// OneSided plans a one-sided call at Alpha (superiority of the
	// primary, or a non-inferiority whose margin is Lift): the fixed
	// horizon uses z_{1−α} and the sequential plan the one-sided
	// confidence sequence / mSPRT.
	OneSided bool
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
	if in.OneSided {
		za = unitNormal.Quantile(1 - alpha)
	}
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
			ns := nStar
			if !(ns > 0) {
				ns = 2 * n
			}
			var hw float64
			switch {
			case in.OneSided && method == MSPRTMethod && tauAbs2 > 0:
				hw = delta - OneSidedMSPRT(e, 0, tauAbs2, alpha, Greater).Bound
			case in.OneSided:
				hw = delta - OneSidedConfidenceSequence(e, 0, 2*n, ns, alpha, Greater).Bound
			default:
				var t Test
				if method == MSPRTMethod && tauAbs2 > 0 {
					t = MSPRT(e, 0, tauAbs2, alpha)
				} else {
					t = ConfidenceSequence(e, 0, 2*n, ns, alpha)
				}
				hw = (t.CI.High - t.CI.Low) / 2
			}
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

// NStarFor returns the confidence-sequence tuning N* for a comparison
// expected to decide at about usersPerArm users per arm: the pair's total,
// 2·usersPerArm, so that the sequence is tightest where the decision is
// due (Waudby-Smith et al. 2024, §3; GrowthBook's "estimated users" tuning).
// A fixed N* of 10 000 for an experiment that decides at 40 000 users per
// arm makes the interval there about 9% wider, i.e. ~19% more users; use
// the planned users of the ramp step (PlannedUsers) or of the experiment
// (SampleSize). It returns DefaultNStar for unusable input.
func NStarFor(usersPerArm float64) float64 {
	if !(usersPerArm > 0) || math.IsInf(usersPerArm, 0) {
		return DefaultNStar
	}
	return math.Max(2*usersPerArm, 2*DefaultMinUsers)
}

// TauFor returns the mSPRT relative mixing SD (Policy.Tau) that makes
// the mSPRT tightest at nStar users in total for a metric whose per-user
// coefficient of variation is cv (SD/mean; sqrt((1−p)/p) for a rate p),
// with equal arms: the relative effect's variance at N* is 4cv²/N*, and
// the confidence sequence's mixing variance there is ρ²·N*·Var = 4ρ²cv²
// (ρ² = ConfSeqRho2(nStar, alpha)). It returns DefaultTau for unusable
// input.
func TauFor(nStar, cv, alpha float64) float64 {
	checkAlpha(alpha)
	if !(nStar > 0) || math.IsInf(nStar, 0) || !(cv > 0) || math.IsInf(cv, 0) {
		return DefaultTau
	}
	return 2 * cv * math.Sqrt(ConfSeqRho2(nStar, alpha))
}

// PlannedUsers returns the users per arm a step exposes in days at
// dailyUsers users a day when the candidate gets share of them and the
// control the rest: the smaller arm decides, so dailyUsers·min(share,
// 1−share)·days. Zero for unusable input.
func PlannedUsers(dailyUsers, share, days float64) float64 {
	u := dailyUsers * math.Min(share, 1-share) * days
	if !(u > 0) || math.IsInf(u, 0) || !(share > 0 && share < 1) {
		return 0
	}
	return u
}

// DaysToDecision returns the days until the smaller arm reaches
// usersPerArm at dailyUsers users a day with the candidate at share: the
// inverse of PlannedUsers. +Inf when the traffic cannot get there (no
// traffic, share outside (0,1)); 0 for no users needed.
func DaysToDecision(usersPerArm, dailyUsers, share float64) float64 {
	if !(usersPerArm > 0) {
		return 0
	}
	rate := dailyUsers * math.Min(share, 1-share)
	if !(rate > 0) || math.IsInf(rate, 0) || !(share > 0 && share < 1) || math.IsInf(usersPerArm, 0) {
		return math.Inf(1)
	}
	return usersPerArm / rate
}

// Schedule is a plan in users and days.
type Schedule struct {
	Plan
	// DaysFixed and DaysSequential are the days to reach Plan.Fixed and
	// Plan.Sequential users per arm at the given traffic (+Inf if it
	// never gets there; JSON users should check math.IsInf).
	DaysFixed      float64 `json:"-"`
	DaysSequential float64 `json:"-"`
}

// PlanSchedule is SampleSize in users and days: with dailyUsers users a
// day and the candidate at share, the days to the fixed-horizon and the
// (maximum) sequential sample size.
func PlanSchedule(in PlanInput, method Method, tau, nStar float64, design *Design, dailyUsers, share float64) Schedule {
	pl := SampleSize(in, method, tau, nStar, design)
	return Schedule{Plan: pl, DaysFixed: DaysToDecision(pl.Fixed, dailyUsers, share), DaysSequential: DaysToDecision(pl.Sequential, dailyUsers, share)}
}
