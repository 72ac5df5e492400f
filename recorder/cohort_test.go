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

// TestCohortRecord: an experiment with a rollout (cohort "new" by default)
// and no cuped gets the first-exposure record, so the store keeps the
// newly exposed users' sums: in a ramp step, only the user new to it.
// With cohort "all" the recorder asks for nothing.
func TestCohortRecord(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	steps := []experiments.RampStep{{Percent: 10}, {Percent: 50}}
	exps := map[string]*experiments.Experiment{
		"new": {ID: "new", Phase: 1, Rollout: &experiments.Rollout{Steps: steps}},
		"all": {ID: "all", Phase: 1, Rollout: &experiments.Rollout{Steps: steps, Cohort: experiments.CohortAll}},
	}
	store := memstore.New(memstore.WithClock(func() time.Time { return now }))
	period := func(period int, units ...int) {
		rec := recorder.New(store, experiments.Recording{BatchSize: 1 << 20, FlushInterval: experiments.Duration(time.Hour)},
			recorder.WithLogger(quiet), recorder.WithClock(func() time.Time { return now }),
			recorder.WithExperiments(func(id string) *experiments.Experiment { return exps[id] }))
		for id := range exps {
			for _, u := range units {
				rec.Observe(experiments.Outcome{Experiment: id, Phase: period, Variant: 1, Unit: storetest.Unit(u), Analysed: true})
			}
		}
		if err := rec.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	period(1, 1)
	period(2, 1, 2) // user 1 returns, user 2 is new
	vm := experiments.VariantMetric{Variant: 1, Metric: experiments.MetricRequests}
	for _, tc := range []struct {
		exp          string
		period       int
		users, fresh float64
	}{
		{"new", 1, 1, 1},
		{"new", 2, 2, 1},
		{"all", 2, 2, 0},
	} {
		snap, err := store.Summaries(context.Background(), tc.exp, tc.period)
		if err != nil {
			t.Fatal(err)
		}
		if got, fresh := snap.Stats[vm].N, snap.Fresh[vm].N; got != tc.users || fresh != tc.fresh {
			t.Errorf("%s period %d: %v users, %v first exposed; want %v, %v", tc.exp, tc.period, got, fresh, tc.users, tc.fresh)
		}
		if s := snap.Stats[vm]; s.SumZ != 0 {
			t.Errorf("%s period %d: covariate sums without cuped: %+v", tc.exp, tc.period, s)
		}
	}
}
