package stats

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// ppiData is per-response data: human labels with judge scores, and
// judge-only scores.
type ppiData struct{ y, f, fu []float64 }

func (d ppiData) summary() PPISummary {
	var s PPISummary
	for i := range d.y {
		s.Labeled++
		s.SumHuman += d.y[i]
		s.SumHuman2 += d.y[i] * d.y[i]
		s.SumJudge += d.f[i]
		s.SumJudge2 += d.f[i] * d.f[i]
		s.SumHumanJudge += d.y[i] * d.f[i]
	}
	for _, f := range d.fu {
		s.Unlabeled++
		s.SumJudgeU += f
		s.SumJudgeU2 += f * f
	}
	return s
}

func mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

func cov(x, y []float64) float64 {
	mx, my := mean(x), mean(y)
	var s float64
	for i := range x {
		s += (x[i] - mx) * (y[i] - my)
	}
	return s / float64(len(x)-1)
}

// ppiReference computes PPI++ from the observations, as written in the
// paper and ppi_py (with n−1 variances).
func ppiReference(d ppiData, lam float64, tune bool) (est, se, lamOut float64) {
	n, N := float64(len(d.y)), float64(len(d.fu))
	if tune {
		pooled := append(append([]float64(nil), d.f...), d.fu...)
		lam = cov(d.y, d.f) / ((1 + n/N) * cov(pooled, pooled))
		lam = math.Min(math.Max(lam, 0), 1)
	}
	r := make([]float64, len(d.y))
	for i := range r {
		r[i] = d.y[i] - lam*d.f[i]
	}
	est = lam*mean(d.fu) + mean(r)
	se = math.Sqrt(cov(r, r)/n + lam*lam*cov(d.fu, d.fu)/N)
	return est, se, lam
}

// drawPPI: a human signal Y ~ Bernoulli(p) with p ~ Beta-ish per response
// and a biased, noisy judge f = clamp(a + b·p + noise); truth E[Y] = 0.6.
func drawPPI(rng *rand.Rand, n, N int, a, b, noise float64) ppiData {
	var d ppiData
	gen := func() (y, f float64) {
		p := 0.6 + 0.35*(2*rng.Float64()-1)
		if rng.Float64() < p {
			y = 1
		}
		f = math.Min(math.Max(a+b*p+noise*rng.NormFloat64(), 0), 1)
		return y, f
	}
	for range n {
		y, f := gen()
		d.y, d.f = append(d.y, y), append(d.f, f)
	}
	for range N {
		_, f := gen()
		d.fu = append(d.fu, f)
	}
	return d
}

func TestPPIMatchesReference(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(11, 12))
	d := drawPPI(rng, 300, 4000, 0.2, 0.8, 0.1)
	s := d.summary()
	for _, tc := range []struct {
		mode PPIMode
		lam  float64
		tune bool
	}{{PPIPlusPlus, 0, true}, {PPIClassic, 1, false}, {PPIHumanOnly, 0, false}} {
		r := PPIMean(s, PPIOptions{Mode: tc.mode})
		est, se, lam := ppiReference(d, tc.lam, tc.tune)
		if !r.Valid || math.Abs(r.Estimate-est) > 1e-9 || math.Abs(r.StdErr-se) > 1e-9 || math.Abs(r.Lambda-lam) > 1e-9 {
			t.Errorf("%s: got %+v, want est %g se %g λ %g", tc.mode, r, est, se, lam)
		}
		z := 1.959963984540054
		if math.Abs(r.CI.Low-(est-z*se)) > 1e-9 || math.Abs(r.CI.High-(est+z*se)) > 1e-9 {
			t.Errorf("%s: CI %+v", tc.mode, r.CI)
		}
		if r.SequentialCI.Low > r.CI.Low || r.SequentialCI.High < r.CI.High {
			t.Errorf("%s: sequential CI %+v narrower than fixed %+v", tc.mode, r.SequentialCI, r.CI)
		}
	}
	ho := PPIMean(s, PPIOptions{Mode: PPIHumanOnly})
	if ho.Estimate != mean(d.y) || math.Abs(ho.StdErr-math.Sqrt(cov(d.y, d.y)/300)) > 1e-12 {
		t.Errorf("human only %+v", ho)
	}
	if bias := mean(d.f) - mean(d.y); math.Abs(ho.JudgeBias-bias) > 1e-12 {
		t.Errorf("judge bias %g, want %g", ho.JudgeBias, bias)
	}
}

// TestPPICoverage: simulation with known truth (E[Y] = 0.6). PPI and
// PPI++ cover at the nominal rate with a biased judge, PPI++ is narrower
// than labels alone with a useful judge, and never much wider with a
// useless one.
func TestPPICoverage(t *testing.T) {
	t.Parallel()
	const reps, alpha, truth = 2000, 0.05, 0.6
	type agg struct{ cover, width, hoWidth float64 }
	for _, tc := range []struct {
		name         string
		a, b, noise  float64
		maxWidthVsHO float64 // PPI++ mean width / human-only mean width must be below
	}{
		{"useful biased judge", 0.25, 0.7, 0.05, 0.95},
		{"useless judge", 0.5, 0, 0.2, 1.03},
	} {
		rng := rand.New(rand.NewPCG(13, 14))
		var pp, cl agg
		for range reps {
			s := drawPPI(rng, 200, 2000, tc.a, tc.b, tc.noise).summary()
			for _, m := range []struct {
				g    *agg
				mode PPIMode
			}{{&pp, PPIPlusPlus}, {&cl, PPIClassic}} {
				r := PPIMean(s, PPIOptions{Mode: m.mode, Alpha: alpha})
				if r.CI.Low <= truth && truth <= r.CI.High {
					m.g.cover++
				}
				m.g.width += r.CI.High - r.CI.Low
				m.g.hoWidth += 2 * 1.96 * math.Sqrt(r.HumanOnly.Variance)
			}
		}
		se := math.Sqrt(alpha * (1 - alpha) / reps)
		for name, g := range map[string]agg{"ppi++": pp, "ppi": cl} {
			c := g.cover / reps
			t.Logf("%s, %s: coverage %.3f, mean width %.4f (labels alone %.4f)", tc.name, name, c, g.width/reps, g.hoWidth/reps)
			if c < 1-alpha-3*se {
				t.Errorf("%s, %s: coverage %.3f < %.3f", tc.name, name, c, 1-alpha-3*se)
			}
		}
		if ratio := pp.width / pp.hoWidth; ratio > tc.maxWidthVsHO {
			t.Errorf("%s: PPI++ width / labels-alone width %.3f > %.2f", tc.name, ratio, tc.maxWidthVsHO)
		}
	}
}

func TestPPILift(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(15, 16))
	b := drawPPI(rng, 400, 6000, 0.25, 0.7, 0.05).summary()
	c := drawPPI(rng, 400, 6000, 0.25, 0.7, 0.05).summary()
	r := PPILift(b, c, PPIOptions{})
	if !r.Valid || math.Abs(r.Lift-(r.Candidate.Estimate-r.Base.Estimate)) > 1e-12 {
		t.Fatalf("%+v", r)
	}
	if w, h := r.CI.High-r.CI.Low, r.HumanOnlyCI.High-r.HumanOnlyCI.Low; !(w < h) {
		t.Errorf("PPI++ lift width %g not below labels-alone %g", w, h)
	}
	if !(r.CI.Low < 0 && r.CI.High > 0) {
		t.Logf("note: equal arms' lift CI %+v excludes 0 (possible at rate α)", r.CI)
	}
	if bad := PPILift(b, PPISummary{}, PPIOptions{}); bad.Valid {
		t.Errorf("lift with an empty arm is valid: %+v", bad)
	}
}

func TestPPIDegenerate(t *testing.T) {
	t.Parallel()
	for name, s := range map[string]PPISummary{
		"empty":     {},
		"one label": {Labeled: 1, SumHuman: 1, SumHuman2: 1, SumJudge: 1, SumJudge2: 1, SumHumanJudge: 1},
		"nan":       {Labeled: 10, SumHuman: math.NaN()},
		"inf":       {Labeled: 10, SumJudgeU: math.Inf(1), Unlabeled: 3},
	} {
		if r := PPIMean(s, PPIOptions{}); r.Valid {
			t.Errorf("%s: valid %+v", name, r)
		}
	}
	// All labels equal, no unlabeled: PPI++ falls back to labels alone
	// with the zero-variance floor; classic PPI has nothing to add.
	s := PPISummary{Labeled: 50, SumHuman: 50, SumHuman2: 50, SumJudge: 40, SumJudge2: 32, SumHumanJudge: 40}
	r := PPIMean(s, PPIOptions{})
	if !r.Valid || r.Lambda != 0 || r.Estimate != 1 || !(r.StdErr > 0) {
		t.Errorf("ties, no unlabeled: %+v", r)
	}
	if r := PPIMean(s, PPIOptions{Mode: PPIClassic}); r.Valid {
		t.Errorf("classic PPI without unlabeled responses is valid: %+v", r)
	}
}

// TestAgreementPublished checks κ against two published examples.
func TestAgreementPublished(t *testing.T) {
	t.Parallel()
	// Cohen's κ worked example (Wikipedia, "Cohen's kappa", first
	// example): 50 proposals, 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no:
	// p_o = 0.7, p_e = 0.5, κ = 0.4.
	r := Agreement([][]float64{{20, 5}, {10, 15}}, 0.05)
	if math.Abs(*r.Kappa-0.4) > 1e-12 || math.Abs(*r.Observed-0.7) > 1e-12 {
		t.Errorf("κ %g p_o %g", *r.Kappa, *r.Observed)
	}
	// R vcd's Kappa(SexualFun) (the package's documented example):
	// unweighted κ 0.1293, ASE 0.06860.
	r = Agreement([][]float64{{7, 7, 2, 3}, {2, 8, 3, 7}, {1, 5, 4, 9}, {2, 8, 9, 14}}, 0.05)
	if math.Abs(*r.Kappa-0.1293) > 5e-5 || math.Abs(*r.KappaStdErr-0.06860) > 5e-6 {
		t.Errorf("SexualFun: κ %g ASE %g, want 0.1293, 0.06860", *r.Kappa, *r.KappaStdErr)
	}
}

// TestAgreementStdErrMonteCarlo: the Fleiss–Cohen–Everitt standard error
// matches the spread of κ̂ over multinomial samples.
func TestAgreementStdErrMonteCarlo(t *testing.T) {
	t.Parallel()
	p := []float64{0.35, 0.08, 0.05, 0.12, 0.25, 0.03, 0.02, 0.04, 0.06} // 3×3, row-major
	const n, reps = 400, 3000
	rng := rand.New(rand.NewPCG(17, 18))
	var ks []float64
	var seSum float64
	for range reps {
		c := [][]float64{make([]float64, 3), make([]float64, 3), make([]float64, 3)}
		for range n {
			u, acc := rng.Float64(), 0.0
			for i, pi := range p {
				acc += pi
				if u < acc || i == len(p)-1 {
					c[i/3][i%3]++
					break
				}
			}
		}
		r := Agreement(c, 0.05)
		ks = append(ks, *r.Kappa)
		seSum += *r.KappaStdErr
	}
	sd := math.Sqrt(cov(ks, ks))
	if rel := seSum / reps / sd; rel < 0.93 || rel > 1.07 {
		t.Errorf("mean ASE / Monte Carlo SD of κ̂ = %.3f", rel)
	}
}

func TestAgreementDegenerate(t *testing.T) {
	t.Parallel()
	for name, c := range map[string][][]float64{
		"empty": nil, "zeros": {{0, 0}, {0, 0}}, "ragged": {{1, 2}, {3}},
		"negative": {{1, -1}, {0, 1}}, "nan": {{math.NaN(), 1}, {1, 1}}, "denormal": {{1.652444556685494e-309, 0}, {0, 0}},
	} {
		r := Agreement(c, 0.05)
		if r.Kappa != nil || r.Observed != nil {
			t.Errorf("%s: %+v", name, r)
		}
	}
	// One category only: agreement 1, κ undefined.
	r := Agreement([][]float64{{10, 0}, {0, 0}}, 0.05)
	if r.Kappa != nil || *r.Observed != 1 {
		t.Errorf("one category: %+v", r)
	}
}

func FuzzPPI(f *testing.F) {
	f.Add(100.0, 60.0, 60.0, 55.0, 40.0, 40.0, 1000.0, 560.0, 400.0, 3.0, 1.0, 2.0, 4.0)
	f.Add(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
	f.Add(50.0, 25.0, 25.0, 25.0, 12.5, 12.5, 50.0, 25.0, 12.5, 1.0, 1.0, 1.0, 1.0) // ties
	f.Add(math.NaN(), math.Inf(1), -1.0, 1e308, -1e308, 5.0, 2.0, 1.0, 0.0, -3.0, 1e300, 7.0, 0.5)
	f.Add(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.652444556685494e-309, 0.0, 0.0, 0.0) // a denormal count: Wilson was NaN
	f.Fuzz(func(t *testing.T, n, sy, sy2, sf, sf2, syf, N, su, su2, a, b, c, d float64) {
		s := PPISummary{n, sy, sy2, sf, sf2, syf, N, su, su2}
		for _, m := range []PPIMode{PPIPlusPlus, PPIClassic, PPIHumanOnly} {
			r := PPIMean(s, PPIOptions{Mode: m})
			if _, err := json.Marshal(r); err != nil {
				t.Fatalf("%s: not JSON-encodable: %v %+v", m, err, r)
			}
			if r.Valid && !(r.CI.Low <= r.Estimate && r.Estimate <= r.CI.High && r.Lambda >= 0 && r.Lambda <= 1) {
				t.Fatalf("%s: %+v", m, r)
			}
			l := PPILift(s, s, PPIOptions{Mode: m})
			if _, err := json.Marshal(l); err != nil {
				t.Fatalf("%s: lift not JSON-encodable: %v", m, err)
			}
		}
		ag := Agreement([][]float64{{a, b}, {c, d}}, 0.05)
		if _, err := json.Marshal(ag); err != nil {
			t.Fatalf("agreement not JSON-encodable: %v %+v", err, ag)
		}
	})
}
