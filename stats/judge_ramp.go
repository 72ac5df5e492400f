package stats

import "fmt"

// This file holds the live judge as a guardrail of Decide during a
// rollout's ramp steps (docs/statistics.md §10, "The judge during the
// ramp"): the shadow gate's one-sample paired test (JudgeGate) on the
// candidate-served requests the judge compared with a base replay, run
// at the guardrails' level so that one Decision, read by the controller
// and the reports alike, carries it.

// JudgeGuardrail is Policy.Judge.
type JudgeGuardrail struct {
	// Policy is the gate's policy: margins, position-bias limit,
	// MaxPerUser, MinUsers, MinBothOrders. Decide sets its Alpha to the
	// guardrails' level (GuardrailAlpha/candidates) and ignores MaxUsers
	// and RequireSuperiority: during a ramp the question is
	// non-inferiority, and the policy's MaxUsers ends the step.
	Policy JudgePolicy `json:"policy"`
	// Require makes an advance (and a promotion) of a candidate need the
	// judge's non-inferiority too ("guardrail"); without it only harm
	// counts ("watch"): a win rate shown below 0.5 − margin rolls back.
	Require bool `json:"require"`
}

// evalJudge runs the judge guardrail for candidate j at level alpha: the
// gate's decision, whether it shows harm (the candidate worse than the
// margin allows: rollback), whether it lets the candidate advance, and
// the reasons to add to the Decision. A position-biased judge (or data
// breaking the per-user cap) is inconclusive: never harm, never an
// advance under Require.
func evalJudge(in Input, g JudgeGuardrail, j int, alpha float64) (d JudgeDecision, harm, ni bool, rs []Reason) {
	var ji JudgeInput
	if j < len(in.Judge) {
		ji = in.Judge[j]
	}
	p := g.Policy
	p.Alpha, p.MaxUsers, p.RequireSuperiority = alpha, 0, false
	d = JudgeGate(ji, p)
	bar := 0.5 - p.NonInferiorityMargin
	win := func() string {
		if d.WinRate == nil {
			return "no judged comparison yet"
		}
		return fmt.Sprintf("judge win rate %.1f%% (anytime-valid %s CI %.1f%% to %.1f%%) over %.0f users",
			100**d.WinRate, confidenceLabel(alpha), 100*d.WinRateCI.Low, 100*d.WinRateCI.High, d.Users)
	}
	add := func(c ReasonCode, msg string) {
		rs = append(rs, Reason{Code: c, Variant: ip(j), Message: msg})
	}
	switch d.Verdict {
	case JudgeStopWorse:
		add(ReasonJudgeWorse, fmt.Sprintf("variant %d is worse than control on the live judge: %s, below %.1f%% (0.5 − the non-inferiority margin)", j, win(), 100*bar))
		return d, true, false, rs
	case JudgePass:
		return d, false, true, rs
	case JudgeInconclusive:
		// Said in both modes: under watch, a biased judge is blind to harm.
		for _, r := range d.Reasons {
			add(r.Code, fmt.Sprintf("variant %d: the live judge can't conclude: %s (%s)", j, r.Message, win()))
		}
		return d, false, !g.Require, rs
	}
	if g.Require {
		add(ReasonJudgePending, fmt.Sprintf("variant %d is not yet shown non-inferior on the live judge (%s; needs the interval above %.1f%%)", j, win(), 100*bar))
	}
	return d, false, !g.Require, rs
}

// confidenceLabel is "95%" for alpha 0.05, "97.5%" for 0.025.
func confidenceLabel(alpha float64) string {
	return fmt.Sprintf("%.4g%%", 100*(1-alpha))
}
