package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// SegObs is an observation with its segment values.
type SegObs struct {
	Obs
	Segments experiments.SegmentValues
}

// ExpectedSegments recomputes the segment statistics the slow, obvious
// way: a user's totals per (variant, metric, dimension, value), so a user
// seen in two values of a dimension counts in both, each with the
// observations made in it.
func ExpectedSegments(obs []SegObs) map[experiments.SegmentKey]experiments.Summary {
	type uk struct {
		k experiments.SegmentKey
		u experiments.UnitKey
	}
	tot := map[uk][2]float64{}
	seen := map[string]bool{}
	for _, o := range obs {
		if o.EventID != "" {
			if seen[o.EventID] {
				continue
			}
			seen[o.EventID] = true
		}
		for d := 0; d < int(o.Segments.N); d++ {
			k := uk{experiments.SegmentKey{Variant: o.Variant, Metric: o.Metric, Dimension: d, Value: int(o.Segments.V[d])}, o.Unit}
			t := tot[k]
			tot[k] = [2]float64{t[0] + o.X, t[1] + o.Y}
		}
	}
	out := map[experiments.SegmentKey]experiments.Summary{}
	for k, t := range tot {
		out[k.k] = out[k.k].Add(experiments.SummaryDelta(true, 0, 0, t[0], t[1], 0))
	}
	return out
}

func segBatches(exp string, phase int, obs []SegObs, size int) []*experiments.Batch {
	var out []*experiments.Batch
	for start := 0; start < len(obs); start += size {
		end := min(start+size, len(obs))
		b := &experiments.Batch{ID: BatchID(), Experiment: exp, Phase: phase, Count: int64(end - start)}
		for _, o := range obs[start:end] {
			d := experiments.Delta{Variant: o.Variant, Unit: o.Unit, Metric: o.Metric, Hour: o.Hour, DX: o.X, DY: o.Y, Segments: o.Segments}
			if o.EventID != "" {
				b.Events = append(b.Events, experiments.Event{ID: o.EventID, Delta: d})
				continue
			}
			b.Deltas = append(b.Deltas, d)
		}
		out = append(out, b)
	}
	return out
}

// testSegments: segment statistics match the per-(user, segment value)
// model, events (and their segment copies) count once, the overall
// statistics are unchanged by segments, and hourly buckets hold no
// segment statistics.
func testSegments(t *testing.T, s experiments.Store) {
	exp := NewID("segments")
	r := rand.New(rand.NewPCG(7, 11))
	h0 := experiments.HourOf(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	var obs []SegObs
	for i := 0; i < 3000; i++ {
		o := SegObs{Obs: Obs{
			Variant: r.IntN(2), Unit: Unit(r.IntN(60)), Hour: h0 + experiments.Hour(r.IntN(3)),
			X: float64(r.IntN(5)), Y: 1,
		}}
		o.Metric = []string{experiments.MetricThumbs, experiments.MetricLatencyMS}[r.IntN(2)]
		o.Segments.N = 2
		o.Segments.V[0] = uint8(r.IntN(4))  // users move between values
		o.Segments.V[1] = uint8(r.IntN(33)) // up to MaxSegmentValues
		if o.Metric == experiments.MetricThumbs && r.IntN(3) == 0 {
			// Some ids repeat; a retry carries the same event, so which
			// copy a store applies first does not matter.
			n := r.IntN(400)
			er := rand.New(rand.NewPCG(uint64(n), 3))
			o.EventID = fmt.Sprintf("ev-%d", n)
			o.Variant, o.Unit, o.Hour = er.IntN(2), Unit(er.IntN(60)), h0+experiments.Hour(er.IntN(3))
			o.X = float64(er.IntN(2))
			o.Segments.V[0], o.Segments.V[1] = uint8(er.IntN(4)), uint8(er.IntN(33))
		}
		obs = append(obs, o)
	}
	apply(t, s, segBatches(exp, 1, obs, 500)...)
	snap := summaries(t, s, exp, 1)

	plain := make([]Obs, len(obs))
	for i := range obs {
		plain[i] = obs[i].Obs
	}
	CompareExact(t, snap.Stats, Expected(plain))
	want := ExpectedSegments(obs)
	if len(snap.Segments) != len(want) {
		t.Errorf("%d segment summaries, want %d", len(snap.Segments), len(want))
	}
	for k, w := range want {
		if g := snap.Segments[k]; !summaryNear(g, w) {
			t.Errorf("segment %+v: got %+v, want %+v", k, g, w)
		}
	}
	// More data under new batch ids (only the events dedup); the hourly
	// buckets still hold no segment statistics.
	apply(t, s, segBatches(exp, 1, obs[:500], 500)...)
	hs, err := s.Hourly(context.Background(), exp, 1, h0.Time(), (h0 + 3).Time())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		for vm := range h.Stats {
			if experiments.IsSegmentMetric(vm.Metric) {
				t.Fatalf("hourly bucket %v holds segment metric %q", h.Hour, vm.Metric)
			}
		}
	}
}

func summaryNear(g, w experiments.Summary) bool {
	_, ok := SummaryNear(g, w, 0)
	return ok
}
