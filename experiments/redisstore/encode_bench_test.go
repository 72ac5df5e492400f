package redisstore

import (
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/storetest"
)

// BenchmarkEncode: one flush interval's batch at 2,000 requests/s (200
// users × the 8 request metrics, one segment dimension) encoded into its
// script calls, without Redis; per op: one batch.
func BenchmarkEncode(b *testing.B) {
	s := New(nil)
	metrics := []string{"requests", "latency_ms", "ttfb_ms", "error", "fallback", "prompt_tokens", "completion_tokens", "cost"}
	bt := &experiments.Batch{ID: "bench-1", Experiment: "e", Phase: 1, Count: 200}
	for u := 0; u < 200; u++ {
		for j, m := range metrics {
			bt.Deltas = append(bt.Deltas, experiments.Delta{Variant: u % 2, Unit: storetest.Unit(u), Metric: m, Hour: 100,
				DX: float64(j*u%977) + 0.5, DY: 1, Segments: experiments.SegmentValues{N: 1, V: [experiments.MaxSegmentDimensions]uint8{3}}})
		}
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if cs := s.encode(bt); len(cs) == 0 {
			b.Fatal("no chunks")
		}
	}
}
