package memstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// TestHistoryTTLSlidingAndSwept: a unit's history lives TTL after its
// last update (each batch with its data renews it), an expired one is
// not copied, and the sweep frees expired histories (bounded memory).
func TestHistoryTTLSlidingAndSwept(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	s := New(WithClock(func() time.Time { return now }))
	ctx := context.Background()
	const ttl = 4 * time.Hour
	cov := func(phase int) *experiments.Covariates {
		return experiments.NewCovariates(&experiments.Experiment{ID: "e", CUPED: true, Phase: phase, CUPEDHistoryTTL: experiments.Duration(ttl)})
	}
	unit := func(i int) experiments.UnitKey { return experiments.UnitKey{byte(i), 1} }
	seq := 0
	hist := func(units ...int) {
		seq++
		b := &experiments.Batch{ID: fmt.Sprint("h", seq), Experiment: "e", Phase: 1, Covariates: cov(1)}
		for _, u := range units {
			b.History = append(b.History, experiments.Delta{Unit: unit(u), Metric: experiments.MetricRequests, DX: 2, DY: 2})
		}
		if _, err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	hist(1, 2, 3)
	now = now.Add(3 * time.Hour)
	hist(1) // renews unit 1 only
	now = now.Add(2 * time.Hour)
	// Units 2 and 3 expired an hour ago; unit 1 lives until 7h.
	b := &experiments.Batch{ID: "x", Experiment: "e", Phase: 2, Covariates: cov(2)}
	for _, u := range []int{1, 2} {
		b.Deltas = append(b.Deltas, experiments.Delta{Unit: unit(u), Metric: experiments.MetricRequests, Hour: 1, DX: 1, DY: 1})
	}
	if _, err := s.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	snap, _ := s.Summaries(ctx, "e", 2)
	if g := snap.Stats[experiments.VariantMetric{Metric: experiments.MetricRequests}]; g.N != 2 || g.SumZ != 4 || g.SumZ2 != 16 {
		t.Errorf("z should be 4 for unit 1 (renewed history) and 0 for unit 2 (expired): %+v", g)
	}
	// The sweep ran (a quarter TTL has passed since the first): units 2
	// and 3 are gone, unit 1 (history renewed again by the batch) stays.
	s.mu.Lock()
	n := len(s.exps["e"].pre.hist)
	_, has1 := s.exps["e"].pre.hist[unit(1)]
	s.mu.Unlock()
	if n != 2 || !has1 {
		t.Errorf("after the sweep %d histories (unit 1 kept: %v), want units 1 and 2 (2 written again just now)", n, has1)
	}
}
