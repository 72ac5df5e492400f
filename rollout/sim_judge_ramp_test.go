//go:build simulation

package rollout_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/stats"
	"gonum.org/v1/gonum/stat/distuv"
)

// TestSimJudgeRamp: the live judge guardrail under continuous
// monitoring, through the controller's own path (Experiment.PolicyAt at
// each step's first test, experiments.RolloutInput, stats.Decide), over
// the default four ramp steps (1%, 5%, 25%, 50%), each a fresh period of
// judge data, with a look after every 50 judged users up to 1 000 per
// step, never stopping at a conclusion (the most looks a step can get).
// (A look costs about 2.5 ms, JudgeGate's two PreferenceCS; this keeps
// the test near 90 s on the shared machine.)
//
// The judge world: each judged user makes 1 to 3 comparisons
// (max_per_user 3); a user's candidate-preference probability is
// Beta-distributed around the truth (users differ); a verdict is a tie
// with probability 0.25; 10% of comparisons are asked in both orders,
// with a judge that prefers the first-shown answer by 5 points (within
// the 10-point limit). The candidate's true win rate (ties half) is 0.5
// for identical models and 0.45 = 0.5 − margin at the margin. A false
// rollback is a look whose decision rolls back on the judge
// (judge_worse); a false pass is a look at which the judge shows the
// candidate non-inferior (what judge.ramp guardrail advances on).
//
//	go test -tags simulation -run TestSimJudgeRamp -v ./rollout/
func TestSimJudgeRamp(t *testing.T) {
	const (
		runs     = 400
		perStep  = 1000
		lookStep = 50
		margin   = experiments.DefaultJudgeNonInferiority
	)
	e := storetest.RolloutExperiment("sim", 1)
	e.Rollout.Guardrails = []experiments.Guardrail{{Metric: experiments.MetricError, Margin: 0.02}}
	e.Judge = &experiments.Judge{URL: "http://judge.invalid", Model: "judge", Ramp: experiments.JudgeRampGuardrail}
	e.Shadow = &experiments.Shadow{MinUsers: 30, MaxPerUser: 3, LivePercent: 20}
	cfg := &experiments.Config{Experiments: []experiments.Experiment{e}}
	cfg.SetDefaults()
	e = cfg.Experiments[0]
	steps := experiments.RolloutSteps(&e)

	type result struct {
		rollback, pass []bool // per step: at some look
		passAt         []int  // per step: judged users at the first pass
	}
	world := func(truth float64, seed uint64) result {
		src := rand.NewPCG(seed, 77)
		r := rand.New(src)
		res := result{rollback: make([]bool, len(steps)), pass: make([]bool, len(steps)), passAt: make([]int, len(steps))}
		// Non-tie verdicts prefer the candidate with mean probability pBar,
		// so that 0.25·½ + 0.75·pBar = truth.
		pBar := (truth - 0.125) / 0.75
		const conc = 8.0 // Beta concentration of users' preference
		users := distuv.Beta{Alpha: pBar * conc, Beta: (1 - pBar) * conc, Src: src}
		for s := range steps {
			st := experiments.State{Status: experiments.StatusRunning, Step: s, Period: s + 2, StepTests: 1}
			pol := e.PolicyAt(e.StepIndex(s), st.TestIndex(), experiments.Prior{})
			split := e.AllocationFor(st).Split(2)
			// Metric guardrail data: identical arms, non-inferior; the
			// judge is what is under test.
			snap := experiments.Snapshot{Stats: map[experiments.VariantMetric]experiments.Summary{}}
			for v := range 2 {
				n := math.Round(200000 * split[v] / (split[0] + split[1]))
				snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricRequests}] = stats.Summary{N: n, SumX: n, SumX2: n, SumY: n, SumY2: n, SumXY: n}
				errs := math.Round(0.01 * n)
				snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricError}] = stats.Summary{N: n, SumX: errs, SumX2: errs, SumY: n, SumY2: n, SumXY: errs}
			}
			var pref, first stats.Summary
			for u := 1; u <= perStep; u++ {
				p := users.Rand()
				y := float64(1 + r.IntN(3))
				x, fx, fy := 0.0, 0.0, 0.0
				for range int(y) {
					if r.Float64() < 0.1 { // both orders: candidate first, then second
						v1, f1 := verdict(r, p, 0.05, true)
						v2, f2 := verdict(r, p, 0.05, false)
						x += (v1 + v2) / 2
						fx += (f1 + f2) / 2
						fy++
					} else {
						v, _ := verdict(r, p, 0.05, r.IntN(2) == 0)
						x += v
					}
				}
				add(&pref, x, y)
				if fy > 0 {
					add(&first, fx, fy)
				}
				if u%lookStep != 0 {
					continue
				}
				snap.Stats[experiments.VariantMetric{Variant: 1, Metric: experiments.MetricJudgeScore}] = pref
				snap.Stats[experiments.VariantMetric{Variant: 1, Metric: experiments.MetricJudgeFirst}] = first
				d := stats.Decide(experiments.RolloutInput(&e, snap, e.AllocationFor(st), pol), pol)
				jd := d.Variants[0].Judge
				res.rollback[s] = res.rollback[s] || (d.Verdict == stats.Rollback && jd.Verdict == stats.JudgeStopWorse)
				if jd.Verdict == stats.JudgePass && !res.pass[s] {
					res.pass[s], res.passAt[s] = true, u
				}
			}
		}
		return res
	}

	alpha := e.TestAlpha(1)
	se := math.Sqrt(alpha * (1 - alpha) / runs)
	t.Logf("%d runs per row; %d steps; a look every %d judged users up to %d per step; each step's test at α = %.4f (SE %.4f)", runs, len(steps), lookStep, perStep, alpha, se)
	t.Logf("| truth (win rate) | step | rolled back on the judge | judge non-inferior shown | mean judged users at the first pass |")
	t.Logf("|---|---|---|---|---|")
	for _, tc := range []struct {
		name  string
		truth float64
	}{{"identical models (0.50)", 0.5}, {"at the margin (0.45)", 0.5 - margin}} {
		out := make([]result, runs)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 2)
		for i := range runs {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				out[i] = world(tc.truth, uint64(i)+1)
				<-sem
			}()
		}
		wg.Wait()
		anyRB := 0
		for s := range steps {
			rb, ps, at := 0, 0, 0
			for _, o := range out {
				rb += b2i(o.rollback[s])
				ps += b2i(o.pass[s])
				at += o.passAt[s]
			}
			rbRate, psRate := float64(rb)/runs, float64(ps)/runs
			mean := "-"
			if ps > 0 {
				mean = fmt.Sprintf("%.0f", float64(at)/float64(ps))
			}
			t.Logf("| %s | %d (%g%%) | %.4f | %.4f | %s |", tc.name, s+1, steps[s].Percent, rbRate, psRate, mean)
			if rbRate > alpha+3*se {
				t.Errorf("%s, step %d: false rollback rate %.4f > α + 3 SE", tc.name, s+1, rbRate)
			}
			if tc.truth < 0.5 && psRate > alpha+3*se {
				t.Errorf("%s, step %d: false pass rate %.4f > α + 3 SE", tc.name, s+1, psRate)
			}
		}
		for _, o := range out {
			for _, x := range o.rollback {
				if x {
					anyRB++
					break
				}
			}
		}
		t.Logf("| %s | any step | %.4f | | |", tc.name, float64(anyRB)/runs)
		if tc.truth == 0.5 && float64(anyRB)/runs > alpha+3*se {
			t.Errorf("identical models rolled back in %.4f of runs", float64(anyRB)/runs)
		}
	}
}

// verdict is one judge verdict with the candidate shown first or
// second: its score for the candidate (1, ½, 0) and whether it preferred
// the first-shown answer (1, ½, 0). The judge ties with probability
// 0.25, otherwise prefers the candidate with probability p, moved by
// bias toward the first-shown answer.
func verdict(r *rand.Rand, p, bias float64, candFirst bool) (score, firstPref float64) {
	if r.Float64() < 0.25 {
		return 0.5, 0.5
	}
	q := p + bias
	if !candFirst {
		q = p - bias
	}
	if r.Float64() < math.Min(math.Max(q, 0), 1) {
		return 1, b2f(candFirst)
	}
	return 0, b2f(!candFirst)
}

func add(s *stats.Summary, x, y float64) {
	s.N++
	s.SumX += x
	s.SumX2 += x * x
	s.SumY += y
	s.SumY2 += y * y
	s.SumXY += x * y
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func b2f(b bool) float64 { return float64(b2i(b)) }
