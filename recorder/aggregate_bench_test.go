package recorder

import (
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/internal/yield"
)

// BenchmarkCut: one flush interval's aggregate at 2,000 requests/s (200
// outcomes of 200 users, 100 ms) cut into its batch, as the drain loop
// does every interval; per op: one cut.
func BenchmarkCut(b *testing.B) {
	var a aggregate
	a.init()
	o := experiments.Outcome{Experiment: "e", Phase: 1, Analysed: true, Latency: 300 * time.Millisecond,
		TTFB: 80 * time.Millisecond, Status: 200, PromptTokens: 40, CompletionTokens: 200, Cost: 0.001}
	var seq uint64
	var ys yield.Slicer
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for u := 0; u < 200; u++ {
			o.Variant, o.Unit = u%2, storetest.Unit(u)
			a.addOutcome(&o, 1, nil)
		}
		b.StartTimer()
		if bs, _, _ := a.cut("p-", &seq, &ys); len(bs) != 1 || len(bs[0].Deltas) == 0 {
			b.Fatalf("cut %d batches", len(bs))
		}
	}
}
