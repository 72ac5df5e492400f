package stats

import "math"

// Direction says which way a metric is better.
type Direction string

const (
	// HigherIsBetter (the default when empty): e.g. thumbs-up rate.
	HigherIsBetter Direction = "higher"
	// LowerIsBetter: e.g. error rate, latency.
	LowerIsBetter Direction = "lower"
)

// sign is +1 when higher is better, −1 when lower is better.
func (d Direction) sign() float64 {
	if d == LowerIsBetter {
		return -1
	}
	return 1
}

// NonInferiority is the outcome of a guardrail (non-inferiority) test.
// Harm is the effect expressed in the harmful direction (positive = worse):
// −Δ when higher is better, +Δ when lower is better.
type NonInferiority struct {
	Harm     float64  // estimated harm
	HarmCI   Interval // confidence interval (sequence) for the harm
	Margin   float64  // allowed harm (≥ 0), same units as the effect
	PValueNI float64  // p-value of H0: harm ≥ margin (small ⇒ non-inferior)
	// PValueHarm is the p-value of H0: harm ≤ margin (small ⇒ harmful
	// beyond the margin).
	PValueHarm  float64
	NonInferior bool // HarmCI.High < Margin
	Harmful     bool // HarmCI.Low > Margin
	Valid       bool
	// Test is the underlying test of Δ = −sign·margin on the effect scale.
	Test Test
}

// Tester tests H0: Δ = theta0 for an effect estimate and returns a Test
// whose CI is {θ0 not rejected}. MSPRT, ConfidenceSequence and ZTest
// (closed over their parameters) are Testers.
type Tester func(effect Estimate, theta0 float64) Test

// NonInferiorityTest tests a guardrail with the given allowed harm margin
// (≥ 0; for a relative effect a fraction such as 0.10 for "no more than
// 10% worse", for an absolute effect in metric units such as 0.005 for 0.5
// percentage points). The test runs at the margin θ0 = −sign·margin with
// the supplied two-sided Tester at level α, so each one-sided conclusion
// (non-inferior, harmful) has error at most α; with a sequential Tester
// they stay valid under continuous monitoring.
func NonInferiorityTest(effect Estimate, better Direction, margin float64, test Tester) NonInferiority {
	if !(margin >= 0) || math.IsInf(margin, 0) {
		panic("stats: non-inferiority margin must be finite and >= 0")
	}
	s := better.sign()
	theta0 := -s * margin // the effect value at the edge of acceptable harm
	t := test(effect, theta0)
	ni := NonInferiority{Margin: margin, PValueNI: 1, PValueHarm: 1, Valid: t.Valid, Test: t}
	if !t.Valid {
		ni.HarmCI = Interval{math.Inf(-1), math.Inf(1)}
		return ni
	}
	ni.Harm = -s * t.Estimate
	lo, hi := -t.CI.High, -t.CI.Low // higher is better: harm = −Δ
	if s < 0 {
		lo, hi = t.CI.Low, t.CI.High // lower is better: harm = Δ
	}
	ni.HarmCI = Interval{lo, hi}
	ni.NonInferior = hi < margin
	ni.Harmful = lo > margin
	if ni.Harm < margin {
		ni.PValueNI = t.PValue
	} else {
		ni.PValueHarm = t.PValue
	}
	return ni
}
