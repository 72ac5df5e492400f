package stats

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// TestSegmentDivisorCountsDeclaredValues: the segment Bonferroni divisor
// is the declared values (Policy.SegmentValues), not the observed ones,
// so the level does not grow as values appear.
func TestSegmentDivisorCountsDeclaredValues(t *testing.T) {
	t.Parallel()
	in := segmentSim(1, 40000, []float64{0.5, 0.5}, []float64{0.5, 0.5}, []float64{0.5, 0.5})
	if len(in.Segments) != 2 {
		t.Fatalf("setup: %d segments", len(in.Segments))
	}
	segAlpha := func(p Policy) float64 {
		d := Decide(in, p)
		for _, sr := range d.Segments {
			for _, m := range sr.Metrics {
				return m.Alpha
			}
		}
		t.Fatal("no tested segment")
		return 0
	}
	p := segPolicy
	near(t, "legacy divisor (2 observed)", segAlpha(p), 0.05/2, 1e-15)
	p.SegmentValues = 11 // ten declared languages + other
	near(t, "declared divisor", segAlpha(p), 0.05/11, 1e-15)
	p.SegmentValues = 1 // fewer declared than observed: the observed count wins
	near(t, "observed wins", segAlpha(p), 0.05/2, 1e-15)
}

// TestDecideOneSided: with OneSided a guardrail is shown non-inferior
// with fewer users than with the two-sided interval, and the reported
// interval stays two-sided.
func TestDecideOneSided(t *testing.T) {
	t.Parallel()
	g := Guardrail{Metric: Metric{Name: "lat", Kind: Mean, Better: LowerIsBetter, Relative: true}, Margin: 0.05}
	two := Policy{Mode: RampMode, Guardrails: []Guardrail{g}, MinUsers: 10}
	one := two
	one.OneSided = true
	first := func(p Policy) float64 {
		for n := 100.0; n < 1e6; n *= 1.02 {
			in := Input{Users: []float64{n, n}, Metrics: map[string][]Summary{"lat": {normal(n, 100, 40), normal(n, 100, 40)}}}
			if Decide(in, p).Verdict == Advance {
				return n
			}
		}
		return math.Inf(1)
	}
	n1, n2 := first(one), first(two)
	t.Logf("advance at %.0f users/arm one-sided, %.0f two-sided", n1, n2)
	if !(n1 < 0.9*n2) {
		t.Errorf("one-sided %.0f not ≥10%% faster than two-sided %.0f", n1, n2)
	}
	in := Input{Users: []float64{n1, n1}, Metrics: map[string][]Summary{"lat": {normal(n1, 100, 40), normal(n1, 100, 40)}}}
	d1, d2 := Decide(in, one), Decide(in, two)
	m1, m2 := d1.Variants[0].Metrics[0], d2.Variants[0].Metrics[0]
	if *m1.CILow != *m2.CILow || *m1.CIHigh != *m2.CIHigh {
		t.Errorf("display interval changed: %v,%v vs %v,%v", *m1.CILow, *m1.CIHigh, *m2.CILow, *m2.CIHigh)
	}
	if m1.Method != "one-sided-cs" || m1.LogE == nil {
		t.Errorf("method %q, logE %v", m1.Method, m1.LogE)
	}
	// Primary, full mode: better one-sided.
	p := Policy{Primary: convMetric, OneSided: true, MinUsers: 10}
	d := Decide(Input{Users: []float64{20000, 20000}, Metrics: map[string][]Summary{"conversion": {binary(20000, 2000), binary(20000, 2200)}}}, p)
	if d.Verdict != Promote {
		t.Errorf("one-sided primary: %s %+v", d.Verdict, d.Reasons)
	}
}

// errUsers builds a Ratio error Summary of users with `per` requests
// each, `bad` of whom fail every request, with the per-user ratio sums.
func errUsers(users, bad, per float64) Summary {
	return Summary{N: users, SumX: bad * per, SumX2: bad * per * per, SumY: users * per, SumY2: users * per * per,
		SumXY: bad * per * per, SumR: bad, SumR2: bad}
}

// TestDecideBounded: a Metric with Bounds is decided by the bounded test;
// events burn-in, missing ratio sums and degenerate data are reported.
func TestDecideBounded(t *testing.T) {
	t.Parallel()
	g := Guardrail{Metric: Metric{Name: "error", Kind: Ratio, Better: LowerIsBetter, Bounds: &Bounds{0, 1}}, Margin: 0.005}
	p := Policy{Mode: RampMode, Guardrails: []Guardrail{g}, MinUsers: 10}
	decide := func(p Policy, c, tr Summary) Decision {
		return Decide(Input{Users: []float64{c.N, tr.N}, Metrics: map[string][]Summary{"error": {c, tr}}}, p)
	}
	// 0.2% of users fail in both arms: non-inferior with enough users.
	d := decide(p, errUsers(40000, 80, 3), errUsers(40000, 80, 3))
	if d.Verdict != Advance {
		t.Errorf("equal 0.2%% error rates at 40k/arm: %s %+v", d.Verdict, d.Reasons)
	}
	m := d.Variants[0].Metrics[0]
	if m.Method != "bounded" || m.LogE == nil || *m.LogE < math.Log(20) || m.CILow == nil || m.CIHigh == nil || *m.CIHigh > 0.005 {
		t.Errorf("bounded result %+v", m)
	}
	// Candidate 3% worse: rollback.
	if d := decide(p, errUsers(5000, 10, 3), errUsers(5000, 160, 3)); d.Verdict != Rollback {
		t.Errorf("harmful candidate: %s %+v", d.Verdict, d.Reasons)
	}
	// Too few events for MinEvents.
	pe := p
	pe.MinEvents = 200
	d = decide(pe, errUsers(40000, 80, 3), errUsers(40000, 80, 3))
	if d.Verdict != Continue || !hasReason(d, ReasonMinEvents) {
		t.Errorf("min events: %s %+v", d.Verdict, d.Reasons)
	}
	// Ratio sums missing.
	c := errUsers(40000, 80, 3)
	c.SumR, c.SumR2 = 0, 0
	d = decide(p, c, errUsers(40000, 80, 3))
	if d.Verdict != Continue || !hasReason(d, ReasonMissingSums) {
		t.Errorf("missing sums: %s %+v", d.Verdict, d.Reasons)
	}
	// No errors at all: still decidable (no zero-variance trap).
	if d := decide(p, errUsers(40000, 0, 3), errUsers(40000, 0, 3)); d.Verdict != Advance {
		t.Errorf("error-free arms: %s %+v", d.Verdict, d.Reasons)
	}
	// Unequal split: share from ExpectedSplit.
	in := Input{Users: []float64{76000, 4000}, ExpectedSplit: []float64{95, 5}, Metrics: map[string][]Summary{"error": {errUsers(76000, 152, 3), errUsers(4000, 8, 3)}}}
	if d := Decide(in, p); d.Verdict == Rollback {
		t.Errorf("5%% step: %s", d.Verdict)
	}
	if _, err := json.Marshal(d); err != nil {
		t.Fatal(err)
	}
	// A malformed split: the bounded test does not guess the share.
	in.ExpectedSplit = []float64{95}
	if d := Decide(in, p); d.Verdict != Continue || !hasReason(d, ReasonDegenerate) {
		t.Errorf("bad split: %s %+v", d.Verdict, d.Reasons)
	}
}

func hasReason(d Decision, c ReasonCode) bool {
	for _, r := range d.Reasons {
		if r.Code == c {
			return true
		}
	}
	return false
}

// TestCUPED: from sums, against a direct regression-adjusted computation,
// and the variance removed ≈ ρ² for a covariate with correlation ρ.
func TestCUPED(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 3))
	var cs [2]CovariateSummary
	var ys, zs [2][]float64
	for arm := range 2 {
		for range 20000 {
			z := rng.NormFloat64()
			y := 10 + 0.1*float64(arm) + 2*(0.6*z+0.8*rng.NormFloat64())
			ys[arm], zs[arm] = append(ys[arm], y), append(zs[arm], z)
			c := &cs[arm]
			c.N++
			c.SumY += y
			c.SumY2 += y * y
			c.SumZ += z
			c.SumZ2 += z * z
			c.SumYZ += y * z
		}
	}
	r := CUPED(cs[0], cs[1])
	if !r.Valid {
		t.Fatal("invalid")
	}
	// Direct: pooled within-arm θ, adjusted values y − θ(z − z̄).
	mean := func(x []float64) float64 {
		s := 0.0
		for _, v := range x {
			s += v
		}
		return s / float64(len(x))
	}
	var sxz, szz float64
	for arm := range 2 {
		my, mz := mean(ys[arm]), mean(zs[arm])
		for i := range ys[arm] {
			sxz += (ys[arm][i] - my) * (zs[arm][i] - mz)
			szz += (zs[arm][i] - mz) * (zs[arm][i] - mz)
		}
	}
	theta := sxz / szz
	near(t, "theta", r.Theta, theta, 1e-9)
	zbar := (mean(zs[0])*20000 + mean(zs[1])*20000) / 40000
	var adj [2]Estimate
	for arm := range 2 {
		a := make([]float64, len(ys[arm]))
		for i := range a {
			a[i] = ys[arm][i] - theta*(zs[arm][i]-zbar)
		}
		m := mean(a)
		v := 0.0
		for _, x := range a {
			v += (x - m) * (x - m)
		}
		adj[arm] = Estimate{m, v / float64(len(a)-1) / float64(len(a))}
	}
	near(t, "effect", r.Effect.Value, adj[1].Value-adj[0].Value, 1e-9)
	near(t, "variance", r.Effect.Variance, adj[1].Variance+adj[0].Variance, 1e-9*r.Effect.Variance)
	if math.Abs(r.VarianceRemoved-0.36) > 0.02 {
		t.Errorf("variance removed %.3f, want ≈ ρ² = 0.36", r.VarianceRemoved)
	}
	near(t, "extra users", r.ExtraUsers, 1/(1-r.VarianceRemoved)-1, 1e-12)
	// Degenerate: no covariate variation, empty arm.
	if CUPED(CovariateSummary{N: 10, SumY: 5, SumY2: 5}, CovariateSummary{N: 10, SumY: 4, SumY2: 4}).Valid {
		t.Error("valid without covariate")
	}
	if CUPED(CovariateSummary{}, cs[1]).Valid {
		t.Error("valid with an empty arm")
	}
	// In Decide: a Mean metric with CUPED reports the variance removed.
	s := func(c CovariateSummary) Summary {
		return Summary{N: c.N, SumX: c.SumY, SumX2: c.SumY2, SumY: c.N, SumY2: c.N, SumXY: c.SumY, SumZ: c.SumZ, SumZ2: c.SumZ2, SumXZ: c.SumYZ}
	}
	p := Policy{Primary: Metric{Name: "m", CUPED: true}, MinUsers: 10}
	d := Decide(Input{Users: []float64{20000, 20000}, Metrics: map[string][]Summary{"m": {s(cs[0]), s(cs[1])}}}, p)
	m := d.Variants[0].Metrics[0]
	if m.VarianceRemoved == nil || math.Abs(*m.VarianceRemoved-r.VarianceRemoved) > 1e-12 {
		t.Errorf("Decide CUPED: %+v", m)
	}
}
