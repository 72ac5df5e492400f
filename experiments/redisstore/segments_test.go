package redisstore_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/redisstore"
	"github.com/abgate/abgate/experiments/storetest"
)

// TestApplyManySegmentValues: one chunk (default size) whose users spread
// over every value of the most segment dimensions an experiment may
// declare gives a stats hash with thousands of fields. The apply script
// must write them without exceeding Lua's unpack limit: failing there
// left the user states written, the chunk marked as applied and the
// statistics without the chunk, for good.
func TestApplyManySegmentValues(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	rs := redisstore.New(c)
	ms := memstore.New()
	exp := storetest.NewID("manyseg")
	r := rand.New(rand.NewPCG(1, 2))
	b := &experiments.Batch{ID: storetest.BatchID(), Experiment: exp, Phase: 1}
	metrics := []string{"requests", "latency_ms", "ttfb_ms", "error", "fallback", "prompt_tokens", "completion_tokens", "cost"}
	for u := 0; u < 80; u++ { // 80 users × 8 metrics × (1 + 4) = 3200 entries: one chunk
		sv := experiments.SegmentValues{N: experiments.MaxSegmentDimensions}
		for d := range sv.V {
			sv.V[d] = uint8(r.IntN(experiments.MaxSegmentValues + 1))
		}
		for j, m := range metrics {
			b.Deltas = append(b.Deltas, experiments.Delta{Unit: storetest.Unit(u), Metric: m, Hour: 5, DX: float64(u + j), DY: 1, Segments: sv})
		}
	}
	for _, s := range []experiments.Store{ms, rs} {
		if _, err := s.Apply(ctx, b); err != nil {
			t.Fatalf("%T: Apply: %v", s, err)
		}
	}
	want, _ := ms.Summaries(ctx, exp, 1)
	got, err := rs.Summaries(ctx, exp, 1)
	if err != nil {
		t.Fatal(err)
	}
	storetest.CompareExact(t, got.Stats, want.Stats)
	if len(got.Segments) != len(want.Segments) {
		t.Errorf("%d segment summaries, want %d", len(got.Segments), len(want.Segments))
	}
	for k, w := range want.Segments {
		if g := got.Segments[k]; g != w {
			t.Errorf("segment %+v: got %+v, want %+v", k, g, w)
		}
	}
}
