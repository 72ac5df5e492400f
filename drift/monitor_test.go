package drift_test

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/drift"
	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/recorder"
)

// driftSim records hours of requests with log-normal prompt lengths
// (median 150 tokens) through a recorder into a memstore; from hour
// shiftAt on the median is multiplied by shift.
func driftSim(t testing.TB, store *memstore.Store, seed uint64, start time.Time, hours, perHour, shiftAt int, shift float64) {
	t.Helper()
	rec := recorder.New(store, experiments.Recording{QueueSize: 1 << 16, BatchSize: 4096})
	r := rand.New(rand.NewPCG(seed, 9))
	for h := 0; h < hours; h++ {
		med := 150.0
		if h >= shiftAt {
			med *= shift
		}
		for i := 0; i < perHour; i++ {
			at := start.Add(time.Duration(h)*time.Hour + time.Duration(i)*time.Hour/time.Duration(perHour))
			rec.Observe(experiments.Outcome{
				Experiment: "drift", Phase: 1, Variant: r.IntN(2), At: at, Analysed: true,
				Status: 200, Latency: time.Duration(math.Exp(6+0.5*r.NormFloat64()) * 1e6),
				PromptTokens: int(med * math.Exp(r.NormFloat64())), CompletionTokens: int(80 * math.Exp(0.5*r.NormFloat64())),
			})
		}
		if h%8 == 7 { // let the queue drain
			waitPending(t, rec)
		}
	}
	if err := rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := rec.Stats(); s.Dropped > 0 {
		t.Fatalf("recorder dropped %d events", s.Dropped)
	}
}

func waitPending(t testing.TB, rec *recorder.Recorder) {
	deadline := time.Now().Add(10 * time.Second)
	for rec.Stats().Pending > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// TestDriftAlert: prompts twice as long from hour 80 on raise a prompt
// length alert at the first evaluation whose window (6h) lies after the
// shift, exactly once, for both variants; nothing else alerts.
func TestDriftAlert(t *testing.T) {
	t.Parallel()
	store := memstore.New()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	driftSim(t, store, 1, start, 92, 120, 80, 2)
	var mu sync.Mutex
	var alerts []drift.Alert
	now := start
	m := drift.New(store, func() []string { return []string{"drift"} },
		func(_ context.Context, a drift.Alert) { mu.Lock(); alerts = append(alerts, a); mu.Unlock() },
		drift.WithClock(func() time.Time { return now }), drift.WithLogger(quietLog()))
	for h := 73; h <= 92; h++ {
		now = start.Add(time.Duration(h) * time.Hour)
		m.Tick(context.Background())
		if h == 79 && len(alerts) > 0 {
			t.Fatalf("alert before the shift: %+v", alerts[0].Result)
		}
	}
	got := map[int]time.Time{}
	for _, a := range alerts {
		if a.Feature != experiments.DriftPromptTokens {
			t.Errorf("unexpected alert on %s (variant %d, PSI %.3f, p %.3g)", a.Feature, a.Variant, a.PSI, a.PValue)
			continue
		}
		if _, dup := got[a.Variant]; dup {
			t.Errorf("variant %d alerted twice", a.Variant)
		}
		t.Logf("variant %d: alert %v after the shift, PSI %.3f, p %.3g", a.Variant, a.At.Sub(start.Add(80*time.Hour)), a.PSI, a.PValue)
		got[a.Variant] = a.At
	}
	for v := 0; v < 2; v++ {
		at, ok := got[v]
		if !ok {
			t.Fatalf("no prompt length alert for variant %d", v)
		}
		// Within one window (6h) of the shift.
		if d := at.Sub(start.Add(80 * time.Hour)); d > 6*time.Hour {
			t.Errorf("variant %d alerted %v after the shift, more than one window", v, d)
		}
	}
}

// TestDriftNoFalseAlerts: an unchanged distribution alerts on nothing in
// many seeded runs (window and reference histograms are fed directly, as
// the recorder would write them).
func TestDriftNoFalseAlerts(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const runs = 200
	alerts := 0
	for seed := uint64(0); seed < runs; seed++ {
		store := memstore.New()
		r := rand.New(rand.NewPCG(seed, 5))
		b := &experiments.Batch{ID: "b", Experiment: "nodrift", Phase: 1}
		counts := map[experiments.HistDelta]int64{}
		for h := 0; h < 72+6; h++ {
			for i := 0; i < 60; i++ {
				k := experiments.HistDelta{Feature: experiments.DriftPromptTokens, Hour: experiments.HourOf(start) + experiments.Hour(h),
					Bin: experiments.DriftBin(150 * math.Exp(r.NormFloat64()))}
				counts[k]++
				e := experiments.HistDelta{Feature: experiments.DriftError, Hour: k.Hour}
				if r.Float64() < 0.02 {
					e.Bin = 1
				}
				counts[e]++
			}
		}
		for k, n := range counts {
			k.N = n
			b.Hist = append(b.Hist, k)
		}
		if _, err := store.Apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		m := drift.New(store, func() []string { return []string{"nodrift"} }, nil)
		rs, err := m.Evaluate(context.Background(), "nodrift", start.Add(78*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		compared := 0
		for _, res := range rs {
			if res.Compared {
				compared++
			}
			if res.Drifted {
				alerts++
				t.Logf("seed %d: %s PSI %.3f p %.3g", seed, res.Feature, res.PSI, res.PValue)
			}
		}
		if compared != 2 {
			t.Fatalf("seed %d: %d features compared, want 2", seed, compared)
		}
	}
	if alerts > 0 {
		t.Errorf("%d false drift alerts in %d runs", alerts, runs)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
