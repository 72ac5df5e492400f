package redisstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/storetest"
)

// goldenBatch is a seeded batch with every part encode handles: deltas
// and events (with and without ids, capped, grouped) of several variants,
// users, hours and segment dimensions, in an order encode must sort;
// counters, drift, covariates with history, and joint pairs.
func goldenBatch(seed uint64) *experiments.Batch {
	r := rand.New(rand.NewPCG(seed, 7))
	metrics := []string{"requests", "latency_ms", "ttfb_ms", "error", "cost", "thumbs", "escalations"}
	b := &experiments.Batch{ID: fmt.Sprintf("golden-%d", seed), Experiment: "e", Phase: 2, Count: 40}
	delta := func() experiments.Delta {
		d := experiments.Delta{Variant: r.IntN(3), Unit: storetest.Unit(r.IntN(25)), Metric: metrics[r.IntN(len(metrics))],
			Hour: experiments.Hour(100 + r.IntN(3)), DX: float64(r.IntN(2000)) / 8, DY: float64(1 + r.IntN(2))}
		d.Segments.N = uint8(r.IntN(experiments.MaxSegmentDimensions + 1))
		for i := range int(d.Segments.N) {
			d.Segments.V[i] = uint8(r.IntN(4))
		}
		return d
	}
	for range 30 + r.IntN(60) {
		b.Deltas = append(b.Deltas, delta())
	}
	for i := range r.IntN(20) {
		e := experiments.Event{Delta: delta()}
		switch i % 4 {
		case 0:
			e.ID = fmt.Sprintf("ev-%d-%d", seed, i)
		case 1:
			e.ID, e.Group, e.Cap = fmt.Sprintf("ev-%d-%d", seed, i), "resp-1", 2
		case 2:
			e.Group, e.Cap = "resp-2", 1 // capped without an id
		}
		b.Events = append(b.Events, e)
	}
	if seed%2 == 0 {
		b.Counters = []experiments.Counter{{Variant: 1, Name: experiments.CounterUnanalysed, N: 3}, {Variant: 0, Name: experiments.CounterUnanalysed, N: 1}}
		b.Hist = []experiments.HistDelta{{Variant: 0, Feature: "latency_ms", Hour: 100, Bin: 3, N: 2}, {Variant: 1, Feature: "cost", Hour: 101, Bin: 0, N: 1}}
	}
	if seed%3 == 0 {
		b.Covariates = storetest.CovariatesFor("e", 2, time.Hour)
		b.History = []experiments.Delta{{Unit: storetest.Unit(1), Metric: "escalations", DX: 2, DY: 1}, {Unit: storetest.Unit(2), Metric: "thumbs", DX: 1, DY: 1}}
	}
	if seed%4 == 1 {
		b.Joint = []experiments.JointPair{{Human: "thumbs", Judge: "judge_score", Cut: 0.5}}
	}
	return b
}

// chunksDigest is a digest of everything encode produced: every chunk's
// keys and arguments, in order.
func chunksDigest(cs []chunk) string {
	h := sha256.New()
	for _, c := range cs {
		fmt.Fprintf(h, "chunk %d keys %s\n", len(c.keys), strings.Join(c.keys, " "))
		for _, a := range c.args {
			fmt.Fprintf(h, "arg %T %x\n", a, fmt.Sprint(a))
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// TestEncodeGolden: encode's output, byte for byte, for seeded batches,
// as the encoder of 93c5bfa produced it (the script reads these bytes;
// a faster encoder must not change one). Chunks of 20 entries, so a
// batch is cut into several.
func TestEncodeGolden(t *testing.T) {
	s := New(nil, WithChunkEntries(20))
	var got []string
	for seed := range uint64(12) {
		got = append(got, chunksDigest(s.encode(goldenBatch(seed))))
	}
	want := []string{"a29568089eb830ed", "9051833f4bbe8dc6", "e3646a6df9ec3669", "5acf93e51f115e9c", "d467994c95b0a7af", "481ac21690dae76a",
		"70fee1c7aca6558f", "032c771c617b6c7c", "4dd54d7e5d2f6f1e", "22ee37b41226eee6", "0eb39231c1277a61", "80dcf73db04ed277"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("seed %d: digest %s, want %s", i, got[i], want[i])
		}
	}
}
