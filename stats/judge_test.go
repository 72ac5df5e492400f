package stats

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// mirror swaps the roles of candidate and base: x → y − x.
func mirror(s Summary) Summary {
	return Summary{N: s.N, SumX: s.SumY - s.SumX, SumX2: s.SumY2 - 2*s.SumXY + s.SumX2,
		SumY: s.SumY, SumY2: s.SumY2, SumXY: s.SumY2 - s.SumXY}
}

// addUser adds one user's (x, y) to s.
func addUser(s *Summary, x, y float64) {
	s.N++
	s.SumX += x
	s.SumX2 += x * x
	s.SumY += y
	s.SumY2 += y * y
	s.SumXY += x * y
}

func TestPreferenceCSBasics(t *testing.T) {
	t.Parallel()
	if ci, ok := PreferenceCS(Summary{}, 1, 0.05); ok || ci != (Interval{0, 1}) {
		t.Fatalf("no data: %v %v", ci, ok)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var s Summary
	prevW := 1.0
	for n := 1; n <= 20000; n++ {
		y := float64(1 + rng.IntN(3))
		x := 0.0
		for range int(y) {
			x += []float64{0, 0.5, 1}[rng.IntN(3)]
		}
		addUser(&s, x, y)
		if n%2000 != 0 {
			continue
		}
		ci, ok := PreferenceCS(s, 3, 0.05)
		est := s.SumX / s.SumY
		if !ok || !(ci.Low <= est && est <= ci.High) || ci.Low < 0 || ci.High > 1 {
			t.Fatalf("n=%d: CI %+v does not contain %g within [0,1]", n, ci, est)
		}
		if w := ci.High - ci.Low; w > prevW {
			t.Errorf("n=%d: width grew %g > %g", n, w, prevW)
		} else {
			prevW = w
		}
		// Mirroring the data mirrors the interval.
		m, _ := PreferenceCS(mirror(s), 3, 0.05)
		if math.Abs(m.Low-(1-ci.High)) > 1e-6 || math.Abs(m.High-(1-ci.Low)) > 1e-6 {
			t.Errorf("mirror: %+v vs %+v", m, ci)
		}
		// A smaller alpha gives a wider interval.
		w, _ := PreferenceCS(s, 3, 0.01)
		if w.Low > ci.Low || w.High < ci.High {
			t.Errorf("alpha 0.01 %+v narrower than 0.05 %+v", w, ci)
		}
	}
	if prevW > 0.05 {
		t.Errorf("width at 20000 users %g: too wide", prevW)
	}
}

// TestPreferenceMixtureFromSums checks the algebra: the mixture computed
// from the Summary's sums equals the one computed from each user's ξ.
func TestPreferenceMixtureFromSums(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	const k = 4
	var s Summary
	var xs, ys []float64
	for range 300 {
		y := float64(1 + rng.IntN(k))
		x := y * rng.Float64()
		addUser(&s, x, y)
		xs, ys = append(xs, x), append(ys, y)
	}
	for _, mu := range []float64{0, 0.2, 0.45, 0.5, 0.7, 1} {
		var S, V float64
		for i := range xs {
			xi := (xs[i] - mu*ys[i]) / k
			S += xi
			V += xi * xi
		}
		var m float64
		for j, l := range prefLambdas {
			m += math.Exp(l*S-prefPsi[j]*V) + math.Exp(-l*S-prefPsi[j]*V)
		}
		want := math.Log(m / float64(2*len(prefLambdas)))
		if got := prefLogMixture(s, k, mu); math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("mu=%g: log M from sums %g, from users %g", mu, got, want)
		}
	}
}

// TestPreferenceCSMatchesTest: μ0 is below the interval exactly when the
// estimate is above μ0 and the mixture rejects μ0 (the simulations use
// the cheaper right-hand side).
func TestPreferenceCSMatchesTest(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 300 {
		p := 0.3 + 0.4*rng.Float64()
		n := 10 + rng.IntN(3000)
		var s Summary
		for range n {
			x := 0.0
			if rng.Float64() < p {
				x = 1
			}
			addUser(&s, x, 1)
		}
		ci, _ := PreferenceCS(s, 1, 0.05)
		for _, mu0 := range []float64{0.4, 0.45, 0.5, 0.55} {
			below := ci.Low > mu0
			rej := s.SumX/s.SumY > mu0 && prefLogMixture(s, 1, mu0) >= math.Log(20)
			if below != rej && math.Abs(ci.Low-mu0) > 1e-9 {
				t.Fatalf("trial %d mu0 %g: CI %+v but rejected=%v", trial, mu0, ci, rej)
			}
		}
	}
}

// TestPreferenceCSCoverageLight: under continuous monitoring (a look
// after every user) the sequence misses the true mean in at most α of
// runs, for a heterogeneous, tie-heavy population. The heavy version is
// TestSimJudge* (-tags simulation).
func TestPreferenceCSCoverageLight(t *testing.T) {
	t.Parallel()
	const runs, users, alpha = 300, 1500, 0.05
	rng := rand.New(rand.NewPCG(7, 8))
	thr := math.Log(1 / alpha)
	miss := 0
	for range runs {
		var s Summary
		for range users {
			// A user's own win probability varies around 0.5 + 0.05.
			p := math.Min(math.Max(0.55+0.2*rng.NormFloat64(), 0), 1)
			y := float64(1 + rng.IntN(2))
			x := 0.0
			for range int(y) {
				switch u := rng.Float64(); {
				case u < 0.3:
					x += 0.5 // tie
				case u < 0.3+0.7*p:
					x++
				}
			}
			addUser(&s, x, y)
			// E[x]/E[y] = 0.15 + 0.7·0.55 regardless of y.
			if prefLogMixture(s, 2, 0.15+0.7*0.55) >= thr {
				miss++
				break
			}
		}
	}
	rate := float64(miss) / runs
	t.Logf("miss rate %.4f over %d runs × %d looks", rate, runs, users)
	if rate > alpha+3*math.Sqrt(alpha*(1-alpha)/runs) {
		t.Errorf("miss rate %.4f > α", rate)
	}
}

func TestJudgeGate(t *testing.T) {
	t.Parallel()
	users := func(n int, wins, ties int) Summary { // n users, one comparison each
		var s Summary
		for i := range n {
			x := 0.0
			switch {
			case i < wins:
				x = 1
			case i < wins+ties:
				x = 0.5
			}
			addUser(&s, x, 1)
		}
		return s
	}
	first := func(n int, share float64) Summary { // both-orders comparisons preferring first
		var s Summary
		for i := range n {
			x := 0.0
			if float64(i) < share*float64(n) {
				x = 1
			}
			addUser(&s, x, 1)
		}
		return s
	}
	pol := JudgePolicy{NonInferiorityMargin: 0.05, SuperiorityMargin: 0.02}
	cases := []struct {
		name string
		in   JudgeInput
		p    JudgePolicy
		want JudgeVerdict
		code ReasonCode
	}{
		{"no data", JudgeInput{}, pol, JudgeContinue, ReasonMinUsers},
		{"nan", JudgeInput{Preference: Summary{N: math.NaN()}}, pol, JudgeContinue, ReasonDegenerate},
		{"x above y", JudgeInput{Preference: Summary{N: 1, SumX: 2, SumX2: 4, SumY: 1, SumY2: 1, SumXY: 2}}, pol, JudgeContinue, ReasonDegenerate},
		{"over cap", JudgeInput{Preference: Summary{N: 1, SumX: 2, SumX2: 4, SumY: 3, SumY2: 9, SumXY: 6}}, pol, JudgeInconclusive, ReasonPerUserCap},
		{"few users", JudgeInput{Preference: users(20, 20, 0)}, pol, JudgeContinue, ReasonMinUsers},
		{"clear win", JudgeInput{Preference: users(400, 300, 50)}, pol, JudgePass, ReasonJudgeSuperior},
		{"non-inferior only", JudgeInput{Preference: users(3000, 1400, 300)}, pol, JudgePass, ReasonJudgeNonInferior},
		{"require superiority", JudgeInput{Preference: users(3000, 1400, 300)}, JudgePolicy{NonInferiorityMargin: 0.05, RequireSuperiority: true}, JudgeContinue, ReasonJudgePending},
		{"clear loss", JudgeInput{Preference: users(400, 100, 50)}, pol, JudgeStopWorse, ReasonJudgeWorse},
		{"even, undecided", JudgeInput{Preference: users(200, 90, 20)}, pol, JudgeContinue, ReasonJudgePending},
		{"max users", JudgeInput{Preference: users(200, 90, 20)}, JudgePolicy{MaxUsers: 200}, JudgeInconclusive, ReasonMaxUsers},
		{"biased judge", JudgeInput{Preference: users(400, 300, 50), FirstShown: first(400, 0.85)}, pol, JudgeInconclusive, ReasonPositionBias},
		{"biased judge, check off", JudgeInput{Preference: users(400, 300, 50), FirstShown: first(400, 0.85)}, JudgePolicy{PositionBiasLimit: -1}, JudgePass, ReasonJudgeSuperior},
		{"bias estimate high, unsure", JudgeInput{Preference: users(400, 300, 50), FirstShown: first(20, 0.7)}, pol, JudgeContinue, ReasonPositionBiasPending},
		{"bias fine", JudgeInput{Preference: users(400, 300, 50), FirstShown: first(200, 0.52)}, pol, JudgePass, ReasonJudgeSuperior},
		{"too few both orders", JudgeInput{Preference: users(400, 300, 50), FirstShown: first(10, 0.5)}, JudgePolicy{MinBothOrders: 50}, JudgeContinue, ReasonPositionBiasPending},
		{"bias does not hide a loss", JudgeInput{Preference: users(400, 100, 50), FirstShown: first(20, 0.7)}, pol, JudgeStopWorse, ReasonJudgeWorse},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := JudgeGate(tc.in, tc.p)
			if d.Verdict != tc.want {
				t.Fatalf("verdict %q, want %q: %+v", d.Verdict, tc.want, d)
			}
			if len(d.Reasons) == 0 || d.Reasons[len(d.Reasons)-1].Code != tc.code {
				t.Errorf("reasons %+v, want last %q", d.Reasons, tc.code)
			}
			if _, err := json.Marshal(d); err != nil {
				t.Errorf("not JSON-encodable: %v", err)
			}
		})
	}
}

func TestJudgeGatePanics(t *testing.T) {
	t.Parallel()
	for _, p := range []JudgePolicy{{Alpha: 1.5}, {NonInferiorityMargin: 0.5}, {SuperiorityMargin: -0.1}, {MaxPerUser: 0.5}, {NonInferiorityMargin: math.NaN()}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%+v: no panic", p)
				}
			}()
			JudgeGate(JudgeInput{}, p)
		}()
	}
}

func TestUserMeanSummary(t *testing.T) {
	t.Parallel()
	var s Summary
	for _, m := range []float64{0, 0.25, 1, 0.5} {
		addUser(&s, m, 1)
	}
	if got := UserMeanSummary(4, 1.75, 0.0625+1+0.25); got != s {
		t.Errorf("UserMeanSummary %+v, want %+v", got, s)
	}
}

func FuzzJudgeGate(f *testing.F) {
	f.Add(100.0, 60.0, 50.0, 100.0, 100.0, 60.0, 10.0, 6.0, 6.0, 10.0, 10.0, 6.0)
	f.Add(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
	f.Add(50.0, 25.0, 12.5, 50.0, 50.0, 25.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0) // all ties
	f.Add(1e15, 1e15, 1e15, 1e15, 1e15, 1e15, 1e15, 0.0, 0.0, 1e15, 1e15, 0.0)
	f.Add(math.NaN(), math.Inf(1), -1.0, 3.0, 1e308, -1e308, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
	f.Fuzz(func(t *testing.T, n, sx, sx2, sy, sy2, sxy, fn, fx, fx2, fy, fy2, fxy float64) {
		in := JudgeInput{
			Preference: Summary{N: n, SumX: sx, SumX2: sx2, SumY: sy, SumY2: sy2, SumXY: sxy},
			FirstShown: Summary{N: fn, SumX: fx, SumX2: fx2, SumY: fy, SumY2: fy2, SumXY: fxy},
		}
		d := JudgeGate(in, JudgePolicy{NonInferiorityMargin: 0.05, MaxPerUser: 3, MinUsers: 1})
		if _, err := json.Marshal(d); err != nil {
			t.Fatalf("not JSON-encodable: %v\n%+v", err, d)
		}
		switch d.Verdict {
		case JudgePass, JudgeStopWorse, JudgeContinue, JudgeInconclusive:
		default:
			t.Fatalf("bad verdict %q", d.Verdict)
		}
		ci := d.WinRateCI
		if !(0 <= ci.Low && ci.Low <= ci.High && ci.High <= 1) {
			t.Fatalf("win-rate CI %+v", ci)
		}
		if d.WinRate != nil && !(ci.Low <= *d.WinRate && *d.WinRate <= ci.High) {
			t.Fatalf("estimate %g outside %+v", *d.WinRate, ci)
		}
		if d.Verdict == JudgePass && (d.Biased || !d.NonInferior) {
			t.Fatalf("pass without non-inferiority or with bias: %+v", d)
		}
	})
}
