package experiments

// Ramp steps are counted one way wherever people and programs read them:
// from 1, "step 2 of 4", in the API, webhooks, the CLI, the demo, the
// reports and the audit trail (issue 13). The store keeps the 0-based
// index (State.Step, Transition.FromStep/ToStep) it always has, so stored
// states read back unchanged; these views add 1 on the way out.

// StepNumber is the 1-based number of the 0-based step index i.
func StepNumber(i int) int { return i + 1 }

// PublicState is State as the API and webhooks show it: Step counts from
// 1. (The outer field shadows the embedded one in JSON.)
type PublicState struct {
	State
	Step int `json:"step"`
}

// Public returns s with its ramp step counted from 1.
func (s State) Public() PublicState { return PublicState{State: s, Step: StepNumber(s.Step)} }

// PublicTransition is Transition as the API, webhooks and the audit trail
// show it: FromStep and ToStep count from 1.
type PublicTransition struct {
	Transition
	FromStep int `json:"from_step"`
	ToStep   int `json:"to_step"`
}

// Public returns t with its ramp steps counted from 1.
func (t Transition) Public() PublicTransition {
	return PublicTransition{Transition: t, FromStep: StepNumber(t.FromStep), ToStep: StepNumber(t.ToStep)}
}

// PublicTransitions maps Public over ts.
func PublicTransitions(ts []Transition) []PublicTransition {
	out := make([]PublicTransition, len(ts))
	for i, t := range ts {
		out[i] = t.Public()
	}
	return out
}

// PublicRecommendation is Recommendation with its step counted from 1.
type PublicRecommendation struct {
	Recommendation
	Step int `json:"step"`
}

// Public returns r with its ramp step counted from 1.
func (r Recommendation) Public() PublicRecommendation {
	return PublicRecommendation{Recommendation: r, Step: StepNumber(r.Step)}
}
