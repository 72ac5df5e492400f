//go:build simulation

package rollout_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// TestSimCarryOver (issue 11, item 5): the controller's carry-over across
// three ramp steps (5%, 25%, 45%), through the real Experiment.PolicyAt,
// experiments.CarriedLogE and stats.Decide, the error guardrail (margin 2
// points on a 10% base rate), fresh users in every period (the
// independence carry-over assumes). Each step looks at every 5% growth of
// its candidate arm from 100 users up to 8 000; an advance closes the
// period and its decision joins the history. "per step" is the same
// policy without rollout.carry_over.
//
//   - At the margin (+2 points), 1 000 runs: the share of runs with any
//     false advance, and with all three.
//
//   - No harm (equal rates), 300 runs: the users (both arms) needed to get
//     through the three steps, and their ratio.
//
//   - No harm at 5%, at the margin from 25% on, 1 000 runs: the share of
//     runs that advance out of the 25% step, false for that step's own
//     null. Carry-over gives this protection up (docs/statistics.md §2.12).
//
//     go test -tags simulation -run TestSimCarryOver -v ./rollout/
func TestSimCarryOver(t *testing.T) {
	const (
		p0, margin = 0.10, 0.02
		maxN1      = 8000
	)
	shares := []float64{0.05, 0.25, 0.45}
	exp := func(carry bool) *experiments.Experiment {
		return &experiments.Experiment{ID: "sim", Primary: experiments.MetricThumbs,
			Variants: []experiments.Variant{{Name: "base"}, {Name: "cand"}},
			Rollout: &experiments.Rollout{Alpha: 0.05, MinUsers: 100, CarryOver: carry,
				Guardrails: []experiments.Guardrail{{Metric: experiments.MetricError, Margin: margin}},
				Steps:      []experiments.RampStep{{Percent: 5}, {Percent: 25}, {Percent: 45}, {Percent: 50}}}}
	}
	// ramp runs the three steps; it returns the advances made and the
	// users (both arms) seen until the last one.
	ramp := func(e *experiments.Experiment, r *rand.Rand, p1s []float64) (advances int, users float64) {
		var hist []experiments.Transition
		for step, share := range shares {
			pol := e.PolicyAt(step, 1, experiments.Prior{LogE: experiments.CarriedLogE(hist)})
			if pol.Mode != stats.RampMode {
				t.Fatalf("step %d is not a ramp step", step)
			}
			var ss [2]stats.Summary
			next := 100.0
			advanced := false
			for ss[1].N < maxN1 && !advanced {
				v := 0
				if r.Float64() < share {
					v = 1
				}
				p := p0
				if v == 1 {
					p = p1s[step]
				}
				x := 0.0
				if r.Float64() < p {
					x = 1
				}
				ss[v] = ss[v].Add(experiments.SummaryDelta(true, 0, 0, x, 1, 0))
				if ss[1].N < next || ss[0].N < 100 {
					continue
				}
				next = math.Ceil(ss[1].N * 1.05)
				in := stats.Input{Users: []float64{ss[0].N, ss[1].N}, ExpectedSplit: []float64{1 - share, share},
					Metrics: map[string][]stats.Summary{experiments.MetricError: {ss[0], ss[1]}}}
				if d := stats.Decide(in, pol); d.Verdict == stats.Advance {
					advanced = true
					hist = append(hist, experiments.Transition{Action: experiments.ActionAdvance, Decision: &d})
				}
			}
			if !advanced {
				return advances, math.Inf(1)
			}
			advances++
			users += ss[0].N + ss[1].N
		}
		return advances, users
	}
	type result struct {
		any, all int
		users    []float64 // per run, +Inf when the ramp stalled at a step's cap
	}
	var res [2][3]result // [carry][margin, no harm, harm from step 2]
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	const marginRuns, okRuns = 1000, 300
	for ci, carry := range []bool{false, true} {
		for kind, p1 := range [][]float64{
			{p0 + margin, p0 + margin, p0 + margin},
			{p0, p0, p0},
			{p0, p0 + margin, p0 + margin},
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				e := exp(carry)
				runs := marginRuns
				if kind == 1 {
					runs = okRuns
				}
				rr := &res[ci][kind]
				for run := range runs {
					r := rand.New(rand.NewPCG(uint64(kind+1), uint64(run)))
					if kind == 2 {
						n, _ := ramp(e, r, p1)
						if n >= 2 {
							rr.any++ // step 2 advanced: its own null (harm at the margin) held
						}
						continue
					}
					n, u := ramp(e, r, p1)
					if n > 0 {
						rr.any++
					}
					if n == len(shares) {
						rr.all++
					}
					rr.users = append(rr.users, u)
				}
			}()
		}
	}
	wg.Wait()
	se := math.Sqrt(0.05 * 0.95 / marginRuns)
	t.Logf("at the margin (+%g points on %g%%), %d runs, α = 0.05 (test 1 runs at %.4f), MC SE of 5%%: %.4f", margin*100, p0*100, marginRuns, exp(true).TestAlpha(1), se)
	t.Logf("| policy | any false advance | all three steps |")
	t.Logf("|---|---|---|")
	for ci, name := range []string{"per step", "carry-over"} {
		r := res[ci][0]
		t.Logf("| %s | %.4f | %.4f |", name, float64(r.any)/marginRuns, float64(r.all)/marginRuns)
		if float64(r.any)/marginRuns > 0.05+3*se {
			t.Errorf("%s: false-advance rate %.4f > α + 3 SE", name, float64(r.any)/marginRuns)
		}
	}
	ps, co := res[0][1], res[1][1]
	// Paired by seed (the first step's data are the same in both): the
	// median over all runs (a stalled ramp counts as +Inf) and the mean
	// over the runs both policies finished.
	median := func(u []float64) float64 {
		v := slices.Clone(u)
		slices.Sort(v)
		return v[len(v)/2]
	}
	var both, sp, sc float64
	for i := range ps.users {
		if !math.IsInf(ps.users[i], 1) && !math.IsInf(co.users[i], 1) {
			both++
			sp += ps.users[i]
			sc += co.users[i]
		}
	}
	t.Logf("no harm, %d runs: finished all three steps: per step %d, carry-over %d", okRuns, ps.all, co.all)
	t.Logf("users (both arms) to get through: median per step %.0f, carry-over %.0f, ratio %.3f; mean over the %.0f runs both finished: %.0f vs %.0f, ratio %.3f",
		median(ps.users), median(co.users), median(co.users)/median(ps.users), both, sp/both, sc/both, sc/sp)
	// The truth changes: no harm at 5%, at the margin from 25% on (harm
	// that grows with the share, e.g. latency under load). The per-step
	// test protects step 2's own null; carry-over does not.
	t.Logf("no harm at 5%%, at the margin from 25%% on, %d runs: step 2 advanced (a false advance for its own null): per step %.4f, carry-over %.4f",
		marginRuns, float64(res[0][2].any)/marginRuns, float64(res[1][2].any)/marginRuns)
	if float64(res[0][2].any)/marginRuns > 0.05+3*se {
		t.Errorf("per step: step 2 false-advance rate %.4f > α + 3 SE", float64(res[0][2].any)/marginRuns)
	}
	if !(sc < sp) || co.all < ps.all {
		t.Errorf("carry-over needs %.0f users (finished %d), per step %.0f (finished %d): no saving", sc/both, co.all, sp/both, ps.all)
	}
}
