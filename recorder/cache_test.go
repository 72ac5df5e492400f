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

// TestCacheHitRatio: per user x = cached prompt tokens, y = prompt
// tokens; outcomes without usage or without a prompt are left out
// (issue 15).
func TestCacheHitRatio(t *testing.T) {
	t.Parallel()
	store := memstore.New()
	rec := recorder.New(store, experiments.Recording{QueueSize: 64, BatchSize: 8, FlushInterval: experiments.Duration(time.Millisecond)},
		recorder.WithLogger(quiet))
	at := time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)
	o := func(unit, prompt, cached int, missing bool) experiments.Outcome {
		return experiments.Outcome{Experiment: "e", Phase: 1, Unit: storetest.Unit(unit), Analysed: true, At: at,
			PromptTokens: prompt, CachedTokens: cached, UsageMissing: missing}
	}
	for _, x := range []experiments.Outcome{
		o(1, 1000, 800, false), o(1, 500, 0, false), // user 1: 800/1500
		o(2, 200, 300, false), // user 2: cached clamped to the prompt: 200/200
		o(3, 0, 0, false),     // no prompt: left out
		o(4, 100, 50, true),   // no usage: left out
	} {
		rec.Observe(x)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	snap, err := store.Summaries(ctx, "e", 1)
	if err != nil {
		t.Fatal(err)
	}
	got := snap.Stats[experiments.VariantMetric{Variant: 0, Metric: experiments.MetricCacheHitRatio}]
	want := experiments.Summary{N: 2, SumX: 1000, SumX2: 800*800 + 200*200, SumY: 1700, SumY2: 1500*1500 + 200*200,
		SumXY: 800*1500 + 200*200, SumR: 800.0/1500 + 1, SumR2: (800.0/1500)*(800.0/1500) + 1}
	if d := got; d.N != want.N || d.SumX != want.SumX || d.SumY != want.SumY || d.SumX2 != want.SumX2 || d.SumY2 != want.SumY2 || d.SumXY != want.SumXY ||
		abs(d.SumR-want.SumR) > 1e-12 || abs(d.SumR2-want.SumR2) > 1e-12 {
		t.Errorf("cache_hit_ratio summary %+v, want %+v", got, want)
	}
}

func abs(x float64) float64 { return max(x, -x) }
