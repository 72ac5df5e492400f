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

// TestRecorderCaps: each request's value is clamped at its experiment's
// cap before it is summed (issue 11), so the user's own mean stays in
// [0, cap]; metrics without a cap and other experiments are untouched,
// and a reload's new caps apply to the events drained after it.
func TestRecorderCaps(t *testing.T) {
	t.Parallel()
	store := memstore.New()
	rec := recorder.New(store, experiments.Recording{FlushInterval: experiments.Duration(time.Millisecond)}, recorder.WithLogger(quiet))
	rec.SetCaps(&experiments.Config{Experiments: []experiments.Experiment{
		{ID: "capped", Caps: map[string]float64{experiments.MetricLatencyMS: 1000, experiments.MetricCompletionTokens: 100, experiments.MetricCost: 0.5}},
		{ID: "free"},
	}})
	for _, exp := range []string{"capped", "free"} {
		for _, lat := range []time.Duration{300 * time.Millisecond, 45 * time.Second} {
			rec.Observe(experiments.Outcome{Experiment: exp, Phase: 1, Variant: 1, Unit: storetest.Unit(1), Analysed: true,
				Latency: lat, TTFB: 20 * time.Second, CompletionTokens: 4000, PromptTokens: 5000, Cost: 2})
		}
	}
	if err := rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	get := func(exp, m string) experiments.Summary {
		snap, err := store.Summaries(context.Background(), exp, 1)
		if err != nil {
			t.Fatal(err)
		}
		return snap.Stats[experiments.VariantMetric{Variant: 1, Metric: m}]
	}
	for _, c := range []struct {
		exp, metric string
		sumX        float64
	}{
		{"capped", experiments.MetricLatencyMS, 300 + 1000},
		{"capped", experiments.MetricTTFBMS, 40000}, // no cap declared
		{"capped", experiments.MetricCompletionTokens, 200},
		{"capped", experiments.MetricPromptTokens, 10000},
		{"capped", experiments.MetricCost, 1},
		{"free", experiments.MetricLatencyMS, 300 + 45000},
		{"free", experiments.MetricCost, 4},
	} {
		s := get(c.exp, c.metric)
		if s.SumX != c.sumX || s.SumY != 2 {
			t.Errorf("%s %s: Σx %v over %v requests, want %v over 2", c.exp, c.metric, s.SumX, s.SumY, c.sumX)
		}
		if r := s.SumX / s.SumY; s.SumR != r {
			t.Errorf("%s %s: user ratio %v, want %v", c.exp, c.metric, s.SumR, r)
		}
	}
}
