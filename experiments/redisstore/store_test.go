package redisstore_test

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/redisstore"
	"github.com/abgate/abgate/experiments/storetest"
)

func checkTTLs(c redis.UniversalClient, prefix string) func(*testing.T, experiments.Store, string, time.Duration) {
	return func(t *testing.T, _ experiments.Store, exp string, after time.Duration) {
		ctx := context.Background()
		keySet := prefix + ":{exp:" + exp + "}:keys"
		members, err := c.SMembers(ctx, keySet).Result()
		if err != nil || len(members) < 8 {
			t.Fatalf("key set %s: %v, %v", keySet, members, err)
		}
		for _, k := range append(members, keySet) {
			ttl, err := c.PTTL(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if ttl == -2 { // tracked but never created (e.g. no counters)
				continue
			}
			if ttl <= 0 || ttl > after {
				t.Errorf("%s: TTL %v, want in (0, %v]", k, ttl, after)
			}
		}
		// Every key of the experiment is tracked (batch markers have their
		// own, shorter TTL).
		var all []string
		iter := c.Scan(ctx, 0, prefix+":{exp:"+exp+"}:*", 1000).Iterator()
		for iter.Next(ctx) {
			all = append(all, iter.Val())
		}
		if len(all) > 0 { // Scan on a cluster client scans one node; fine for a check
			for _, k := range all {
				ttl, _ := c.PTTL(ctx, k).Result()
				if ttl <= 0 {
					t.Errorf("%s has no TTL", k)
				}
			}
		}
	}
}

// expireHistory checks that every pre-exposure history key of exp has
// the history TTL and deletes them, as Redis would once it passes.
func expireHistory(c redis.UniversalClient, prefix string) func(*testing.T, experiments.Store, string, time.Duration) {
	return func(t *testing.T, _ experiments.Store, exp string, ttl time.Duration) {
		ctx := context.Background()
		var keys []string
		scan := func(ctx context.Context, n *redis.Client) error {
			iter := n.Scan(ctx, 0, prefix+":{exp:"+exp+"}:pre:*", 1000).Iterator()
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			return iter.Err()
		}
		var err error
		if cc, ok := c.(*redis.ClusterClient); ok {
			var mu sync.Mutex
			err = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
				mu.Lock()
				defer mu.Unlock()
				return scan(ctx, n)
			})
		} else {
			err = scan(ctx, c.(*redis.Client))
		}
		if err != nil || len(keys) < 100 {
			t.Fatalf("history keys of %s: %d, %v", exp, len(keys), err)
		}
		for _, k := range keys {
			d, err := c.PTTL(ctx, k).Result()
			if err != nil || d <= ttl-time.Minute || d > ttl {
				t.Errorf("%s: TTL %v (%v), want about %v", k, d, err, ttl)
			}
			if err := c.Del(ctx, k).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestConformance(t *testing.T) {
	c := newClient(t)
	// A small chunk size so batches are cut into several script calls.
	storetest.Run(t, func(t *testing.T) experiments.Store {
		return redisstore.New(c, redisstore.WithPrefix("t1"), redisstore.WithChunkEntries(97))
	}, storetest.WithExpiryCheck(checkTTLs(c, "t1")), storetest.WithHistoryExpiry(expireHistory(c, "t1")))
}

func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	addrs := storetest.StartRedisCluster(t)
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, IsClusterMode: true})
	t.Cleanup(func() { c.Close() })
	if _, ok := c.(*redis.ClusterClient); !ok {
		t.Fatalf("got %T, want a ClusterClient", c)
	}
	storetest.Run(t, func(t *testing.T) experiments.Store {
		return redisstore.New(c, redisstore.WithChunkEntries(500))
	}, storetest.WithExpiryCheck(checkTTLs(c, redisstore.DefaultPrefix)), storetest.WithHistoryExpiry(expireHistory(c, redisstore.DefaultPrefix)))
}

// TestScriptFlushed: EVALSHA of an unknown script (first use, SCRIPT FLUSH
// or a restarted server) loads it and applies the batch once.
func TestScriptFlushed(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	s := redisstore.New(c, redisstore.WithChunkEntries(50))
	r := rand.New(rand.NewPCG(1, 1))
	exp := storetest.NewID("flush")
	var obs []storetest.Obs
	for i := 0; i < 3; i++ {
		if err := c.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 500; j++ {
			u := r.IntN(100)
			obs = append(obs, storetest.Obs{Variant: u % 2, Unit: storetest.Unit(u), Metric: "m", Hour: 5, X: float64(r.IntN(9)), Y: 1})
		}
		for _, b := range storetest.ToBatches(exp, 1, obs[len(obs)-500:], 500) {
			if _, err := s.Apply(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	snap, err := s.Summaries(ctx, exp, 1)
	if err != nil {
		t.Fatal(err)
	}
	storetest.CompareExact(t, snap.Stats, storetest.Expected(obs))
}

// TestUserStateCompact: a user's totals for all metrics are one hash
// field, and no raw unit id is stored.
func TestUserStateCompact(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	s := redisstore.New(c)
	exp := storetest.NewID("compact")
	u := storetest.Unit(7)
	b := &experiments.Batch{ID: "b1", Experiment: exp, Phase: 1}
	for _, m := range []string{"requests", "latency_ms", "ttfb_ms", "error", "fallback", "prompt_tokens", "completion_tokens", "cost"} {
		b.Deltas = append(b.Deltas, experiments.Delta{Variant: 1, Unit: u, Metric: m, Hour: 1, DX: 1234.5, DY: 1})
	}
	if _, err := s.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	fields, err := c.HGetAll(ctx, "abgate:{exp:"+exp+"}:p1:u:1").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(fields) != 1 {
		t.Fatalf("user hash has %d fields, want 1", len(fields))
	}
	for k, v := range fields {
		if len(k) != 32 {
			t.Errorf("field %q is not the unit key in hex", k)
		}
		t.Logf("user state: %d bytes for 8 metrics", len(v))
		if len(v) > 8*12 {
			t.Errorf("user state is %d bytes", len(v))
		}
	}
}

// TestHistoryCompact measures what CUPED adds in Redis per user: their
// pre-exposure history key (ten request metrics) and their entry in the
// salt phase's copies (docs/recording.md).
func TestHistoryCompact(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	s := redisstore.New(c)
	exp := storetest.NewID("histsize")
	const users = 1000
	metrics := []string{experiments.MetricRequests, experiments.MetricLatencyMS, experiments.MetricTTFBMS, experiments.MetricMaxGapMS,
		experiments.MetricError, experiments.MetricFallback, experiments.MetricStreamAborted,
		experiments.MetricPromptTokens, experiments.MetricCompletionTokens, experiments.MetricCost}
	cov := storetest.CovariatesFor(exp, 1, 24*time.Hour)
	hist := &experiments.Batch{ID: "h", Experiment: exp, Phase: 1, Covariates: cov}
	exposed := &experiments.Batch{ID: "e", Experiment: exp, Phase: 2, Covariates: cov}
	for u := range users {
		for j, m := range metrics {
			hist.History = append(hist.History, experiments.Delta{Unit: storetest.Unit(u), Metric: m, DX: 1234.567 + float64(j*u%97), DY: 3})
		}
		exposed.Deltas = append(exposed.Deltas, experiments.Delta{Variant: u % 2, Unit: storetest.Unit(u), Metric: experiments.MetricRequests, Hour: 1, DX: 1, DY: 1})
	}
	for _, b := range []*experiments.Batch{hist, exposed} {
		if _, err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	prefix := "abgate:{exp:" + exp + "}"
	var pre int64
	for u := range users {
		unit := storetest.Unit(u)
		k := prefix + ":pre:" + hex.EncodeToString(unit[:])
		n, err := c.MemoryUsage(ctx, k).Result()
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		pre += n
	}
	copies, err := c.MemoryUsage(ctx, prefix+":s1:z").Result()
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.MemoryUsage(ctx, prefix+":s1:first").Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("per user: history key %d bytes, copy %d bytes (10 metrics), first-exposure period %d bytes", pre/users, copies/users, first/users)
	if pre/users > 400 || copies/users > 300 || first/users > 100 {
		t.Errorf("per user: history %d bytes, copy %d bytes", pre/users, copies/users)
	}
}

// BenchmarkApply applies batches of 4096 distinct users × 8 request
// metrics (the worst case: no merging) and reports the cost per user and
// the Redis-side script time.
func BenchmarkApply(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchmarkApply(b, false) })
	b.Run("cuped", func(b *testing.B) { benchmarkApply(b, true) })
}

// benchmarkApply: with cuped, every batch also carries Covariates (the
// history of each user is read and written, their copy made once).
func benchmarkApply(b *testing.B, cuped bool) {
	c := newClient(b)
	s := redisstore.New(c)
	ctx := context.Background()
	exp := storetest.NewID("apply")
	var cov *experiments.Covariates
	if cuped {
		cov = storetest.CovariatesFor(exp, 1, time.Hour)
	}
	metrics := []string{"requests", "latency_ms", "ttfb_ms", "error", "fallback", "prompt_tokens", "completion_tokens", "cost"}
	const users = 4096
	mk := func(round int) *experiments.Batch {
		bt := &experiments.Batch{ID: storetest.BatchID(), Experiment: exp, Phase: 1, Covariates: cov}
		for u := 0; u < users; u++ {
			for j, m := range metrics {
				bt.Deltas = append(bt.Deltas, experiments.Delta{Variant: u % 2, Unit: storetest.Unit(round*users + u), Metric: m, Hour: 100, DX: float64(j*u%977) + 0.5, DY: 1})
			}
		}
		return bt
	}
	batches := make([]*experiments.Batch, 8)
	for i := range batches {
		batches[i] = mk(i)
	}
	_ = c.ConfigResetStat(ctx)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bt := *batches[i%len(batches)]
		bt.ID = storetest.BatchID()
		if _, err := s.Apply(ctx, &bt); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*users), "ns/user")
	info, _ := c.Info(ctx, "commandstats").Result()
	for _, line := range strings.Split(info, "\n") {
		if strings.HasPrefix(line, "cmdstat_evalsha:") {
			b.Logf("%s", strings.TrimSpace(line))
		}
	}
}
