package stats

import "math"

// Bounds is the known range [Lo, Hi] of a metric's per-user value, e.g.
// [0, 1] for a rate, [1, 5] for a rating, [0, timeout] for a latency the
// recorder caps at the upstream timeout. It is usable when both are
// finite and Hi > Lo.
type Bounds struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

func (b Bounds) ok() bool { return finite(b.Lo) && finite(b.Hi) && b.Hi > b.Lo && finite(b.Hi-b.Lo) }

// Moments are one arm's sufficient statistics of a per-user value u:
// users N, Σu and Σu², and, for CUPED (BoundedTestCUPED), Σz, Σz² and
// Σuz of a pre-exposure covariate z per user (zero without one).
type Moments struct {
	N, Sum, Sum2 float64
	SumZ, SumZ2  float64
	SumUZ        float64
}

func (m Moments) ok() bool {
	return m.N >= 1 && finite(m.N) && finite(m.Sum) && finite(m.Sum2) && m.Sum2 >= 0
}

// zok: the covariate sums are usable with z in [zLo, zHi].
func (m Moments) zok(zLo, zHi float64) bool {
	return finite(m.SumZ) && finite(m.SumZ2) && finite(m.SumUZ) && m.SumZ2 >= 0 &&
		m.SumZ >= m.N*zLo*(1+1e-12)-1e-9 && m.SumZ <= m.N*zHi*(1+1e-12)+1e-9
}

// BoundedNull is the null hypothesis of a bounded two-sample test on the
// means μ0 (control) and μ1 (candidate) of a per-user value:
//
//	Greater: H0 θ ≤ Theta0, rejected when the data show θ > Theta0;
//	Less:    H0 θ ≥ Theta0, rejected when the data show θ < Theta0;
//
// with θ = μ1 − μ0, or θ = μ1/μ0 − 1 when Relative (then the values must
// be ≥ 0 and Theta0 > −1).
type BoundedNull struct {
	Theta0   float64
	Relative bool
	Side     Side
}

// BoundedResult is a bounded anytime-valid test.
type BoundedResult struct {
	// LogE is the log of the e-process at this look; the test rejects at
	// level α when LogE ≥ log(1/α). E = exp(LogE) is an e-value and can
	// be multiplied with e-values of independent cohorts (CombineE).
	LogE float64
	// PValue = min(1, exp(−LogE)): an anytime-valid p-value.
	PValue float64
	Reject bool
	Valid  bool
}

// boundedLambdas is the grid of bets λ of the e-process mixture: a
// geometric grid from 0.9 down by factors of √2 (24 values, to 2.7e-4).
// Equal weights on a log scale make the test scale-free: it loses at most
// log(24) ≈ 3.2 nats against the best single bet in hindsight, and a
// bet off the best by a factor 2^¼ costs under 4% of the evidence.
var boundedLambdas = func() []float64 {
	l := make([]float64, 24)
	for i := range l {
		l[i] = 0.9 * math.Pow(2, -float64(i)/2)
	}
	return l
}()

// boundedPsi holds ψ_E of each bet.
var boundedPsi = func() []float64 {
	p := make([]float64, len(boundedLambdas))
	for i, l := range boundedLambdas {
		p[i] = psiE(l)
	}
	return p
}()

// boundedCenters are the centres, as fractions of [Lo, Hi], that the
// e-process mixes over when no centre is given (see BoundedTest).
var boundedCenters = []float64{0, 0.03, 0.1, 0.25, 0.5, 0.75, 0.9, 0.97, 1}

// boundedThetas are the CUPED coefficients θ the e-process mixes over
// when no θ fixed before the period is given (BoundedTestCUPED): 0 (no
// adjustment, so a useless covariate costs only the mixture's log 2) and
// 1/2 (the coefficient of a covariate correlated 0.5 with the value on
// the same scale).
var boundedThetas = []float64{0, 0.5}

// psiE is the sub-exponential cumulant ψ_E(λ) = −log(1−λ) − λ.
func psiE(l float64) float64 { return -math.Log1p(-l) - l }

// BoundedTest is a nonasymptotic anytime-valid two-sample test for the
// mean of a bounded per-user value, computable from the per-arm sums N,
// Σu, Σu² alone. It relies on the randomisation: each user of the
// comparison is a candidate user with known probability share
// (share = w1/(w0+w1) of the expected split), independently of their
// outcome.
//
// With A_i = 1 for a candidate user and ũ_i = u_i for a control user,
// ũ_i = u_i − θ0 (absolute) or u_i/(1+θ0) (relative) for a candidate user,
// the increments
//
//	D_i = side·(A_i − π)·(ũ_i − m)
//
// have E[D_i | past] = side·π(1−π)·(E ũ₁ − μ0) ≤ 0 under H0, for any
// constant centre m and any distributions on [Lo, Hi]: the assignment,
// not a CLT, centres them. They are bounded below by −c (c from the
// bounds), so by Fan, Grama and Liu's inequality (2015, "Exponential
// inequalities for martingales with applications", Electron. J. Probab.
// 20(1), Lemma 4.1: exp(λx − ψ_E(λ)x²) ≤ 1 + λx for x ≥ −1, λ ∈ [0,1))
//
//	M_t(λ, m) = exp( λ·S_t/c − ψ_E(λ)·V_t/c² ),  S_t = Σ D_i,  V_t = Σ D_i²
//
// is a nonnegative supermartingale under H0: the empirical-Bernstein
// supermartingale of Howard, Ramdas, McAuliffe and Sekhon (2021,
// "Time-uniform, nonparametric, nonasymptotic confidence sequences",
// Ann. Statist. 49(2), Thm. 4), centred here by the randomisation instead
// of a predictable mean, which is what makes S_t and V_t functions of the
// per-arm sums: S_t = side·[(1−π)·Σ₁(ũ−m) − π·Σ₀(u−m)] and
// V_t = (1−π)²·Σ₁(ũ−m)² + π²·Σ₀(u−m)². The test averages M over a fixed
// grid of bets λ (and, without a centre, over a grid of centres m), an
// e-process; by Ville's inequality P(ever LogE ≥ log(1/α)) ≤ α at every
// sample size, for rare events, skewed or clustered (overdispersed)
// per-user values alike.
//
// The centre should be close to the pooled mean: V_t grows with
// (mean − m)², so a far centre costs users, not validity. center is
// used when it lies in [Lo, Hi] (e.g. the control mean of an earlier,
// independent ramp period, or a planning baseline); pass NaN to mix over
// nine centres spread over [Lo, Hi] (costing log 9 ≈ 2.2 nats of
// evidence). With a good centre the test's efficiency matches the
// difference-in-means z-test asymptotically; the price of validity at
// every n is the mixture's log(1/α) + log 24 threshold instead of z²/2.
//
// Degenerate input (an empty arm, NaN, unusable bounds or share, a
// relative null with Lo < 0) gives Valid = false and PValue 1. It panics
// when alpha ∉ (0,1).
func BoundedTest(control, treatment Moments, b Bounds, share float64, null BoundedNull, center, alpha float64) BoundedResult {
	checkAlpha(alpha)
	control.SumZ, control.SumZ2, control.SumUZ = 0, 0, 0
	treatment.SumZ, treatment.SumZ2, treatment.SumUZ = 0, 0, 0
	return boundedResult(boundedLogE(control, treatment, b, share, null, center, []float64{0}, 0), alpha)
}

// BoundedTestCUPED is BoundedTest with CUPED: each user is centred at
//
//	m_i = (1−θ)·m + θ·z_i
//
// instead of m, where z_i is the user's pre-exposure covariate on the
// value's own scale (Moments.SumZ, SumZ2, SumUZ; z must lie in
// [min(Lo,0), max(Hi,0)]: in the bounds, or 0 for a user without
// history) and θ ∈ [0,1] is fixed before the period's data. Because z_i
// is measured before exposure it is independent of the assignment A_i,
// so the increment side·(A_i−π)·(ũ_i − m_i) keeps its conditional mean
// side·π(1−π)·(ũ_i(1) − u_i(0)) ≤ 0 under H0 (the centre cancels in
// expectation whatever it is, as long as it does not depend on A_i); it
// only shrinks V_t, by the share of u's variance z explains. The lower
// bound c covers every m_i the bounds of z allow.
//
// theta is a θ fixed before the period (e.g. the within-control
// regression coefficient of u on z fitted on the previous period,
// clamped to [0,1]); NaN mixes over boundedThetas {0, 1/2}, an average
// of e-processes, hence an e-process, at a cost of log 2 ≈ 0.69 nats of
// threshold. nStar > 0 with a centre weights the bets around the plan
// (betWeights); 0 keeps them equal. Degenerate input, including covariate sums outside the
// bounds of z, gives Valid = false. It panics when alpha ∉ (0,1).
func BoundedTestCUPED(control, treatment Moments, b Bounds, share float64, null BoundedNull, center, theta, nStar, alpha float64) BoundedResult {
	checkAlpha(alpha)
	thetas := boundedThetas
	if finite(theta) {
		thetas = []float64{math.Max(0, math.Min(1, theta))}
	}
	return boundedResult(boundedLogE(control, treatment, b, share, null, center, thetas, nStar), alpha)
}

// boundedResult turns a log e-value (NaN: degenerate) into the result.
func boundedResult(logE, alpha float64) BoundedResult {
	if math.IsNaN(logE) || math.IsInf(logE, 1) {
		return BoundedResult{PValue: 1}
	}
	r := BoundedResult{LogE: logE, PValue: 1, Valid: true}
	if logE > 0 {
		r.PValue = math.Exp(-logE)
	}
	r.Reject = logE >= math.Log(1/alpha)
	return r
}

// boundedLogE is the log e-value of BoundedTest(CUPED), averaged over
// the centres, the CUPED coefficients thetas and the bets; NaN for
// degenerate input.
func boundedLogE(control, treatment Moments, b Bounds, share float64, null BoundedNull, center float64, thetas []float64, nStar float64) float64 {
	bad := math.NaN()
	if !control.ok() || !treatment.ok() || !b.ok() || !(share > 0 && share < 1) || !finite(null.Theta0) ||
		(null.Side != Greater && null.Side != Less) || len(thetas) == 0 || len(thetas) > len(boundedThetas) {
		return bad
	}
	zLo, zHi := math.Min(b.Lo, 0), math.Max(b.Hi, 0)
	if !control.zok(zLo, zHi) || !treatment.zok(zLo, zHi) {
		return bad
	}
	// Work on [0,1]: u' = (u−Lo)/w, z' = (z−Lo)/w. An absolute θ0 scales
	// by 1/w; a relative null maps u₁/(1+θ0) to (u₁/(1+θ0) − Lo)/w, which
	// needs Lo = 0 to stay affine in u' (then ũ' = u'/(1+θ0)).
	w := b.Hi - b.Lo
	scale := func(m Moments) Moments {
		n, lo := m.N, b.Lo
		return Moments{N: n, Sum: (m.Sum - n*lo) / w, Sum2: (m.Sum2 - 2*lo*m.Sum + n*lo*lo) / (w * w),
			SumZ: (m.SumZ - n*lo) / w, SumZ2: (m.SumZ2 - 2*lo*m.SumZ + n*lo*lo) / (w * w),
			SumUZ: (m.SumUZ - lo*m.Sum - lo*m.SumZ + n*lo*lo) / (w * w)}
	}
	c0, t1 := scale(control), scale(treatment)
	zlo, zhi := (zLo-b.Lo)/w, (zHi-b.Lo)/w
	// ũ' = a·u' − sh for candidate users.
	a, sh := 1.0, null.Theta0/w
	if null.Relative {
		if b.Lo < 0 || !(null.Theta0 > -1) {
			return bad
		}
		a, sh = 1/(1+null.Theta0), 0
		if b.Lo > 0 {
			// ũ = u/(1+θ0) in original units: ũ' = (u/(1+θ0) − Lo)/w
			// = a·u' − Lo·(1−a)/w.
			sh = b.Lo * (1 - a) / w
		}
	}
	tLo, tHi := -sh, a-sh // range of ũ' for candidate users
	pi := share
	s := float64(null.Side)

	centers := boundedCenters
	if finite(center) && center >= b.Lo && center <= b.Hi {
		centers = []float64{(center - b.Lo) / w}
	}
	// Σ(a·u' − θ·z' − k) and Σ(a·u' − θ·z' − k)² of one arm: w_i = ũ'_i −
	// m_i with m_i = (1−θ)m + θ·z'_i and k = sh + (1−θ)m.
	sums := func(x Moments, a, th, k float64) (float64, float64) {
		s1 := a*x.Sum - th*x.SumZ - k*x.N
		q := a*a*x.Sum2 + th*th*x.SumZ2 + k*k*x.N - 2*a*th*x.SumUZ - 2*a*k*x.Sum + 2*th*k*x.SumZ
		return s1, math.Max(q, 0)
	}
	// log of the average of exp(le) over the grid, by the max trick (one
	// exp per term, one log in all).
	var les, wts [16 * 2 * 24]float64 // centres × thetas × bets, on the stack
	k := 0
	tuned := nStar > 0 && finite(nStar) && len(centers) == 1
	mx := math.Inf(-1)
	for _, m := range centers {
		for _, th := range thetas {
			km := (1 - th) * m
			s1, q1 := sums(t1, a, th, sh+km)
			s0, q0 := sums(c0, 1, th, km)
			S := s * ((1-pi)*s1 - pi*s0)
			V := (1-pi)*(1-pi)*q1 + pi*pi*q0
			// Lower bound of one increment over every centre m_i ∈ [mlo,
			// mhi]: control D = −side·π(u'−m_i), candidate D =
			// side·(1−π)(ũ'−m_i).
			mlo, mhi := km+th*zlo, km+th*zhi
			var lowC, lowT float64
			if s > 0 {
				lowC, lowT = -pi*(1-mlo), (1-pi)*(tLo-mhi)
			} else {
				lowC, lowT = -pi*mhi, -(1-pi)*(tHi-mlo)
			}
			c := -math.Min(lowC, lowT)
			if !(c > 1e-12) {
				c = 1e-12
			}
			w := betWeights(c, pi, m, nStar, tuned)
			for i, l := range boundedLambdas {
				le := l*S/c - boundedPsi[i]*V/(c*c)
				les[k], wts[k] = le, w[i]
				k++
				if le > mx || math.IsNaN(le) {
					mx = le
				}
			}
		}
	}
	logE := mx
	if finite(mx) {
		sum := 0.0
		if tuned {
			for i, le := range les[:k] {
				sum += wts[i] * math.Exp(le-mx)
			}
			logE = mx + math.Log(sum/float64(k/len(boundedLambdas)))
		} else {
			// Equal weights, summed as 1/k·Σ (bit for bit as before).
			for _, le := range les[:k] {
				sum += math.Exp(le - mx)
			}
			logE = mx + math.Log(sum/float64(k))
		}
	}
	if math.IsInf(logE, 1) {
		return bad
	}
	return logE
}

// uniformBets are equal weights on boundedLambdas.
var uniformBets = func() []float64 {
	w := make([]float64, len(boundedLambdas))
	for i := range w {
		w[i] = 1 / float64(len(w))
	}
	return w
}()

// betPlanEvidence is the log evidence the tuned bet weights aim at: the
// rejection threshold log(1/α) at α ≈ 0.05.
const betPlanEvidence = 3.0

// betWeights are the weights of the bets boundedLambdas (summing to 1):
// equal, or, when tuned (a centre fixed before the data and the planned
// users nStar), a discretised normal in log₂ λ with SD 1 (a factor 2)
// around the bet that is best for an effect just at the threshold at
// nStar users: λ = c·√(2L/V) with L = betPlanEvidence and V = nStar ·
// π(1−π)·m(1−m) the expected Σ D_i² when the values (on [0,1]) have mean
// m, whose variance is at most m(1−m) (Bhatia and Davis 2000, "A better
// bound on the variance", Amer. Math. Monthly 107(4)). Everything it
// uses is fixed before the period's data, so the weighted average of the
// supermartingales is still one; the weights only decide which bets the
// evidence is spent on.
func betWeights(c, pi, m, nStar float64, tuned bool) []float64 {
	v := nStar * pi * (1 - pi) * m * (1 - m)
	if !tuned || !(v > 0) || !finite(v) {
		return uniformBets
	}
	l0 := math.Log2(c * math.Sqrt(2*betPlanEvidence/v))
	w := make([]float64, len(boundedLambdas))
	sum := 0.0
	for i, l := range boundedLambdas {
		d := math.Log2(l) - l0 // SD 1
		w[i] = math.Exp(-d * d / 2)
		sum += w[i]
	}
	if !(sum > 0) || !finite(sum) {
		return uniformBets
	}
	for i := range w {
		w[i] /= sum
	}
	return w
}

// logAddExp is log(eˣ + eʸ).
func logAddExp(x, y float64) float64 {
	if math.IsInf(x, -1) {
		return y
	}
	if math.IsInf(y, -1) {
		return x
	}
	if x < y {
		x, y = y, x
	}
	return x + math.Log1p(math.Exp(y-x))
}

// BoundedBound is the one-sided anytime-valid confidence bound for θ
// that BoundedTest inverts: for side Greater the smallest θ0 not
// rejected (a lower bound: θ > bound with confidence 1−α at every look),
// for Less the largest (an upper bound). It searches θ0 by bisection
// and returns ∓Inf when nothing is rejected or the input is degenerate.
func BoundedBound(control, treatment Moments, b Bounds, share float64, relative bool, side Side, center, alpha float64) float64 {
	control.SumZ, control.SumZ2, control.SumUZ = 0, 0, 0
	treatment.SumZ, treatment.SumZ2, treatment.SumUZ = 0, 0, 0
	return boundedBound(control, treatment, b, share, relative, side, center, []float64{0}, 0, alpha)
}

// BoundedBoundCUPED is BoundedBound for BoundedTestCUPED (theta NaN:
// the mixture over boundedThetas; nStar as there).
func BoundedBoundCUPED(control, treatment Moments, b Bounds, share float64, relative bool, side Side, center, theta, nStar, alpha float64) float64 {
	thetas := boundedThetas
	if finite(theta) {
		thetas = []float64{math.Max(0, math.Min(1, theta))}
	}
	return boundedBound(control, treatment, b, share, relative, side, center, thetas, nStar, alpha)
}

func boundedBound(control, treatment Moments, b Bounds, share float64, relative bool, side Side, center float64, thetas []float64, nStar, alpha float64) float64 {
	checkAlpha(alpha)
	none := math.Inf(-int(side))
	if !control.ok() || !treatment.ok() || !b.ok() || (relative && b.Lo < 0) || (side != Greater && side != Less) {
		return none
	}
	rej := func(theta0 float64) bool {
		le := boundedLogE(control, treatment, b, share, BoundedNull{Theta0: theta0, Relative: relative, Side: side}, center, thetas, nStar)
		return boundedResult(le, alpha).Reject
	}
	// The estimate: a null at it is never rejected (S ≈ 0).
	est := treatment.Sum/treatment.N - control.Sum/control.N
	lo, hi := b.Lo-b.Hi, b.Hi-b.Lo // feasible absolute effects
	if relative {
		m0 := control.Sum / control.N
		if !(m0 > 0) {
			return none
		}
		est = (treatment.Sum/treatment.N)/m0 - 1
		lo, hi = -1+1e-12, math.Max(b.Hi/math.Max(b.Lo, 1e-300*b.Hi), 1)
		hi = math.Min(hi, 1e12)
	}
	est = math.Max(lo, math.Min(hi, est))
	// Walk outward from the estimate in doubling steps of the standard
	// error until a null is rejected (the e-value is not monotone over the
	// whole range: a null far beyond the grid of bets is not rejected),
	// then bisect between the last accepted and the first rejected θ0.
	ce := MeanEstimate(Summary{N: control.N, SumX: control.Sum, SumX2: control.Sum2})
	te := MeanEstimate(Summary{N: treatment.N, SumX: treatment.Sum, SumX2: treatment.Sum2})
	step := math.Sqrt(Lift(ce, te, relative).Variance)
	if !(step > 0) || !finite(step) {
		step = 1e-3 * (hi - lo)
	}
	tol := 1e-3 * step // display precision: a thousandth of a standard error
	dir := -1.0        // Greater: rejected nulls lie below the estimate
	if side == Less {
		dir = 1
	}
	in := est
	if rej(in) {
		return est
	}
	out := math.NaN()
	for range 64 {
		x := est + dir*step
		if x <= lo || x >= hi {
			x = math.Max(lo, math.Min(hi, x))
			if rej(x) {
				out = x
			}
			break
		}
		if rej(x) {
			out = x
			break
		}
		in = x
		step *= 2
	}
	if math.IsNaN(out) {
		return none
	}
	for range 60 {
		mid := 0.5 * (in + out)
		if rej(mid) {
			out = mid
		} else {
			in = mid
		}
		if math.Abs(in-out) <= tol {
			break
		}
	}
	return out
}

// Events returns the information in a bounded per-user value measured in
// events: min(Σ(u−Lo), Σ(Hi−u))/(Hi−Lo). For a 0/1 metric it is the
// count of the rarer outcome (errors when errors are rare). It is 0 for
// unusable input.
func Events(m Moments, b Bounds) float64 {
	if !m.ok() || !b.ok() {
		return 0
	}
	w := b.Hi - b.Lo
	e := math.Min(m.Sum-m.N*b.Lo, m.N*b.Hi-m.Sum) / w
	if !(e > 0) || !finite(e) {
		return 0
	}
	return e
}
