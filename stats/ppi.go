package stats

import "math"

// This file corrects judge scores with human feedback: prediction-powered
// inference (PPI) and its power-tuned form PPI++, from sums, plus
// judge–human agreement. See docs/statistics.md, "Shadow judge gate".

// PPIMode selects the estimator of PPIMean.
type PPIMode string

const (
	// PPIPlusPlus (the default) tunes λ to minimise the variance and
	// clips it to [0,1] (Angelopoulos, Duchi & Zrnic 2023, "PPI++:
	// Efficient Prediction-Powered Inference"): never worse than human
	// labels alone, asymptotically.
	PPIPlusPlus PPIMode = "ppi++"
	// PPIClassic is λ = 1 (Angelopoulos, Bates, Fannjiang, Jordan & Zrnic
	// 2023, "Prediction-powered inference", Science 382).
	PPIClassic PPIMode = "ppi"
	// PPIHumanOnly is λ = 0: the classical mean of the human labels.
	PPIHumanOnly PPIMode = "human_only"
)

// PPISummary holds one arm's sums. Labeled responses have both a human
// signal Y and a judge score f; unlabeled responses (a disjoint set) have
// only a judge score f̃. Y and f may be on different scales (thumbs and a
// 1–10 rating): PPI estimates the mean of Y.
type PPISummary struct {
	Labeled       float64 `json:"labeled"`         // n
	SumHuman      float64 `json:"sum_human"`       // ΣY
	SumHuman2     float64 `json:"sum_human2"`      // ΣY²
	SumJudge      float64 `json:"sum_judge"`       // Σf on labeled
	SumJudge2     float64 `json:"sum_judge2"`      // Σf² on labeled
	SumHumanJudge float64 `json:"sum_human_judge"` // ΣYf
	Unlabeled     float64 `json:"unlabeled"`       // N
	SumJudgeU     float64 `json:"sum_judge_u"`     // Σf̃
	SumJudgeU2    float64 `json:"sum_judge_u2"`    // Σf̃²
}

// PPIOptions parameterises PPIMean and PPILift. Zero fields take the
// defaults.
type PPIOptions struct {
	Alpha float64 `json:"alpha"` // two-sided level (default 0.05)
	Mode  PPIMode `json:"mode"`  // default PPIPlusPlus
	// NStar tunes SequentialCI: the labeled count (summed over arms for a
	// lift) at which it is tightest (default DefaultNStar).
	NStar float64 `json:"n_star"`
}

// PPIResult is a bias-corrected mean of the human signal. Fields are
// finite; when Valid is false the intervals are zero-width at 0 and must
// not be shown.
type PPIResult struct {
	Estimate float64 `json:"estimate"`
	StdErr   float64 `json:"std_err"`
	// CI is the fixed-n, asymptotic interval at level 1−Alpha (valid when
	// looked at once).
	CI Interval `json:"ci"`
	// SequentialCI is an asymptotic confidence sequence around the same
	// estimate (see PPIMean), valid under continuous monitoring as the
	// labeled count grows with a stable labeled share.
	SequentialCI Interval `json:"sequential_ci"`
	Lambda       float64  `json:"lambda"` // λ used
	// HumanOnly is the classical estimate from the labels alone, for
	// comparison (its variance is the labels' s²/n).
	HumanOnly Estimate `json:"human_only"`
	// JudgeBias is mean(f − Y) on the labeled responses, with its
	// fixed-n interval: how far the raw judge score sits from the human
	// signal (meaningful when both are on one scale).
	JudgeBias   float64  `json:"judge_bias"`
	JudgeBiasCI Interval `json:"judge_bias_ci"`
	// EffectiveLabels is how many human labels alone would give the same
	// standard error: n·Var(human only)/Var(PPI).
	EffectiveLabels float64 `json:"effective_labels"`
	Valid           bool    `json:"valid"`
}

func (o PPIOptions) defaults() PPIOptions {
	o.Alpha = orDefault(o.Alpha, DefaultAlpha)
	checkAlpha(o.Alpha)
	if o.Mode == "" {
		o.Mode = PPIPlusPlus
	}
	o.NStar = orDefault(o.NStar, DefaultNStar)
	if !(o.NStar > 0) || math.IsInf(o.NStar, 0) {
		panic("stats: PPI NStar must be finite and > 0")
	}
	switch o.Mode {
	case PPIPlusPlus, PPIClassic, PPIHumanOnly:
	default:
		panic("stats: unknown PPI mode " + string(o.Mode))
	}
	return o
}

// PPIMean estimates the mean of the human signal with the judge's scores
// as a control variate:
//
//	θ̂_λ = mean_u(λ f̃) + mean_l(Y − λ f),
//	Var(θ̂_λ) = s²(Y − λf)/n + λ² s²(f̃)/N.
//
// PPIPlusPlus uses λ̂ = Cov(Y, f) / ((1 + n/N)·s²_pooled(f)) clipped to
// [0,1], the variance-minimising λ of PPI++ for a mean (with s²_pooled
// over labeled and unlabeled scores, as the reference implementation
// ppi_py does); sample (co)variances use n−1. CI is θ̂ ± z·SE: valid at a
// fixed n, asymptotically.
//
// SequentialCI uses the same estimate and variance in the asymptotic
// confidence sequence of ConfidenceSequence (normal mixture, tuned at
// NStar labeled responses), with the labeled count as time. This is the
// construction of Kilian, Cortinovis & Caron (2025, "Anytime-valid,
// Bayes-assisted, Prediction-Powered Inference", arXiv:2505.18000) with a
// flat mixing prior: asymptotically valid uniformly over time when the
// labeled share of judged responses is stable, not a nonasymptotic
// guarantee.
//
// Degenerate data (fewer than 2 labels, no unlabeled responses for
// λ > 0, non-finite sums) give Valid = false; PPIPlusPlus with no
// unlabeled responses falls back to λ = 0.
func PPIMean(s PPISummary, opt PPIOptions) PPIResult {
	opt = opt.defaults()
	r := PPIResult{}
	for _, v := range []float64{s.Labeled, s.SumHuman, s.SumHuman2, s.SumJudge, s.SumJudge2, s.SumHumanJudge, s.Unlabeled, s.SumJudgeU, s.SumJudgeU2} {
		if !finite(v) {
			return r
		}
	}
	n, N := s.Labeled, s.Unlabeled
	if !(n >= 2) || N < 0 {
		return r
	}
	vy := sampleVar(n, s.SumHuman, s.SumHuman2)
	vf := sampleVar(n, s.SumJudge, s.SumJudge2)
	cyf := sampleCov(n, s.SumHuman, s.SumJudge, s.SumHumanJudge)
	my, mf := s.SumHuman/n, s.SumJudge/n

	r.HumanOnly = Estimate{Value: my, Variance: vy / n}
	if vy == 0 {
		r.HumanOnly.Variance = zeroVarianceFloor(my, n)
	}
	vd := vf + vy - 2*cyf
	if !(vd > 0) {
		vd = 0
	}
	r.JudgeBias = mf - my
	z := unitNormal.Quantile(1 - opt.Alpha/2)
	hwb := z * math.Sqrt(vd/n)
	r.JudgeBiasCI = Interval{r.JudgeBias - hwb, r.JudgeBias + hwb}

	var lam float64
	switch opt.Mode {
	case PPIClassic:
		lam = 1
	case PPIPlusPlus:
		if N >= 1 {
			vp := sampleVar(n+N, s.SumJudge+s.SumJudgeU, s.SumJudge2+s.SumJudgeU2)
			if vp > 0 {
				lam = math.Min(math.Max(cyf/((1+n/N)*vp), 0), 1)
			}
		}
	}
	var est, v float64
	if lam == 0 {
		est, v = r.HumanOnly.Value, r.HumanOnly.Variance
	} else {
		if !(N >= 1) {
			return PPIResult{} // λ > 0 needs unlabeled scores
		}
		mu := s.SumJudgeU / N
		vu := 0.0
		if N >= 2 {
			vu = sampleVar(N, s.SumJudgeU, s.SumJudgeU2)
		}
		vr := vy + lam*lam*vf - 2*lam*cyf // s²(Y − λf)
		if !(vr > 0) {
			vr = 0
		}
		est = lam*mu + (my - lam*mf)
		v = vr/n + lam*lam*vu/N
		if v == 0 {
			v = zeroVarianceFloor(est, n)
		}
	}
	if !finite(est) || !finite(v) || !(v > 0) {
		return PPIResult{}
	}
	r.Estimate, r.StdErr, r.Lambda = est, math.Sqrt(v), lam
	hw := z * r.StdErr
	r.CI = Interval{est - hw, est + hw}
	r.SequentialCI = ppiSequential(Estimate{est, v}, n, opt)
	r.EffectiveLabels = n * r.HumanOnly.Variance / v
	r.Valid = finite(r.EffectiveLabels)
	if !r.Valid {
		return PPIResult{}
	}
	return r
}

func ppiSequential(e Estimate, n float64, opt PPIOptions) Interval {
	t := ConfidenceSequence(e, 0, n, opt.NStar, opt.Alpha)
	if !t.Valid || !finite(t.CI.Low) || !finite(t.CI.High) {
		return Interval{e.Value, e.Value}
	}
	return t.CI
}

// PPILiftResult is the bias-corrected difference candidate − base of the
// human signal's mean.
type PPILiftResult struct {
	Base      PPIResult `json:"base"`
	Candidate PPIResult `json:"candidate"`
	Lift      float64   `json:"lift"`
	StdErr    float64   `json:"std_err"`
	// CI is fixed-n; SequentialCI an asymptotic confidence sequence (see
	// PPIMean) with the two arms' labeled counts as time.
	CI           Interval `json:"ci"`
	SequentialCI Interval `json:"sequential_ci"`
	// HumanOnlyCI is the fixed-n interval of the lift from labels alone.
	HumanOnlyCI Interval `json:"human_only_ci"`
	Valid       bool     `json:"valid"`
}

// PPILift estimates the candidate's lift over the base on the human
// signal, each arm corrected by its own judge scores with its own λ
// (independent arms, so tuning each arm's λ minimises the lift's
// variance).
func PPILift(base, cand PPISummary, opt PPIOptions) PPILiftResult {
	opt = opt.defaults()
	r := PPILiftResult{Base: PPIMean(base, opt), Candidate: PPIMean(cand, opt)}
	if !r.Base.Valid || !r.Candidate.Valid {
		return PPILiftResult{Base: r.Base, Candidate: r.Candidate}
	}
	e := Lift(Estimate{r.Base.Estimate, r.Base.StdErr * r.Base.StdErr},
		Estimate{r.Candidate.Estimate, r.Candidate.StdErr * r.Candidate.StdErr}, false)
	r.Lift, r.StdErr = e.Value, math.Sqrt(e.Variance)
	z := unitNormal.Quantile(1 - opt.Alpha/2)
	r.CI = Interval{e.Value - z*r.StdErr, e.Value + z*r.StdErr}
	r.SequentialCI = ppiSequential(e, base.Labeled+cand.Labeled, opt)
	h := Lift(r.Base.HumanOnly, r.Candidate.HumanOnly, false)
	hw := z * math.Sqrt(h.Variance)
	r.HumanOnlyCI = Interval{h.Value - hw, h.Value + hw}
	r.Valid = finite(r.Lift) && finite(r.StdErr) && finite(hw)
	if !r.Valid {
		return PPILiftResult{Base: r.Base, Candidate: r.Candidate}
	}
	return r
}

// AgreementResult is how often a judge and people agree on categorical
// labels (for example the judge's "A"/"B"/"TIE" against a person's
// preference on the same pair, or a judge's good/bad against thumbs).
// Pointer fields are nil when undefined.
type AgreementResult struct {
	N float64 `json:"n"`
	// Observed is the share of items on which they agree, with a Wilson
	// score interval.
	Observed   *float64 `json:"observed,omitempty"`
	ObservedCI Interval `json:"observed_ci"`
	// Kappa is Cohen's κ = (p_o − p_e)/(1 − p_e), agreement beyond chance;
	// KappaStdErr its large-sample standard error (Fleiss, Cohen &
	// Everitt 1969, "Large sample standard errors of kappa and weighted
	// kappa", Psychol. Bull. 72), KappaCI κ ± z·SE clipped to [−1, 1].
	Kappa       *float64 `json:"kappa,omitempty"`
	KappaStdErr *float64 `json:"kappa_std_err,omitempty"`
	KappaCI     Interval `json:"kappa_ci"`
}

// Agreement computes agreement from a square confusion matrix of counts:
// counts[i][j] is the number of items the judge put in category i and the
// person in category j. A matrix that is not square, or has a negative or
// non-finite count, or a total below 1, gives an empty result. It panics
// on alpha ∉ (0,1).
func Agreement(counts [][]float64, alpha float64) AgreementResult {
	checkAlpha(alpha)
	r := AgreementResult{ObservedCI: Interval{0, 1}, KappaCI: Interval{-1, 1}}
	k := len(counts)
	var n float64
	for _, row := range counts {
		if len(row) != k {
			return r
		}
		for _, c := range row {
			if !finite(c) || c < 0 {
				return r
			}
			n += c
		}
	}
	if !(n >= 1) || math.IsInf(n, 0) {
		// Less than one item (a denormal count made the Wilson interval
		// NaN: FuzzPPI) is no data.
		return r
	}
	r.N = n
	rows, cols := make([]float64, k), make([]float64, k)
	var po, pe float64
	for i := range k {
		for j := range k {
			p := counts[i][j] / n
			rows[i] += p
			cols[j] += p
		}
		po += counts[i][i] / n
	}
	for i := range k {
		pe += rows[i] * cols[i]
	}
	po = math.Min(po, 1)
	r.Observed = &po
	z := unitNormal.Quantile(1 - alpha/2)
	r.ObservedCI = wilson(po, n, z)
	if !(1-pe > 1e-12) {
		return r // one category only: κ is undefined
	}
	kappa := (po - pe) / (1 - pe)
	// Fleiss–Cohen–Everitt: Var(κ̂) = [Σ_i p_ii (1 − (p_i. + p_.i)(1−κ))²
	//   + (1−κ)² Σ_{i≠j} p_ij (p_.i + p_j.)² − (κ − p_e(1−κ))²] / (n(1−p_e)²).
	var a float64
	for i := range k {
		for j := range k {
			p := counts[i][j] / n
			if i == j {
				d := 1 - (rows[i]+cols[i])*(1-kappa)
				a += p * d * d
			} else {
				d := (cols[i] + rows[j]) * (1 - kappa)
				a += p * d * d
			}
		}
	}
	b := kappa - pe*(1-kappa)
	v := (a - b*b) / (n * (1 - pe) * (1 - pe))
	if !(v > 0) {
		v = 0
	}
	se := math.Sqrt(v)
	if !finite(kappa) || !finite(se) {
		return r
	}
	r.Kappa, r.KappaStdErr = &kappa, &se
	r.KappaCI = Interval{math.Max(kappa-z*se, -1), math.Min(kappa+z*se, 1)}
	return r
}

// wilson is the Wilson score interval for a proportion p of n.
func wilson(p, n, z float64) Interval {
	z2 := z * z
	c := (p + z2/(2*n)) / (1 + z2/n)
	h := z / (1 + z2/n) * math.Sqrt(p*(1-p)/n+z2/(4*n*n))
	return Interval{math.Max(c-h, 0), math.Min(c+h, 1)}
}
