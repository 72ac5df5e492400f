package stats

import (
	"math"
	"testing"
)

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

// TestZeroVarianceRoundoff: when every observation has the same value but
// the sums of squares do not cancel exactly (values such as 0.3, users with
// different request counts), the variance is the Agresti-Coull floor, not
// a rounding remainder of ~1e-19 that makes the estimate look exact, nor 0.
func TestZeroVarianceRoundoff(t *testing.T) {
	t.Parallel()
	for n := 100; n < 400; n++ {
		var mean, ratio Summary
		for i := range n {
			mean.N++
			mean.SumX += 0.3
			mean.SumX2 += 0.3 * 0.3
			y := float64(i%7 + 1) // every request completed: x = y
			ratio.N++
			ratio.SumX += y
			ratio.SumX2 += y * y
			ratio.SumY += y
			ratio.SumY2 += y * y
			ratio.SumXY += y * y
		}
		if e, want := MeanEstimate(mean), zeroVarianceFloor(0.3, mean.N); math.Abs(e.Variance-want) > 1e-9*want {
			t.Fatalf("n=%d: constant 0.3 mean: variance %g, want the floor %g", n, e.Variance, want)
		}
		if e, want := RatioEstimate(ratio), zeroVarianceFloor(1, ratio.SumY); math.Abs(e.Variance-want) > 1e-9*want {
			t.Fatalf("n=%d: every request completed: variance %g, want the floor %g", n, e.Variance, want)
		}
	}
	// Real variation well below the value is kept.
	s := Summary{N: 3, SumX: 300.3, SumX2: 100.1*100.1 + 2*100*100}
	if e := MeanEstimate(s); !(e.Variance > 1e-4) {
		t.Errorf("small real variance lost: %+v", e)
	}
}
