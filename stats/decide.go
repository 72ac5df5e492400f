package stats

import (
	"fmt"
	"math"
)

// Verdict is the action Decide recommends.
type Verdict string

const (
	Continue     Verdict = "continue"      // keep collecting data
	Promote      Verdict = "promote"       // ship Decision.Winner
	Rollback     Verdict = "rollback"      // send all traffic back to the control (variant 0)
	StopFutility Verdict = "stop_futility" // max users reached without a conclusion
	HaltSRM      Verdict = "halt_srm"      // the traffic split is broken: stop, the data are untrustworthy
	Advance      Verdict = "advance"       // ramp mode: all guardrails non-inferior, go to the next ramp step
)

// Method selects the sequential test used by Decide.
type Method string

const (
	// ConfidenceSequenceMethod (the default) uses the asymptotic
	// confidence sequence with tuning N* (Policy.NStar).
	ConfidenceSequenceMethod Method = "confidence-sequence"
	// MSPRTMethod uses the normal-mixture mSPRT with mixing SD Policy.Tau.
	MSPRTMethod Method = "msprt"
	// GroupSequentialMethod uses Policy.Design at planned looks, with
	// information fraction users/MaxUsers.
	GroupSequentialMethod Method = "group-sequential"
)

// Mode selects what decides.
type Mode string

const (
	// FullMode (the default): the primary metric and guardrails decide.
	FullMode Mode = "full"
	// RampMode: only guardrails decide. Advance when every guardrail of
	// every candidate is shown non-inferior, Rollback on harm.
	RampMode Mode = "ramp"
)

// Defaults used when the corresponding Policy field is zero.
const (
	DefaultAlpha    = 0.05
	DefaultSRMAlpha = 0.001
	DefaultTau      = 0.05 // mSPRT mixing SD, relative to the control mean
	DefaultMinUsers = 100
	DefaultNStar    = 10000
)

// Metric names a metric in Input.Metrics and says how to analyse it.
type Metric struct {
	Name     string    `json:"name"`
	Kind     Kind      `json:"kind"`     // Mean (default) or Ratio
	Better   Direction `json:"better"`   // HigherIsBetter (default) or LowerIsBetter
	Relative bool      `json:"relative"` // test the relative lift t/c−1 instead of t−c
	// Bounds is the known range of the per-user value: x for a Mean
	// metric, the user's own ratio r = x/y for a Ratio metric (its
	// per-observation range, e.g. [0,1] for an error rate, [0, timeout]
	// for a capped latency; the Summaries must then carry SumR/SumR2).
	// With Bounds, Decide analyses the metric with the nonasymptotic
	// BoundedTest (valid at every sample size, one-sided calls at level
	// α), except for group sequential designs. Nil keeps the asymptotic
	// confidence sequence / mSPRT.
	Bounds *Bounds `json:"bounds,omitempty"`
	// Center is BoundedTest's centre: a value close to the expected
	// per-user mean, fixed before this period's data (e.g. the control
	// mean of the previous ramp period, or a planning baseline). Nil mixes
	// over nine centres, which is valid but needs more users.
	Center *float64 `json:"center,omitempty"`
	// CUPED adjusts the metric by its pre-exposure covariate z: in the
	// asymptotic tests by regression (CUPED for a Mean metric, from
	// SumZ, SumZ2, SumXZ; RatioCUPED by the delta method for a Ratio
	// metric, with SumYZ too), skipped while the covariate sums are all
	// zero; with Bounds inside the bounded test (BoundedTestCUPED, per-user
	// centres from SumZ, SumZ2 and SumXZ or SumRZ; z on the value's scale).
	CUPED bool `json:"cuped,omitempty"`
	// CUPEDTheta is the bounded test's CUPED coefficient, fixed before
	// this period's data (the coefficient fitted on the previous period,
	// experiments.PriorOf). Nil mixes over θ ∈ {0, 1/2}.
	CUPEDTheta *float64 `json:"cuped_theta,omitempty"`
}

// Guardrail is a metric that must not get worse by more than Margin:
// a fraction when Relative (0.10 = 10% worse), otherwise metric units
// (0.005 = 0.5 percentage points for a rate).
type Guardrail struct {
	Metric
	Margin float64 `json:"margin"`
	// PriorLogE, per candidate (index variant−1), is the log of the
	// product of this guardrail's e-values from earlier, independent
	// periods against the same null (CombineLogE). When set, a bounded
	// guardrail is also non-inferior once the product with the current
	// period's e-value reaches 1/level (MetricResult.CombinedLogE).
	// docs/statistics.md §2.12.
	PriorLogE []float64 `json:"prior_log_e,omitempty"`
}

// Policy is an experiment's decision policy. Zero fields take the
// documented defaults.
type Policy struct {
	Mode       Mode        `json:"mode"`
	Primary    Metric      `json:"primary"`
	Guardrails []Guardrail `json:"guardrails"`
	// Judge, when set, adds the live LLM judge as one more guardrail
	// (judge_ramp.go): its one-sample test on Input.Judge runs at
	// GuardrailAlpha/candidates like every guardrail.
	Judge *JudgeGuardrail `json:"judge,omitempty"`
	// Alpha is the two-sided type I error for the primary metric, split
	// over the candidates (Bonferroni). Default 0.05. With OneSided (or a
	// bounded primary) it is the level of each one-sided call: a false
	// promotion has probability ≤ Alpha/candidates.
	Alpha float64 `json:"alpha"`
	// GuardrailAlpha is the level of each guardrail test, also split over
	// the candidates. Default Alpha. (Group sequential designs use the
	// Design's boundaries, hence its alpha, for guardrails too.)
	GuardrailAlpha float64 `json:"guardrail_alpha"`
	Method         Method  `json:"method"`
	// Tau is the mSPRT mixing standard deviation on the relative scale:
	// τ = Tau for relative lifts, τ = Tau·|control mean| for absolute ones
	// (falling back to the confidence-sequence scaling when the control
	// mean is 0). Default 0.05 (effects of about ±5%).
	Tau float64 `json:"tau"`
	// NStar is the confidence-sequence tuning: the total users (control +
	// candidate) at which the sequence is tightest. Default 2·MaxUsers,
	// or 10000 without MaxUsers.
	NStar float64 `json:"n_star"`
	// Design is required for GroupSequentialMethod (build with NewDesign
	// at alpha/candidates); MaxUsers is then the planned final size.
	Design *Design `json:"design,omitempty"`
	// MinUsers per variant before any metric-based verdict (SRM is always
	// checked). Default 100.
	MinUsers float64 `json:"min_users"`
	// MaxUsers per variant: with every variant at or above it and no
	// conclusion, the verdict is StopFutility. 0 = unbounded.
	MaxUsers float64 `json:"max_users"`
	// SRMAlpha is the level of the sequential SRM test. Default 0.001.
	SRMAlpha float64 `json:"srm_alpha"`
	// SRMConcentration is the Dirichlet prior concentration of the
	// sequential SRM test. Default DefaultSRMConcentration.
	SRMConcentration float64 `json:"srm_concentration"`
	// SegmentAlpha is the family-wise level of the segment harm tests of
	// each candidate's segments, split over segments × metrics ×
	// candidates (Bonferroni). Default GuardrailAlpha.
	SegmentAlpha float64 `json:"segment_alpha,omitempty"`
	// SegmentMinUsers per variant before a segment is tested. Default
	// DefaultSegmentMinUsers.
	SegmentMinUsers float64 `json:"segment_min_users,omitempty"`
	// SegmentValues is the number of declared segment values (over all
	// dimensions, each dimension's values plus one for its "other"
	// bucket). The segment Bonferroni divisor uses it (or the number of
	// segments in Input.Segments if larger), so the level does not grow as
	// new values are observed. 0 = only the observed segments (legacy).
	SegmentValues int `json:"segment_values,omitempty"`
	// OneSided makes every call a one-sided test at its level: a
	// guardrail's non-inferiority and its harm, the primary's "better"
	// and "worse", each with the one-sided confidence sequence (or
	// one-sided mSPRT). The reported interval stays the two-sided one at
	// the same α, for display. Metrics with Bounds are always one-sided.
	OneSided bool `json:"one_sided,omitempty"`
	// MinEvents is the burn-in in events: a metric with Bounds is not
	// decided on until control and candidate together have at least
	// MinEvents events (see Events: the rarer outcome's count for a 0/1
	// metric). 0 = no event burn-in.
	MinEvents float64 `json:"min_events,omitempty"`
	// Rule, when set, replaces rule 4's promote condition by a trade-off
	// between quality (the primary) and CostMetric, tested as an
	// intersection-union test at level Alpha/candidates (tradeoff.go,
	// docs/statistics.md). QualityMargin is CostSavingRule's
	// non-inferiority margin on the primary, CostMargin
	// QualityWithinBudgetRule's on the cost, both in the metric's scale
	// (a fraction when Relative).
	Rule          Rule    `json:"rule,omitempty"`
	QualityMargin float64 `json:"quality_margin,omitempty"`
	CostMetric    Metric  `json:"cost_metric,omitzero"`
	CostMargin    float64 `json:"cost_margin,omitempty"`
}

// Input is an experiment's data: variant 0 is the control, 1..k the
// candidates.
type Input struct {
	// Users assigned per variant (for SRM and the min/max user rules).
	Users []float64 `json:"users"`
	// ExpectedSplit is the traffic weight per variant; nil means equal.
	ExpectedSplit []float64 `json:"expected_split,omitempty"`
	// Metrics holds one Summary per variant for each metric name.
	Metrics map[string][]Summary `json:"metrics"`
	// Segments, when set, are tested for harm (see evalSegments): a
	// candidate significantly harming any segment is not promoted.
	Segments []Segment `json:"segments,omitempty"`
	// Judge holds each variant's live judge data (index 0, the control,
	// is unused) for Policy.Judge; a missing entry counts as no data.
	Judge []JudgeInput `json:"judge,omitempty"`
}

// ReasonCode is a machine-readable reason.
type ReasonCode string

const (
	ReasonSRM                ReasonCode = "srm"
	ReasonMinUsers           ReasonCode = "min_users"
	ReasonMaxUsers           ReasonCode = "max_users"
	ReasonGuardrailHarm      ReasonCode = "guardrail_harm"
	ReasonGuardrailOK        ReasonCode = "guardrail_non_inferior"
	ReasonGuardrailPending   ReasonCode = "guardrail_inconclusive"
	ReasonPrimaryBetter      ReasonCode = "primary_better"
	ReasonPrimaryWorse       ReasonCode = "primary_worse"
	ReasonPrimaryPending     ReasonCode = "primary_inconclusive"
	ReasonMissingMetric      ReasonCode = "missing_metric"
	ReasonDegenerate         ReasonCode = "degenerate_data"
	ReasonInvalidPolicy      ReasonCode = "invalid_policy"
	ReasonInvalidSplit       ReasonCode = "invalid_split"
	ReasonBeforeFirstLook    ReasonCode = "before_first_look"
	ReasonNoVariants         ReasonCode = "no_candidates"
	ReasonBestCandidate      ReasonCode = "best_candidate"
	ReasonAllCandidatesWorse ReasonCode = "all_candidates_worse"
	// ReasonMinEvents: a bounded metric has fewer than Policy.MinEvents
	// events in the comparison.
	ReasonMinEvents ReasonCode = "min_events"
	// ReasonMissingSums: a Ratio metric with Bounds lacks the per-user
	// ratio sums SumR/SumR2.
	ReasonMissingSums ReasonCode = "missing_sums"
)

// Reason explains part of a Decision.
type Reason struct {
	Code    ReasonCode `json:"code"`
	Metric  string     `json:"metric,omitempty"`
	Variant *int       `json:"variant,omitempty"`
	// Segment names the segment of a ReasonSegmentHarm.
	Segment *SegmentRef `json:"segment,omitempty"`
	Message string      `json:"message"`
}

// MetricResult holds the numbers behind one metric of one candidate.
// Pointer fields are nil when the value is undefined (never NaN or Inf).
type MetricResult struct {
	Metric    string   `json:"metric"`
	Role      string   `json:"role"` // "primary" or "guardrail"
	Relative  bool     `json:"relative"`
	Control   *float64 `json:"control,omitempty"`   // control mean or ratio
	Treatment *float64 `json:"treatment,omitempty"` // candidate mean or ratio
	Lift      *float64 `json:"lift,omitempty"`      // absolute or relative effect
	StdErr    *float64 `json:"std_err,omitempty"`
	CILow     *float64 `json:"ci_low,omitempty"` // (always-valid) CI of the lift
	CIHigh    *float64 `json:"ci_high,omitempty"`
	// PValue is the (always-valid) p-value of lift = 0 for the primary, and
	// of "harm = margin" for a guardrail. Omitted for group sequential
	// designs, which decide by Z against Boundary.
	PValue   *float64 `json:"p_value,omitempty"`
	Z        *float64 `json:"z,omitempty"`
	Boundary *float64 `json:"boundary,omitempty"`
	Margin   *float64 `json:"margin,omitempty"`
	Alpha    float64  `json:"alpha"` // level used, after multiplicity correction
	// LogE is the log e-value against the null that blocks the metric's
	// "go" call (harm ≥ margin for a guardrail, lift ≤ 0 for the
	// primary): exact for Bounds metrics, asymptotic for OneSided.
	// e-values of independent cohorts (fresh ramp periods) multiply
	// (CombineLogE). Nil when not computed.
	LogE *float64 `json:"log_e,omitempty"`
	// CombinedLogE is LogE plus the guardrail's PriorLogE (carry-over
	// across ramp periods); CarriedOver is set when only the combined
	// e-value made the guardrail non-inferior.
	CombinedLogE *float64 `json:"combined_log_e,omitempty"`
	CarriedOver  bool     `json:"carried_over,omitempty"`
	// Method is the test used when it is not the policy's method:
	// "bounded", "one-sided-cs" or "one-sided-msprt".
	Method string   `json:"method,omitempty"`
	Events *float64 `json:"events,omitempty"` // Bounds metrics: events in the comparison
	// CUPED (Metric.CUPED): the share of the effect's variance removed,
	// the equivalent extra users (0.33 = 33% more users) and θ.
	VarianceRemoved *float64 `json:"variance_removed,omitempty"`
	ExtraUsers      *float64 `json:"extra_users,omitempty"`
	CUPEDTheta      *float64 `json:"cuped_theta,omitempty"`
	Valid           bool     `json:"valid"`
	Better          bool     `json:"better,omitempty"` // primary: significantly better
	Worse           bool     `json:"worse,omitempty"`  // primary: significantly worse
	NonInferior     bool     `json:"non_inferior,omitempty"`
	Harmful         bool     `json:"harmful,omitempty"`
}

// VariantResult holds one candidate's results.
type VariantResult struct {
	Variant int            `json:"variant"`
	Users   float64        `json:"users"`
	Verdict Verdict        `json:"verdict"`
	Metrics []MetricResult `json:"metrics"`
	// Judge is the live judge guardrail's decision (Policy.Judge), at
	// the guardrails' level.
	Judge *JudgeDecision `json:"judge,omitempty"`
}

// Decision is Decide's answer. It is JSON-friendly: no NaN or Inf.
type Decision struct {
	Verdict  Verdict         `json:"verdict"`
	Winner   *int            `json:"winner,omitempty"` // set with Promote
	Reasons  []Reason        `json:"reasons"`
	SRM      *SRMResult      `json:"srm,omitempty"`
	Look     *int            `json:"look,omitempty"` // group sequential: index of the current planned look
	Variants []VariantResult `json:"variants"`
	// Segments holds every candidate's per-segment results when
	// Input.Segments is set.
	Segments []SegmentResult `json:"segments,omitempty"`
	// Rule is the trade-off rule that promoted Winner (empty for the
	// primary rule).
	Rule Rule `json:"rule,omitempty"`
}

func fp(x float64) *float64 {
	if !finite(x) {
		return nil
	}
	return &x
}

func ip(i int) *int { return &i }

func orDefault(x, d float64) float64 {
	if x == 0 {
		return d
	}
	return x
}

// Decide turns an experiment's statistics and policy into a verdict. Rules,
// in order:
//
//  1. SRM (anytime-valid Dirichlet-multinomial test at SRMAlpha): HaltSRM.
//  2. Any variant below MinUsers: Continue.
//  3. Any candidate significantly harmful on a guardrail beyond its
//     margin, or shown worse by the live judge (Policy.Judge): Rollback.
//  4. Full mode: any candidate significantly better on the primary with
//     every guardrail non-inferior: Promote the best such candidate (largest
//     estimated improvement). With Policy.Rule, the rule's
//     intersection-union test replaces "better on the primary"
//     (TradeOff). Ramp mode: every candidate non-inferior on every
//     guardrail: Advance.
//  5. Full mode: every candidate significantly worse on the primary: Rollback.
//  6. Every variant at or above MaxUsers (or past the last planned look):
//     StopFutility.
//  7. Otherwise Continue.
//
// With Input.Segments, a candidate that is significantly worse in any
// segment (see evalSegments) is neither promoted nor advanced; the
// reason ReasonSegmentHarm names the segment.
//
// The primary alpha and guardrail alpha are divided by the number of
// candidates (Bonferroni). Decide panics only when a set alpha is outside
// (0,1), or on a Policy.Judge whose margins JudgeGate refuses; bad data
// and incomplete policies give Continue with a reason.
//
// New behaviour is selected per field (the zero values keep the legacy
// decisions): Policy.OneSided makes every call a one-sided test at its
// level (OneSidedConfidenceSequence / OneSidedMSPRT); a Metric with Bounds
// is decided by the nonasymptotic BoundedTest (valid at every sample
// size), held back by Policy.MinEvents; Metric.CUPED adjusts a Mean metric
// by its pre-exposure covariate; Policy.SegmentValues fixes the segment
// Bonferroni divisor to the declared values. See docs/statistics.md §9.
func Decide(in Input, p Policy) Decision {
	alpha := orDefault(p.Alpha, DefaultAlpha)
	checkAlpha(alpha)
	galpha := orDefault(p.GuardrailAlpha, alpha)
	checkAlpha(galpha)
	srmAlpha := orDefault(p.SRMAlpha, DefaultSRMAlpha)
	checkAlpha(srmAlpha)
	minUsers := orDefault(p.MinUsers, DefaultMinUsers)
	method := p.Method
	if method == "" {
		method = ConfidenceSequenceMethod
	}

	d := Decision{Verdict: Continue, Reasons: []Reason{}, Variants: []VariantResult{}}
	k := len(in.Users) - 1
	if k < 1 {
		d.Reasons = append(d.Reasons, Reason{Code: ReasonNoVariants, Message: "need a control and at least one candidate in Input.Users"})
		return d
	}

	// 1. Sample ratio mismatch.
	split := in.ExpectedSplit
	if split == nil {
		split = make([]float64, len(in.Users))
		for i := range split {
			split[i] = 1
		}
	}
	if normSplit(in.Users, split) == nil {
		d.Reasons = append(d.Reasons, Reason{Code: ReasonInvalidSplit, Message: "ExpectedSplit must have one positive weight per variant; SRM not checked"})
	}
	srm := SRM(in.Users, split, p.SRMConcentration)
	d.SRM = &srm
	if srm.AnytimePValue <= srmAlpha {
		d.Verdict = HaltSRM
		d.Reasons = append(d.Reasons, Reason{Code: ReasonSRM, Message: fmt.Sprintf("sample ratio mismatch: anytime-valid p = %.3g <= %.3g (chi-square p = %.3g)", srm.AnytimePValue, srmAlpha, srm.PValue)})
		return d
	}

	// 2. Minimum users.
	minSeen, allAtMax := math.Inf(1), p.MaxUsers > 0
	for _, u := range in.Users {
		if !(u >= 0) {
			u = 0
		}
		minSeen = math.Min(minSeen, u)
		if !(u >= p.MaxUsers) {
			allAtMax = false
		}
	}
	if minSeen < minUsers {
		d.Reasons = append(d.Reasons, Reason{Code: ReasonMinUsers, Message: fmt.Sprintf("smallest variant has %.0f users, need %.0f", minSeen, minUsers)})
		return d
	}

	if why := checkRule(p); why != "" && p.Mode != RampMode {
		d.Reasons = append(d.Reasons, Reason{Code: ReasonInvalidPolicy, Message: why})
		return d
	}

	// Method set-up.
	ac, gc := alpha/float64(k), galpha/float64(k)
	var design *Design
	look := -1
	if method == GroupSequentialMethod {
		design = p.Design
		if design == nil || !(p.MaxUsers > 0) {
			d.Reasons = append(d.Reasons, Reason{Code: ReasonInvalidPolicy, Message: "group-sequential method needs Policy.Design and Policy.MaxUsers"})
			return d
		}
		look = design.Look(minSeen / p.MaxUsers)
		d.Look = ip(look)
		if look < 0 {
			d.Reasons = append(d.Reasons, Reason{Code: ReasonBeforeFirstLook, Message: fmt.Sprintf("information fraction %.3f is before the first planned look at %.3f", minSeen/p.MaxUsers, design.Fractions[0])})
			return d
		}
		if look == len(design.Fractions)-1 {
			allAtMax = true
		}
	}
	nStar := p.NStar
	if nStar == 0 {
		nStar = DefaultNStar
		if p.MaxUsers > 0 {
			nStar = 2 * p.MaxUsers
		}
	}
	tau := orDefault(p.Tau, DefaultTau)
	salpha := orDefault(p.SegmentAlpha, galpha)
	checkAlpha(salpha)
	ec := evalCtx{method: method, tau: tau, nStar: nStar, design: design, look: look,
		share: normSplit(in.Users, split), oneSided: p.OneSided, minEvents: p.MinEvents}
	segs, segHarm := evalSegments(in, p, k, salpha, ec)
	d.Segments = segs
	harmedSegment := func(j int) *SegmentResult {
		if segHarm == nil {
			return nil
		}
		return segHarm[j]
	}

	anyHarm, allWorse := false, true
	best, bestScore := -1, math.Inf(-1)
	allNI := true
	for j := 1; j <= k; j++ {
		users := in.Users[j]
		if !finite(users) {
			users = 0
		}
		vr := VariantResult{Variant: j, Users: users, Verdict: Continue, Metrics: make([]MetricResult, 0, 1+len(p.Guardrails))}
		harm, ni := false, true
		for _, g := range p.Guardrails {
			mr, bad := evalMetric(in, g.Metric, j, "guardrail", g.Margin, gc, ec)
			if bad == "" {
				mr = carryOver(mr, g, j, gc)
			}
			vr.Metrics = append(vr.Metrics, mr)
			switch {
			case bad != "":
				ni = false
				d.Reasons = append(d.Reasons, Reason{Code: bad, Metric: g.Name, Variant: ip(j), Message: "guardrail metric " + string(bad)})
			case mr.Harmful:
				harm = true
				d.Reasons = append(d.Reasons, Reason{Code: ReasonGuardrailHarm, Metric: g.Name, Variant: ip(j), Message: fmt.Sprintf("variant %d is worse than control by more than the margin %g on %s", j, g.Margin, g.Name)})
			case !mr.NonInferior:
				ni = false
			}
		}
		if p.Judge != nil {
			jd, jharm, jni, rs := evalJudge(in, *p.Judge, j, gc)
			vr.Judge = &jd
			d.Reasons = append(d.Reasons, rs...)
			harm = harm || jharm
			ni = ni && jni
		}
		if harm {
			vr.Verdict = Rollback
			anyHarm = true
		}
		if !ni || harm {
			allNI = false
		}
		if p.Mode != RampMode && p.Rule != PrimaryRule {
			// A trade-off rule replaces rule 4's promote condition.
			q, c, qbad, cbad, call := evalTradeOff(in, p, j, ac, ec)
			vr.Metrics = append(vr.Metrics, q, c)
			for _, b := range []struct {
				bad  ReasonCode
				name string
			}{{qbad, p.Primary.Name}, {cbad, p.CostMetric.Name}} {
				if b.bad != "" {
					d.Reasons = append(d.Reasons, Reason{Code: b.bad, Metric: b.name, Variant: ip(j), Message: "rule metric " + string(b.bad)})
				}
			}
			if !call.Worse {
				allWorse = false
			}
			switch {
			case harm:
			case call.Worse:
				vr.Verdict = Rollback
				d.Reasons = append(d.Reasons, Reason{Code: ReasonPrimaryWorse, Metric: p.Primary.Name, Variant: ip(j), Message: fmt.Sprintf("variant %d significantly fails rule %s (%s)", j, p.Rule, p.Rule.Summary())})
			case call.Promote && ni && harmedSegment(j) != nil:
				d.Reasons = append(d.Reasons, segmentHarmReason(harmedSegment(j)))
			case call.Promote && ni:
				vr.Verdict = Promote
				if call.Score > bestScore || best < 0 {
					best, bestScore = j, call.Score
				}
			}
		} else if p.Mode != RampMode {
			mr, bad := evalMetric(in, p.Primary, j, "primary", 0, ac, ec)
			vr.Metrics = append(vr.Metrics, mr)
			switch {
			case bad != "":
				d.Reasons = append(d.Reasons, Reason{Code: bad, Metric: p.Primary.Name, Variant: ip(j), Message: "primary metric " + string(bad)})
			case mr.Better:
				d.Reasons = append(d.Reasons, Reason{Code: ReasonPrimaryBetter, Metric: p.Primary.Name, Variant: ip(j), Message: fmt.Sprintf("variant %d is significantly better on %s", j, p.Primary.Name)})
			case mr.Worse:
				d.Reasons = append(d.Reasons, Reason{Code: ReasonPrimaryWorse, Metric: p.Primary.Name, Variant: ip(j), Message: fmt.Sprintf("variant %d is significantly worse on %s", j, p.Primary.Name)})
			}
			if !mr.Worse {
				allWorse = false
			}
			switch {
			case harm:
			case mr.Worse:
				vr.Verdict = Rollback
			case mr.Better && ni && harmedSegment(j) != nil:
				d.Reasons = append(d.Reasons, segmentHarmReason(harmedSegment(j)))
			case mr.Better && ni:
				vr.Verdict = Promote
				score := p.Primary.Better.sign() * *mr.Lift
				if score > bestScore {
					best, bestScore = j, score
				}
			}
		} else if ni && !harm {
			if sr := harmedSegment(j); sr != nil {
				allNI = false
				d.Reasons = append(d.Reasons, segmentHarmReason(sr))
			} else {
				vr.Verdict = Advance
			}
		}
		d.Variants = append(d.Variants, vr)
	}

	switch {
	case anyHarm:
		d.Verdict = Rollback
	case p.Mode != RampMode && best > 0 && p.Rule != PrimaryRule:
		d.Verdict, d.Winner, d.Rule = Promote, ip(best), p.Rule
		d.Reasons = append(d.Reasons, Reason{Code: ReasonRulePromote, Metric: p.CostMetric.Name, Variant: ip(best), Message: fmt.Sprintf("variant %d is promoted by rule %s: %s on %s and %s, and non-inferior on all guardrails", best, p.Rule, p.Rule.Summary(), p.Primary.Name, p.CostMetric.Name)})
	case p.Mode != RampMode && best > 0:
		d.Verdict = Promote
		d.Winner = ip(best)
		d.Reasons = append(d.Reasons, Reason{Code: ReasonBestCandidate, Metric: p.Primary.Name, Variant: ip(best), Message: fmt.Sprintf("variant %d is significantly better on %s and non-inferior on all guardrails", best, p.Primary.Name)})
	case p.Mode == RampMode && allNI:
		d.Verdict = Advance
		d.Reasons = append(d.Reasons, Reason{Code: ReasonGuardrailOK, Message: "all guardrails are non-inferior for every candidate"})
	case p.Mode != RampMode && allWorse:
		d.Verdict = Rollback
		d.Reasons = append(d.Reasons, Reason{Code: ReasonAllCandidatesWorse, Metric: p.Primary.Name, Message: fmt.Sprintf("every candidate is significantly worse on %s", p.Primary.Name)})
	case allAtMax:
		d.Verdict = StopFutility
		d.Reasons = append(d.Reasons, Reason{Code: ReasonMaxUsers, Message: "maximum users reached without a conclusion"})
	default:
		code := ReasonPrimaryPending
		if p.Mode == RampMode {
			code = ReasonGuardrailPending
		}
		d.Reasons = append(d.Reasons, Reason{Code: code, Message: "not yet conclusive"})
	}
	return d
}

// evalCtx is what evalMetric needs besides the metric: the method and
// its tuning, the design and look, and the policy's new-method switches.
type evalCtx struct {
	method    Method
	tau       float64
	nStar     float64
	design    *Design
	look      int
	share     []float64 // normalised expected split, nil = unusable
	oneSided  bool
	minEvents float64
}

// shareOf is candidate j's probability among control + candidate j, or
// NaN when the expected split is unusable (the bounded test, which relies
// on it, then reports degenerate data rather than assume one).
func (ec evalCtx) shareOf(j int) float64 {
	if ec.share == nil || len(ec.share) <= j {
		return math.NaN()
	}
	return ec.share[j] / (ec.share[0] + ec.share[j])
}

// evalMetric analyses one metric for candidate j against the control.
// For a guardrail it tests non-inferiority at margin; for the primary it
// tests lift = 0. bad is ReasonMissingMetric, ReasonDegenerate,
// ReasonMinEvents or ReasonMissingSums when the metric cannot be decided
// on, "" otherwise.
func evalMetric(in Input, m Metric, j int, role string, margin, alpha float64, ec evalCtx) (mr MetricResult, bad ReasonCode) {
	// Method is left empty on the legacy paths so their JSON is unchanged.
	mr = MetricResult{Metric: m.Name, Role: role, Relative: m.Relative, Alpha: alpha}
	if role == "guardrail" {
		mr.Margin = fp(margin)
	}
	ss, found := in.Metrics[m.Name]
	if !found || len(ss) <= j {
		return mr, ReasonMissingMetric
	}
	if m.Bounds != nil && ec.method != GroupSequentialMethod {
		return evalBounded(ss[0], ss[j], m, role, margin, alpha, ec.shareOf(j), ec.minEvents, ec.nStar, mr)
	}
	c, t := m.Kind.Estimate(ss[0]), m.Kind.Estimate(ss[j])
	mr.Control, mr.Treatment = fp(c.Value), fp(t.Value)
	if m.CUPED && (ss[0].SumZ2 != 0 || ss[j].SumZ2 != 0) {
		cu := CUPED(ss[0].Covariate(), ss[j].Covariate())
		if m.Kind == Ratio {
			cu = RatioCUPED(ss[0], ss[j])
		}
		if cu.Valid {
			c, t = cu.Control, cu.Treatment
			mr.VarianceRemoved, mr.ExtraUsers, mr.CUPEDTheta = fp(cu.VarianceRemoved), fp(cu.ExtraUsers), fp(cu.Theta)
		}
	}
	eff := Lift(c, t, m.Relative)
	if !eff.valid() {
		mr.Lift = fp(eff.Value)
		return mr, ReasonDegenerate
	}
	n := ss[0].N + ss[j].N

	var test Tester
	var oneSided func(e Estimate, theta0 float64, side Side) OneSided
	switch ec.method {
	case GroupSequentialMethod:
		bound := ec.design.Bounds[ec.look]
		mr.Boundary = fp(bound)
		mr.Alpha = ec.design.Alpha // the design fixes the level; GuardrailAlpha is not used
		test = func(e Estimate, theta0 float64) Test {
			se := math.Sqrt(e.Variance)
			return Test{Estimate: e.Value, StdErr: se, PValue: math.NaN(), CI: Interval{e.Value - bound*se, e.Value + bound*se}, Valid: true}
		}
	case MSPRTMethod:
		tau2 := ec.tau * ec.tau
		if !m.Relative {
			tau2 *= c.Value * c.Value
		}
		if !(tau2 > 0) || !finite(tau2) {
			tau2 = ConfSeqRho2(ec.nStar, alpha) * n * eff.Variance
		}
		test = func(e Estimate, theta0 float64) Test { return MSPRT(e, theta0, tau2, alpha) }
		oneSided = func(e Estimate, theta0 float64, side Side) OneSided {
			return OneSidedMSPRT(e, theta0, tau2, alpha, side)
		}
	default:
		test = func(e Estimate, theta0 float64) Test { return ConfidenceSequence(e, theta0, n, ec.nStar, alpha) }
		oneSided = func(e Estimate, theta0 float64, side Side) OneSided {
			return OneSidedConfidenceSequence(e, theta0, n, ec.nStar, alpha, side)
		}
	}
	if !ec.oneSided {
		oneSided = nil
	}

	var tr Test
	s := m.Better.sign()
	if role == "guardrail" {
		ni := NonInferiorityTest(eff, m.Better, margin, test)
		tr = ni.Test
		mr.NonInferior, mr.Harmful = ni.NonInferior, ni.Harmful
		if oneSided != nil && tr.Valid {
			// Non-inferior: reject H0 harm ≥ margin, i.e. Δ beyond −s·margin
			// on the good side; harmful: the other side.
			theta0 := -s * margin
			good, harm := oneSided(eff, theta0, Side(s)), oneSided(eff, theta0, Side(-s))
			mr.NonInferior, mr.Harmful = good.Reject, harm.Reject
			mr.Method = "one-sided-" + methodShort(ec.method)
			if ni.Harm < margin {
				tr.PValue = good.PValue
			} else {
				tr.PValue = harm.PValue
			}
			mr.LogE = fp(-math.Log(good.PValue))
		}
	} else {
		tr = test(eff, 0)
		if tr.Valid {
			mr.Better = s*tr.CI.Low > 0 && s*tr.CI.High > 0
			mr.Worse = s*tr.CI.Low < 0 && s*tr.CI.High < 0
			if oneSided != nil {
				better, worse := oneSided(eff, 0, Side(s)), oneSided(eff, 0, Side(-s))
				mr.Better, mr.Worse = better.Reject, worse.Reject
				mr.Method = "one-sided-" + methodShort(ec.method)
				tr.PValue = math.Min(better.PValue, worse.PValue)
				mr.LogE = fp(-math.Log(better.PValue))
			}
		}
	}
	if !tr.Valid {
		return mr, ReasonDegenerate
	}
	mr.Valid = true
	mr.Lift, mr.StdErr = fp(tr.Estimate), fp(tr.StdErr)
	mr.CILow, mr.CIHigh = fp(tr.CI.Low), fp(tr.CI.High)
	mr.PValue = fp(tr.PValue)
	if ec.method == GroupSequentialMethod {
		theta0 := 0.0
		if role == "guardrail" {
			theta0 = -m.Better.sign() * margin
		}
		mr.Z = fp((tr.Estimate - theta0) / tr.StdErr)
	}
	return mr, ""
}

// carryOver combines a bounded guardrail's e-value with the candidate's
// earlier periods' (g.PriorLogE) and calls it non-inferior when the
// product reaches 1/alpha and the current period shows no harm. Only the
// bounded test's e-values are exact, so only they are combined.
func carryOver(mr MetricResult, g Guardrail, j int, alpha float64) MetricResult {
	if mr.Method != "bounded" || mr.LogE == nil || j-1 >= len(g.PriorLogE) || g.PriorLogE[j-1] == 0 {
		return mr
	}
	c := CombineLogE(g.PriorLogE[j-1], *mr.LogE)
	mr.CombinedLogE = fp(c)
	if !mr.NonInferior && !mr.Harmful && RejectLogE(c, alpha) {
		mr.NonInferior, mr.CarriedOver = true, true
	}
	return mr
}

func methodShort(m Method) string {
	if m == MSPRTMethod {
		return "msprt"
	}
	return "cs"
}

// userMoments returns the per-user value's moments the bounded test uses:
// x for a Mean metric, r = x/y for a Ratio metric, with the covariate's
// Σz, Σz² and Σuz (SumXZ, or SumRZ for a Ratio metric). ok is false when
// a Ratio summary lacks SumR/SumR2 (events recorded but no ratio sums).
func userMoments(s Summary, k Kind) (m Moments, ok bool) {
	if k != Ratio {
		return Moments{N: s.N, Sum: s.SumX, Sum2: s.SumX2, SumZ: s.SumZ, SumZ2: s.SumZ2, SumUZ: s.SumXZ}, true
	}
	if s.SumR == 0 && s.SumR2 == 0 && s.SumX != 0 {
		return Moments{}, false
	}
	return Moments{N: s.N, Sum: s.SumR, Sum2: s.SumR2, SumZ: s.SumZ, SumZ2: s.SumZ2, SumUZ: s.SumRZ}, true
}

// evalBounded analyses a metric with known per-user bounds with the
// nonasymptotic BoundedTest: each call one-sided at alpha, the displayed
// interval the two one-sided bounds at alpha/2 (a two-sided 1−alpha
// confidence sequence).
func evalBounded(cs, ts Summary, m Metric, role string, margin, alpha, share, minEvents, nStar float64, mr MetricResult) (MetricResult, ReasonCode) {
	mr.Method = "bounded"
	b := *m.Bounds
	c, okc := userMoments(cs, m.Kind)
	t, okt := userMoments(ts, m.Kind)
	if !okc || !okt {
		return mr, ReasonMissingSums
	}
	if !b.ok() || !c.ok() || !t.ok() || (m.Relative && b.Lo < 0) {
		return mr, ReasonDegenerate
	}
	ce := MeanEstimate(Summary{N: c.N, SumX: c.Sum, SumX2: c.Sum2})
	te := MeanEstimate(Summary{N: t.N, SumX: t.Sum, SumX2: t.Sum2})
	mr.Control, mr.Treatment = fp(ce.Value), fp(te.Value)
	eff := Lift(ce, te, m.Relative)
	mr.Lift = fp(eff.Value)
	ev := Events(c, b) + Events(t, b)
	mr.Events = fp(ev)
	if ev < minEvents {
		return mr, ReasonMinEvents
	}
	if !eff.valid() {
		return mr, ReasonDegenerate
	}
	center, cuTheta := math.NaN(), math.NaN()
	if m.Center != nil {
		center = *m.Center
	}
	if m.CUPEDTheta != nil {
		cuTheta = *m.CUPEDTheta
	}
	s := m.Better.sign()
	theta0 := 0.0
	if role == "guardrail" {
		theta0 = -s * margin
	}
	// Without CUPED: θ = 0 and no covariate, which is BoundedTest. The
	// bets are tuned to the policy's N* when a centre is given.
	tc, tt := c, t
	if !m.CUPED {
		cuTheta = 0
		tc.SumZ, tc.SumZ2, tc.SumUZ, tt.SumZ, tt.SumZ2, tt.SumUZ = 0, 0, 0, 0, 0, 0
	}
	test := func(side Side) BoundedResult {
		null := BoundedNull{Theta0: theta0, Relative: m.Relative, Side: side}
		return BoundedTestCUPED(tc, tt, b, share, null, center, cuTheta, nStar, alpha)
	}
	bound := func(side Side) float64 {
		return BoundedBoundCUPED(tc, tt, b, share, m.Relative, side, center, cuTheta, nStar, alpha/2)
	}
	if m.CUPED {
		// The coefficient fitted on this period's data (the next
		// period's θ: experiments.PriorOf) and the share of the value's
		// variance it explains; the test itself used cuTheta.
		if cu := CUPED(CovariateSummary{c.N, c.Sum, c.Sum2, c.SumZ, c.SumZ2, c.SumUZ}, CovariateSummary{t.N, t.Sum, t.Sum2, t.SumZ, t.SumZ2, t.SumUZ}); cu.Valid {
			mr.VarianceRemoved, mr.ExtraUsers, mr.CUPEDTheta = fp(cu.VarianceRemoved), fp(cu.ExtraUsers), fp(cu.Theta)
		}
	}
	good, bad := test(Side(s)), test(Side(-s))
	if !good.Valid || !bad.Valid {
		return mr, ReasonDegenerate
	}
	if role == "guardrail" {
		mr.NonInferior, mr.Harmful = good.Reject, bad.Reject
		if -s*eff.Value < margin {
			mr.PValue = fp(good.PValue)
		} else {
			mr.PValue = fp(bad.PValue)
		}
	} else {
		mr.Better, mr.Worse = good.Reject, bad.Reject
		mr.PValue = fp(math.Min(good.PValue, bad.PValue))
	}
	mr.LogE = fp(good.LogE)
	mr.StdErr = fp(math.Sqrt(eff.Variance))
	lo, hi := bound(Greater), bound(Less)
	mr.CILow, mr.CIHigh = fp(lo), fp(hi)
	mr.Valid = true
	return mr, ""
}
