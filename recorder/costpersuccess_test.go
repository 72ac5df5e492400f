package recorder_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/recorder"
)

// TestCostPerSuccess: an experiment with a success signal gets the
// derived metric, per user x = spend (from outcomes) and y = successes
// (from feedback, deduplicated like the signal); one without gets none.
func TestCostPerSuccess(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 13, 45, 0, 0, time.UTC)
	exps := map[string]*experiments.Experiment{
		"cps":  {ID: "cps", Success: &experiments.Success{Metric: experiments.MetricReformulated}},
		"none": {ID: "none"},
	}
	store := memstore.New()
	rec := recorder.New(store, experiments.Recording{BatchSize: 1 << 20, FlushInterval: experiments.Duration(time.Hour)},
		recorder.WithLogger(quiet), recorder.WithClock(func() time.Time { return now }),
		recorder.WithExperiments(func(id string) *experiments.Experiment { return exps[id] }))
	for _, exp := range []string{"cps", "none"} {
		// User 1: two requests costing 0.01 each, one success ("not
		// reformulated") sent twice with one event id, one failure.
		// User 2: one request costing 0.03, usage missing on another.
		for _, o := range []experiments.Outcome{
			{Unit: storetest.Unit(1), Cost: 0.01}, {Unit: storetest.Unit(1), Cost: 0.01},
			{Unit: storetest.Unit(2), Cost: 0.03}, {Unit: storetest.Unit(2), UsageMissing: true},
		} {
			o.Experiment, o.Phase, o.Variant, o.Analysed = exp, 1, 1, true
			rec.Observe(o)
		}
		for _, f := range []experiments.Feedback{
			{Unit: storetest.Unit(1), EventID: "e1", RequestID: "r1", Value: 0},
			{Unit: storetest.Unit(1), EventID: "e1", RequestID: "r1", Value: 0},
			{Unit: storetest.Unit(1), EventID: "e2", RequestID: "r2", Value: 1},
		} {
			f.Experiment, f.Phase, f.Variant, f.Metric = exp, 1, 1, experiments.MetricReformulated
			if err := rec.Feedback(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap, err := store.Summaries(context.Background(), "cps", 1)
	if err != nil {
		t.Fatal(err)
	}
	s := snap.Stats[experiments.VariantMetric{Variant: 1, Metric: experiments.MetricCostPerSuccess}]
	// Users (x, y): (0.02, 1) and (0.03, 0).
	want := struct{ n, x, y, x2, y2, xy float64 }{2, 0.05, 1, 0.0004 + 0.0009, 1, 0.02}
	if s.N != want.n || !nearly(s.SumX, want.x) || s.SumY != want.y || !nearly(s.SumX2, want.x2) || s.SumY2 != want.y2 || !nearly(s.SumXY, want.xy) {
		t.Errorf("cost_per_success summary %+v, want %+v", s, want)
	}
	snap, err = store.Summaries(context.Background(), "none", 1)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := snap.Stats[experiments.VariantMetric{Variant: 1, Metric: experiments.MetricCostPerSuccess}]; ok {
		t.Errorf("experiment without a success signal has cost_per_success %+v", s)
	}
}

func nearly(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }
