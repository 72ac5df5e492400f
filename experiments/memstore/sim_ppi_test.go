//go:build simulation

package memstore_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/stats"
)

// Prediction-powered inference through the stores' joint sums: go test
// -tags simulation -run SimPPI -v ./experiments/memstore/ (make
// sim-judge).
//
// A ramp step with a live judge: each judged user's answers have a
// quality q (uniform, the arm's mean ± 0.4; base 0.55, candidate 0.65,
// so the true lift in people's thumbs-up rate is +10 points). The judge
// compares 4 of a user's answers with the other model's (quality drawn
// alike) and prefers the served one with probability clamp(0.5 +
// (q_served − q_other) + bonus) (internal/fakemodel.Judge's rule, with a
// bonus of 0.15 for the candidate's style: a bias people don't share);
// its verdicts (0/1) are the user's judge_served. A judged user gives 4
// thumbs (each up with probability q) with probability 0.3 ("missing at
// random"), or, in the MNAR scenario, with probability 0.5 when their q
// is below 0.6 and 0.15 above ("unhappy users speak up"). Users arrive in
// 10 batches of 200 per arm; each user's judge verdicts go in one batch
// and their thumbs in the next (the joint sums must telescope across
// batches); after every batch PPILift reads the store's Summaries. The
// estimand is the difference of the arms' per-user mean thumbs-up rate
// over judged users, whose expectation is exactly +10 points.

const (
	ppiBatches = 10
	ppiPerArm  = 200 // users per arm per batch
	ppiPerUser = 4
	ppiTruth   = 0.10
)

type ppiRun struct {
	// at the last look: covered by the fixed-n CI, the sequential CI;
	// widths of the sequential CIs
	fixedPPI, seqPPI, fixedHuman, seqHuman bool
	wPPI, wHuman, wJudge                   float64
	judgeLift, ppiLift, humanLift          float64
	corr                                   float64 // within-arm corr(h, f) over labelled users, mean of the arms
	// at every look: missed by the sequential CI at some look, by the
	// fixed-n CI at some look
	everSeqMiss, everFixedMiss, everHumanSeqMiss bool
	valid                                        bool
}

func simPPI(r *rand.Rand, mnar bool) ppiRun {
	st := memstore.New()
	exp := fmt.Sprintf("sim-ppi-%d", r.Uint64())
	pairs := []experiments.JointPair{{Human: experiments.MetricThumbs, Judge: experiments.MetricJudgeServed, Cut: 0.5}}
	mean := [2]float64{0.55, 0.55 + ppiTruth}
	var run ppiRun
	var pending []experiments.Delta // thumbs that go with the next batch
	// N* as the report tunes it: the users the live judge judges in the
	// step (api's humansNStar), here all 4 000.
	opt := stats.PPIOptions{Alpha: 0.05, NStar: 2 * ppiBatches * ppiPerArm}
	hopt := opt
	hopt.Mode = stats.PPIHumanOnly
	id := 0
	for b := 0; b < ppiBatches; b++ {
		batch := &experiments.Batch{ID: fmt.Sprintf("b%d", b), Experiment: exp, Phase: 1, Joint: pairs, Deltas: pending}
		pending = nil
		for v := range 2 {
			for range ppiPerArm {
				id++
				var u experiments.UnitKey
				u[0], u[1], u[2], u[3] = byte(v), byte(id), byte(id>>8), byte(id>>16)
				q := mean[v] + 0.8*(r.Float64()-0.5)
				var f float64
				for range ppiPerUser {
					qs, qo := q, mean[1-v]+0.8*(r.Float64()-0.5)
					if v == 1 {
						qs += 0.15
					} else {
						qo += 0.15
					}
					if r.Float64() < math.Min(1, math.Max(0, 0.5+qs-qo)) {
						f++
					}
				}
				batch.Deltas = append(batch.Deltas, experiments.Delta{Variant: v, Unit: u, Metric: experiments.MetricJudgeServed, DX: f, DY: ppiPerUser})
				p := 0.3
				if mnar {
					p = 0.15
					if q < 0.6 {
						p = 0.5
					}
				}
				if r.Float64() < p {
					var h float64
					for range ppiPerUser {
						if r.Float64() < q {
							h++
						}
					}
					pending = append(pending, experiments.Delta{Variant: v, Unit: u, Metric: experiments.MetricThumbs, DX: h, DY: ppiPerUser})
				}
			}
		}
		if b == ppiBatches-1 { // the last thumbs go with the last batch
			batch.Deltas = append(batch.Deltas, pending...)
		}
		if _, err := st.Apply(context.Background(), batch); err != nil {
			panic(err)
		}
		snap, err := st.Summaries(context.Background(), exp, 1)
		if err != nil {
			panic(err)
		}
		base := snap.Joint[experiments.JointKey{Variant: 0, Human: pairs[0].Human, Judge: pairs[0].Judge}].PPI
		cand := snap.Joint[experiments.JointKey{Variant: 1, Human: pairs[0].Human, Judge: pairs[0].Judge}].PPI
		l, h := stats.PPILift(base, cand, opt), stats.PPILift(base, cand, hopt)
		if !l.Valid || !h.Valid {
			continue
		}
		in := func(i stats.Interval) bool { return i.Low <= ppiTruth && ppiTruth <= i.High }
		run.everSeqMiss = run.everSeqMiss || !in(l.SequentialCI)
		run.everFixedMiss = run.everFixedMiss || !in(l.CI)
		run.everHumanSeqMiss = run.everHumanSeqMiss || !in(h.SequentialCI)
		if b == ppiBatches-1 {
			run.valid = true
			run.fixedPPI, run.seqPPI, run.fixedHuman, run.seqHuman = in(l.CI), in(l.SequentialCI), in(h.CI), in(h.SequentialCI)
			run.wPPI, run.wHuman = l.SequentialCI.High-l.SequentialCI.Low, h.SequentialCI.High-h.SequentialCI.Low
			run.ppiLift, run.humanLift = l.Lift, h.Lift
			mb := (base.SumJudge + base.SumJudgeU) / (base.Labeled + base.Unlabeled)
			mc := (cand.SumJudge + cand.SumJudgeU) / (cand.Labeled + cand.Unlabeled)
			run.judgeLift = mc - mb
			run.corr = (corr(base) + corr(cand)) / 2
		}
	}
	return run
}

// corr is the sample correlation of h and f over s's labelled users.
func corr(s stats.PPISummary) float64 {
	n := s.Labeled
	c := s.SumHumanJudge/n - s.SumHuman/n*s.SumJudge/n
	vh := s.SumHuman2/n - (s.SumHuman/n)*(s.SumHuman/n)
	vf := s.SumJudge2/n - (s.SumJudge/n)*(s.SumJudge/n)
	return c / math.Sqrt(vh*vf)
}

func TestSimPPICoverage(t *testing.T) {
	const reps = 400
	for _, mnar := range []bool{false, true} {
		r := rand.New(rand.NewPCG(2023, 14))
		var n, fixedPPI, seqPPI, fixedHuman, seqHuman, everSeq, everFixed, everHuman float64
		var wPPI, wHuman, judgeLift, ppiLift, humanLift, corrSum float64
		for range reps {
			run := simPPI(r, mnar)
			if !run.valid {
				continue
			}
			n++
			add := func(x *float64, b bool) {
				if b {
					*x++
				}
			}
			add(&fixedPPI, run.fixedPPI)
			add(&seqPPI, run.seqPPI)
			add(&fixedHuman, run.fixedHuman)
			add(&seqHuman, run.seqHuman)
			add(&everSeq, run.everSeqMiss)
			add(&everFixed, run.everFixedMiss)
			add(&everHuman, run.everHumanSeqMiss)
			wPPI += run.wPPI
			wHuman += run.wHuman
			judgeLift += run.judgeLift
			ppiLift += run.ppiLift
			humanLift += run.humanLift
			corrSum += run.corr
		}
		name := "MAR (feedback at random, 30%)"
		if mnar {
			name = "MNAR (unhappy users speak up)"
		}
		t.Logf("%s: %v runs of %d judged users per arm, true lift %+.1f points", name, n, ppiBatches*ppiPerArm, 100*ppiTruth)
		t.Logf("  mean within-arm corr(h, f) over labelled users: %.3f", corrSum/n)
		t.Logf("  mean lift: judge alone %+.1f, PPI++ %+.2f, feedback alone %+.2f points", 100*judgeLift/n, 100*ppiLift/n, 100*humanLift/n)
		t.Logf("  coverage at the last look: PPI++ fixed-n %.3f, sequential %.3f; feedback alone fixed-n %.3f, sequential %.3f",
			fixedPPI/n, seqPPI/n, fixedHuman/n, seqHuman/n)
		t.Logf("  missed at any of %d looks: PPI++ sequential %.3f, PPI++ fixed-n %.3f, feedback alone sequential %.3f",
			ppiBatches, everSeq/n, everFixed/n, everHuman/n)
		t.Logf("  mean sequential CI width: PPI++ %.2f, feedback alone %.2f points; ratio %.3f, labels saved %.0f%% (1 − (w_PPI/w_human)²)",
			100*wPPI/n, 100*wHuman/n, wPPI/wHuman, 100*(1-(wPPI/wHuman)*(wPPI/wHuman)))
		if n < reps*0.99 {
			t.Errorf("only %v of %d runs had a valid estimate", n, reps)
		}
		if mnar {
			continue // reported, not asserted: MNAR breaks both estimates, which is the point
		}
		// 400 runs: a miss rate of 5% has a standard error of about 1.1%.
		se := math.Sqrt(0.05 * 0.95 / n)
		if everSeq/n > 0.05+3*se {
			t.Errorf("PPI++ sequential CI missed at some look in %.3f of runs, want at most 0.05 + 3 SE", everSeq/n)
		}
		if fixedPPI/n < 0.95-3*se {
			t.Errorf("PPI++ fixed-n coverage %.3f", fixedPPI/n)
		}
		if !(wPPI < wHuman) {
			t.Errorf("PPI++ is not narrower than feedback alone: %v vs %v", wPPI/n, wHuman/n)
		}
		if math.Abs(judgeLift/n-ppiTruth) < 0.1 {
			t.Errorf("the judge alone is not off (%v): the simulation's bias is too weak to show anything", judgeLift/n)
		}
	}
}
