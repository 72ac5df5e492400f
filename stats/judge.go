package stats

import "math"

// This file holds the shadow judge gate: an anytime-valid, paired test on
// an LLM judge's blind preferences between the candidate's and the base's
// answers to the same live prompts, aggregated per user, with a check on
// the judge's position bias. See docs/statistics.md, "Shadow judge gate".

// Preference scores of one judged comparison, from the candidate's side.
const (
	PreferenceWin  = 1.0 // the judge preferred the candidate's answer
	PreferenceTie  = 0.5
	PreferenceLoss = 0.0 // the judge preferred the base's answer
)

// JudgeVerdict is what JudgeGate recommends.
type JudgeVerdict string

const (
	// JudgePass: the candidate is shown non-inferior (or superior, when
	// the policy requires it) on the judge's preferences: it may go to
	// ramp step 1.
	JudgePass JudgeVerdict = "pass"
	// JudgeStopWorse: the candidate is shown worse than the
	// non-inferiority margin allows: do not expose users.
	JudgeStopWorse JudgeVerdict = "stop_worse"
	// JudgeContinue: keep judging.
	JudgeContinue JudgeVerdict = "continue"
	// JudgeInconclusive: the gate can't conclude in the candidate's
	// favour: the judge is shown position-biased beyond the limit, the
	// user budget ran out, or the data break the policy's assumptions.
	// It is never favourable; a person decides.
	JudgeInconclusive JudgeVerdict = "inconclusive"
)

// Reason codes of the judge gate (Reason codes of Decide are reused where
// they mean the same: ReasonMinUsers, ReasonMaxUsers, ReasonDegenerate,
// ReasonInvalidPolicy).
const (
	ReasonJudgeNonInferior ReasonCode = "judge_non_inferior"
	ReasonJudgeSuperior    ReasonCode = "judge_superior"
	ReasonJudgeWorse       ReasonCode = "judge_worse"
	ReasonJudgePending     ReasonCode = "judge_inconclusive"
	// ReasonPositionBias: the judge prefers the first-shown answer (or
	// the second) beyond the limit, with confidence.
	ReasonPositionBias ReasonCode = "position_bias"
	// ReasonPositionBiasPending: a favourable result waits because the
	// position-bias estimate is beyond the limit (not yet with
	// confidence) or too few comparisons were asked in both orders.
	ReasonPositionBiasPending ReasonCode = "position_bias_pending"
	// ReasonPerUserCap: some user has more comparisons than
	// JudgePolicy.MaxPerUser, which the test's validity rests on.
	ReasonPerUserCap ReasonCode = "per_user_cap_exceeded"
)

// Defaults of JudgePolicy's zero fields.
const (
	DefaultJudgeMinUsers          = 30
	DefaultPositionBiasLimit      = 0.1
	DefaultJudgeMaxPerUser        = 1
	DefaultJudgeNonInferiorMargin = 0.05
)

// JudgeInput is one candidate's judge data, as per-user sufficient
// statistics in the recorder's Summary form.
//
// Preference: for each user, x is the sum of the candidate's preference
// scores over that user's judged comparisons (PreferenceWin, Tie, Loss;
// a comparison asked in both orders scores the mean of its two verdicts)
// and y the number of those comparisons. So N is the users, SumY the
// comparisons, SumX/SumY the candidate's win rate (ties half).
//
// FirstShown: for each user, over the comparisons asked in both orders,
// x is the sum of the share of the two verdicts that preferred the
// first-shown answer (a tie counts half: each comparison gives 0, ¼, ½,
// ¾ or 1) and y their number. Zero when no comparison was asked twice.
//
// When the data are per-user mean scores instead (one value per user),
// UserMeanSummary builds the equivalent Summary.
type JudgeInput struct {
	Preference Summary `json:"preference"`
	FirstShown Summary `json:"first_shown"`
}

// UserMeanSummary is the Summary of users' mean scores s ∈ [0,1] taken as
// one observation each: x = s, y = 1. Use it with MaxPerUser 1.
func UserMeanSummary(users, sumMean, sumMean2 float64) Summary {
	return Summary{N: users, SumX: sumMean, SumX2: sumMean2, SumY: users, SumY2: users, SumXY: sumMean}
}

// JudgePolicy parameterises JudgeGate. Zero fields take the documented
// defaults, except the margins, for which zero is meaningful.
type JudgePolicy struct {
	// Alpha is the level of the one confidence sequence every conclusion
	// is drawn from (default 0.05): pass, stop-worse and superiority are
	// jointly wrong with probability at most Alpha, at any look.
	Alpha float64 `json:"alpha"`
	// NonInferiorityMargin δ ∈ [0, 0.5): the candidate passes when its
	// win rate is shown above 0.5 − δ, and is stopped as worse when shown
	// below it. Zero means "not worse at all" (a superiority test at 0.5).
	NonInferiorityMargin float64 `json:"non_inferiority_margin"`
	// SuperiorityMargin m ∈ [0, 0.5): superior when the win rate is shown
	// above 0.5 + m.
	SuperiorityMargin float64 `json:"superiority_margin"`
	// RequireSuperiority makes only a superior candidate pass.
	RequireSuperiority bool `json:"require_superiority,omitempty"`
	// MaxPerUser is the most judged comparisons one user can contribute
	// (default 1): the shadow sampler must enforce it. The bound on each
	// user's centred sum, which the nonasymptotic guarantee needs, is
	// MaxPerUser; data showing a user above it are refused.
	MaxPerUser float64 `json:"max_per_user"`
	// MinUsers before any verdict but a position-bias one (default 30).
	MinUsers float64 `json:"min_users"`
	// MaxUsers ends the gate as inconclusive when reached without a
	// conclusion (0 = never).
	MaxUsers float64 `json:"max_users,omitempty"`
	// PositionBiasLimit: a judge shown to prefer the first-shown answer
	// with probability beyond 0.5 ± limit makes the gate inconclusive
	// (default 0.1; negative disables the check).
	PositionBiasLimit float64 `json:"position_bias_limit"`
	// MinBothOrders: a favourable verdict waits until this many
	// comparisons were asked in both orders (default 0).
	MinBothOrders float64 `json:"min_both_orders,omitempty"`
}

// JudgeReason explains part of a JudgeDecision.
type JudgeReason struct {
	Code    ReasonCode `json:"code"`
	Message string     `json:"message"`
}

// JudgeDecision is JudgeGate's answer. It is JSON-friendly: no NaN or
// Inf; pointer fields are nil when undefined.
type JudgeDecision struct {
	Verdict     JudgeVerdict  `json:"verdict"`
	Reasons     []JudgeReason `json:"reasons"`
	Users       float64       `json:"users"`
	Comparisons float64       `json:"comparisons"`
	// WinRate is the candidate's win rate (ties half), pooled over
	// comparisons; WinRateCI its anytime-valid interval at level Alpha.
	WinRate   *float64 `json:"win_rate,omitempty"`
	WinRateCI Interval `json:"win_rate_ci"`
	// PValueNonInferior is the anytime-valid p-value of "win rate =
	// 0.5 − δ" when the estimate is above it (1 otherwise);
	// PValueSuperior likewise for 0.5 + m.
	PValueNonInferior float64 `json:"p_value_non_inferior"`
	PValueSuperior    float64 `json:"p_value_superior"`
	NonInferior       bool    `json:"non_inferior"`
	Superior          bool    `json:"superior"`
	Worse             bool    `json:"worse"`
	// BothOrders is the number of comparisons asked in both orders;
	// PositionBias estimates P(judge prefers the first-shown answer) − ½
	// from them, with its anytime-valid interval.
	BothOrders     float64  `json:"both_orders"`
	PositionBias   *float64 `json:"position_bias,omitempty"`
	PositionBiasCI Interval `json:"position_bias_ci"`
	// Biased: the interval lies wholly beyond ±PositionBiasLimit.
	Biased bool    `json:"biased"`
	Alpha  float64 `json:"alpha"`
}

// JudgeGate decides the shadow judge gate for one candidate. Rules, in
// order:
//
//  1. Data that are not finite, negative, or inconsistent with scores in
//     [0,1]: Continue (degenerate_data). A user above MaxPerUser
//     comparisons: Inconclusive (per_user_cap_exceeded).
//  2. Position bias shown beyond ±PositionBiasLimit: Inconclusive.
//  3. Fewer than MinUsers users: Continue.
//  4. Win rate shown below 0.5 − δ: StopWorse.
//  5. Win rate shown above 0.5 − δ (above 0.5 + m with
//     RequireSuperiority): Pass, unless the position-bias estimate is
//     beyond the limit or fewer than MinBothOrders comparisons were asked
//     in both orders, which hold it at Continue.
//  6. MaxUsers reached: Inconclusive. Otherwise Continue.
//
// "Shown" means by the anytime-valid confidence sequence of
// PreferenceCS at level Alpha, so the gate may be evaluated after every
// comparison and acted on at the first conclusion. JudgeGate panics only
// on a programmer error (Alpha outside (0,1), a margin outside [0, 0.5),
// MaxPerUser < 1 when set).
func JudgeGate(in JudgeInput, p JudgePolicy) JudgeDecision {
	alpha := orDefault(p.Alpha, DefaultAlpha)
	checkAlpha(alpha)
	for _, m := range []float64{p.NonInferiorityMargin, p.SuperiorityMargin} {
		if !(m >= 0 && m < 0.5) {
			panic("stats: judge margins must be in [0, 0.5)")
		}
	}
	k := orDefault(p.MaxPerUser, DefaultJudgeMaxPerUser)
	if !(k >= 1) || math.IsInf(k, 0) {
		panic("stats: MaxPerUser must be finite and >= 1")
	}
	minUsers := orDefault(p.MinUsers, DefaultJudgeMinUsers)
	limit := orDefault(p.PositionBiasLimit, DefaultPositionBiasLimit)
	ni, sup := 0.5-p.NonInferiorityMargin, 0.5+p.SuperiorityMargin

	d := JudgeDecision{
		Verdict: JudgeContinue, Alpha: alpha,
		WinRateCI: Interval{0, 1}, PositionBiasCI: Interval{-0.5, 0.5},
		PValueNonInferior: 1, PValueSuperior: 1,
	}
	add := func(c ReasonCode, msg string) { d.Reasons = append(d.Reasons, JudgeReason{Code: c, Message: msg}) }
	pref, first := in.Preference, in.FirstShown
	switch {
	case !prefConsistent(pref) || !prefConsistent(first):
		add(ReasonDegenerate, "judge statistics are not finite, negative, or inconsistent with scores in [0,1]")
		return d
	case prefOverCap(pref, k) || prefOverCap(first, k):
		d.Verdict = JudgeInconclusive
		add(ReasonPerUserCap, "some user has more judged comparisons than max_per_user allows; the test's guarantee does not hold")
		return d
	}
	d.Users, d.Comparisons, d.BothOrders = pref.N, pref.SumY, first.SumY

	// Position bias: first-shown preference rate − ½.
	if first.SumY > 0 {
		ci, _ := PreferenceCS(first, k, alpha)
		b := prefClamp01(first.SumX/first.SumY) - 0.5
		d.PositionBias = &b
		d.PositionBiasCI = Interval{ci.Low - 0.5, ci.High - 0.5}
		if limit >= 0 && (d.PositionBiasCI.Low > limit || d.PositionBiasCI.High < -limit) {
			d.Biased = true
			d.Verdict = JudgeInconclusive
			add(ReasonPositionBias, "the judge prefers one position beyond the limit; its preferences can't pass a candidate")
		}
	}

	if pref.SumY > 0 {
		ci, _ := PreferenceCS(pref, k, alpha)
		w := prefClamp01(pref.SumX / pref.SumY)
		d.WinRate, d.WinRateCI = &w, ci
		d.NonInferior, d.Superior, d.Worse = ci.Low > ni, ci.Low > sup, ci.High < ni
		if w > ni {
			d.PValueNonInferior = prefPValue(pref, k, ni)
		}
		if w > sup {
			d.PValueSuperior = prefPValue(pref, k, sup)
		}
	}
	if d.Biased {
		return d
	}
	if pref.N < minUsers {
		add(ReasonMinUsers, "fewer judged users than min_users")
		return d
	}
	if d.Worse {
		d.Verdict = JudgeStopWorse
		add(ReasonJudgeWorse, "the judge prefers the base beyond the non-inferiority margin")
		return d
	}
	favourable := d.NonInferior
	if p.RequireSuperiority {
		favourable = d.Superior
	}
	if favourable {
		switch {
		case limit >= 0 && d.PositionBias != nil && math.Abs(*d.PositionBias) > limit:
			add(ReasonPositionBiasPending, "the position-bias estimate is beyond the limit; waiting for it to resolve")
		case d.BothOrders < p.MinBothOrders:
			add(ReasonPositionBiasPending, "too few comparisons asked in both orders to check position bias")
		default:
			d.Verdict = JudgePass
			if d.Superior {
				add(ReasonJudgeSuperior, "the judge prefers the candidate beyond the superiority margin")
			} else {
				add(ReasonJudgeNonInferior, "the judge's preferences show the candidate non-inferior")
			}
			return d
		}
		return d
	}
	if p.MaxUsers > 0 && pref.N >= p.MaxUsers {
		d.Verdict = JudgeInconclusive
		add(ReasonMaxUsers, "max_users judged without a conclusion")
		return d
	}
	add(ReasonJudgePending, "not yet conclusive")
	return d
}

// prefConsistent: finite, non-negative, and consistent with per-user
// scores x ∈ [0, y] (so Σx ≤ Σy, Σx² ≤ Σy², Σxy ≤ Σy²), up to rounding.
func prefConsistent(s Summary) bool {
	for _, v := range []float64{s.N, s.SumX, s.SumX2, s.SumY, s.SumY2, s.SumXY} {
		if !finite(v) || v < 0 {
			return false
		}
	}
	tol := func(b float64) float64 { return b * (1 + 1e-9) }
	return s.SumX <= tol(s.SumY) && s.SumX2 <= tol(s.SumY2) && s.SumXY <= tol(s.SumY2) &&
		(s.SumY == 0 || s.N > 0)
}

// prefClamp01 clamps to [0,1]: sums consistent up to rounding can put a
// ratio a hair outside.
func prefClamp01(x float64) float64 { return math.Min(math.Max(x, 0), 1) }

// prefOverCap: some user must have more than k comparisons, because
// Σy² > k·Σy is impossible when every y ≤ k. (The converse does not hold:
// the check catches gross violations only; the sampler must enforce k.)
func prefOverCap(s Summary, k float64) bool {
	return s.SumY2 > k*s.SumY*(1+1e-9)
}

const prefGrid = 28

// prefLambdas is the grid of the discrete mixture in PreferenceCS:
// λ = 0.9·2^(−j/2), j = 0…27, from 0.9 down to about 8e-5, so the best λ
// for a deviation of the centred sum is within a factor √2 of a grid point
// for variance processes from about 1 to 10⁹ (users × score variance).
// The mixture pays log(2·28) ≈ 4 nats for its 56 components; a coarser
// grid (ratio 2 or 3) saves little of that and loses more to the distance
// between grid points, as measured on widths at n = 100…100 000.
var prefLambdas = func() []float64 {
	l := make([]float64, prefGrid)
	for j := range l {
		l[j] = 0.9 * math.Pow(2, -float64(j)/2)
	}
	return l
}()

// prefPsi[j] = ψ_E(λ_j) = −log(1−λ_j) − λ_j.
var prefPsi = func() []float64 {
	p := make([]float64, len(prefLambdas))
	for j, l := range prefLambdas {
		p[j] = -math.Log1p(-l) - l
	}
	return p
}()

// prefLogMixture is log M(μ), the log of the two-sided mixture
// supermartingale of PreferenceCS at μ:
//
//	M(μ) = 1/(2J) Σ_j [exp(λ_j S − ψ_E(λ_j) V) + exp(−λ_j S − ψ_E(λ_j) V)]
//	S = (Σx − μΣy)/k,  V = (Σx² − 2μΣxy + μ²Σy²)/k².
func prefLogMixture(s Summary, k, mu float64) float64 {
	S := (s.SumX - mu*s.SumY) / k
	V := (s.SumX2 - 2*mu*s.SumXY + mu*mu*s.SumY2) / (k * k)
	if !(V > 0) {
		V = 0
	}
	maxE := math.Inf(-1)
	var e [2 * prefGrid]float64
	for j, l := range prefLambdas {
		e[2*j] = l*S - prefPsi[j]*V
		e[2*j+1] = -l*S - prefPsi[j]*V
		maxE = math.Max(maxE, math.Max(e[2*j], e[2*j+1]))
	}
	if math.IsInf(maxE, 1) || math.IsNaN(maxE) {
		return maxE
	}
	var sum float64
	for _, x := range e {
		sum += math.Exp(x - maxE)
	}
	return maxE + math.Log(sum) - math.Log(float64(2*len(prefLambdas)))
}

// prefPValue is the anytime-valid p-value of H0: μ = mu0, min(1, 1/M(mu0)).
func prefPValue(s Summary, k, mu0 float64) float64 {
	lm := prefLogMixture(s, k, mu0)
	if !(lm > 0) { // also NaN
		return 1
	}
	return math.Exp(-lm)
}

// PreferenceCS is a time-uniform, nonasymptotic confidence sequence at
// level 1−alpha for the mean preference μ = E[x]/E[y] of independent
// users, each contributing x ∈ [0, y] (the sum of its comparisons' scores
// in [0,1]) over y ≤ k comparisons, computed from the Summary's sums
// alone.
//
// For μ the true value, ξ_i = (x_i − μ·y_i)/k ∈ [−1, 1] has mean zero, and
// for every λ ∈ [0,1), exp(λ Σξ − ψ_E(λ) Σξ²) with ψ_E(λ) = −log(1−λ) − λ
// is a nonnegative supermartingale (Fan, Grama & Liu 2015, "Exponential
// inequalities for martingales with applications", EJP, the inequality
// exp(λξ − ψ_E(λ)ξ²) ≤ 1 + λξ for ξ ≥ −1; the sub-exponential case of
// Howard, Ramdas, McAuliffe & Sekhon 2020, "Time-uniform Chernoff bounds
// via nonnegative supermartingales", Probab. Surveys). The same holds for
// −ξ. A uniform mixture over a grid of λ and both signs is again one, with
// initial value 1, so by Ville's inequality it exceeds 1/alpha at some
// time with probability at most alpha. The sequence is the set of μ where
// it does not:
//
//	CS = { μ ∈ [0,1] : M(μ) < 1/alpha }.
//
// Σξ = (Σx − μΣy)/k and Σξ² = (Σx² − 2μΣxy + μ²Σy²)/k² need only the
// recorder's sums, and Σξ² is the observed variation, so the sequence is
// variance-adaptive (empirical-Bernstein-like): ties and users' averaging
// of several comparisons narrow it. The interval returned is the hull of
// the set on a grid of μ refined by bisection (a superset, so still
// valid). ok is false when there is no data: the interval is then [0,1].
func PreferenceCS(s Summary, k, alpha float64) (ci Interval, ok bool) {
	checkAlpha(alpha)
	if !(k >= 1) || math.IsInf(k, 0) {
		panic("stats: PreferenceCS needs k >= 1")
	}
	if !prefConsistent(s) || !(s.SumY > 0) {
		return Interval{0, 1}, false
	}
	est := prefClamp01(s.SumX / s.SumY)
	thr := math.Log(1 / alpha)
	in := func(mu float64) bool { return prefLogMixture(s, k, mu) < thr }
	const grid = 256
	lo, hi := est, est
	for i := 0; i <= grid; i++ {
		mu := float64(i) / grid
		if in(mu) {
			lo, hi = math.Min(lo, mu), math.Max(hi, mu)
		}
	}
	refine := func(out, inside float64) float64 { // out rejected, inside not
		for range 40 {
			mid := (out + inside) / 2
			if in(mid) {
				inside = mid
			} else {
				out = mid
			}
		}
		return inside
	}
	// The grid point just outside each end was evaluated and rejected
	// (else the end would lie beyond it), so bisection between the two
	// finds the boundary.
	if lo > 0 {
		lo = refine((math.Ceil(lo*grid)-1)/grid, lo)
	}
	if hi < 1 {
		hi = refine((math.Floor(hi*grid)+1)/grid, hi)
	}
	return Interval{lo, hi}, true
}
