package recorder_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/recorder"
)

// TestRecorderUnrecordableEvents: an event no store can apply (a metric
// name with the reserved "@", the reserved event id "=", too many segment
// dimensions, a non-finite cost) is refused or dropped on its own; it
// must not make the store refuse the batch it would share with everyone
// else's events of the same experiment phase.
func TestRecorderUnrecordableEvents(t *testing.T) {
	t.Parallel()
	store := memstore.New()
	rec := recorder.New(store, experiments.Recording{FlushInterval: experiments.Duration(time.Hour)}, recorder.WithLogger(quiet))
	for i := 0; i < 10; i++ {
		rec.Observe(outcome(i))
	}
	bad := []experiments.Feedback{
		{Experiment: "e", Phase: 1, Unit: storetest.Unit(1), Metric: "thumbs@0.1", Value: 1},
		{Experiment: "e", Phase: 1, Unit: storetest.Unit(1), Metric: "thumbs", Value: 1, EventID: "="},
		{Experiment: "e", Phase: 1, Unit: storetest.Unit(1), Metric: "thumbs", Value: 1, Segments: experiments.SegmentValues{N: experiments.MaxSegmentDimensions + 1}},
	}
	for _, f := range bad {
		if err := rec.Feedback(f); !errors.Is(err, recorder.ErrInvalidFeedback) {
			t.Errorf("Feedback(%+v) = %v, want ErrInvalidFeedback", f, err)
		}
	}
	o := outcome(10)
	o.Cost = math.Inf(1)
	rec.Observe(o)
	o = outcome(11)
	o.Segments.N = experiments.MaxSegmentDimensions + 1
	rec.Observe(o)
	if err := rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := rec.Stats()
	checkAccounting(t, s, true)
	if s.Persisted != 10 || s.DroppedInvalid != 2 {
		t.Errorf("persisted %d, dropped invalid %d; want 10 and 2: %+v", s.Persisted, s.DroppedInvalid, s)
	}
	if n := requests(t, store, "e"); n != 10 {
		t.Errorf("store has %v requests, want 10", n)
	}
}
