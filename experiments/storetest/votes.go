package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/abgate/abgate/experiments"
)

// testOneVote checks the feedback identities the API derives (docs/api.md,
// "One response, one vote"): an event id applies once however many
// batches carry it, and a capped group applies at most Cap events whatever
// their ids (or none), its segment copies with them. Both stores must
// agree, so a flood through either moves a user by at most the cap.
func testOneVote(t *testing.T, s experiments.Store) {
	ctx := context.Background()
	exp := NewID("vote")
	seg := experiments.SegmentValues{N: 1}
	seg.V[0] = 2
	thumbs := func(id string, x float64) experiments.Event {
		return experiments.Event{ID: id, Delta: experiments.Delta{
			Unit: Unit(1), Metric: experiments.MetricThumbs, Hour: 500, DX: x, DY: 1, Segments: seg}}
	}
	copies := func(id string) experiments.Event {
		return experiments.Event{ID: id, Group: "resp-1/copies", Cap: 3, Delta: experiments.Delta{
			Unit: Unit(1), Metric: "copies", Hour: 500, DX: 1, DY: 1, Segments: seg}}
	}
	// A flood over 30 batches: the same first-wins identity 10 times per
	// batch (up first, then down), and 10 capped events per batch with
	// distinct ids, half of them without any.
	var dups int
	for b := 0; b < 30; b++ {
		batch := &experiments.Batch{ID: BatchID(), Experiment: exp, Phase: 1}
		for i := 0; i < 10; i++ {
			x := 1.0
			if b > 0 || i > 0 {
				x = 0
			}
			batch.Events = append(batch.Events, thumbs("r:resp-1/thumbs", x))
			id := ""
			if i%2 == 0 {
				id = fmt.Sprintf("client-%d-%d", b, i)
			}
			batch.Events = append(batch.Events, copies(id))
		}
		res, err := s.Apply(ctx, batch)
		if err != nil {
			t.Fatalf("Apply batch %d: %v", b, err)
		}
		dups += res.DuplicateEvents
	}
	if want := 30*20 - 1 - 3; dups != want {
		t.Errorf("DuplicateEvents = %d, want %d", dups, want)
	}
	snap := summaries(t, s, exp, 1)
	want := map[experiments.VariantMetric]experiments.Summary{
		{Variant: 0, Metric: experiments.MetricThumbs}: {N: 1, SumX: 1, SumX2: 1, SumY: 1, SumY2: 1, SumXY: 1, SumR: 1, SumR2: 1},
		{Variant: 0, Metric: "copies"}:                 {N: 1, SumX: 3, SumX2: 9, SumY: 3, SumY2: 9, SumXY: 9, SumR: 1, SumR2: 1},
	}
	CompareExact(t, snap.Stats, want)
	for vm, w := range want {
		k := experiments.SegmentKey{Variant: 0, Metric: vm.Metric, Dimension: 0, Value: 2}
		if got := snap.Segments[k]; got != w {
			t.Errorf("segment %+v = %+v, want %+v (segment copies follow their event)", k, got, w)
		}
	}
	// A retry of a refused capped event stays refused; a new group has
	// its own room.
	batch := &experiments.Batch{ID: BatchID(), Experiment: exp, Phase: 1,
		Events: []experiments.Event{copies("client-29-0"), {ID: "", Group: "resp-2/copies", Cap: 3,
			Delta: experiments.Delta{Unit: Unit(1), Metric: "copies", Hour: 500, DX: 1, DY: 1}}}}
	res, err := s.Apply(ctx, batch)
	if err != nil || res.DuplicateEvents != 1 {
		t.Fatalf("Apply: %+v, %v; want one duplicate", res, err)
	}
	if got := summaries(t, s, exp, 1).Stats[experiments.VariantMetric{Metric: "copies"}].SumX; got != 4 {
		t.Errorf("copies Σx = %v after a second response, want 4", got)
	}
	// Invalid: a cap without a group, an event with neither id nor group.
	for _, ev := range []experiments.Event{
		{ID: "x", Cap: 2, Delta: experiments.Delta{Metric: "copies", DX: 1, DY: 1}},
		{Delta: experiments.Delta{Metric: "copies", DX: 1, DY: 1}},
	} {
		b := &experiments.Batch{ID: BatchID(), Experiment: exp, Phase: 1, Events: []experiments.Event{ev}}
		if _, err := s.Apply(ctx, b); err == nil {
			t.Errorf("Apply(%+v) = nil, want ErrInvalidBatch", ev)
		}
	}
}
