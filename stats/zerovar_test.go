package stats

import "testing"

// TestZeroVarianceGuardrail: a candidate and a base without a single
// error are inconclusive on a 0.5-point error guardrail with little
// traffic, and non-inferior once there is enough of it; a candidate with
// errors where the base has none is still caught.
func TestZeroVarianceGuardrail(t *testing.T) {
	t.Parallel()
	// users, each with `per` requests and no error: x = 0, y = per.
	none := func(users, per float64) Summary {
		return Summary{N: users, SumY: users * per, SumY2: users * per * per}
	}
	g := Guardrail{Metric: Metric{Name: "error", Kind: Ratio, Better: LowerIsBetter}, Margin: 0.005}
	policy := Policy{Mode: RampMode, Guardrails: []Guardrail{g}, MinUsers: 50}
	decide := func(c, t Summary) Decision {
		return Decide(Input{Users: []float64{c.N, t.N}, Metrics: map[string][]Summary{"error": {c, t}}}, policy)
	}

	if d := decide(none(100, 1), none(100, 1)); d.Verdict != Continue {
		t.Errorf("100 error-free requests per arm: %s, want continue (not yet evidence)", d.Verdict)
	}
	if d := decide(none(5000, 2), none(5000, 2)); d.Verdict != Advance {
		t.Errorf("10,000 error-free requests per arm: %s, want advance; reasons %+v", d.Verdict, d.Reasons)
	}
	// The candidate fails 5% of its requests; the base never fails.
	bad := Summary{N: 5000, SumX: 500, SumX2: 500, SumY: 10000, SumY2: 20000, SumXY: 1000}
	if d := decide(none(5000, 2), bad); d.Verdict != Rollback {
		t.Errorf("candidate with 5%% errors against an error-free base: %s, want rollback", d.Verdict)
	}

	e := MeanEstimate(Summary{N: 1000, SumX: 1000, SumX2: 1000}) // every task completed
	if !e.valid() || e.Value != 1 {
		t.Errorf("all-ones mean: %+v", e)
	}
}
