package recorder_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/recorder"
)

var quiet = slog.New(slog.DiscardHandler)

func checkAccounting(t *testing.T, s recorder.Stats, closed bool) {
	t.Helper()
	if s.Accepted != s.Persisted+s.Dropped+s.Pending {
		t.Errorf("accepted %d != persisted %d + dropped %d + pending %d", s.Accepted, s.Persisted, s.Dropped, s.Pending)
	}
	if closed && s.Pending != 0 {
		t.Errorf("pending %d after Close", s.Pending)
	}
	if d := s.DroppedQueueFull + s.DroppedClosed + s.DroppedOverflow + s.DroppedExpired + s.DroppedInvalid + s.DroppedShutdown; d != s.Dropped {
		t.Errorf("dropped %d != sum of reasons %d", s.Dropped, d)
	}
}

// TestRecorderExact: everything observed under concurrency reaches the
// store, and the statistics equal a recomputation from the raw events.
func TestRecorderExact(t *testing.T) {
	t.Parallel()
	store := memstore.New()
	rec := recorder.New(store, experiments.Recording{QueueSize: 1 << 16, BatchSize: 512, FlushInterval: experiments.Duration(5 * time.Millisecond)},
		recorder.WithLogger(quiet))
	const (
		workers = 4
		per     = 5000
	)
	at := time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)
	var mu sync.Mutex
	var obs []storetest.Obs
	var unanalysed [2]int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 99))
			var mine []storetest.Obs
			var un [2]int64
			for i := 0; i < per; i++ {
				u := r.IntN(300)
				v := u % 2
				o := experiments.Outcome{
					Experiment: "exp-a", Phase: 2, Variant: v, Unit: storetest.Unit(u), Analysed: u%10 != 0,
					At: at, Latency: time.Duration(r.IntN(5000)) * time.Millisecond, TTFB: time.Duration(r.IntN(300)+1) * time.Millisecond,
					Error: r.IntN(20) == 0, PromptTokens: r.IntN(1000), CompletionTokens: r.IntN(500),
				}
				o.CachedTokens = o.PromptTokens / 3
				rec.Observe(o)
				if !o.Analysed {
					un[v]++
				} else {
					b := func(x bool) float64 {
						if x {
							return 1
						}
						return 0
					}
					for m, x := range map[string]float64{
						"requests": 1, "latency_ms": float64(o.Latency.Milliseconds()), "ttfb_ms": float64(o.TTFB.Milliseconds()),
						"error": b(o.Error), "fallback": 0, "prompt_tokens": float64(o.PromptTokens),
						"completion_tokens": float64(o.CompletionTokens), "cost": 0,
					} {
						mine = append(mine, storetest.Obs{Variant: v, Unit: o.Unit, Metric: m, X: x, Y: 1})
					}
					if o.PromptTokens > 0 { // issue 15: cached over prompt tokens
						mine = append(mine, storetest.Obs{Variant: v, Unit: o.Unit, Metric: experiments.MetricCacheHitRatio, X: float64(o.CachedTokens), Y: float64(o.PromptTokens)})
					}
				}
				if i%5 == 0 {
					f := experiments.Feedback{Experiment: "exp-a", Phase: 2, Variant: v, Unit: o.Unit, Metric: "thumbs", Value: float64(r.IntN(2)), At: at}
					if i%10 == 0 {
						f.EventID = fmt.Sprintf("ev-%d", r.IntN(2000)) // overlapping ids across workers
					}
					for {
						err := rec.Feedback(f)
						if err == nil {
							break
						}
						if !errors.Is(err, recorder.ErrQueueFull) {
							t.Error(err)
							return
						}
						time.Sleep(time.Millisecond)
					}
					mine = append(mine, storetest.Obs{Variant: v, Unit: o.Unit, Metric: "thumbs", X: f.Value, Y: 1, EventID: f.EventID})
				}
			}
			mu.Lock()
			obs = append(obs, mine...)
			unanalysed[0] += un[0]
			unanalysed[1] += un[1]
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s := rec.Stats()
	checkAccounting(t, s, true)
	if s.Dropped != 0 || s.Persisted != s.Accepted {
		t.Fatalf("stats %+v: want everything persisted", s)
	}
	if want := int64(workers * (per + per/5)); s.Accepted != want {
		t.Errorf("accepted %d, want %d", s.Accepted, want)
	}
	snap, err := store.Summaries(context.Background(), "exp-a", 2)
	if err != nil {
		t.Fatal(err)
	}
	// Event ids that repeat across workers carry different values; the
	// first applied wins, so compare thumbs' N and Σy only for plain
	// metrics... instead compare everything except thumbs exactly, and
	// thumbs' Σy against the number of distinct feedback events.
	want := storetest.Expected(withoutMetric(obs, "thumbs"))
	got := map[experiments.VariantMetric]experiments.Summary{}
	for k, v := range snap.Stats {
		if k.Metric != "thumbs" {
			got[k] = v
		}
	}
	storetest.CompareExact(t, got, want)
	distinct := map[string]bool{}
	var plain float64
	for _, o := range obs {
		if o.Metric == "thumbs" {
			if o.EventID == "" {
				plain++
			} else {
				distinct[o.EventID] = true
			}
		}
	}
	th := snap.Stats[experiments.VariantMetric{Variant: 0, Metric: "thumbs"}].Add(snap.Stats[experiments.VariantMetric{Variant: 1, Metric: "thumbs"}])
	if th.SumY != plain+float64(len(distinct)) {
		t.Errorf("thumbs Σy = %v, want %v plain + %d distinct events", th.SumY, plain, len(distinct))
	}
	if int64(s.DuplicateEvents) != int64(workers*per/10)-int64(len(distinct)) {
		t.Errorf("duplicate events %d, want %d", s.DuplicateEvents, int64(workers*per/10)-int64(len(distinct)))
	}
	for v := 0; v < 2; v++ {
		if n := snap.Counters[experiments.VariantMetric{Variant: v, Metric: experiments.CounterUnanalysed}]; n != unanalysed[v] {
			t.Errorf("variant %d: unanalysed %d, want %d", v, n, unanalysed[v])
		}
	}
	hs, err := store.Hourly(context.Background(), "exp-a", 2, at.Add(-time.Hour), at.Add(time.Hour))
	if err != nil || len(hs) != 1 || !hs[0].Hour.Equal(at.Truncate(time.Hour)) {
		t.Errorf("hourly: %v, %v", hs, err)
	}
}

func withoutMetric(obs []storetest.Obs, m string) []storetest.Obs {
	var out []storetest.Obs
	for _, o := range obs {
		if o.Metric != m {
			out = append(out, o)
		}
	}
	return out
}

// flakyStore fails while down is set, and can block Apply until released.
type flakyStore struct {
	experiments.Store
	down    atomic.Bool
	block   chan struct{} // if non-nil, Apply waits for it to be closed
	applies atomic.Int64
}

func (f *flakyStore) Apply(ctx context.Context, b *experiments.Batch) (experiments.ApplyResult, error) {
	f.applies.Add(1)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return experiments.ApplyResult{}, ctx.Err()
		}
	}
	if f.down.Load() {
		return experiments.ApplyResult{}, errors.New("store down")
	}
	return f.Store.Apply(ctx, b)
}

func outcome(i int) experiments.Outcome {
	return experiments.Outcome{Experiment: "e", Phase: 1, Variant: i % 2, Unit: storetest.Unit(i % 100), Analysed: true, Latency: time.Millisecond}
}

func requests(t *testing.T, s experiments.Store, exp string) float64 {
	t.Helper()
	snap, err := s.Summaries(context.Background(), exp, 1)
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for k, v := range snap.Stats {
		if k.Metric == experiments.MetricRequests {
			n += v.SumY
		}
	}
	return n
}

// TestRecorderRetries: while the store is down batches wait and are
// retried; once it is back everything is persisted, once.
func TestRecorderRetries(t *testing.T) {
	t.Parallel()
	fs := &flakyStore{Store: memstore.New()}
	fs.down.Store(true)
	rec := recorder.New(fs, experiments.Recording{BatchSize: 100, FlushInterval: experiments.Duration(2 * time.Millisecond)},
		recorder.WithLogger(quiet), recorder.WithRetryBackoff(time.Millisecond, 5*time.Millisecond))
	for i := 0; i < 3000; i++ {
		rec.Observe(outcome(i))
		if i%500 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	time.Sleep(30 * time.Millisecond)
	s := rec.Stats()
	checkAccounting(t, s, false)
	if s.FlushFailures == 0 || s.Persisted != 0 || s.Pending == 0 {
		t.Fatalf("while down: %+v", s)
	}
	fs.down.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = rec.Stats()
	checkAccounting(t, s, true)
	if s.Persisted != 3000 || s.Dropped != 0 {
		t.Fatalf("after recovery: %+v", s)
	}
	if n := requests(t, fs.Store, "e"); n != 3000 {
		t.Errorf("store has %v requests, want 3000", n)
	}
}

// TestRecorderOverflow: past the pending limit the oldest batches are
// dropped and counted; Close with an expired deadline drops the rest.
func TestRecorderOverflow(t *testing.T) {
	t.Parallel()
	fs := &flakyStore{Store: memstore.New()}
	fs.down.Store(true)
	rec := recorder.New(fs, experiments.Recording{QueueSize: 1000, BatchSize: 100, FlushInterval: experiments.Duration(time.Millisecond)},
		recorder.WithLogger(quiet), recorder.WithPendingLimit(500), recorder.WithRetryBackoff(time.Millisecond, 2*time.Millisecond))
	sent := 0
	for i := 0; i < 20; i++ {
		for j := 0; j < 100; j++ {
			rec.Observe(outcome(sent))
			sent++
		}
		time.Sleep(3 * time.Millisecond)
		checkAccounting(t, rec.Stats(), false)
	}
	s := rec.Stats()
	if s.DroppedOverflow == 0 {
		t.Errorf("no overflow drops: %+v", s)
	}
	if s.Pending > 500+1000+8*100 {
		t.Errorf("pending %d exceeds limit + queue + aggregate", s.Pending)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := rec.Close(ctx); err == nil {
		t.Error("Close met its deadline with the store down")
	}
	s = rec.Stats()
	checkAccounting(t, s, true)
	if s.Accepted != int64(sent) || s.Persisted != 0 || s.Dropped != int64(sent) || s.DroppedShutdown == 0 {
		t.Errorf("after Close: %+v (sent %d)", s, sent)
	}
	rec.Observe(outcome(1))
	if err := rec.Feedback(experiments.Feedback{Experiment: "e", Metric: "thumbs"}); !errors.Is(err, recorder.ErrClosed) {
		t.Errorf("Feedback after Close: %v", err)
	}
	s = rec.Stats()
	checkAccounting(t, s, true)
	if s.DroppedClosed != 1 {
		t.Errorf("Observe after Close not counted: %+v", s)
	}
}

// TestFeedbackQueueFull: a full feedback queue refuses with ErrQueueFull
// and nothing accepted is lost.
func TestFeedbackQueueFull(t *testing.T) {
	t.Parallel()
	fs := &flakyStore{Store: memstore.New(), block: make(chan struct{})}
	rec := recorder.New(fs, experiments.Recording{QueueSize: 10, BatchSize: 5, FlushInterval: experiments.Duration(time.Hour)},
		recorder.WithLogger(quiet))
	accepted, full := 0, 0
	for i := 0; i < 200; i++ {
		err := rec.Feedback(experiments.Feedback{Experiment: "e", Phase: 1, Unit: storetest.Unit(i), Metric: "rating", Value: 4})
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, recorder.ErrQueueFull):
			full++
		default:
			t.Fatal(err)
		}
	}
	if full == 0 {
		t.Fatal("never ErrQueueFull")
	}
	if err := rec.Feedback(experiments.Feedback{Experiment: "e", Metric: "x", Value: nan()}); !errors.Is(err, recorder.ErrInvalidFeedback) {
		t.Errorf("NaN feedback: %v", err)
	}
	close(fs.block)
	if err := rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := rec.Stats()
	checkAccounting(t, s, true)
	if s.Accepted != int64(accepted) || s.Persisted != int64(accepted) || s.Rejected != int64(full) {
		t.Errorf("stats %+v; accepted %d, refused %d", s, accepted, full)
	}
}

func nan() float64 { var z float64; return z / z }

// TestObserveAllocs: the hot path allocates nothing.
func TestObserveAllocs(t *testing.T) {
	rec := recorder.New(memstore.New(), experiments.Recording{QueueSize: 1 << 20, BatchSize: 1 << 20, FlushInterval: experiments.Duration(time.Hour)},
		recorder.WithLogger(quiet))
	defer rec.Close(context.Background())
	o := outcome(1)
	if n := testing.AllocsPerRun(10000, func() { rec.Observe(o) }); n != 0 {
		t.Errorf("Observe allocates %v times", n)
	}
}

// TestRecorderMetrics: the counters are exported through the injected
// MeterProvider, attributed to the experiment only.
func TestRecorderMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	var rm metricdata.ResourceMetrics
	rec := recorder.New(memstore.New(), experiments.Recording{FlushInterval: experiments.Duration(time.Millisecond)},
		recorder.WithLogger(quiet), recorder.WithMeterProvider(mp))
	for i := 0; i < 7; i++ {
		rec.Observe(outcome(i))
	}
	deadline := time.Now().Add(5 * time.Second)
	for rec.Stats().Persisted != 7 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	defer rec.Close(context.Background())
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "abgate.recorder.events.persisted" {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s is %T", m.Name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				if dp.Attributes.Len() != 1 {
					t.Errorf("attributes %v, want only experiment", dp.Attributes)
				}
				if v, _ := dp.Attributes.Value("experiment"); v.AsString() == "e" && dp.Value == 7 {
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf("no persisted=7 for experiment e in %+v", rm)
	}
}

// BenchmarkObserve measures the gateway's hot path. "accept": the queue
// has room (the timer stops while the recorder catches up); "full": the
// queue is full and every call is a counted drop; "parallel": all cores
// observing at once, mostly into a full queue.
func BenchmarkObserve(b *testing.B) {
	o := outcome(1)
	b.Run("accept", func(b *testing.B) {
		rec := recorder.New(memstore.New(), experiments.Recording{QueueSize: 1 << 16, BatchSize: 1 << 16, FlushInterval: experiments.Duration(time.Millisecond)},
			recorder.WithLogger(quiet))
		defer rec.Close(context.Background())
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if i&(1<<14-1) == 0 {
				b.StopTimer()
				for rec.Stats().Pending > 0 {
					time.Sleep(50 * time.Microsecond)
				}
				b.StartTimer()
			}
			rec.Observe(o)
		}
		b.StopTimer()
		if s := rec.Stats(); s.Dropped > 0 {
			b.Fatalf("dropped %d", s.Dropped)
		}
	})
	b.Run("full", func(b *testing.B) {
		rec := recorder.New(memstore.New(), experiments.Recording{QueueSize: 1024, FlushInterval: experiments.Duration(time.Hour)},
			recorder.WithLogger(quiet))
		defer rec.Close(context.Background())
		for i := 0; i < 1024; i++ {
			rec.Observe(o)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			rec.Observe(o)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		rec := recorder.New(memstore.New(), experiments.Recording{QueueSize: 1 << 16}, recorder.WithLogger(quiet))
		defer rec.Close(context.Background())
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rec.Observe(o)
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(rec.Stats().DroppedQueueFull)/float64(b.N), "dropped/op")
	})
}

// spyStore keeps the batches it is given.
type spyStore struct {
	experiments.Store
	mu      sync.Mutex
	batches []*experiments.Batch
}

func (s *spyStore) Apply(ctx context.Context, b *experiments.Batch) (experiments.ApplyResult, error) {
	s.mu.Lock()
	s.batches = append(s.batches, b)
	s.mu.Unlock()
	return s.Store.Apply(ctx, b)
}

// TestRecorderPreAggregates: a user's observations within a flush reach
// the store as one delta per metric; events without a time go into the
// clock's hour; streams add their own metrics.
func TestRecorderPreAggregates(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 13, 45, 0, 0, time.UTC)
	spy := &spyStore{Store: memstore.New()}
	rec := recorder.New(spy, experiments.Recording{BatchSize: 1 << 20, FlushInterval: experiments.Duration(time.Hour)},
		recorder.WithLogger(quiet), recorder.WithClock(func() time.Time { return now }))
	for i := 0; i < 1000; i++ {
		rec.Observe(experiments.Outcome{Experiment: "agg", Phase: 1, Variant: 1, Unit: storetest.Unit(1), Analysed: true,
			Latency: 2 * time.Millisecond, TTFB: time.Millisecond, Stream: true, MaxGap: 3 * time.Millisecond, StreamAborted: i%4 == 0})
	}
	if err := rec.Feedback(experiments.Feedback{Experiment: "agg", Phase: 1, Variant: 1, Unit: storetest.Unit(1), Metric: "thumbs", Value: 1}); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(spy.batches) != 1 {
		t.Fatalf("%d batches, want 1", len(spy.batches))
	}
	b := spy.batches[0]
	if b.Count != 1001 || len(b.Deltas) != 11 { // ten request metrics + thumbs
		t.Fatalf("batch count %d with %d deltas, want 1001 events in 11 deltas: %+v", b.Count, len(b.Deltas), b.Deltas)
	}
	for _, d := range b.Deltas {
		if d.Hour != experiments.HourOf(now) {
			t.Errorf("%s in hour %v, want the clock's %v", d.Metric, d.Hour, experiments.HourOf(now))
		}
		if d.Metric == experiments.MetricStreamAborted && (d.DX != 250 || d.DY != 1000) {
			t.Errorf("stream_aborted delta %+v", d)
		}
		if d.Metric == experiments.MetricMaxGapMS && d.DX != 3000 {
			t.Errorf("max_gap_ms delta %+v", d)
		}
	}
	hs, err := spy.Hourly(context.Background(), "agg", 1, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil || len(hs) != 1 || !hs[0].Hour.Equal(now.Truncate(time.Hour)) {
		t.Errorf("hourly %v, %v", hs, err)
	}
}

// TestApplySpans: every batch the store is handed gets a span saying what
// it carried; a failed attempt is an error span, and its retry says it is
// the second attempt.
func TestApplySpans(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	fs := &flakyStore{Store: memstore.New()}
	fs.down.Store(true)
	rec := recorder.New(fs, experiments.Recording{BatchSize: 100, FlushInterval: experiments.Duration(time.Millisecond)},
		recorder.WithLogger(quiet), recorder.WithRetryBackoff(time.Millisecond, 2*time.Millisecond), recorder.WithTracerProvider(tp))
	for i := 0; i < 10; i++ {
		rec.Observe(outcome(i))
	}
	for rec.Stats().FlushFailures == 0 {
		time.Sleep(time.Millisecond)
	}
	fs.down.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ended := spans.Ended()
	if len(ended) < 2 {
		t.Fatalf("%d apply spans, want a failed one and a successful one", len(ended))
	}
	attrs := func(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
		m := map[attribute.Key]attribute.Value{}
		for _, kv := range s.Attributes() {
			m[kv.Key] = kv.Value
		}
		return m
	}
	first, last := ended[0], ended[len(ended)-1]
	for _, s := range ended {
		if s.Name() != "abgate.recorder.apply" {
			t.Errorf("span %q", s.Name())
		}
	}
	if first.Status().Code != codes.Error || len(first.Events()) == 0 {
		t.Errorf("first attempt: status %v, %d events; want an error recorded", first.Status(), len(first.Events()))
	}
	a := attrs(last)
	if last.Status().Code == codes.Error {
		t.Errorf("last attempt failed: %v", last.Status())
	}
	if a["abgate.experiment"].AsString() != "e" || a["abgate.batch.events"].AsInt64() != 10 || a["abgate.batch.id"].AsString() == "" {
		t.Errorf("last span's attributes: %v", a)
	}
	if a["abgate.batch.attempt"].AsInt64() < 2 {
		t.Errorf("last span's attempt = %d, want the retry (≥ 2)", a["abgate.batch.attempt"].AsInt64())
	}
	if _, ok := a["abgate.batch.duplicate"]; !ok {
		t.Errorf("last span has no abgate.batch.duplicate: %v", a)
	}
}
