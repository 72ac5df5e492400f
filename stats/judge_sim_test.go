//go:build simulation

package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// Seeded Monte Carlo of the shadow judge gate and of PPI:
//
//	go test -tags simulation -run SimJudge -v ./stats/   (or make sim-judge)
//
// The figures are reproduced in docs/statistics.md §9.

// judgeWorld is the latent model of a shadow stage. Each judged
// comparison of user u has a quality difference Δ = effect + u + ε
// (u ~ N(0, userSD²) per user, ε ~ N(0,1)); the judge says TIE with
// probability tie, and otherwise prefers the candidate with probability
// σ(1.7Δ ± bias), + when the candidate is shown first (position bias on
// the logit). The order is random; bothShare of comparisons are asked
// twice, swapped, and score the mean.
type judgeWorld struct {
	effect, userSD, tie, bias, bothShare float64
	maxPerUser                           int
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// compare returns the candidate's score and, when asked both ways, the
// share preferring the first-shown answer (else -1).
func (w judgeWorld) compare(rng *rand.Rand, u float64) (score, first float64) {
	d := w.effect + u + rng.NormFloat64()
	one := func(candFirst bool) (s, f float64) {
		if rng.Float64() < w.tie {
			return 0.5, 0.5
		}
		b := w.bias
		if !candFirst {
			b = -b
		}
		if rng.Float64() < sigmoid(1.7*d+b) {
			s = 1
		}
		if (s == 1) == candFirst {
			f = 1
		}
		return s, f
	}
	cf := rng.IntN(2) == 0
	if rng.Float64() < w.bothShare {
		s1, f1 := one(cf)
		s2, f2 := one(!cf)
		return (s1 + s2) / 2, (f1 + f2) / 2
	}
	s, _ := one(cf)
	return s, -1
}

// trueWinRate estimates E[x]/E[y] of w by Monte Carlo.
func (w judgeWorld) trueWinRate(seed uint64) float64 {
	rng := rand.New(rand.NewPCG(seed, 77))
	var s float64
	const n = 2_000_000
	for range n {
		x, _ := w.compare(rng, w.userSD*rng.NormFloat64())
		s += x
	}
	return s / n
}

// judgeRun streams comparisons from interleaved users (each arriving user
// will make 1..maxPerUser comparisons, spread over time among other
// users'), looks every `every` comparisons up to max, and returns the
// comparisons at the first pass/superiority/worse conclusion (0 if none)
// and the users then.
type judgeOutcome struct {
	nonInferior, superior, worse int // comparisons at the first such conclusion, 0 if never
	biased                       int
}

func judgeRun(rng *rand.Rand, w judgeWorld, maxComparisons, every int, ni, sup, alpha, biasLimit float64) judgeOutcome {
	type user struct {
		u          float64
		x, y, left float64
		fx, fy     float64
	}
	var active []*user
	var pref, first Summary
	var out judgeOutcome
	thr := math.Log(1 / alpha)
	k := float64(w.maxPerUser)
	for c := 1; c <= maxComparisons; c++ {
		if len(active) == 0 || rng.Float64() < 0.5 {
			active = append(active, &user{u: w.userSD * rng.NormFloat64(), left: float64(1 + rng.IntN(w.maxPerUser))})
			pref.N++
		}
		i := rng.IntN(len(active))
		us := active[i]
		s, f := w.compare(rng, us.u)
		// Update the user's contribution to the sums in place.
		pref.SumX += s
		pref.SumX2 += 2*us.x*s + s*s
		pref.SumY++
		pref.SumY2 += 2*us.y + 1
		pref.SumXY += us.x + us.y*s + s
		us.x += s
		us.y++
		if f >= 0 {
			if us.fy == 0 {
				first.N++
			}
			first.SumX += f
			first.SumX2 += 2*us.fx*f + f*f
			first.SumY++
			first.SumY2 += 2*us.fy + 1
			first.SumXY += us.fx + us.fy*f + f
			us.fx += f
			us.fy++
		}
		if us.left--; us.left == 0 {
			active[i] = active[len(active)-1]
			active = active[:len(active)-1]
		}
		if c%every != 0 {
			continue
		}
		est := pref.SumX / pref.SumY
		// "Shown above μ0" is "μ0 rejected with the estimate above it"
		// (TestPreferenceCSMatchesTest checks the equivalence).
		if out.nonInferior == 0 && est > ni && prefLogMixture(pref, k, ni) >= thr {
			out.nonInferior = c
		}
		if out.superior == 0 && est > sup && prefLogMixture(pref, k, sup) >= thr {
			out.superior = c
		}
		if out.worse == 0 && est < ni && prefLogMixture(pref, k, ni) >= thr {
			out.worse = c
		}
		if out.biased == 0 && first.SumY > 0 && biasLimit > 0 {
			fe := first.SumX/first.SumY - 0.5
			if (fe > biasLimit && prefLogMixture(first, k, 0.5+biasLimit) >= thr) ||
				(fe < -biasLimit && prefLogMixture(first, k, 0.5-biasLimit) >= thr) {
				out.biased = c
			}
		}
	}
	return out
}

// TestSimJudgeAA: identical models (no effect, symmetric user
// heterogeneity, a position-biased judge, ties): the superiority
// conclusion at margin 0 is reached in at most α of runs though the gate
// is evaluated every 10 comparisons.
func TestSimJudgeAA(t *testing.T) {
	t.Parallel()
	const runs, maxC, alpha = 2000, 5000, 0.05
	var b strings.Builder
	b.WriteString("| world | runs | looks | false superiority (at 0.5) | false 'worse' (below 0.45) | bias flagged (limit 0.1) |\n|---|---|---|---|---|---|\n")
	for i, w := range []judgeWorld{
		{userSD: 0, tie: 0.25, maxPerUser: 1},
		{userSD: 0.8, tie: 0.25, bias: 0.4, bothShare: 0.1, maxPerUser: 3},
		{userSD: 1.5, tie: 0.1, bias: 0, bothShare: 0.2, maxPerUser: 5},
	} {
		rng := rand.New(rand.NewPCG(uint64(100+i), 1))
		var sup, worse, biased int
		for range runs {
			o := judgeRun(rng, w, maxC, 10, 0.45, 0.5, alpha, 0.1)
			if o.superior > 0 {
				sup++
			}
			if o.worse > 0 {
				worse++
			}
			if o.biased > 0 {
				biased++
			}
		}
		fs := float64(sup) / runs
		fmt.Fprintf(&b, "| user SD %.1f, ties %.2f, logit bias %.1f, both-orders %.1f, ≤%d/user | %d | %d | %.4f | %.4f | %.4f |\n",
			w.userSD, w.tie, w.bias, w.bothShare, w.maxPerUser, runs, maxC/10, fs, float64(worse)/runs, float64(biased)/runs)
		if fs > alpha+3*math.Sqrt(alpha*(1-alpha)/runs) {
			t.Errorf("world %d: false superiority %.4f > α", i, fs)
		}
	}
	t.Log("\n" + b.String())
}

// TestSimJudgePower: power to pass (non-inferior at δ = 0.05, and
// superior at 0) within 5 000 judged comparisons, and the comparisons
// needed.
func TestSimJudgePower(t *testing.T) {
	t.Parallel()
	const runs, maxC, alpha = 1000, 5000, 0.05
	var b strings.Builder
	b.WriteString("| latent effect | true win rate | P(pass, NI δ=0.05) | mean comparisons to pass | P(superior) | mean comparisons to superiority | P(stop worse) |\n|---|---|---|---|---|---|---|\n")
	for i, eff := range []float64{-0.6, -0.2, 0, 0.1, 0.2, 0.3} {
		w := judgeWorld{effect: eff, userSD: 0.8, tie: 0.25, bias: 0.4, bothShare: 0.1, maxPerUser: 3}
		wr := w.trueWinRate(uint64(i))
		rng := rand.New(rand.NewPCG(uint64(200+i), 2))
		var ni, sup, worse int
		var niC, supC float64
		for range runs {
			o := judgeRun(rng, w, maxC, 10, 0.45, 0.5, alpha, 0.1)
			if o.nonInferior > 0 && (o.worse == 0 || o.nonInferior < o.worse) {
				ni++
				niC += float64(o.nonInferior)
			}
			if o.superior > 0 {
				sup++
				supC += float64(o.superior)
			}
			if o.worse > 0 && (o.nonInferior == 0 || o.worse < o.nonInferior) {
				worse++
			}
		}
		mean := func(s float64, k int) string {
			if k == 0 {
				return "–"
			}
			return fmt.Sprintf("%.0f", s/float64(k))
		}
		fmt.Fprintf(&b, "| %+.1f | %.3f | %.3f | %s | %.3f | %s | %.3f |\n", eff, wr, float64(ni)/runs, mean(niC, ni), float64(sup)/runs, mean(supC, sup), float64(worse)/runs)
	}
	t.Log("\n" + b.String())
}

// TestSimJudgePairedVsUnpaired: the same latent improvement measured two
// ways. Each user sends one request. Quality Q = v_user + d_prompt +
// effect·[candidate] + ε (v ~ N(0, 0.5²), d ~ N(0, 1), ε ~ N(0, 0.7²)).
//
//   - Paired (shadow): both models answer the user's prompt; the judge
//     sees both, D = Q_c − Q_b + η (η ~ N(0, 0.7²)), TIE when |D| < 0.3.
//     One judge call per request.
//   - Unpaired (A/B with a pointwise judge): users alternate arms; the
//     judge rates the one answer 1–10, r = round(5.5 + 1.5(Q + η)),
//     η ~ N(0, 0.5²), scaled to [0,1]. One judge call per request.
//
// Both use the same asymptotic confidence sequence (ConfidenceSequence,
// N* = the budget) for "candidate better"; the paired design also with
// the nonasymptotic PreferenceCS. Judge calls to the first conclusion
// (the budget when none) are averaged.
func TestSimJudgePairedVsUnpaired(t *testing.T) {
	t.Parallel()
	const runs, budget, every, alpha = 1000, 40000, 20, 0.05
	var b strings.Builder
	b.WriteString("| latent effect | design (test) | power within 40 000 calls | mean judge calls (budget if none) | calls ÷ paired-asymptotic |\n|---|---|---|---|---|\n")
	for i, eff := range []float64{0.1, 0.2} {
		rng := rand.New(rand.NewPCG(uint64(300+i), 3))
		type res struct {
			name  string
			hits  int
			calls float64
		}
		rs := []res{{name: "paired (asymptotic CS)"}, {name: "paired (PreferenceCS)"}, {name: "unpaired pointwise (asymptotic CS)"}}
		for range runs {
			var pref Summary
			var arm [2]Summary
			done := make([]bool, 3)
			for c := 1; c <= budget; c++ {
				v, d := 0.5*rng.NormFloat64(), rng.NormFloat64()
				qb := v + d + 0.7*rng.NormFloat64()
				qc := v + d + eff + 0.7*rng.NormFloat64()
				D := qc - qb + 0.7*rng.NormFloat64()
				s := 0.5
				if D > 0.3 {
					s = 1
				} else if D < -0.3 {
					s = 0
				}
				addOne(&pref, s)
				a := c % 2
				q := qb
				if a == 1 {
					q = v + d + eff + 0.7*rng.NormFloat64()
				}
				r := math.Min(math.Max(math.Round(5.5+1.5*(q+0.5*rng.NormFloat64())), 1), 10)
				addOne(&arm[a], (r-1)/9)
				if c%every != 0 {
					continue
				}
				hit := func(j int, ok bool) {
					if !done[j] && ok {
						done[j] = true
						rs[j].hits++
						rs[j].calls += float64(c)
					}
				}
				pe := MeanEstimate(pref)
				pe.Value -= 0.5
				cs := ConfidenceSequence(pe, 0, pref.N, budget, alpha)
				hit(0, cs.Valid && cs.CI.Low > 0)
				hit(1, pref.SumX/pref.SumY > 0.5 && prefLogMixture(pref, 1, 0.5) >= math.Log(1/alpha))
				l := Lift(MeanEstimate(arm[0]), MeanEstimate(arm[1]), false)
				ucs := ConfidenceSequence(l, 0, arm[0].N+arm[1].N, budget, alpha)
				hit(2, ucs.Valid && ucs.CI.Low > 0)
				if done[0] && done[1] && done[2] {
					break
				}
			}
			for j := range rs {
				if !done[j] {
					rs[j].calls += budget
				}
			}
		}
		base := rs[0].calls
		for _, r := range rs {
			fmt.Fprintf(&b, "| %+.1f | %s | %.3f | %.0f | %.2f |\n", eff, r.name, float64(r.hits)/runs, r.calls/runs, r.calls/base)
		}
		if rs[2].calls <= rs[0].calls {
			t.Errorf("effect %.1f: unpaired needed %.0f calls, paired %.0f", eff, rs[2].calls/runs, rs[0].calls/runs)
		}
	}
	t.Log("\n" + b.String())
}

func addOne(s *Summary, x float64) {
	s.N++
	s.SumX += x
	s.SumX2 += x * x
	s.SumY++
	s.SumY2++
	s.SumXY += x
}

// TestSimPPISequential: PPI++ with 10% of judged responses labeled by
// people, looked at every 25 labels from 50 to 2 000: how often the truth
// leaves the fixed-n interval at some look (it is not anytime-valid) and
// the sequential one.
func TestSimPPISequential(t *testing.T) {
	t.Parallel()
	const runs, alpha, truth = 1000, 0.05, 0.6
	rng := rand.New(rand.NewPCG(400, 4))
	var fixedMiss, seqMiss, fixedFinal int
	var wSeq, wFixed, wHO float64
	for range runs {
		var s PPISummary
		fm, sm := false, false
		for n := 1; n <= 2000; n++ {
			for k := range 10 {
				p := 0.6 + 0.35*(2*rng.Float64()-1)
				f := math.Min(math.Max(0.25+0.7*p+0.05*rng.NormFloat64(), 0), 1)
				if k > 0 {
					s.Unlabeled++
					s.SumJudgeU += f
					s.SumJudgeU2 += f * f
					continue
				}
				y := 0.0
				if rng.Float64() < p {
					y = 1
				}
				s.Labeled++
				s.SumHuman += y
				s.SumHuman2 += y * y
				s.SumJudge += f
				s.SumJudge2 += f * f
				s.SumHumanJudge += y * f
			}
			if n < 50 || n%25 != 0 {
				continue
			}
			r := PPIMean(s, PPIOptions{Alpha: alpha, NStar: 2000})
			if !(r.CI.Low <= truth && truth <= r.CI.High) {
				fm = true
				if n == 2000 {
					fixedFinal++
				}
			}
			if !(r.SequentialCI.Low <= truth && truth <= r.SequentialCI.High) {
				sm = true
			}
			if n == 2000 {
				wSeq += r.SequentialCI.High - r.SequentialCI.Low
				wFixed += r.CI.High - r.CI.Low
				wHO += 2 * 1.96 * math.Sqrt(r.HumanOnly.Variance)
			}
		}
		if fm {
			fixedMiss++
		}
		if sm {
			seqMiss++
		}
	}
	t.Logf("\n| interval (PPI++, 10%% labeled, 79 looks, 50…2000 labels) | truth left it at some look | at the last look only | mean width at 2000 labels |\n|---|---|---|---|\n"+
		"| fixed-n CI | %.4f | %.4f | %.4f |\n| sequential CI (N* = 2000) | %.4f | – | %.4f |\n| labels alone, fixed-n | – | – | %.4f |",
		float64(fixedMiss)/runs, float64(fixedFinal)/runs, wFixed/runs, float64(seqMiss)/runs, wSeq/runs, wHO/runs)
	if r := float64(seqMiss) / runs; r > alpha+3*math.Sqrt(alpha*(1-alpha)/runs) {
		t.Errorf("sequential PPI miss rate %.4f > α", r)
	}
}
