package api

import (
	"fmt"
	"strconv"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// This file puts the live judge guardrail of the ramp steps in words
// (docs/rollout.md, "The judge during the ramp"). It decides nothing:
// stats.Decide ran the judge with the controller's policy, and the
// decision carries its result per candidate (VariantResult.Judge).

// ReportJudgeGuardrail is the policy's live judge guardrail: its mode
// (judge.ramp), the win rate below which the candidate is worse (0.5 −
// non_inferiority_margin) and the level it runs at.
type ReportJudgeGuardrail struct {
	Mode  string  `json:"mode"`
	Bar   float64 `json:"bar"`
	Alpha float64 `json:"alpha"`
}

func reportJudgeGuardrail(p stats.Policy) *ReportJudgeGuardrail {
	j := p.Judge
	if j == nil {
		return nil
	}
	mode := experiments.JudgeRampWatch
	if j.Require {
		mode = experiments.JudgeRampGuardrail
	}
	return &ReportJudgeGuardrail{Mode: mode, Bar: 0.5 - j.Policy.NonInferiorityMargin, Alpha: j.Policy.Alpha}
}

// phrase is the policy line's part on the judge guardrail ("" without
// one).
func (g *ReportJudgeGuardrail) phrase() string {
	if g == nil {
		return ""
	}
	s := fmt.Sprintf("; live judge (%s): roll back below a %s win rate", g.Mode, fmtPct(g.Bar))
	if g.Mode == experiments.JudgeRampGuardrail {
		s += ", advance only once shown above it"
	}
	return s + fmt.Sprintf(", at alpha %.4g", g.Alpha)
}

// judgeRampHarm is the verdict of a decision that rolls back because the
// live judge shows a candidate worse than the non-inferiority margin;
// ok false when no candidate is.
func (a *analysis) judgeRampHarm(d stats.Decision) (ReportVerdict, bool) {
	for _, vr := range d.Variants {
		jd := vr.Judge
		if jd == nil || jd.Verdict != stats.JudgeStopWorse || jd.WinRate == nil || vr.Variant >= len(a.exp.Variants) {
			continue
		}
		bar := 0.5
		if j := a.policy.Judge; j != nil {
			bar -= j.Policy.NonInferiorityMargin
		}
		return ReportVerdict{Kind: VerdictHarm, Recommendation: "roll back", Sentence: fmt.Sprintf(
			"The live judge prefers the base's answers: it preferred candidate %s in %s of %s comparisons over %s users (ties half; anytime-valid %s CI %s to %s), below the %s win rate the non-inferiority margin allows; recommendation: roll back.",
			strconv.Quote(a.exp.Variants[vr.Variant].Name), fmtPct(*jd.WinRate), fmtCount(jd.Comparisons), fmtCount(jd.Users),
			fmtConfidence(1-jd.Alpha), fmtPct(jd.WinRateCI.Low), fmtPct(jd.WinRateCI.High), fmtPct(bar))}, true
	}
	return ReportVerdict{}, false
}

// judgeRampPending reports whether the live judge holds candidate v's
// advance: under judge.ramp guardrail, not yet shown non-inferior, or
// biased beyond the limit.
func (r *Report) judgeRampPending(v int) bool {
	if r.Policy.Judge == nil || r.Policy.Judge.Mode != experiments.JudgeRampGuardrail {
		return false
	}
	for _, r := range r.Decision.Reasons {
		if r.Variant == nil || *r.Variant != v {
			continue
		}
		switch r.Code {
		case stats.ReasonJudgePending, stats.ReasonPositionBias, stats.ReasonPerUserCap:
			return true
		}
	}
	return false
}

// rampJudgeSection makes a live judge section during a ramp step show
// the decision's judge results (VariantResult.Judge: the controller's
// policy and level) instead of the shadow gate's, so the section and the
// verdict never disagree.
func (a *analysis) rampJudgeSection(j *ReportJudge, d stats.Decision) {
	if j == nil || j.Source != JudgeLive || a.policy.Judge == nil {
		return
	}
	var cs []ReportJudgeCandidate
	for _, vr := range d.Variants {
		if vr.Judge == nil || vr.Variant >= len(a.exp.Variants) {
			return // no judge results (min_users, SRM): keep the gate's view
		}
		name := a.exp.Variants[vr.Variant].Name
		cs = append(cs, ReportJudgeCandidate{Variant: vr.Variant, Name: name, Decision: *vr.Judge,
			Sentence: rampJudgeSentence(name, *vr.Judge, a.policy.Judge)})
	}
	if len(cs) == 0 {
		return
	}
	j.Policy, j.Candidates = a.policy.Judge.Policy, cs
}

// rampJudgeSentence says a candidate's live judge result at a ramp step.
func rampJudgeSentence(name string, d stats.JudgeDecision, g *stats.JudgeGuardrail) string {
	bar := fmtPct(0.5 - g.Policy.NonInferiorityMargin)
	s := fmt.Sprintf("The live judge has compared no answers of %q in this step yet", name)
	if d.WinRate != nil {
		s = fmt.Sprintf("At this ramp step the live judge preferred the answer of %q in %s of %s comparisons over %s users (ties half; anytime-valid %s CI %s to %s)",
			name, fmtPct(*d.WinRate), fmtCount(d.Comparisons), fmtCount(d.Users), fmtConfidence(1-d.Alpha), fmtPct(d.WinRateCI.Low), fmtPct(d.WinRateCI.High))
	}
	switch d.Verdict {
	case stats.JudgeStopWorse:
		return s + fmt.Sprintf(": shown below %s, worse than the base; roll back.", bar)
	case stats.JudgePass:
		return s + fmt.Sprintf(": shown above %s, not worse than the base by more than the margin.", bar)
	case stats.JudgeInconclusive:
		if g.Require {
			return s + ": the judge can't conclude (see the reasons); it neither rolls the candidate back nor lets the step advance."
		}
		return s + ": the judge can't conclude (see the reasons); it can't roll the candidate back, and the guardrails alone decide the advance."
	}
	if g.Require {
		return s + ": keep judging; the step advances only once it is shown above " + bar + "."
	}
	return s + ": keep judging; it rolls the candidate back if shown below " + bar + "."
}
