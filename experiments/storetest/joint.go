package storetest

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// ExpectedJoint recomputes the joint sums (experiments.Batch.Joint) the
// slow, obvious way: each user's totals from the raw observations (a
// repeated EventID counts once), then each user's contribution summed
// over users.
func ExpectedJoint(obs []Obs, pairs []experiments.JointPair) map[experiments.JointKey]experiments.JointSummary {
	type uk struct {
		v int
		u experiments.UnitKey
	}
	tot := map[uk]map[string][2]float64{}
	seen := map[string]bool{}
	for _, o := range obs {
		if o.EventID != "" {
			if seen[o.EventID] {
				continue
			}
			seen[o.EventID] = true
		}
		k := uk{o.Variant, o.Unit}
		if tot[k] == nil {
			tot[k] = map[string][2]float64{}
		}
		t := tot[k][o.Metric]
		tot[k][o.Metric] = [2]float64{t[0] + o.X, t[1] + o.Y}
	}
	out := map[experiments.JointKey]experiments.JointSummary{}
	for k, m := range tot {
		for _, p := range pairs {
			h, f := m[p.Human], m[p.Judge]
			c := experiments.JointContribution(h[0], h[1], f[0], f[1], p.Cut)
			if c == (experiments.JointSummary{}) {
				continue
			}
			jk := experiments.JointKey{Variant: k.v, Human: p.Human, Judge: p.Judge}
			out[jk] = out[jk].Add(c)
		}
	}
	return out
}

// testJoint: the joint sums of a human and a judge metric stay exact
// (to rounding) while users' totals of either change across batches,
// chunks, duplicate events and metrics outside the pairs; withCov also
// asks for CUPED's covariates in the same batches (the apply script then
// takes both argument blocks).
func testJoint(t *testing.T, s experiments.Store, withCov bool) {
	r := rand.New(rand.NewPCG(14, 5))
	exp := NewID("joint")
	h0 := experiments.HourOf(time.Now())
	pairs := []experiments.JointPair{
		{Human: experiments.MetricThumbs, Judge: experiments.MetricJudgeServed, Cut: 0.5},
		{Human: experiments.MetricRating, Judge: experiments.MetricJudgeServed, Cut: 3},
	}
	var obs []Obs
	for i := 0; i < 5000; i++ {
		u := r.IntN(400)
		v := u % 2
		o := Obs{Variant: v, Unit: Unit(u), Hour: h0 + experiments.Hour(r.IntN(2)), Y: 1}
		k := r.IntN(10)
		switch c := u % 5; {
		case c == 0 && k < 8: // never judged
			k = r.IntN(5)
		case c == 1 && k < 8: // judged, no human signal
			k = 5 + r.IntN(3)
		}
		switch {
		case k < 3:
			o.Metric, o.X = experiments.MetricThumbs, float64(r.IntN(2))
			if k == 0 { // an event; ids repeat now and then
				o.EventID = "t" + string(rune('a'+r.IntN(26))) + string(rune('a'+r.IntN(26))) + string(rune('a'+u%26))
			}
		case k < 5:
			o.Metric, o.X = experiments.MetricRating, float64(1+r.IntN(5))
		case k < 8:
			o.Metric, o.X = experiments.MetricJudgeServed, []float64{0, 0.25, 0.5, 0.75, 1}[r.IntN(5)]
		default:
			o.Metric, o.X = experiments.MetricLatencyMS, 100+r.Float64()*900
		}
		obs = append(obs, o)
	}
	bs := ToBatches(exp, 1, obs, 300)
	for _, b := range bs {
		b.Joint = pairs
		if withCov {
			b.Covariates = CovariatesFor(exp, 1, time.Hour)
		}
	}
	apply(t, s, bs...)
	apply(t, s, bs[0]) // a retry changes nothing
	got := summaries(t, s, exp, 1).Joint
	want := ExpectedJoint(obs, pairs)
	if len(got) != len(want) || len(want) != 4 {
		t.Fatalf("joint sums of %d pairs, want %d (4): %v", len(got), len(want), got)
	}
	for k, w := range want {
		g := got[k]
		if w.PPI.Labeled < 20 || w.PPI.Unlabeled < 20 {
			t.Fatalf("%+v: fixture has too few labelled or unlabelled users: %+v", k, w.PPI)
		}
		gv, wv := jointValues(g), jointValues(w)
		for i := range gv {
			if math.Abs(gv[i]-wv[i]) > 1e-9*math.Max(1, math.Abs(wv[i])) {
				t.Errorf("%+v field %d: got %v, want %v\n got  %+v\n want %+v", k, i, gv[i], wv[i], g, w)
			}
		}
	}
	// Without Joint, a batch leaves the sums alone.
	extra := ToBatches(exp, 1, []Obs{{Variant: 0, Unit: Unit(0), Metric: experiments.MetricRating, Hour: h0, X: 5, Y: 1}}, 1)
	apply(t, s, extra...)
	if after := summaries(t, s, exp, 1).Joint; after[experiments.JointKey{Variant: 0, Human: experiments.MetricRating, Judge: experiments.MetricJudgeServed}] !=
		got[experiments.JointKey{Variant: 0, Human: experiments.MetricRating, Judge: experiments.MetricJudgeServed}] {
		t.Errorf("a batch without Joint changed the joint sums")
	}
}

func jointValues(s experiments.JointSummary) []float64 {
	p := s.PPI
	return []float64{p.Labeled, p.SumHuman, p.SumHuman2, p.SumJudge, p.SumJudge2, p.SumHumanJudge, p.Unlabeled, p.SumJudgeU, p.SumJudgeU2,
		s.Agree[0][0], s.Agree[0][1], s.Agree[1][0], s.Agree[1][1]}
}
