package recorder_test

import (
	"context"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/recorder"
)

// TestRecorderSegments: outcomes and feedback with segments reach the
// store's segment statistics, and a user seen in two values of a
// dimension counts in both.
func TestRecorderSegments(t *testing.T) {
	t.Parallel()
	store := memstore.New()
	rec := recorder.New(store, experiments.Recording{FlushInterval: experiments.Duration(time.Millisecond)})
	u := experiments.UnitKey{1}
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	en := experiments.SegmentValues{N: 1, V: [4]uint8{1}}
	de := experiments.SegmentValues{N: 1, V: [4]uint8{2}}
	rec.Observe(experiments.Outcome{Experiment: "e", Phase: 1, Variant: 1, Unit: u, Analysed: true, At: at, Segments: en})
	rec.Observe(experiments.Outcome{Experiment: "e", Phase: 1, Variant: 1, Unit: u, Analysed: true, At: at, Segments: de})
	rec.Observe(experiments.Outcome{Experiment: "e", Phase: 1, Variant: 1, Unit: u, Analysed: true, At: at, Segments: de})
	if err := rec.Feedback(experiments.Feedback{Experiment: "e", Phase: 1, Variant: 1, Unit: u, Metric: "thumbs", Value: 1, At: at, EventID: "x", Segments: de}); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap, err := store.Summaries(context.Background(), "e", 1)
	if err != nil {
		t.Fatal(err)
	}
	req := func(v int) experiments.Summary {
		return snap.Segments[experiments.SegmentKey{Variant: 1, Metric: experiments.MetricRequests, Dimension: 0, Value: v}]
	}
	if s := req(1); s.N != 1 || s.SumX != 1 {
		t.Errorf("en requests %+v", s)
	}
	if s := req(2); s.N != 1 || s.SumX != 2 {
		t.Errorf("de requests %+v", s)
	}
	if s := snap.Stats[experiments.VariantMetric{Variant: 1, Metric: experiments.MetricRequests}]; s.N != 1 || s.SumX != 3 {
		t.Errorf("overall requests %+v", s)
	}
	if s := snap.Segments[experiments.SegmentKey{Variant: 1, Metric: "thumbs", Dimension: 0, Value: 2}]; s.N != 1 || s.SumX != 1 {
		t.Errorf("de thumbs %+v", s)
	}
}
