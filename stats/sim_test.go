package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// Seeded Monte Carlo of whole experiments with a look after every batch of
// users. The light versions run in the normal test suite; the heavy ones
// (sim_heavy_test.go) need -tags simulation.

type simConfig struct {
	experiments int
	looks       int     // looks per experiment (one per batch)
	batch       int     // users per arm per look
	p0          float64 // Bernoulli base rate; 0 means a normal metric
	mu, sd      float64 // normal metric parameters (p0 == 0)
	effect      float64 // absolute lift of the candidate
	tau         float64 // mSPRT mixing SD relative to the base mean (0 = DefaultTau)
	alpha       float64
	seed        uint64
	withDecide  bool // also run the full Decide (slower)
}

type simMethod struct {
	name     string
	rejected int     // experiments that rejected H0 (any direction)
	correct  int     // rejected in the direction of the true effect
	users    float64 // Σ users per arm at the decision (max if none)
}

var simMethodNames = []string{"naive repeated test", "fixed horizon (one look)", "confidence sequence", "mSPRT", "GSD O'Brien-Fleming K=5", "GSD Pocock K=5", "Decide (CS)"}

// simulate runs cfg and returns per-method results in simMethodNames order.
func simulate(cfg simConfig) []simMethod {
	rng := rand.New(rand.NewPCG(cfg.seed, 0x9e3779b97f4a7c15))
	res := make([]simMethod, len(simMethodNames))
	for i := range res {
		res[i].name = simMethodNames[i]
	}
	maxN := float64(cfg.looks * cfg.batch)
	nStar := 2 * maxN
	const k = 5
	if cfg.looks%k != 0 {
		panic("looks must be a multiple of 5")
	}
	fr := []float64{0.2, 0.4, 0.6, 0.8, 1}
	obf := NewDesign(cfg.alpha, OBrienFleming, fr)
	poc := NewDesign(cfg.alpha, Pocock, fr)
	base := cfg.p0
	if base == 0 {
		base = cfg.mu
	}
	tau := orDefault(cfg.tau, DefaultTau)
	tau2 := tau * tau * base * base
	policy := Policy{Primary: Metric{Name: "m"}, Alpha: cfg.alpha, MinUsers: 1, MaxUsers: maxN, SRMAlpha: 1e-9}
	draw := func(arm int) float64 {
		if cfg.p0 > 0 {
			p := cfg.p0 + float64(arm)*cfg.effect
			if rng.Float64() < p {
				return 1
			}
			return 0
		}
		return cfg.mu + float64(arm)*cfg.effect + cfg.sd*rng.NormFloat64()
	}
	sign := 1.0
	if cfg.effect < 0 {
		sign = -1
	}
	for range cfg.experiments {
		var s [2]Summary
		done := make([]bool, len(res))
		for look := 1; look <= cfg.looks; look++ {
			for arm := range 2 {
				for range cfg.batch {
					x := draw(arm)
					s[arm].N++
					s[arm].SumX += x
					s[arm].SumX2 += x * x
					s[arm].SumY++
					s[arm].SumY2++
					s[arm].SumXY += x
				}
			}
			n := float64(look * cfg.batch)
			eff := Lift(MeanEstimate(s[0]), MeanEstimate(s[1]), false)
			record := func(i int, rejected bool, est float64) {
				if done[i] {
					return
				}
				if rejected {
					done[i] = true
					res[i].rejected++
					if cfg.effect != 0 && sign*est > 0 {
						res[i].correct++
					}
					res[i].users += n
				} else if look == cfg.looks {
					res[i].users += n
				}
			}
			z := ZTest(eff, 0, cfg.alpha)
			record(0, z.Valid && z.PValue <= cfg.alpha, eff.Value)
			if look == cfg.looks {
				record(1, z.Valid && z.PValue <= cfg.alpha, eff.Value)
			}
			cs := ConfidenceSequence(eff, 0, 2*n, nStar, cfg.alpha)
			record(2, cs.Valid && cs.PValue <= cfg.alpha, eff.Value)
			ms := MSPRT(eff, 0, tau2, cfg.alpha)
			record(3, ms.Valid && ms.PValue <= cfg.alpha, eff.Value)
			if look%(cfg.looks/k) == 0 {
				kk := look/(cfg.looks/k) - 1
				zz := math.Abs(eff.Value) / math.Sqrt(eff.Variance)
				record(4, eff.valid() && zz >= obf.Bounds[kk], eff.Value)
				record(5, eff.valid() && zz >= poc.Bounds[kk], eff.Value)
			} else if look == cfg.looks {
				record(4, false, 0)
				record(5, false, 0)
			}
			if cfg.withDecide && !done[6] {
				d := Decide(Input{Users: []float64{n, n}, Metrics: map[string][]Summary{"m": s[:]}}, policy)
				record(6, d.Verdict == Promote || d.Verdict == Rollback, eff.Value)
			}
			all := true
			for i, dn := range done {
				if !dn && (i != 6 || cfg.withDecide) {
					all = false
				}
			}
			if all {
				break
			}
		}
		// Methods that stopped early still count their users; the loop above
		// added users for every undecided method at the last look, but an
		// early break skips that, so nothing is missing.
	}
	if !cfg.withDecide {
		res = res[:6]
	}
	return res
}

func formatSim(cfg simConfig, res []simMethod) string {
	var b strings.Builder
	kind := fmt.Sprintf("Bernoulli p0=%.3f", cfg.p0)
	if cfg.p0 == 0 {
		kind = fmt.Sprintf("normal mu=%g sd=%g", cfg.mu, cfg.sd)
	}
	fmt.Fprintf(&b, "%s, effect %+g, alpha %.2f, %d experiments, %d looks x %d users/arm (max %d/arm), seed %d\n",
		kind, cfg.effect, cfg.alpha, cfg.experiments, cfg.looks, cfg.batch, cfg.looks*cfg.batch, cfg.seed)
	fmt.Fprintf(&b, "| method | rejection rate | correct-direction rate | mean users/arm at decision |\n|---|---|---|---|\n")
	for _, r := range res {
		e := float64(cfg.experiments)
		fmt.Fprintf(&b, "| %s | %.4f | %.4f | %.0f |\n", r.name, float64(r.rejected)/e, float64(r.correct)/e, r.users/e)
	}
	return b.String()
}

// checkAA asserts every sequential method's false-positive rate is at most
// alpha plus 3 Monte Carlo standard errors and the naive repeated test's
// exceeds 2·alpha.
func checkAA(t *testing.T, cfg simConfig, res []simMethod) {
	t.Helper()
	e := float64(cfg.experiments)
	bound := cfg.alpha + 3*math.Sqrt(cfg.alpha*(1-cfg.alpha)/e)
	for i, r := range res {
		fpr := float64(r.rejected) / e
		switch i {
		case 0:
			if fpr <= 2*cfg.alpha {
				t.Errorf("naive repeated test FPR %.4f, expected > 2α = %.2f", fpr, 2*cfg.alpha)
			}
		default:
			if fpr > bound {
				t.Errorf("%s FPR %.4f > α + 3 SE = %.4f", r.name, fpr, bound)
			}
		}
	}
}

func TestSimLightAA(t *testing.T) {
	t.Parallel()
	for _, cfg := range []simConfig{
		{experiments: 400, looks: 20, batch: 50, p0: 0.1, alpha: 0.05, seed: 1, withDecide: true},
		{experiments: 400, looks: 20, batch: 50, mu: 10, sd: 3, alpha: 0.05, seed: 2},
	} {
		res := simulate(cfg)
		t.Log("\n" + formatSim(cfg, res))
		checkAA(t, cfg, res)
	}
}

func TestSimLightAB(t *testing.T) {
	t.Parallel()
	// +25% relative on a 10% rate, 5000 users/arm at most: z ≈ 3.9 at the
	// end (fixed-horizon power ≈ 0.98; the always-valid boundary is ≈ 3.0).
	cfg := simConfig{experiments: 200, looks: 20, batch: 250, p0: 0.1, effect: 0.025, tau: 0.25, alpha: 0.05, seed: 3}
	res := simulate(cfg)
	t.Log("\n" + formatSim(cfg, res))
	e := float64(cfg.experiments)
	for _, r := range res {
		if pw := float64(r.correct) / e; pw < 0.75 {
			t.Errorf("%s power %.3f < 0.75", r.name, pw)
		}
	}
	// Sequential methods stop early on average.
	for _, i := range []int{2, 3, 4, 5} {
		if u := res[i].users / e; u > 0.8*float64(cfg.looks*cfg.batch) {
			t.Errorf("%s mean users %.0f: not early", res[i].name, u)
		}
	}
}

// TestSimLightSRMAndSPRT: under a correct 50/50 split the anytime-valid SRM
// test, checked after every batch, rarely alarms while a repeated
// chi-square test alarms far more; Wald's SPRT under H0 keeps its α.
func TestSimLightSRMAndSPRT(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(4, 4))
	const runs, looks, batch, alpha = 400, 50, 100, 0.05
	seqAlarms, chiAlarms := 0, 0
	for range runs {
		c := []float64{0, 0}
		seq, chi := false, false
		for range looks {
			for range batch {
				c[rng.IntN(2)]++
			}
			_, p := SequentialSRM(c, []float64{1, 1}, 0)
			seq = seq || p <= alpha
			_, pc := ChiSquareSRM(c, []float64{1, 1})
			chi = chi || pc <= alpha
		}
		if seq {
			seqAlarms++
		}
		if chi {
			chiAlarms++
		}
	}
	bound := alpha + 3*math.Sqrt(alpha*(1-alpha)/runs)
	t.Logf("SRM A/A, %d runs x %d looks: sequential false alarms %.4f, repeated chi-square %.4f", runs, looks, float64(seqAlarms)/runs, float64(chiAlarms)/runs)
	if float64(seqAlarms)/runs > bound {
		t.Errorf("sequential SRM false-alarm rate %.4f > %.4f", float64(seqAlarms)/runs, bound)
	}
	if float64(chiAlarms)/runs <= 2*alpha {
		t.Errorf("repeated chi-square false-alarm rate %.4f, expected > 2α", float64(chiAlarms)/runs)
	}

	accept1 := 0
	for range runs {
		s, n := 0.0, 0.0
		for n < 50000 {
			n++
			if rng.Float64() < 0.10 {
				s++
			}
			if r := BinarySPRT(s, n, 0.10, 0.12, alpha, 0.2); r.Decision != 0 {
				if r.Decision == 1 {
					accept1++
				}
				break
			}
		}
	}
	t.Logf("Wald SPRT under H0 (p=0.10 vs 0.12): P(accept H1) = %.4f", float64(accept1)/runs)
	if float64(accept1)/runs > bound {
		t.Errorf("SPRT type I error %.4f > %.4f", float64(accept1)/runs, bound)
	}
}
