package recorder_test

import (
	"context"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/recorder"
)

// TestCUPEDCovariates: an experiment with cuped gets covariate sums in
// every period, the covariate being each user's requests before their
// first exposure in the salt phase: unanalysed requests (outside
// coverage) count as history, a ramp step of the same phase keeps the
// copy taken before the first exposure, and a raised phase takes a new
// one. An experiment without cuped gets none.
func TestCUPEDCovariates(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	exps := map[string]*experiments.Experiment{"cuped": {ID: "cuped", Phase: 1, CUPED: true}, "plain": {ID: "plain", Phase: 1}}
	store := memstore.New(memstore.WithClock(func() time.Time { return now }))
	type req struct{ unit, n int }
	period := func(period int, analysed, outside []req) {
		rec := recorder.New(store, experiments.Recording{BatchSize: 1 << 20, FlushInterval: experiments.Duration(time.Hour)},
			recorder.WithLogger(quiet), recorder.WithClock(func() time.Time { return now }),
			recorder.WithExperiments(func(id string) *experiments.Experiment { return exps[id] }))
		for _, exp := range []string{"cuped", "plain"} {
			for k, rs := range [][]req{outside, analysed} {
				for _, r := range rs {
					for range r.n {
						rec.Observe(experiments.Outcome{Experiment: exp, Phase: period, Variant: 1, Unit: storetest.Unit(r.unit), Analysed: k == 1})
					}
				}
			}
		}
		if err := rec.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	period(1, []req{{2, 1}}, []req{{1, 3}})                                     // user 1 outside coverage: history 3
	period(2, []req{{1, 2}, {2, 4}}, nil)                                       // ramp step: z = 3 (history), 0 (exposed in period 1 with none)
	exps["cuped"] = &experiments.Experiment{ID: "cuped", Phase: 2, CUPED: true} // reshuffle
	period(3, []req{{1, 1}, {2, 5}}, nil)                                       // z = 3+2, 1+4
	for _, tc := range []struct {
		exp    string
		period int
		want   [3]float64
	}{
		{"cuped", 1, [3]float64{0, 0, 0}},
		{"cuped", 2, [3]float64{3, 9, 2 * 3}},
		{"cuped", 3, [3]float64{10, 50, 1*5 + 5*5}},
		{"plain", 2, [3]float64{}},
		{"plain", 3, [3]float64{}},
	} {
		snap, err := store.Summaries(context.Background(), tc.exp, tc.period)
		if err != nil {
			t.Fatal(err)
		}
		s := snap.Stats[experiments.VariantMetric{Variant: 1, Metric: experiments.MetricRequests}]
		if s.N != 2 && tc.period > 1 || tc.period == 1 && s.N != 1 {
			t.Errorf("%s period %d: %+v", tc.exp, tc.period, s)
		}
		if got := [3]float64{s.SumZ, s.SumZ2, s.SumXZ}; got != tc.want {
			t.Errorf("%s period %d: (SumZ, SumZ2, SumXZ) = %v, want %v", tc.exp, tc.period, got, tc.want)
		}
	}
}
