package stats

import (
	"encoding/json"
	"math"
	"testing"
)

// binary is a proportion metric: s of n users converted (one observation each).
func binary(n, s float64) Summary {
	return Summary{N: n, SumX: s, SumX2: s, SumY: n, SumY2: n, SumXY: s}
}

// normal is a mean metric with the given sample mean and SD, one
// observation per user.
func normal(n, mean, sd float64) Summary {
	return Summary{N: n, SumX: n * mean, SumX2: (n-1)*sd*sd + n*mean*mean, SumY: n, SumY2: n, SumXY: n * mean}
}

var (
	convMetric = Metric{Name: "conversion", Kind: Mean, Better: HigherIsBetter}
	latency    = Guardrail{Metric: Metric{Name: "latency", Kind: Mean, Better: LowerIsBetter, Relative: true}, Margin: 0.10}
	errRate    = Guardrail{Metric: Metric{Name: "errors", Kind: Ratio, Better: LowerIsBetter}, Margin: 0.005}
)

func basePolicy() Policy {
	return Policy{Primary: convMetric, Guardrails: []Guardrail{latency}, MaxUsers: 50000}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	eqUsers := func(n float64, k int) []float64 {
		u := make([]float64, k)
		for i := range u {
			u[i] = n
		}
		return u
	}
	gsd := NewDesign(0.05, OBrienFleming, []float64{0.2, 0.4, 0.6, 0.8, 1})
	tests := []struct {
		name       string
		in         Input
		mod        func(*Policy)
		want       Verdict
		winner     int
		wantReason ReasonCode
	}{
		{
			name: "srm halts",
			in:   Input{Users: []float64{10000, 9000}},
			want: HaltSRM, wantReason: ReasonSRM,
		},
		{
			name: "expected split respected",
			in: Input{Users: []float64{18000, 2000}, ExpectedSplit: []float64{90, 10}, Metrics: map[string][]Summary{
				"conversion": {binary(18000, 1800), binary(2000, 200)}, "latency": {normal(18000, 100, 30), normal(2000, 100, 30)}}},
			want: Continue, wantReason: ReasonPrimaryPending,
		},
		{
			name: "bad split is reported",
			in:   Input{Users: []float64{50, 50}, ExpectedSplit: []float64{1}},
			want: Continue, wantReason: ReasonInvalidSplit,
		},
		{
			name: "min users",
			in:   Input{Users: []float64{50, 50}},
			want: Continue, wantReason: ReasonMinUsers,
		},
		{
			name: "promote",
			in: Input{Users: eqUsers(20000, 2), Metrics: map[string][]Summary{
				"conversion": {binary(20000, 2000), binary(20000, 2400)},
				"latency":    {normal(20000, 100, 30), normal(20000, 100, 30)}}},
			want: Promote, winner: 1, wantReason: ReasonBestCandidate,
		},
		{
			name: "guardrail harm beats a better primary",
			in: Input{Users: eqUsers(20000, 2), Metrics: map[string][]Summary{
				"conversion": {binary(20000, 2000), binary(20000, 2400)},
				"latency":    {normal(20000, 100, 30), normal(20000, 125, 30)}}},
			want: Rollback, wantReason: ReasonGuardrailHarm,
		},
		{
			name: "better primary but guardrail not yet non-inferior",
			in: Input{Users: eqUsers(20000, 2), Metrics: map[string][]Summary{
				"conversion": {binary(20000, 2000), binary(20000, 2400)},
				"latency":    {normal(20000, 100, 300), normal(20000, 105, 300)}}},
			want: Continue, wantReason: ReasonPrimaryPending,
		},
		{
			name: "primary worse",
			in: Input{Users: eqUsers(20000, 2), Metrics: map[string][]Summary{
				"conversion": {binary(20000, 2400), binary(20000, 2000)},
				"latency":    {normal(20000, 100, 30), normal(20000, 100, 30)}}},
			want: Rollback, wantReason: ReasonPrimaryWorse,
		},
		{
			name: "primary worse (all-candidates reason)",
			in: Input{Users: eqUsers(20000, 2), Metrics: map[string][]Summary{
				"conversion": {binary(20000, 2400), binary(20000, 2000)},
				"latency":    {normal(20000, 100, 30), normal(20000, 100, 30)}}},
			want: Rollback, wantReason: ReasonAllCandidatesWorse,
		},
		{
			// No conversion in either arm: the Agresti-Coull floor makes the
			// estimate usable, and "no difference" is simply inconclusive.
			name: "zero-variance primary",
			in: Input{Users: eqUsers(5000, 2), Metrics: map[string][]Summary{
				"conversion": {binary(5000, 0), binary(5000, 0)},
				"latency":    {normal(5000, 100, 30), normal(5000, 100, 30)}}},
			want: Continue, wantReason: ReasonPrimaryPending,
		},
		{
			name: "futility at max users",
			in: Input{Users: eqUsers(50000, 2), Metrics: map[string][]Summary{
				"conversion": {binary(50000, 5000), binary(50000, 5010)},
				"latency":    {normal(50000, 100, 30), normal(50000, 100, 30)}}},
			want: StopFutility, wantReason: ReasonMaxUsers,
		},
		{
			name: "continue",
			in: Input{Users: eqUsers(5000, 2), Metrics: map[string][]Summary{
				"conversion": {binary(5000, 500), binary(5000, 510)},
				"latency":    {normal(5000, 100, 30), normal(5000, 100, 30)}}},
			want: Continue, wantReason: ReasonPrimaryPending,
		},
		{
			name: "missing primary",
			in: Input{Users: eqUsers(5000, 2), Metrics: map[string][]Summary{
				"latency": {normal(5000, 100, 30), normal(5000, 100, 30)}}},
			want: Continue, wantReason: ReasonMissingMetric,
		},
		{
			name: "three arms: best significant candidate wins",
			in: Input{Users: eqUsers(30000, 3), Metrics: map[string][]Summary{
				"conversion": {binary(30000, 3000), binary(30000, 3300), binary(30000, 3700)},
				"latency":    {normal(30000, 100, 30), normal(30000, 100, 30), normal(30000, 99, 30)}}},
			want: Promote, winner: 2, wantReason: ReasonBestCandidate,
		},
		{
			name: "ratio guardrail harm (error rate per request +1pp, margin 0.5pp)",
			in: Input{Users: eqUsers(20000, 2), Metrics: map[string][]Summary{
				"conversion": {binary(20000, 2000), binary(20000, 2000)},
				"latency":    {normal(20000, 100, 30), normal(20000, 100, 30)},
				// 20000 users × 5 requests; errors 1% vs 2.5%.
				"errors": {{N: 20000, SumX: 1000, SumX2: 1200, SumY: 100000, SumY2: 600000, SumXY: 6000},
					{N: 20000, SumX: 2500, SumX2: 3300, SumY: 100000, SumY2: 600000, SumXY: 15000}}}},
			mod:  func(p *Policy) { p.Guardrails = append(p.Guardrails, errRate) },
			want: Rollback, wantReason: ReasonGuardrailHarm,
		},
		{
			name: "ramp: all guardrails non-inferior",
			in: Input{Users: eqUsers(20000, 2), Metrics: map[string][]Summary{
				"latency": {normal(20000, 100, 30), normal(20000, 100, 30)}}},
			mod:  func(p *Policy) { p.Mode = RampMode },
			want: Advance, wantReason: ReasonGuardrailOK,
		},
		{
			name: "ramp: harm",
			in: Input{Users: eqUsers(20000, 2), Metrics: map[string][]Summary{
				"latency": {normal(20000, 100, 30), normal(20000, 130, 30)}}},
			mod:  func(p *Policy) { p.Mode = RampMode },
			want: Rollback, wantReason: ReasonGuardrailHarm,
		},
		{
			name: "msprt promote",
			in: Input{Users: eqUsers(20000, 2), Metrics: map[string][]Summary{
				"conversion": {binary(20000, 2000), binary(20000, 2400)},
				"latency":    {normal(20000, 100, 30), normal(20000, 100, 30)}}},
			mod:  func(p *Policy) { p.Method = MSPRTMethod },
			want: Promote, winner: 1, wantReason: ReasonBestCandidate,
		},
		{
			name: "group sequential before first look",
			in:   Input{Users: eqUsers(5000, 2), Metrics: map[string][]Summary{}},
			mod:  func(p *Policy) { p.Method, p.Design, p.MaxUsers = GroupSequentialMethod, gsd, 50000 },
			want: Continue, wantReason: ReasonBeforeFirstLook,
		},
		{
			name: "group sequential promote at look 2",
			in: Input{Users: eqUsers(20000, 2), Metrics: map[string][]Summary{
				"conversion": {binary(20000, 2000), binary(20000, 2400)},
				"latency":    {normal(20000, 100, 30), normal(20000, 100, 30)}}},
			mod:  func(p *Policy) { p.Method, p.Design, p.MaxUsers = GroupSequentialMethod, gsd, 50000 },
			want: Promote, winner: 1, wantReason: ReasonBestCandidate,
		},
		{
			name: "group sequential without design",
			in:   Input{Users: eqUsers(20000, 2)},
			mod:  func(p *Policy) { p.Method = GroupSequentialMethod },
			want: Continue, wantReason: ReasonInvalidPolicy,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := basePolicy()
			if tc.mod != nil {
				tc.mod(&p)
			}
			d := Decide(tc.in, p)
			if d.Verdict != tc.want {
				t.Errorf("verdict = %s, want %s; reasons %+v", d.Verdict, tc.want, d.Reasons)
			}
			if tc.winner > 0 && (d.Winner == nil || *d.Winner != tc.winner) {
				t.Errorf("winner = %v, want %d", d.Winner, tc.winner)
			}
			found := false
			for _, r := range d.Reasons {
				found = found || r.Code == tc.wantReason
			}
			if !found {
				t.Errorf("no reason %q in %+v", tc.wantReason, d.Reasons)
			}
			if _, err := json.Marshal(d); err != nil {
				t.Errorf("marshal: %v", err)
			}
		})
	}
}

func TestDecideBonferroniAndNumbers(t *testing.T) {
	t.Parallel()
	in := Input{Users: []float64{30000, 30000, 30000}, Metrics: map[string][]Summary{
		"conversion": {binary(30000, 3000), binary(30000, 3300), binary(30000, 3700)},
		"latency":    {normal(30000, 100, 30), normal(30000, 100, 30), normal(30000, 99, 30)}}}
	p := basePolicy()
	p.NStar = 40000
	d := Decide(in, p)
	for _, v := range d.Variants {
		for _, m := range v.Metrics {
			if m.Alpha != 0.025 {
				t.Errorf("variant %d %s alpha = %g, want 0.025", v.Variant, m.Metric, m.Alpha)
			}
			if m.Metric == "conversion" {
				c := Lift(MeanEstimate(in.Metrics["conversion"][0]), MeanEstimate(in.Metrics["conversion"][v.Variant]), false)
				want := ConfidenceSequence(c, 0, 60000, 40000, 0.025)
				near(t, "lift", *m.Lift, want.Estimate, 1e-12)
				near(t, "ci low", *m.CILow, want.CI.Low, 1e-12)
				near(t, "p", *m.PValue, want.PValue, 1e-12)
			}
		}
	}
}

func TestNonInferiority(t *testing.T) {
	t.Parallel()
	z := func(e Estimate, th float64) Test { return ZTest(e, th, 0.05) }
	tests := []struct {
		name         string
		effect       Estimate
		better       Direction
		margin       float64
		wantNI, harm bool
	}{
		// Higher is better, margin 0.01: effect −0.002 ± 1.96·0.002 → harm CI (−0.0019, 0.0059) < 0.01.
		{"higher ni", Estimate{-0.002, 4e-6}, HigherIsBetter, 0.01, true, false},
		{"higher harm", Estimate{-0.03, 4e-6}, HigherIsBetter, 0.01, false, true},
		{"higher inconclusive", Estimate{-0.01, 4e-6}, HigherIsBetter, 0.01, false, false},
		// Lower is better (latency): +2% ± 1.96·1% → harm CI (0.0004, 0.0396) < 0.10.
		{"lower ni", Estimate{0.02, 1e-4}, LowerIsBetter, 0.10, true, false},
		{"lower harm", Estimate{0.15, 1e-4}, LowerIsBetter, 0.10, false, true},
		{"zero margin improvement", Estimate{-0.05, 1e-4}, LowerIsBetter, 0, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := NonInferiorityTest(tc.effect, tc.better, tc.margin, z)
			if got.NonInferior != tc.wantNI || got.Harmful != tc.harm {
				t.Errorf("got NI=%v harm=%v, want %v %v (%+v)", got.NonInferior, got.Harmful, tc.wantNI, tc.harm, got)
			}
			// NI p-value agrees with the interval.
			if got.NonInferior != (got.PValueNI < 0.05) {
				t.Errorf("NI p = %g inconsistent with NI = %v", got.PValueNI, got.NonInferior)
			}
			if got.Harmful != (got.PValueHarm < 0.05) {
				t.Errorf("harm p = %g inconsistent with harm = %v", got.PValueHarm, got.Harmful)
			}
		})
	}
}

func TestSampleSize(t *testing.T) {
	t.Parallel()
	// Fixed horizon, proportions 0.10 → 0.12, α = 0.05, power 0.8:
	// (1.959964 + 0.841621)² · (0.09 + 0.1056) / 0.02² = 3838.3 → 3839.
	pl := SampleSize(PlanInput{BaselineMean: 0.10, Lift: 0.02}, ConfidenceSequenceMethod, 0, 0, nil)
	za, zb := 1.959963984540054, 0.8416212335729143
	near(t, "fixed proportions", pl.Fixed, math.Ceil((za+zb)*(za+zb)*(0.09+0.12*0.88)/0.0004), 0)
	if !(pl.Sequential > pl.Fixed && pl.Inflation > 1 && pl.Inflation < 3) {
		t.Errorf("sequential plan %+v: want 1 < inflation < 3", pl)
	}
	// Relative lift on a continuous metric: 2% of 100 with SD 30 →
	// δ = 2, n = 7.849·1800/4 = 3532.
	pl = SampleSize(PlanInput{BaselineMean: 100, BaselineSD: 30, Lift: 0.02, Relative: true}, GroupSequentialMethod, 0, 0,
		NewDesign(0.05, OBrienFleming, []float64{0.2, 0.4, 0.6, 0.8, 1}))
	near(t, "fixed continuous", pl.Fixed, math.Ceil((za+zb)*(za+zb)*1800/4), 0)
	// LD O'Brien-Fleming-type K=5: the inflation is small, about 1.02-1.03
	// as for the classical O'Brien-Fleming design (Jennison & Turnbull 2000, ch. 2).
	if !(pl.Inflation > 1.01 && pl.Inflation < 1.05) {
		t.Errorf("GSD OBF inflation = %g", pl.Inflation)
	}
	if got := SampleSize(PlanInput{BaselineMean: 0.1}, MSPRTMethod, 0, 0, nil); got != (Plan{}) {
		t.Errorf("zero lift: %+v", got)
	}
	ms := SampleSize(PlanInput{BaselineMean: 0.10, Lift: 0.02}, MSPRTMethod, 0.2, 0, nil)
	if !(ms.Sequential > ms.Fixed) {
		t.Errorf("msprt plan %+v", ms)
	}
}
