//go:build simulation

package rollout_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/stats"
)

// TestSimCohort (issue 11, item 5): a ramp step analysed on every active
// user (rollout.cohort "all") against the users first exposed in it
// ("new"), when who comes back from the earlier step is itself an outcome
// of the arm. Through the controller's own path: the recorder's
// Covariates (experiments.NewCovariates, cohort "new" without CUPED) on
// every batch, memstore's sums (Stats and Fresh), the closed period's
// prior (PeriodPrior → PriorOf), Experiment.PolicyAt, RolloutInput and
// stats.Decide.
//
// Two ramp steps, 20% then 50% (sticky: the 20% step's candidate users
// stay candidates, the next 30% come from the control's range), a
// bounded feedback guardrail (thumbs, higher is better, absolute margin
// 5 points). Every user has a thumbs propensity q ~ U(0.1, 1); the
// control answers them at rate q, the candidate at q − 0.05 (in the
// quality world: the truth exactly at the margin for every user, so an
// advance is false). A user gives 1 to 4 thumbs per step. Step 1 sees
// 12 000 users; step 2 sees step 1's users who come back and 4 000 new
// ones, in random order, with a look after every 1/16 of them.
//
//   - Quality world: the candidate drives its unhappy users away. A
//     step-1 candidate user with q < 0.55 comes back with probability 0.3,
//     one with q ≥ 0.55 with 0.9; every control user with 0.6. The arms'
//     return rates are equal on average (0.6), so the active counts stay
//     balanced and only the selection is left.
//   - Engagement world: no quality difference (the candidate answers at q
//     too), but the candidate's users come back more often (0.9 against
//     0.5): a real engagement effect.
//
// Reported per cohort: the false-advance rate at step 2 (quality), the
// step-2 estimate of the per-user thumbs lift at the last look against
// the truth (−5 points, or 0), and the SRM halt rate (engagement). The
// test asserts "new" ≤ α + 3 SE for both rates and that "all" shows the
// bias (both rates above α + 3 SE), so it can fail either way.
//
//	go test -tags simulation -run TestSimCohort -v ./rollout/
func TestSimCohort(t *testing.T) {
	const (
		runs        = 1000
		n1, n2      = 12000, 4000
		margin      = 0.05
		looks       = 16
		share1, sh2 = 0.20, 0.50
	)
	mk := func(cohort string) *experiments.Experiment {
		return &experiments.Experiment{ID: "sim-cohort", Primary: experiments.MetricThumbs,
			Variants: []experiments.Variant{{Name: "base"}, {Name: "cand"}},
			Rollout: &experiments.Rollout{Alpha: 0.05, MinUsers: 100, Cohort: cohort,
				Guardrails: []experiments.Guardrail{{Metric: experiments.MetricThumbs, Margin: margin}},
				Steps:      []experiments.RampStep{{Percent: share1 * 100}, {Percent: sh2 * 100}, {Percent: 80}}}}
	}
	cohorts := []*experiments.Experiment{mk(experiments.CohortAll), mk(experiments.CohortNew)}
	type world struct {
		name   string
		harm   float64                            // the candidate answers at q − harm
		back   func(cand bool, q float64) float64 // return probability after step 1
		truth  float64                            // per-user lift on thumbs
		isHarm bool                               // an advance is false
	}
	worlds := []world{
		{"quality: at the margin, candidate drives unhappy users away", margin, func(cand bool, q float64) float64 {
			switch {
			case !cand:
				return 0.6
			case q < 0.55:
				return 0.3
			}
			return 0.9
		}, -margin, true},
		{"engagement: no quality difference, candidate users return more", 0, func(cand bool, q float64) float64 {
			if cand {
				return 0.9
			}
			return 0.5
		}, 0, false},
	}
	type tally struct {
		advance, halt int
		lift          float64 // sum over runs of the last look's estimate
		liftN         int
		fresh, ret    float64 // users counted / returning (both arms), last look
	}
	res := make([][2]tally, len(worlds))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for wi, w := range worlds {
		for part := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				var local [2]tally
				for run := part; run < runs; run += 2 {
					r := rand.New(rand.NewPCG(uint64(700+wi), uint64(run)))
					t1 := simCohortRun(t, r, cohorts, w.harm, w.back, n1, n2, looks, share1, sh2)
					for c := range 2 {
						local[c].advance += b2i(t1[c].advanced)
						local[c].halt += b2i(t1[c].halted)
						if !math.IsNaN(t1[c].lift) {
							local[c].lift += t1[c].lift
							local[c].liftN++
						}
						local[c].fresh += t1[c].counted
						local[c].ret += t1[c].returning
					}
				}
				mu.Lock()
				for c := range 2 {
					rr := &res[wi][c]
					rr.advance += local[c].advance
					rr.halt += local[c].halt
					rr.lift += local[c].lift
					rr.liftN += local[c].liftN
					rr.fresh += local[c].fresh
					rr.ret += local[c].ret
				}
				mu.Unlock()
			}()
		}
	}
	wg.Wait()

	const alpha = 0.05
	se := math.Sqrt(alpha * (1 - alpha) / runs)
	t.Logf("%d runs per world, α = %g (step test 1 at %.3f), MC SE of 5%%: %.4f; step 1: %d users at %g%%, step 2: returning users and %d new at %g%%, %d looks",
		runs, alpha, cohorts[0].TestAlpha(1), se, n1, share1*100, n2, sh2*100, looks)
	t.Logf("| world | cohort | users analysed at the last look (both arms) | returning users left out | false advance at step 2 | SRM halt at step 2 | thumbs lift at step 2: truth | estimate (mean) |")
	t.Logf("|---|---|---|---|---|---|---|---|")
	for wi, w := range worlds {
		for c, e := range cohorts {
			rr := res[wi][c]
			adv := "–"
			if w.isHarm {
				adv = fmt.Sprintf("%.4f", float64(rr.advance)/runs)
			}
			t.Logf("| %s | %s | %.0f | %.0f | %s | %.4f | %+.2f points | %+.2f points |", w.name, e.Rollout.Cohort,
				rr.fresh/runs, rr.ret/runs, adv, float64(rr.halt)/runs, w.truth*100, 100*rr.lift/float64(max(rr.liftN, 1)))
		}
	}
	limit := alpha + 3*se
	q, eng := res[0], res[1]
	if r := float64(q[1].advance) / runs; r > limit {
		t.Errorf("cohort new: false-advance rate %.4f > α + 3 SE = %.4f", r, limit)
	}
	if r := float64(eng[1].halt) / runs; r > limit {
		t.Errorf("cohort new: SRM halt rate under a pure engagement effect %.4f > α + 3 SE = %.4f", r, limit)
	}
	if r := float64(q[0].advance) / runs; !(r > limit) {
		t.Errorf("cohort all: false-advance rate %.4f ≤ α + 3 SE: the simulation no longer shows the selection bias", r)
	}
	if r := float64(eng[0].halt) / runs; !(r > limit) {
		t.Errorf("cohort all: SRM halt rate %.4f ≤ α + 3 SE under an engagement effect: the simulation no longer shows it", r)
	}
	if l := q[1].lift / float64(max(q[1].liftN, 1)); math.Abs(l-(-margin)) > 0.01 {
		t.Errorf("cohort new: mean estimated lift %+.4f, truth %+.4f", l, -margin)
	}
}

// cohortOutcome is one cohort's result of one run at step 2.
type cohortOutcome struct {
	advanced, halted   bool
	lift               float64 // the cohort's per-user thumbs lift at the last look (NaN: none)
	counted, returning float64
}

// simCohortRun plays one run of TestSimCohort and decides step 2 on each
// cohort (cohorts[c], all and new) at every look until it advances or
// halts.
func simCohortRun(t *testing.T, r *rand.Rand, cohorts []*experiments.Experiment, harm float64, back func(bool, float64) float64,
	n1, n2, looks int, share1, share2 float64) [2]cohortOutcome {
	ctx := context.Background()
	e := cohorts[1]
	st := memstore.New()
	cov := experiments.NewCovariates(e) // cohort new, no CUPED: the first-exposure record only
	if cov == nil || len(cov.Metrics) != 0 {
		t.Fatalf("covariates of cohort new: %+v", cov)
	}
	q := make([]float64, n1+n2)
	bucket := make([]float64, n1+n2)
	for u := range q {
		q[u], bucket[u] = 0.1+0.9*r.Float64(), r.Float64()
	}
	seq := 0
	apply := func(period int, users []int, share float64) {
		b := &experiments.Batch{ID: fmt.Sprint("b", seq), Experiment: e.ID, Phase: period, Covariates: cov}
		seq++
		for _, u := range users {
			v := 0
			if bucket[u] < share {
				v = 1
			}
			p := q[u] - harm*float64(v)
			k := 1 + r.IntN(4)
			ups := 0.0
			for range k {
				if r.Float64() < p {
					ups++
				}
			}
			unit := storetest.Unit(u)
			b.Deltas = append(b.Deltas,
				experiments.Delta{Variant: v, Unit: unit, Metric: experiments.MetricRequests, DX: float64(k), DY: float64(k)},
				experiments.Delta{Variant: v, Unit: unit, Metric: experiments.MetricThumbs, DX: ups, DY: float64(k)})
		}
		if _, err := st.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// Step 1 (period 1), in four batches.
	step1 := make([]int, n1)
	for u := range step1 {
		step1[u] = u
	}
	for k := range 4 {
		apply(1, step1[k*n1/4:(k+1)*n1/4], share1)
	}
	snap1, err := st.Summaries(ctx, e.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The advance closing step 1 stores the period's prior (the centre);
	// the controller passes PriorOf of the history to PolicyAt.
	pol := e.PolicyAt(1, 1, priorFrom(e, snap1))
	if pol.Mode != stats.RampMode {
		t.Fatal("step 2 is not a ramp step")
	}
	alloc := e.AllocationFor(experiments.State{Status: experiments.StatusRunning, Step: 1})

	// Step 2 (period 2): returning users and new ones, interleaved.
	var step2 []int
	for u := range n1 {
		if r.Float64() < back(bucket[u] < share1, q[u]) {
			step2 = append(step2, u)
		}
	}
	for u := n1; u < n1+n2; u++ {
		step2 = append(step2, u)
	}
	r.Shuffle(len(step2), func(i, j int) { step2[i], step2[j] = step2[j], step2[i] })
	var out [2]cohortOutcome
	done := [2]bool{}
	for l := range looks {
		apply(2, step2[l*len(step2)/looks:(l+1)*len(step2)/looks], share2)
		snap, err := st.Summaries(ctx, e.ID, 2)
		if err != nil {
			t.Fatal(err)
		}
		for c, ce := range cohorts {
			if l == looks-1 {
				coh, sums := experiments.AnalysisCohort(ce, snap)
				if (c == 1) != coh.Fresh || coh.Unavailable {
					t.Fatalf("cohort %s: %+v", ce.Rollout.Cohort, coh)
				}
				counted, returning := experiments.CohortUsers(ce, snap, coh)
				out[c].counted, out[c].returning = counted[0]+counted[1], returning[0]+returning[1]
				out[c].lift = math.NaN()
				s0 := sums[experiments.VariantMetric{Variant: 0, Metric: experiments.MetricThumbs}]
				s1 := sums[experiments.VariantMetric{Variant: 1, Metric: experiments.MetricThumbs}]
				if s0.N > 0 && s1.N > 0 {
					out[c].lift = s1.SumR/s1.N - s0.SumR/s0.N
				}
			}
			if done[c] {
				continue
			}
			d := stats.Decide(experiments.RolloutInput(ce, snap, alloc, pol), pol)
			switch d.Verdict {
			case stats.Advance:
				out[c].advanced, done[c] = true, true
			case stats.HaltSRM:
				out[c].halted, done[c] = true, true
			case stats.Rollback:
				done[c] = true
			}
		}
	}
	return out
}
