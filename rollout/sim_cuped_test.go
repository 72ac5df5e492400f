//go:build simulation

package rollout_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// Issue 11: CUPED on the metrics the controller decides on, and the
// bounded test's centre, through the controller's own path: a previous
// period's snapshot gives experiments.PeriodPrior, stored with an
// advance transition; experiments.PriorOf of that history goes into
// Experiment.PolicyAt; each look builds experiments.RolloutInput from
// the period's snapshot and calls stats.Decide. Metric.CUPED is set on
// the policy's metrics the way MetricSpec sets it when the experiment
// keeps covariates (the covariate sums come from experiments.SummaryDelta,
// as the stores compute them).
//
//	go test -tags simulation -run 'TestSimCUPED' -v ./rollout/

// simUser is one user's coupled totals under control (x0, y0) and
// candidate (x1, y1), and a pre-exposure covariate z on the metric's own
// scale (a per-user ratio): with probability rho the user's own control
// ratio (as if measured before exposure), else an independent control
// draw, so corr(z, control value) ≈ rho and z is independent of the arm.
type simUser struct{ x0, y0, x1, y1, z float64 }

func drawUser(r *rand.Rand, gen func(*rand.Rand, bool) (float64, float64), rho float64) simUser {
	s1, s2 := r.Uint64(), r.Uint64()
	var u simUser
	u.x0, u.y0 = gen(rand.New(rand.NewPCG(s1, s2)), false)
	u.x1, u.y1 = gen(rand.New(rand.NewPCG(s1, s2)), true)
	zx, zy := u.x0, u.y0
	if r.Float64() >= rho {
		zx, zy = gen(r, false)
	}
	if zy > 0 {
		u.z = zx / zy
	}
	return u
}

// simSnap accumulates a period's snapshot the way the stores do.
type simSnap struct{ experiments.Snapshot }

func newSimSnap() simSnap {
	return simSnap{experiments.Snapshot{Stats: map[experiments.VariantMetric]experiments.Summary{}}}
}

func (s simSnap) add(v int, metric string, x, y, z float64) {
	k := experiments.VariantMetric{Variant: v, Metric: metric}
	s.Stats[k] = s.Stats[k].Add(experiments.SummaryDelta(true, 0, 0, x, y, z))
}

// priorFrom is PriorOf of a history whose last advance closed a period
// with snapshot snap: what the controller and the reports pass to
// PolicyAt in the next period.
func priorFrom(e *experiments.Experiment, snap experiments.Snapshot) experiments.Prior {
	return experiments.PriorOf([]experiments.Transition{
		{Action: experiments.ActionStart},
		{Action: experiments.ActionAdvance, Prior: experiments.PeriodPrior(e, snap)},
	})
}

func withCUPED(p stats.Policy) stats.Policy {
	p.Primary.CUPED = true
	p.Guardrails = append([]stats.Guardrail(nil), p.Guardrails...)
	for i := range p.Guardrails {
		p.Guardrails[i].CUPED = true
	}
	return p
}

// simVariants are the policy variants the simulations compare.
var simVariants = []struct {
	name          string
	center, cuped bool
}{
	{"today: bounded, no centre, no CUPED", false, false},
	{"+ centre (previous period)", true, false},
	{"+ CUPED (ρ = 0.5; θ mixture {0, ½})", false, true},
	{"+ centre + CUPED (θ from the previous period)", true, true},
}

func simPolicy(e *experiments.Experiment, step int, prior experiments.Prior, center, cuped bool) stats.Policy {
	if !center {
		prior = experiments.Prior{}
	}
	p := e.PolicyAt(step, 1, prior)
	if cuped {
		p = withCUPED(p)
	}
	return p
}

// TestSimCUPEDAtMargin (issue 11): each metric shape of
// TestSimPolicyAtMargin as the only guardrail, truth exactly at its
// margin, at a 25% ramp step, with the centre and θ from a previous
// period of 4 000 control users and a covariate correlated 0.5; a look
// at every 10% growth of the candidate arm from 100 to 2 000 candidate
// users. A false advance is a look at which Decide says Advance; the
// test asserts the share of runs that ever advance ≤ α + 3 SE (α = 0.05,
// the rollout's; step test 1 runs at 0.9α) for every policy variant.
func TestSimCUPEDAtMargin(t *testing.T) {
	const (
		runs  = 400
		share = 0.25
		maxN1 = 2000
		prevN = 4000
	)
	marks := []float64{200, 500, 2000}
	shapes := marginShapes()
	vars := simVariants[1:] // "today" is TestSimPolicyAtMargin's "new"
	hits := make([][][3]int, len(shapes))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for si, sh := range shapes {
		hits[si] = make([][3]int, len(vars))
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			e := experiments.Experiment{ID: "sim", Caps: sh.caps, Primary: experiments.MetricThumbs,
				Variants: []experiments.Variant{{Name: "base"}, {Name: "cand"}},
				Rollout:  &experiments.Rollout{Alpha: 0.05, MinUsers: 100, Guardrails: []experiments.Guardrail{sh.g}, Steps: []experiments.RampStep{{Percent: 25}, {Percent: 50}}}}
			alloc := e.AllocationFor(experiments.State{Status: experiments.StatusRunning, Step: 0})
			for run := range runs {
				r := rand.New(rand.NewPCG(uint64(100+si), uint64(run)))
				prev := newSimSnap()
				for range prevN {
					u := drawUser(r, sh.user, 0.5)
					prev.add(0, sh.metric, u.x0, u.y0, u.z)
				}
				prior := priorFrom(&e, prev.Snapshot)
				pols := make([]stats.Policy, len(vars))
				for k, v := range vars {
					pols[k] = simPolicy(&e, 0, prior, v.center, v.cuped)
				}
				at := make([]float64, len(vars))
				for k := range at {
					at[k] = math.Inf(1)
				}
				snap := newSimSnap()
				n := [2]float64{}
				next := 100.0
				open := len(vars)
				for n[1] < maxN1 && open > 0 {
					u := drawUser(r, sh.user, 0.5)
					v, x, y := 0, u.x0, u.y0
					if r.Float64() < share {
						v, x, y = 1, u.x1, u.y1
					}
					n[v]++
					snap.add(v, experiments.MetricRequests, y, y, 0)
					snap.add(v, sh.metric, x, y, u.z)
					if n[1] < next || n[0] < 100 {
						continue
					}
					next = math.Ceil(n[1] * 1.1)
					for k, p := range pols {
						if !math.IsInf(at[k], 1) {
							continue
						}
						if stats.Decide(experiments.RolloutInput(&e, snap.Snapshot, alloc, p), p).Verdict == stats.Advance {
							at[k] = n[1]
							open--
						}
					}
				}
				for k := range vars {
					for mi, m := range marks {
						if at[k] <= m {
							hits[si][k][mi]++
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	se := math.Sqrt(0.05 * 0.95 / runs)
	bound := 0.05 + 3*se
	var b strings.Builder
	fmt.Fprintf(&b, "false-advance rate at a 25%% step, truth at the margin, covariate ρ = 0.5, %d runs (MC SE at 5%%: %.4f)\n", runs, se)
	fmt.Fprintf(&b, "| shape | policy | by 200 cand. users | by 500 | by 2 000 |\n|---|---|---|---|---|\n")
	for si, sh := range shapes {
		for k, v := range vars {
			name := ""
			if k == 0 {
				name = sh.name
			}
			h := hits[si][k]
			fmt.Fprintf(&b, "| %s | %s | %.4f | %.4f | %.4f |\n", name, v.name, float64(h[0])/runs, float64(h[1])/runs, float64(h[2])/runs)
			if rate := float64(h[2]) / runs; rate > bound {
				t.Errorf("%s, %s: false-advance rate %.4f > α + 3 SE = %.4f", sh.name, v.name, rate, bound)
			}
		}
	}
	t.Log("\n" + b.String())
}

// TestSimCUPEDSpeed (issue 11 item 8, through the controller's path):
// the primary call at the last step (50/50, full decision), thumbs 10% in
// the control, +10% relative (11%) in the candidate, a look every 100
// users per arm up to 20 000 per arm (rollout.max_users, so N* = 40 000),
// α = 0.05 (step test 1: 0.9α), an
// error guardrail (margin 2 points, no errors); the covariate is the
// user's own control outcome with probability 1/2, else an independent
// draw (corr 0.5). The previous period (the ramp step before, 5 000
// control users) gives the centre and θ. Power is the share of runs
// promoting by 20 000 per arm; mean users/arm at the promotion (20 000 if
// none). A/A: the same with 10% in both arms, false promotions.
func TestSimCUPEDSpeed(t *testing.T) {
	const (
		runs   = 200
		aaRuns = 300
		maxN   = 20000
		prevN  = 5000
	)
	type cell struct {
		promote int
		users   float64
	}
	simulate := func(p1 float64, nRuns int, seed uint64) []cell {
		e := experiments.Experiment{ID: "sim", Primary: experiments.MetricThumbs,
			Variants: []experiments.Variant{{Name: "base"}, {Name: "cand"}},
			Rollout: &experiments.Rollout{Alpha: 0.05, MinUsers: 100, MaxUsers: maxN, // N* = 2·MaxUsers
				Guardrails: []experiments.Guardrail{{Metric: experiments.MetricError, Margin: 0.02}}, Steps: []experiments.RampStep{{Percent: 50}}}}
		alloc := e.AllocationFor(experiments.State{Status: experiments.StatusRunning, Step: 0})
		gen := func(r *rand.Rand, cand bool) (float64, float64) {
			p := 0.10
			if cand {
				p = p1
			}
			if r.Float64() < p {
				return 1, 1
			}
			return 0, 1
		}
		out := make([]cell, len(simVariants))
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				local := make([]cell, len(simVariants))
				for run := w; run < nRuns; run += 2 {
					r := rand.New(rand.NewPCG(seed, uint64(run)))
					prev := newSimSnap()
					for range prevN {
						u := drawUser(r, gen, 0.5)
						prev.add(0, experiments.MetricThumbs, u.x0, u.y0, u.z)
						prev.add(0, experiments.MetricError, 0, 1, 0)
					}
					prior := priorFrom(&e, prev.Snapshot)
					pols := make([]stats.Policy, len(simVariants))
					done := make([]bool, len(simVariants))
					for k, v := range simVariants {
						pols[k] = simPolicy(&e, 0, prior, v.center, v.cuped)
					}
					snap := newSimSnap()
					n := [2]float64{}
					open := len(pols)
					next := 100.0
					for math.Min(n[0], n[1]) < maxN {
						u := drawUser(r, gen, 0.5)
						v := 0
						if r.Float64() < 0.5 { // independent assignment, as the hash split
							v = 1
						}
						x, y := u.x0, u.y0
						if v == 1 {
							x, y = u.x1, u.y1
						}
						n[v]++
						snap.add(v, experiments.MetricRequests, 1, 1, 0)
						snap.add(v, experiments.MetricThumbs, x, y, u.z)
						snap.add(v, experiments.MetricError, 0, 1, 0)
						if math.Min(n[0], n[1]) < next {
							continue
						}
						next += 100 // a look each time the smaller arm gains 100 users
						for k, p := range pols {
							if done[k] {
								continue
							}
							if stats.Decide(experiments.RolloutInput(&e, snap.Snapshot, alloc, p), p).Verdict == stats.Promote {
								done[k] = true
								open--
								local[k].promote++
								local[k].users += (n[0] + n[1]) / 2
							}
						}
						if open == 0 {
							break
						}
					}
					for k := range pols {
						if !done[k] {
							local[k].users += maxN
						}
					}
				}
				mu.Lock()
				for k := range out {
					out[k].promote += local[k].promote
					out[k].users += local[k].users
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		return out
	}
	pw := simulate(0.11, runs, 7)
	aa := simulate(0.10, aaRuns, 8)
	var b strings.Builder
	fmt.Fprintf(&b, "+10%% relative on a 10%% baseline, 50/50, a look every 100 users/arm to 20 000/arm: %d runs for power (MC SE at 0.85: %.3f), %d A/A runs (MC SE at 5%%: %.4f)\n",
		runs, math.Sqrt(0.85*0.15/runs), aaRuns, math.Sqrt(0.05*0.95/aaRuns))
	fmt.Fprintf(&b, "| policy | power at 20 000/arm | mean users/arm at decision | A/A false promote |\n|---|---|---|---|\n")
	bound := 0.05 + 3*math.Sqrt(0.05*0.95/aaRuns)
	for k, v := range simVariants {
		fmt.Fprintf(&b, "| %s | %.3f | %.0f | %.4f |\n", v.name, float64(pw[k].promote)/runs, pw[k].users/runs, float64(aa[k].promote)/aaRuns)
		if fp := float64(aa[k].promote) / aaRuns; fp > bound {
			t.Errorf("%s: A/A false promote %.4f > α + 3 SE = %.4f", v.name, fp, bound)
		}
	}
	// CUPED with the centre must be the fastest: more power than today's
	// default by more than the Monte Carlo noise.
	if d := float64(pw[3].promote-pw[0].promote) / runs; d < 2*math.Sqrt(0.25/runs) {
		t.Errorf("centre + CUPED power gain %.3f: no faster than today's default", d)
	}
	t.Log("\n" + b.String())
}

// TestSimRatioCUPEDAA (issue 11): CUPED on an unbounded Ratio metric
// (uncapped mean latency per request, the asymptotic one-sided
// confidence sequence with RatioCUPED) as the primary, through PolicyAt
// and Decide: A/A false promotions under continuous monitoring (a look
// every 200 users per arm up to 10 000 per arm) ≤ α + 3 SE, and power
// against a 5% latency cut, with and without CUPED. Each user has a
// persistent speed factor (log-normal, σ 0.8) times log-normal request
// latencies (σ 0.6); z is the user's mean latency in an earlier period with
// probability 0.8, else 0 (a new user). Error guardrail as in
// TestSimCUPEDSpeed.
func TestSimRatioCUPEDAA(t *testing.T) {
	const (
		runs = 400
		maxN = 10000
	)
	pois := func(r *rand.Rand, l float64) int {
		k, p, L := 0, 1.0, math.Exp(-l)
		for {
			p *= r.Float64()
			if p <= L {
				return k
			}
			k++
		}
	}
	e := experiments.Experiment{ID: "sim", Primary: experiments.MetricLatencyMS,
		Variants: []experiments.Variant{{Name: "base"}, {Name: "cand"}},
		Rollout: &experiments.Rollout{Alpha: 0.05, MinUsers: 100,
			Guardrails: []experiments.Guardrail{{Metric: experiments.MetricError, Margin: 0.02}}, Steps: []experiments.RampStep{{Percent: 50}}}}
	alloc := e.AllocationFor(experiments.State{Status: experiments.StatusRunning, Step: 0})
	base := e.PolicyAt(0, 1, experiments.Prior{})
	if base.Primary.Bounds != nil || base.Primary.Kind != stats.Ratio {
		t.Fatalf("latency without a cap should be an unbounded Ratio metric: %+v", base.Primary)
	}
	pols := []stats.Policy{base, withCUPED(base)}
	names := []string{"one-sided CS, no CUPED", "one-sided CS + RatioCUPED"}
	simulate := func(effect float64, seed uint64) (promote [2]int, users [2]float64, removed float64) {
		var looks float64
		for run := range runs {
			r := rand.New(rand.NewPCG(seed, uint64(run)))
			snap := newSimSnap()
			n := [2]float64{}
			at := [2]float64{math.Inf(1), math.Inf(1)}
			next := 200.0
			for math.Min(n[0], n[1]) < maxN && (math.IsInf(at[0], 1) || math.IsInf(at[1], 1)) {
				v := 0
				if r.Float64() < 0.5 {
					v = 1
				}
				speed := math.Exp(0.8 * r.NormFloat64())
				lat := func(k int) (float64, float64) {
					x := 0.0
					for range k {
						x += 300 * speed * math.Exp(0.6*r.NormFloat64())
					}
					return x, float64(k)
				}
				z := 0.0
				if r.Float64() < 0.8 {
					zx, zy := lat(1 + pois(r, 2))
					z = zx / zy
				}
				x, y := lat(1 + pois(r, 2))
				if v == 1 {
					x *= 1 - effect
				}
				n[v]++
				snap.add(v, experiments.MetricRequests, y, y, 0)
				snap.add(v, experiments.MetricLatencyMS, x, y, z)
				snap.add(v, experiments.MetricError, 0, y, 0)
				if math.Min(n[0], n[1]) < next {
					continue
				}
				next += 200
				for k, p := range pols {
					if !math.IsInf(at[k], 1) {
						continue
					}
					d := stats.Decide(experiments.RolloutInput(&e, snap.Snapshot, alloc, p), p)
					if k == 1 && len(d.Variants) > 0 {
						for _, m := range d.Variants[0].Metrics {
							if m.Role == "primary" && m.VarianceRemoved != nil {
								removed += *m.VarianceRemoved
								looks++
							}
						}
					}
					if d.Verdict == stats.Promote {
						at[k] = (n[0] + n[1]) / 2
					}
				}
			}
			for k := range at {
				if !math.IsInf(at[k], 1) {
					promote[k]++
					users[k] += at[k]
				} else {
					users[k] += maxN
				}
			}
		}
		return promote, users, removed / math.Max(looks, 1)
	}
	aaP, _, aaRemoved := simulate(0, 21)
	pwP, pwU, pwRemoved := simulate(0.05, 22)
	se := math.Sqrt(0.05 * 0.95 / runs)
	var b strings.Builder
	fmt.Fprintf(&b, "uncapped latency (Ratio, asymptotic), 50/50, look every 200 users/arm to 10 000/arm, %d runs each (MC SE at 5%%: %.4f)\n", runs, se)
	fmt.Fprintf(&b, "| policy | A/A false promote | power, −5%% latency | mean users/arm at decision | mean variance removed (A/A, A/B) |\n|---|---|---|---|---|\n")
	for k := range pols {
		vr := ""
		if k == 1 {
			vr = fmt.Sprintf("%.3f, %.3f", aaRemoved, pwRemoved)
		}
		fmt.Fprintf(&b, "| %s | %.4f | %.3f | %.0f | %s |\n", names[k], float64(aaP[k])/runs, float64(pwP[k])/runs, pwU[k]/runs, vr)
		if fp := float64(aaP[k]) / runs; fp > 0.05+3*se {
			t.Errorf("%s: A/A false promote %.4f > α + 3 SE", names[k], fp)
		}
	}
	if pwP[1] <= pwP[0] {
		t.Errorf("RatioCUPED power %d/%d not above the plain %d/%d", pwP[1], runs, pwP[0], runs)
	}
	t.Log("\n" + b.String())
}
