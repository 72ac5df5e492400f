package stats

import (
	"math"
	"testing"
)

// TestDecideCarryOver: a bounded guardrail's prior log e-value (earlier
// periods) combines with the current one; the product reaching 1/α makes
// it non-inferior (CarriedOver), never over a harmful current period, and
// asymptotic (non-bounded) results are not combined.
func TestDecideCarryOver(t *testing.T) {
	t.Parallel()
	g := Guardrail{Metric: Metric{Name: "error", Kind: Ratio, Better: LowerIsBetter, Bounds: &Bounds{0, 1}}, Margin: 0.005}
	decide := func(g Guardrail, c, tr Summary) Decision {
		p := Policy{Mode: RampMode, Guardrails: []Guardrail{g}, MinUsers: 10}
		return Decide(Input{Users: []float64{c.N, tr.N}, Metrics: map[string][]Summary{"error": {c, tr}}}, p)
	}
	// Too few users for the current period alone.
	c, tr := errUsers(3000, 6, 3), errUsers(3000, 6, 3)
	d := decide(g, c, tr)
	own := d.Variants[0].Metrics[0]
	if d.Verdict != Continue || own.LogE == nil || *own.LogE <= 0 || *own.LogE >= math.Log(20) {
		t.Fatalf("alone: %s, log e %v; want continue with 0 < log e < log 20", d.Verdict, own.LogE)
	}
	g.PriorLogE = []float64{math.Log(20) - *own.LogE + 0.01}
	d = decide(g, c, tr)
	m := d.Variants[0].Metrics[0]
	if d.Verdict != Advance || !m.CarriedOver || m.CombinedLogE == nil || math.Abs(*m.CombinedLogE-(*own.LogE+g.PriorLogE[0])) > 1e-12 || *m.LogE != *own.LogE {
		t.Fatalf("with prior: %s %+v", d.Verdict, m)
	}
	// Just short of 1/α: the product does not reject.
	g.PriorLogE = []float64{math.Log(20) - *own.LogE - 0.01}
	if d := decide(g, c, tr); d.Verdict != Continue || d.Variants[0].Metrics[0].CarriedOver {
		t.Fatalf("prior short of 1/α: %s", d.Verdict)
	}
	// Harm in the current period is never outweighed.
	g.PriorLogE = []float64{50}
	if d := decide(g, errUsers(5000, 10, 3), errUsers(5000, 160, 3)); d.Verdict != Rollback {
		t.Fatalf("harmful with a large prior: %s", d.Verdict)
	}
	// A guardrail without bounds (asymptotic e-value) does not combine.
	g.Bounds = nil
	if d := decide(g, c, tr); d.Variants[0].Metrics[0].CombinedLogE != nil {
		t.Fatal("asymptotic e-value combined")
	}
}
