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
// the first period of its phase 2 (each user's requests in period 1,
// under the old salt), one without gets none, and a later period of the
// same phase (a ramp step: the same arms) gets none either.
func TestCUPEDCovariates(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	exps := map[string]*experiments.Experiment{"cuped": {ID: "cuped", Phase: 2, CUPED: true}, "plain": {ID: "plain", Phase: 2}}
	store := memstore.New()
	period := func(phase int, requests map[int]int) {
		rec := recorder.New(store, experiments.Recording{BatchSize: 1 << 20, FlushInterval: experiments.Duration(time.Hour)},
			recorder.WithLogger(quiet), recorder.WithClock(func() time.Time { return now }),
			recorder.WithExperiments(func(id string) *experiments.Experiment { return exps[id] }))
		for _, exp := range []string{"cuped", "plain"} {
			for u, n := range requests {
				for range n {
					rec.Observe(experiments.Outcome{Experiment: exp, Phase: phase, Variant: 1, Unit: storetest.Unit(u), Analysed: true})
				}
			}
		}
		if err := rec.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	period(1, map[int]int{1: 3, 2: 1})
	period(2, map[int]int{1: 2, 3: 4}) // user 1 returns (z = 3), user 3 is new (z = 0)
	period(3, map[int]int{1: 1, 3: 5}) // a ramp step of phase 2
	for _, tc := range []struct {
		exp    string
		period int
		want   [3]float64
	}{
		{"cuped", 2, [3]float64{3, 9, 2 * 3}},
		{"plain", 2, [3]float64{}},
		{"cuped", 3, [3]float64{}},
	} {
		snap, err := store.Summaries(context.Background(), tc.exp, tc.period)
		if err != nil {
			t.Fatal(err)
		}
		s := snap.Stats[experiments.VariantMetric{Variant: 1, Metric: experiments.MetricRequests}]
		if s.N != 2 {
			t.Errorf("%s period %d: %+v", tc.exp, tc.period, s)
		}
		if got := [3]float64{s.SumZ, s.SumZ2, s.SumXZ}; got != tc.want {
			t.Errorf("%s period %d: (SumZ, SumZ2, SumXZ) = %v, want %v", tc.exp, tc.period, got, tc.want)
		}
	}
}
