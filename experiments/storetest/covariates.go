package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// ExpectedCovariates recomputes a phase's statistics with CUPED's
// covariate the slow, obvious way: each user's totals in the phase (obs),
// and z = their total x of the same metric in the previous phase (prev:
// the observations that phase had when the user first appeared, summed
// over its variants), 0 for users new to the experiment.
func ExpectedCovariates(obs, prev []Obs) map[experiments.VariantMetric]experiments.Summary {
	type um struct {
		u experiments.UnitKey
		m string
	}
	z := map[um]float64{}
	for _, o := range prev {
		z[um{o.Unit, o.Metric}] += o.X
	}
	out := Expected(obs)
	type uk struct {
		v int
		u experiments.UnitKey
		m string
	}
	tot := map[uk]float64{}
	seen := map[string]bool{}
	for _, o := range obs {
		if o.EventID != "" {
			if seen[o.EventID] {
				continue
			}
			seen[o.EventID] = true
		}
		tot[uk{o.Variant, o.Unit, o.Metric}] += o.X
	}
	for k, x := range tot {
		vm := experiments.VariantMetric{Variant: k.v, Metric: k.m}
		s := out[vm]
		zz := z[um{k.u, k.m}]
		s.SumZ += zz
		s.SumZ2 += zz * zz
		s.SumXZ += x * zz
		out[vm] = s
	}
	return out
}

// testCovariates: users in two periods. Phase 1 has no covariate; in
// phase 2 (batches with Covariates) a returning user's z is their phase-1
// total of the metric, fixed when they first appear in phase 2: late
// phase-1 data arriving afterwards does not move it, but it counts for
// users who appear later. One user had both variants in phase 1 (z sums
// them). Some phase-2 observations are feedback events, one of them sent
// twice. Integer data, so every sum is exact in both stores.
func testCovariates(t *testing.T, s experiments.Store) {
	r := rand.New(rand.NewPCG(11, 4))
	exp := NewID("cuped")
	h0 := experiments.HourOf(time.Now())
	metrics := []string{experiments.MetricRequests, "escalations"}
	obs := func(n, lo, hi int, variant func(u int) int, hours int) []Obs {
		out := make([]Obs, 0, n)
		for range n {
			u := lo + r.IntN(hi-lo)
			out = append(out, Obs{Variant: variant(u), Unit: Unit(u), Metric: metrics[r.IntN(len(metrics))],
				Hour: h0 + experiments.Hour(r.IntN(hours)), X: float64(r.IntN(5)), Y: 1})
		}
		return out
	}
	p1 := obs(3000, 0, 200, func(u int) int { return u % 2 }, 1)
	p1 = append(p1, Obs{Variant: 1, Unit: Unit(0), Metric: experiments.MetricRequests, Hour: h0, X: 7, Y: 1}) // user 0 in both variants
	apply(t, s, ToBatches(exp, 1, p1, 700)...)

	// Phase 2: users 100..299 (100..199 return), another split, two hours.
	p2 := obs(4000, 100, 300, func(u int) int { return (u / 3) % 2 }, 2)
	for i := range p2 {
		if i%10 == 3 {
			p2[i].EventID = fmt.Sprint("ev", i)
		}
	}
	p2 = append(p2, p2[13]) // a retried event
	p2 = append([]Obs{{Variant: 0, Unit: Unit(0), Metric: experiments.MetricRequests, Hour: h0, X: 2, Y: 1}}, p2...)
	first := p2[:501]
	bs := ToBatches(exp, 2, first, 501)
	bs = append(bs, ToBatches(exp, 2, p2[501:], 900)...)
	for _, b := range bs {
		b.Covariates = true
	}
	apply(t, s, bs[0])

	// Late phase-1 data for users already in phase 2 (ignored by their z)
	// and for users not yet in it (counted).
	inFirst := map[experiments.UnitKey]map[string]bool{}
	for _, o := range first {
		if inFirst[o.Unit] == nil {
			inFirst[o.Unit] = map[string]bool{}
		}
		inFirst[o.Unit][o.Metric] = true
	}
	late := obs(600, 100, 200, func(u int) int { return u % 2 }, 1)
	apply(t, s, ToBatches(exp, 1, late, 300)...)
	prev := append([]Obs(nil), p1...)
	for _, o := range late {
		if !inFirst[o.Unit][o.Metric] {
			prev = append(prev, o)
		}
	}
	apply(t, s, bs[1:]...)

	got := summaries(t, s, exp, 2).Stats
	want := ExpectedCovariates(p2, prev)
	CompareExact(t, got, want)
	for _, m := range metrics {
		if g := got[experiments.VariantMetric{Variant: 1, Metric: m}]; !(g.SumZ > 0 && g.SumZ2 > 0 && g.SumXZ > 0) {
			t.Errorf("%s: no covariate sums: %+v", m, g)
		}
	}
	// Phase 1 (no previous phase) keeps none.
	CompareExact(t, summaries(t, s, exp, 1).Stats, Expected(append(p1, late...)))

	// The hourly changes add up to the cumulative covariate sums too.
	hs, err := s.Hourly(context.Background(), exp, 2, h0.Time(), (h0 + 2).Time())
	if err != nil {
		t.Fatalf("Hourly: %v", err)
	}
	sum := map[experiments.VariantMetric]experiments.Summary{}
	for _, h := range hs {
		for k, v := range h.Stats {
			sum[k] = sum[k].Add(v)
		}
	}
	CompareExact(t, sum, want)
}
