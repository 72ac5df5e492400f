package stats

import (
	"encoding/json"
	"math"
	"testing"
)

func FuzzDecide(f *testing.F) {
	f.Add(1000.0, 1000.0, 100.0, 100.0, 1000.0, 1000.0, 120.0, 120.0, 1000.0, 1000.0, uint8(0), false)
	f.Add(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, uint8(1), true)
	f.Add(5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, uint8(2), false) // zero variance
	f.Add(1e15, 1e15, 1e14, 1e14, 1e15, 1e15, 1e14, 1e14, 1e15, 1e15, uint8(0), false)                     // huge counts
	f.Add(1000.0, 0.0, 100.0, 100.0, 1000.0, 0.0, 0.0, 0.0, 0.0, 0.0, uint8(1), false)                     // empty arm
	f.Add(math.Inf(1), 3.0, math.NaN(), -1.0, 2.0, 1e308, -1e308, 5.0, 1.0, 0.5, uint8(2), true)
	design := NewDesign(0.05, OBrienFleming, []float64{0.25, 0.5, 0.75, 1})
	f.Fuzz(func(t *testing.T, n0, n1, sx0, sx1, sx20, sx21, sy0, sy1, sxy0, sxy1 float64, method uint8, ramp bool) {
		s0 := Summary{N: n0, SumX: sx0, SumX2: sx20, SumY: sy0, SumY2: sy0 * 2, SumXY: sxy0}
		s1 := Summary{N: n1, SumX: sx1, SumX2: sx21, SumY: sy1, SumY2: sy1 * 2, SumXY: sxy1}
		in := Input{Users: []float64{n0, n1}, Metrics: map[string][]Summary{
			"m": {s0, s1}, "r": {s0, s1}, "short": {s0},
		}}
		p := Policy{
			Primary: Metric{Name: "m"},
			Guardrails: []Guardrail{
				{Metric: Metric{Name: "r", Kind: Ratio, Better: LowerIsBetter, Relative: true}, Margin: 0.1},
				{Metric: Metric{Name: "m", Relative: false}, Margin: 0.01},
				{Metric: Metric{Name: "short"}, Margin: 0},
			},
			MinUsers: 1, MaxUsers: 2000, Design: design,
		}
		p.Method = []Method{ConfidenceSequenceMethod, MSPRTMethod, GroupSequentialMethod}[method%3]
		if ramp {
			p.Mode = RampMode
		}
		d := Decide(in, p)
		if _, err := json.Marshal(d); err != nil {
			t.Fatalf("decision not JSON-encodable (NaN/Inf?): %v\n%+v", err, d)
		}
		switch d.Verdict {
		case Continue, Promote, Rollback, StopFutility, HaltSRM, Advance:
		default:
			t.Fatalf("bad verdict %q", d.Verdict)
		}
		if d.Verdict == Promote && d.Winner == nil {
			t.Fatal("promote without winner")
		}
	})
}

func FuzzTests(f *testing.F) {
	f.Add(1.0, 1.0, 0.0, 1.0, 100.0, 1000.0)
	f.Add(0.0, 0.0, 0.0, 1e-300, 0.0, 1.0)
	f.Add(1e300, 1e-300, -1e300, 1e300, 1e300, 1e-300)
	f.Fuzz(func(t *testing.T, est, v, theta0, tau2, n, nStar float64) {
		e := Estimate{est, v}
		check := func(name string, r Test) {
			if math.IsNaN(r.PValue) || r.PValue < 0 || r.PValue > 1 {
				t.Fatalf("%s: p = %g for %+v", name, r.PValue, e)
			}
			if math.IsNaN(r.CI.Low) || math.IsNaN(r.CI.High) || r.CI.Low > r.CI.High {
				t.Fatalf("%s: CI %+v for %+v", name, r.CI, e)
			}
		}
		if tau2 > 0 && !math.IsInf(tau2, 0) {
			check("msprt", MSPRT(e, theta0, tau2, 0.05))
		}
		if nStar > 0 && !math.IsInf(nStar, 0) {
			check("cs", ConfidenceSequence(e, theta0, n, nStar, 0.05))
		}
		check("z", ZTest(e, theta0, 0.05))
		lbf, p := SequentialSRM([]float64{n, nStar}, []float64{1, 2}, 0)
		if math.IsNaN(lbf) || math.IsNaN(p) || p < 0 || p > 1 {
			t.Fatalf("srm: %g %g", lbf, p)
		}
	})
}
