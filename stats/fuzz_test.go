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
	f.Add(1000.0, 1000.0, 300.0, 700.0, 300.0, 700.0, 1000.0, 1000.0, 300.0, 700.0, uint8(8), true) // judge: valid preferences
	f.Add(0.0, 1e15, 0.0, 1e15, 0.0, 1e15, 0.0, 1e15, 0.0, 1e15, uint8(12), false)                  // judge: huge counts
	design := NewDesign(0.05, OBrienFleming, []float64{0.25, 0.5, 0.75, 1})
	f.Fuzz(func(t *testing.T, n0, n1, sx0, sx1, sx20, sx21, sy0, sy1, sxy0, sxy1 float64, method uint8, ramp bool) {
		// The optional sums reuse the inputs so every new path sees the
		// same degenerate values.
		s0 := Summary{N: n0, SumX: sx0, SumX2: sx20, SumY: sy0, SumY2: sy0 * 2, SumXY: sxy0, SumR: sxy0, SumR2: sx20, SumZ: sy0, SumZ2: sx20, SumXZ: sxy0}
		s1 := Summary{N: n1, SumX: sx1, SumX2: sx21, SumY: sy1, SumY2: sy1 * 2, SumXY: sxy1, SumR: sxy1, SumR2: sx21, SumZ: sy1, SumZ2: sx21, SumXZ: sxy1}
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
		// The new switches: one-sided calls, bounded metrics (mean and
		// ratio, with and without a centre), CUPED, the event burn-in and
		// declared segments.
		if method&4 != 0 {
			p.OneSided = true
			p.MinEvents = 5
			p.SegmentValues = 3
			c := sx0 / 1e3
			p.Primary.Bounds, p.Primary.CUPED = &Bounds{0, 1}, true
			p.Guardrails[0].Bounds, p.Guardrails[0].Center = &Bounds{0, 100}, &c
			p.Guardrails[1].CUPED = true
			in.Segments = []Segment{{Dimension: "d", Value: "v", Metrics: in.Metrics}}
		}
		if method&8 != 0 {
			// The live judge guardrail on the same (often degenerate) sums.
			in.Judge = []JudgeInput{{}, {Preference: s1, FirstShown: s0}}
			p.Judge = &JudgeGuardrail{Policy: JudgePolicy{NonInferiorityMargin: 0.05, MaxPerUser: 3}, Require: ramp}
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

// FuzzNewFunctions: every function added for the bounded, one-sided,
// CUPED, planning and carry-over work returns finite, in-range results
// (or an explicit invalid result) and never panics on data.
func FuzzNewFunctions(f *testing.F) {
	f.Add(1000.0, 100.0, 100.0, 1000.0, 120.0, 120.0, 0.0, 1.0, 0.5, 0.01)
	f.Add(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
	f.Add(1e15, 1e14, 1e14, 1e15, 1e14, 1e14, 0.0, 1.0, 0.05, -0.5)
	f.Add(10.0, 10.0, 10.0, 10.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.0) // zero variance
	f.Add(10.0, 20.0, 5.0, 0.0, 0.0, 0.0, 1.0, 5.0, 0.999, 0.1) // one arm empty
	f.Add(math.NaN(), 1.0, math.Inf(1), 2.0, -1.0, 1e308, -1e308, 5.0, 1.5, math.NaN())
	f.Fuzz(func(t *testing.T, n0, s0, q0, n1, s1, q1, lo, hi, share, theta float64) {
		c, tr := Moments{N: n0, Sum: s0, Sum2: q0}, Moments{N: n1, Sum: s1, Sum2: q1}
		b := Bounds{lo, hi}
		for _, side := range []Side{Greater, Less} {
			for _, rel := range []bool{false, true} {
				r := BoundedTest(c, tr, b, share, BoundedNull{Theta0: theta, Relative: rel, Side: side}, math.NaN(), 0.05)
				if math.IsNaN(r.LogE) || math.IsInf(r.LogE, 1) || !(r.PValue >= 0 && r.PValue <= 1) || (r.Reject && !r.Valid) {
					t.Fatalf("BoundedTest %+v %+v %+v: %+v", c, tr, b, r)
				}
				if bd := BoundedBound(c, tr, b, share, rel, side, (lo+hi)/2, 0.05); math.IsNaN(bd) {
					t.Fatalf("BoundedBound NaN")
				}
				e := Estimate{s1 - s0, q0 + q1}
				for _, o := range []OneSided{
					OneSidedConfidenceSequence(e, theta, n0+n1, 1000, 0.05, side),
					OneSidedMSPRT(e, theta, 0.01, 0.05, side),
				} {
					if !(o.PValue >= 0 && o.PValue <= 1) || math.IsNaN(o.Bound) || (o.Reject && !o.Valid) {
						t.Fatalf("one-sided %+v: %+v", e, o)
					}
				}
			}
		}
		if ev := Events(c, b); !(ev >= 0) || math.IsInf(ev, 0) {
			t.Fatalf("Events %g", ev)
		}
		cu := CUPED(CovariateSummary{n0, s0, q0, s1, q1, theta}, CovariateSummary{n1, s1, q1, s0, q0, theta})
		if cu.Valid && (!cu.Effect.valid() || !(cu.VarianceRemoved >= 0 && cu.VarianceRemoved <= 1) || math.IsNaN(cu.ExtraUsers) || math.IsNaN(cu.Theta)) {
			t.Fatalf("CUPED %+v", cu)
		}
		for _, w := range []Test{
			WelchLift(Summary{N: n0, SumX: s0, SumX2: q0}, Summary{N: n1, SumX: s1, SumX2: q1}, lo > 0, 0.05),
			WelchT(Summary{N: n0, SumX: s0, SumX2: q0}, Summary{N: n1, SumX: s1, SumX2: q1}, 0.05),
		} {
			if math.IsNaN(w.PValue) || w.PValue < 0 || w.PValue > 1 || math.IsNaN(w.CI.Low) || w.CI.Low > w.CI.High {
				t.Fatalf("Welch %+v", w)
			}
		}
		if l := CombineLogE(s0, s1, theta); math.IsNaN(l) || math.IsInf(l, 0) {
			t.Fatalf("CombineLogE %g", l)
		}
		for _, x := range []float64{NStarFor(n0), TauFor(n0, s0, 0.05), PlannedUsers(n0, share, hi), DaysToDecision(n0, n1, share)} {
			if math.IsNaN(x) || x < 0 {
				t.Fatalf("planning helper gave %g", x)
			}
		}
	})
}

// FuzzCUPEDCovariates: the covariate-using functions (BoundedTestCUPED,
// BoundedBoundCUPED, RatioCUPED, CUPED through Decide's bounded path)
// return finite, in-range results or an explicit invalid one, and never
// panic, on any sums: empty arms, zero variance, NaN, ±Inf, huge counts,
// covariate sums outside the bounds.
func FuzzCUPEDCovariates(f *testing.F) {
	f.Add(1000.0, 100.0, 100.0, 80.0, 80.0, 30.0, 1000.0, 120.0, 120.0, 90.0, 90.0, 40.0, 0.0, 1.0, 0.5, 0.3, 0.1)
	f.Add(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
	f.Add(1e15, 1e14, 1e14, 1e14, 1e14, 1e13, 1e15, 1e14, 1e14, 1e14, 1e14, 1e13, 0.0, 1.0, 0.05, math.NaN(), -0.5)
	f.Add(10.0, 10.0, 10.0, 0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.0)       // zero variance, no covariate
	f.Add(10.0, 30.0, 100.0, 60.0, 400.0, 200.0, 10.0, 20.0, 50.0, 0.0, 0.0, 0.0, 1.0, 5.0, 0.3, 2.0, 0.1) // z out of range
	f.Add(math.NaN(), 1.0, math.Inf(1), 2.0, -1.0, 1e308, -1e308, 5.0, 1.5, math.NaN(), 3.0, 1.0, 0.0, 1.0, 0.5, 0.5, 0.0)
	f.Fuzz(func(t *testing.T, n0, s0, q0, z0, zz0, uz0, n1, s1, q1, z1, zz1, uz1, lo, hi, share, theta, theta0 float64) {
		c := Moments{N: n0, Sum: s0, Sum2: q0, SumZ: z0, SumZ2: zz0, SumUZ: uz0}
		tr := Moments{N: n1, Sum: s1, Sum2: q1, SumZ: z1, SumZ2: zz1, SumUZ: uz1}
		b := Bounds{lo, hi}
		for _, side := range []Side{Greater, Less} {
			for _, rel := range []bool{false, true} {
				for _, center := range []float64{math.NaN(), (lo + hi) / 2} {
					r := BoundedTestCUPED(c, tr, b, share, BoundedNull{Theta0: theta0, Relative: rel, Side: side}, center, theta, 0, 0.05)
					if math.IsNaN(r.LogE) || math.IsInf(r.LogE, 0) || !(r.PValue >= 0 && r.PValue <= 1) || (r.Reject && !r.Valid) {
						t.Fatalf("BoundedTestCUPED %+v %+v %+v: %+v", c, tr, b, r)
					}
				}
				if bd := BoundedBoundCUPED(c, tr, b, share, rel, side, (lo+hi)/2, theta, 0, 0.05); math.IsNaN(bd) {
					t.Fatalf("BoundedBoundCUPED NaN")
				}
			}
		}
		rs := func(n, s, q, z, zz, uz float64) Summary {
			return Summary{N: n, SumX: s, SumX2: q, SumY: 2 * n, SumY2: 4 * n, SumXY: 2 * s, SumZ: z, SumZ2: zz, SumXZ: uz, SumYZ: 2 * z, SumR: s / 2, SumR2: q / 4, SumRZ: uz / 2}
		}
		s0s, s1s := rs(n0, s0, q0, z0, zz0, uz0), rs(n1, s1, q1, z1, zz1, uz1)
		cu := RatioCUPED(s0s, s1s)
		if cu.Valid && (!cu.Effect.valid() || !(cu.VarianceRemoved >= 0 && cu.VarianceRemoved <= 1) || math.IsNaN(cu.ExtraUsers) || !finite(cu.Theta)) {
			t.Fatalf("RatioCUPED %+v", cu)
		}
		for _, k := range []Kind{Mean, Ratio} {
			for _, bd := range []*Bounds{nil, &b} {
				th := theta
				p := Policy{Primary: Metric{Name: "m", Kind: k, CUPED: true, Bounds: bd, CUPEDTheta: &th}, MinUsers: 1, OneSided: true}
				d := Decide(Input{Users: []float64{n0, n1}, Metrics: map[string][]Summary{"m": {s0s, s1s}}}, p)
				if _, err := json.Marshal(d); err != nil {
					t.Fatalf("Decide CUPED %s: %v", k, err)
				}
			}
		}
	})
}
