package redisstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/redisstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/recorder"
)

var quiet = slog.New(slog.DiscardHandler)

func checkAccounting(t testing.TB, s recorder.Stats, closed bool) {
	t.Helper()
	if s.Accepted != s.Persisted+s.Dropped+s.Pending {
		t.Errorf("accepted %d != persisted %d + dropped %d + pending %d", s.Accepted, s.Persisted, s.Dropped, s.Pending)
	}
	if closed && s.Pending != 0 {
		t.Errorf("pending %d after Close", s.Pending)
	}
}

// gen makes the load of one simulated gateway replica and keeps the raw
// observations it sent.
type gen struct {
	r   *rand.Rand
	obs []storetest.Obs
	at  time.Time
}

func (g *gen) outcome(users int) experiments.Outcome {
	u := g.r.IntN(users)
	o := experiments.Outcome{
		Experiment: "two", Phase: 1, Variant: u % 2, Unit: storetest.Unit(u), Analysed: true, At: g.at,
		Latency:      time.Duration(g.r.IntN(3000)+1) * time.Millisecond,
		TTFB:         time.Duration(g.r.IntN(200)+1) * time.Millisecond,
		PromptTokens: g.r.IntN(500), CompletionTokens: g.r.IntN(800), Error: g.r.IntN(50) == 0,
		Fallback: g.r.IntN(100) == 0, Cost: float64(g.r.IntN(1000)) / 1024, // exact binary fractions
	}
	e, fb := 0.0, 0.0
	if o.Error {
		e = 1
	}
	if o.Fallback {
		fb = 1
	}
	for m, x := range map[string]float64{
		"requests": 1, "latency_ms": float64(o.Latency.Milliseconds()), "ttfb_ms": float64(o.TTFB.Milliseconds()),
		"prompt_tokens": float64(o.PromptTokens), "completion_tokens": float64(o.CompletionTokens), "error": e,
		"fallback": fb, "cost": o.Cost,
	} {
		g.obs = append(g.obs, storetest.Obs{Variant: o.Variant, Unit: o.Unit, Metric: m, X: x, Y: 1})
	}
	if o.PromptTokens > 0 { // issue 15: cached over prompt tokens
		o.CachedTokens = o.PromptTokens / 4
		g.obs = append(g.obs, storetest.Obs{Variant: o.Variant, Unit: o.Unit, Metric: experiments.MetricCacheHitRatio, X: float64(o.CachedTokens), Y: float64(o.PromptTokens)})
	}
	return o
}

// TestTwoRecorders: two recorders (two gateway replicas) record into the
// same Redis under concurrent load; the persisted statistics equal what
// the load generator sent, exactly. Feedback event ids are sent through
// both replicas (a client retrying elsewhere) and count once.
func TestTwoRecorders(t *testing.T) {
	srv := storetest.StartRedis(t)
	twoRecorders(t, func() redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: srv.Addr}) })
}

// TestTwoRecordersCluster is TestTwoRecorders against a 3-master Redis
// Cluster.
func TestTwoRecordersCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	addrs := storetest.StartRedisCluster(t)
	twoRecorders(t, func() redis.UniversalClient {
		return redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, IsClusterMode: true})
	})
}

func twoRecorders(t *testing.T, newClient func() redis.UniversalClient) {
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	const perWorker = 15000
	var all []storetest.Obs
	var mu sync.Mutex
	var stats []recorder.Stats
	var wg sync.WaitGroup
	for rep := 0; rep < 2; rep++ {
		c := newClient()
		t.Cleanup(func() { c.Close() })
		rec := recorder.New(redisstore.New(c, redisstore.WithChunkEntries(1000)),
			experiments.Recording{BatchSize: 1024, FlushInterval: experiments.Duration(20 * time.Millisecond)},
			recorder.WithLogger(quiet))
		var rwg sync.WaitGroup
		for w := 0; w < 2; w++ {
			rwg.Add(1)
			go func(w int) {
				defer rwg.Done()
				g := &gen{r: rand.New(rand.NewPCG(uint64(rep), uint64(w))), at: at}
				for i := 0; i < perWorker; i++ {
					rec.Observe(g.outcome(2000))
					if i%3 == 0 {
						// the same event id from both replicas, same content
						id := fmt.Sprintf("w%d-%d", w, i)
						u := (w*perWorker + i) % 2000
						f := experiments.Feedback{Experiment: "two", Phase: 1, Variant: u % 2, Unit: storetest.Unit(u), EventID: id, Metric: "rating", Value: float64(1 + i%5), At: at}
						for rec.Feedback(f) != nil {
							time.Sleep(time.Millisecond)
						}
						g.obs = append(g.obs, storetest.Obs{Variant: f.Variant, Unit: f.Unit, Metric: "rating", X: f.Value, Y: 1, EventID: id})
					}
					if i%2000 == 0 {
						time.Sleep(time.Millisecond) // don't outrun the queue
					}
				}
				mu.Lock()
				all = append(all, g.obs...)
				mu.Unlock()
			}(w)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rwg.Wait()
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := rec.Close(cctx); err != nil {
				t.Error(err)
			}
			mu.Lock()
			stats = append(stats, rec.Stats())
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, s := range stats {
		checkAccounting(t, s, true)
		if s.Dropped != 0 {
			t.Errorf("dropped: %+v", s)
		}
	}
	c := newClient()
	defer c.Close()
	snap, err := redisstore.New(c).Summaries(ctx, "two", 1)
	if err != nil {
		t.Fatal(err)
	}
	want := storetest.Expected(all)
	storetest.CompareExact(t, snap.Stats, want)
	for v := 0; v < 2; v++ {
		got := snap.Stats[experiments.VariantMetric{Variant: v, Metric: "requests"}]
		t.Logf("variant %d: %v users, %v requests", v, got.N, got.SumY)
	}
}

// TestRecorderRedisFault: the test's redis-server is killed mid-run and
// started again on the same port; Observe never blocks, nothing panics,
// and the accounting holds.
func TestRecorderRedisFault(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test skipped in -short mode")
	}
	srv := storetest.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: 100 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	rec := recorder.New(redisstore.New(c), experiments.Recording{QueueSize: 8192, BatchSize: 512, FlushInterval: experiments.Duration(10 * time.Millisecond)},
		recorder.WithLogger(quiet), recorder.WithApplyTimeout(300*time.Millisecond),
		recorder.WithRetryBackoff(10*time.Millisecond, 100*time.Millisecond), recorder.WithPendingLimit(20000))
	var stop atomic.Bool
	var sent, slow atomic.Int64
	var maxObserve atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			g := &gen{r: rand.New(rand.NewPCG(uint64(w), 7)), at: time.Now()}
			for !stop.Load() {
				o := g.outcome(1000)
				g.obs = g.obs[:0]
				t0 := time.Now()
				rec.Observe(o)
				if d := time.Since(t0); d > time.Millisecond {
					slow.Add(1)
					if int64(d) > maxObserve.Load() {
						maxObserve.Store(int64(d))
					}
				}
				sent.Add(1)
				if sent.Load()%20 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}(w)
	}
	time.Sleep(700 * time.Millisecond)
	before := rec.Stats()
	srv.Stop()
	time.Sleep(1200 * time.Millisecond)
	during := rec.Stats()
	checkAccounting(t, during, false)
	srv.Restart()
	time.Sleep(1200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	s := rec.Stats()
	checkAccounting(t, s, true)
	if s.Accepted != sent.Load() {
		t.Errorf("accepted %d, sent %d", s.Accepted, sent.Load())
	}
	if during.FlushFailures == before.FlushFailures {
		t.Errorf("no flush failures while Redis was down: before %+v during %+v", before, during)
	}
	if s.Persisted <= during.Persisted {
		t.Errorf("nothing persisted after the restart: %+v", s)
	}
	t.Logf("sent %d; before kill %+v\nduring outage %+v\nfinal %+v\nObserve calls over 1ms: %d (max %v)",
		sent.Load(), before, during, s, slow.Load(), time.Duration(maxObserve.Load()))
	// Wall time under -race on 2 cores includes preemption; Redis was down
	// for 1.2s, so a blocking Observe would show far more than this.
	if time.Duration(maxObserve.Load()) > 500*time.Millisecond {
		t.Errorf("Observe blocked for %v", time.Duration(maxObserve.Load()))
	}
}

// TestRecorderRedisPaused: Redis stops answering (CLIENT PAUSE) for longer
// than the apply timeout, so batches time out after being sent and are
// retried; each is applied exactly once and the store matches the load.
func TestRecorderRedisPaused(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode")
	}
	srv := storetest.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: 150 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	rec := recorder.New(redisstore.New(c, redisstore.WithChunkEntries(300)), experiments.Recording{BatchSize: 256, FlushInterval: experiments.Duration(10 * time.Millisecond)},
		recorder.WithLogger(quiet), recorder.WithApplyTimeout(150*time.Millisecond),
		recorder.WithRetryBackoff(10*time.Millisecond, 50*time.Millisecond))
	g := &gen{r: rand.New(rand.NewPCG(3, 3)), at: time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)}
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		for i := 0; i < 3000; i++ {
			rec.Observe(g.outcome(500))
		}
		time.Sleep(30 * time.Millisecond)
		if err := admin.Do(ctx, "CLIENT", "PAUSE", "600", "WRITE").Err(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3000; i++ {
			rec.Observe(g.outcome(500))
		}
		time.Sleep(700 * time.Millisecond)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := rec.Close(cctx); err != nil {
		t.Fatal(err)
	}
	s := rec.Stats()
	checkAccounting(t, s, true)
	if s.Dropped != 0 || s.Persisted != 18000 {
		t.Fatalf("stats %+v", s)
	}
	t.Logf("%+v", s)
	snap, err := redisstore.New(admin).Summaries(ctx, "two", 1)
	if err != nil {
		t.Fatal(err)
	}
	storetest.CompareExact(t, snap.Stats, storetest.Expected(g.obs))
}

// BenchmarkRecorderRedis measures recorder throughput into a local Redis:
// 10k users, 2 variants, events/s persisted (Observe → aggregate → Lua).
func BenchmarkRecorderRedis(b *testing.B) {
	c := newClient(b)
	for _, users := range []int{10000, 1000000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) { benchRecorder(b, c, users) })
	}
}

// BenchmarkRecorderRedisCluster is BenchmarkRecorderRedis against a
// 3-master cluster (one experiment lives in one slot, so one master does
// the work: the cluster spreads experiments, not one experiment).
func BenchmarkRecorderRedisCluster(b *testing.B) {
	addrs := storetest.StartRedisCluster(b)
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, IsClusterMode: true})
	defer c.Close()
	benchRecorder(b, c, 10000)
}

// benchRecorder observes b.N outcomes of users users over 2 variants.
func benchRecorder(b *testing.B, c redis.UniversalClient, users int) {
	exp := storetest.NewID("bench")
	rec := recorder.New(redisstore.New(c), experiments.Recording{QueueSize: 1 << 18},
		recorder.WithLogger(quiet))
	outs := make([]experiments.Outcome, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	for i := range outs {
		u := r.IntN(users)
		outs[i] = experiments.Outcome{Experiment: exp, Phase: 1, Variant: u % 2, Unit: storetest.Unit(u), Analysed: true, At: now,
			Latency: time.Duration(r.IntN(3000)) * time.Millisecond, TTFB: time.Duration(r.IntN(300)+1) * time.Millisecond,
			PromptTokens: r.IntN(500), CompletionTokens: r.IntN(800), Cost: float64(r.IntN(100)) / 1000}
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		rec.Observe(outs[i&(len(outs)-1)])
		if i&1023 == 0 {
			// Pace to what the recorder takes: a full queue would drop.
			for rec.Stats().Pending > 1<<17 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	if err := rec.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	s := rec.Stats()
	b.ReportMetric(float64(s.Persisted)/el.Seconds(), "events/s")
	b.ReportMetric(float64(s.Dropped), "dropped")
}
