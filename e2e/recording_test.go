package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/redisstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/gateway"
	"github.com/abgate/abgate/internal/fakemodel"
	"github.com/abgate/abgate/recorder"
)

// recordingConfig is one 50/50 experiment behind the alias "exact", with
// an upstream that reports 20 prompt and 40 completion tokens.
func recordingConfig(t *testing.T) *experiments.Config {
	t.Helper()
	up := httptest.NewServer(&fakemodel.Model{})
	t.Cleanup(up.Close)
	cfg := &experiments.Config{
		Server:    experiments.Server{TokenSecret: "0123456789abcdef0123456789abcdef"},
		Upstreams: []experiments.Upstream{{Name: "up", URL: up.URL}},
		Experiments: []experiments.Experiment{{ID: "exact", Variants: []experiments.Variant{
			{Name: "base", Upstream: "up", Model: "m-base"},
			{Name: "ft", Upstream: "up", Model: "m-ft", Weight: 50},
		}}},
		Routes:    []experiments.Route{{Alias: "exact", Experiment: "exact"}},
		Recording: experiments.Recording{FlushInterval: experiments.Duration(20 * time.Millisecond)},
	}
	cfg.SetDefaults()
	if err := cfg.ValidateForServe(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// replicaGateway is one gateway process: its own Redis client, store and
// recorder, serving on its own address.
type replicaGateway struct {
	url string
	rec *recorder.Recorder
}

func startGateway(t *testing.T, cfg *experiments.Config, redisAddr, prefix string) *replicaGateway {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: redisAddr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	store := redisstore.New(client, redisstore.WithPrefix(prefix), redisstore.WithLogger(quiet))
	rec := recorder.New(store, cfg.Recording, recorder.WithLogger(quiet),
		recorder.WithRetryBackoff(10*time.Millisecond, 100*time.Millisecond), recorder.WithApplyTimeout(time.Second))
	signer := experiments.NewSigner([]byte(cfg.Server.TokenSecret.Reveal()), time.Hour)
	h, err := gateway.New(cfg, signer, gateway.WithRecorder(rec), gateway.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Engine())
	t.Cleanup(srv.Close)
	return &replicaGateway{url: srv.URL, rec: rec}
}

// sent is what the load generator saw: per variant, each user's number of
// answered requests.
type sent struct {
	mu    sync.Mutex
	users map[string]map[string]int // variant name -> user -> requests
}

func (s *sent) add(variant, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[variant] == nil {
		s.users[variant] = map[string]int{}
	}
	s.users[variant][user]++
}

// load sends n requests from workers goroutines, alternating between the
// gateways, each from one of pool users; every answer must be a 200.
func load(t *testing.T, gws []*replicaGateway, workers, n, pool int, s *sent, during func(i int64)) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if during != nil {
					during(i)
				}
				user := fmt.Sprintf("u-%d", rand.IntN(pool))
				gw := gws[int(i)%len(gws)]
				req, _ := http.NewRequest(http.MethodPost, gw.url+"/v1/chat/completions",
					strings.NewReader(`{"model":"exact","messages":[{"role":"user","content":"hi"}]}`))
				req.Header.Set("X-User-ID", user)
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("request %d: status %d", i, resp.StatusCode)
					return
				}
				s.add(resp.Header.Get(gateway.HeaderVariant), user)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestTwoGatewaysOneRedisExact: two gateway instances, as two replicas
// would run, record into one redis-server under concurrent load; the
// persisted per-variant statistics equal what the load generator was
// answered, exactly: users, requests, the per-user sum of squares, and
// the token sums.
func TestTwoGatewaysOneRedisExact(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a redis-server")
	}
	rs := storetest.StartRedis(t)
	cfg := recordingConfig(t)
	prefix := "e2e-exact"
	gws := []*replicaGateway{startGateway(t, cfg, rs.Addr, prefix), startGateway(t, cfg, rs.Addr, prefix)}
	s := &sent{users: map[string]map[string]int{}}
	const requests = 3000
	load(t, gws, 16, requests, 400, s, nil)

	ctx := context.Background()
	for i, gw := range gws {
		if err := gw.rec.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if st := gw.rec.Stats(); st.Accepted != st.Persisted || st.Dropped != 0 {
			t.Errorf("gateway %d: %+v", i, st)
		}
	}
	client := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer client.Close()
	snap, err := redisstore.New(client, redisstore.WithPrefix(prefix)).Summaries(ctx, "exact", 1)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for v, name := range []string{"base", "ft"} {
		var users, reqs, sq float64
		for _, c := range s.users[name] {
			users++
			reqs += float64(c)
			sq += float64(c * c)
		}
		total += int(reqs)
		got := snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricRequests}]
		want := experiments.Summary{N: users, SumX: reqs, SumX2: sq, SumY: reqs, SumY2: sq, SumXY: sq, SumR: users, SumR2: users} // each user's requests/requests = 1
		if got != want {
			t.Errorf("%s requests: stored %+v, sent %+v", name, got, want)
		}
		for metric, per := range map[string]float64{experiments.MetricPromptTokens: 20, experiments.MetricCompletionTokens: 40} {
			got := snap.Stats[experiments.VariantMetric{Variant: v, Metric: metric}]
			if got.N != users || got.SumX != per*reqs || got.SumX2 != per*per*sq {
				t.Errorf("%s %s: stored %+v, want N %v Σx %v Σx² %v", name, metric, got, users, per*reqs, per*per*sq)
			}
		}
	}
	if total != requests {
		t.Errorf("the load generator counted %d answers, sent %d", total, requests)
	}
}

// TestGatewayRedisOutage: Redis stops in the middle of a load run
// through the gateway and comes back; every proxied request still
// succeeds, and once the recorder has closed, accepted = persisted +
// dropped, with what was persisted really in the store.
func TestGatewayRedisOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a redis-server")
	}
	rs := storetest.StartRedis(t)
	cfg := recordingConfig(t)
	gw := startGateway(t, cfg, rs.Addr, "e2e-outage")
	s := &sent{users: map[string]map[string]int{}}
	const requests = 1500
	// One worker takes Redis down for 1.5 s, longer than the recorder's
	// 1 s apply timeout, while the others keep sending: flushes fail.
	load(t, []*replicaGateway{gw}, 8, requests, 300, s, func(i int64) {
		if i == requests/3 {
			rs.Stop()
			time.Sleep(1500 * time.Millisecond)
			rs.Restart()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := gw.rec.Close(ctx); err != nil {
		t.Logf("close: %v", err)
	}
	st := gw.rec.Stats()
	if st.Accepted != requests || st.Accepted != st.Persisted+st.Dropped || st.Pending != 0 {
		t.Fatalf("after the outage: %+v (want accepted %d = persisted + dropped)", st, requests)
	}
	if st.FlushFailures == 0 {
		t.Errorf("no flush failed: the outage was not noticed (%+v)", st)
	}
	client := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer client.Close()
	snap, err := redisstore.New(client, redisstore.WithPrefix("e2e-outage")).Summaries(context.Background(), "exact", 1)
	if err != nil {
		t.Fatal(err)
	}
	// The server kept nothing across its restart (no persistence), so the
	// store holds what was flushed after it came back: at most what the
	// recorder counts as persisted, and something.
	var stored float64
	for v := range 2 {
		stored += snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricRequests}].SumX
	}
	if stored == 0 || stored > float64(st.Persisted) {
		t.Errorf("store holds %v requests, recorder persisted %d", stored, st.Persisted)
	}
	t.Logf("outage: accepted %d, persisted %d, dropped %d, flush failures %d, stored after restart %v",
		st.Accepted, st.Persisted, st.Dropped, st.FlushFailures, stored)
}
