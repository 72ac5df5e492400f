//go:build fault

// The fault and abuse suite (make fault): one abgate replica assembled as
// serve does, on a redis-server with AOF that the test starts, kills and
// restarts itself on a loopback port, under synthetic traffic. Each case
// prints one row: what clients saw, what the recorder accepted, what the
// store holds afterwards, whether the lifecycle state moved, and the heap.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/api"
	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/redisstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/gateway"
	"github.com/abgate/abgate/internal/fakemodel"
	"github.com/abgate/abgate/recorder"
	"github.com/abgate/abgate/rollout"
)

// faultStack is one replica on a Redis the test controls.
type faultStack struct {
	url    string
	srv    *httptest.Server // the gateway and the feedback API
	redis  *storetest.RedisServer
	rc     redis.UniversalClient
	store  *redisstore.Store
	lcs    *redisstore.Lifecycle
	lc     *rollout.Lifecycle
	ctl    *rollout.Controller
	w      *rollout.Watcher
	rec    *recorder.Recorder
	signer *experiments.Signer
	expID  string
	stop   func()
	// fbAccepted counts the feedback signals the recorder accepted (the
	// API's 200s, including those whose client left before reading it).
	fbAccepted atomic.Int64
}

// countingSink counts what the recorder accepts.
type countingSink struct {
	rec *recorder.Recorder
	n   *atomic.Int64
}

func (c countingSink) Feedback(f experiments.Feedback) error {
	err := c.rec.Feedback(f)
	if err == nil {
		c.n.Add(1)
	}
	return err
}

type faultOpts struct {
	recording experiments.Recording
	pending   int // recorder pending limit (0: default)
	limits    *api.FeedbackLimits
}

func startFaultStack(t *testing.T, o faultOpts) *faultStack {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	s := &faultStack{expID: "fault-ft"}
	s.redis = storetest.StartRedis(t, "--appendonly", "yes")
	s.rc = redis.NewClient(&redis.Options{Addr: s.redis.Addr, ContextTimeoutEnabled: true,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second})
	t.Cleanup(func() { s.rc.Close() })
	base := &fakemodel.Model{Name: "base", Quality: 0.6}
	tuned := &fakemodel.Model{Name: "tuned", Quality: 0.62}
	cfg := &experiments.Config{
		Server: experiments.Server{TokenSecret: "0123456789abcdef0123456789abcdef"},
		Experiments: []experiments.Experiment{{
			ID: s.expID, Primary: experiments.MetricThumbs,
			Rollout: &experiments.Rollout{Manual: true, Steps: []experiments.RampStep{{Percent: 50}}},
			Variants: []experiments.Variant{
				{Name: "base", Upstream: "base", Model: "m-base"},
				{Name: "tuned", Upstream: "tuned", Model: "m-tuned"},
			},
		}},
		Routes:     []experiments.Route{{Alias: "support", Experiment: s.expID}},
		Recording:  o.recording,
		Controller: experiments.Controller{Interval: experiments.Duration(100 * time.Millisecond), LeaseTTL: experiments.Duration(time.Second)},
	}
	if cfg.Recording.FlushInterval == 0 {
		cfg.Recording.FlushInterval = experiments.Duration(20 * time.Millisecond)
	}
	for name, m := range map[string]*fakemodel.Model{"base": base, "tuned": tuned} {
		srv := httptest.NewServer(m)
		t.Cleanup(srv.Close)
		cfg.Upstreams = append(cfg.Upstreams, experiments.Upstream{Name: name, URL: srv.URL})
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	s.signer = experiments.NewSigner([]byte(cfg.Server.TokenSecret.Reveal()), time.Hour)
	s.store = redisstore.New(s.rc, redisstore.WithLogger(quiet))
	ropts := []recorder.Option{recorder.WithLogger(quiet), recorder.WithApplyTimeout(500 * time.Millisecond),
		recorder.WithRetryBackoff(20*time.Millisecond, 200*time.Millisecond)}
	if o.pending > 0 {
		ropts = append(ropts, recorder.WithPendingLimit(o.pending))
	}
	s.rec = recorder.New(s.store, cfg.Recording, ropts...)
	h, err := gateway.New(cfg, s.signer, gateway.WithRecorder(s.rec), gateway.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	eng := gin.New()
	h.Register(eng)
	lookup := func(id string) *experiments.Experiment {
		if id == s.expID {
			return &cfg.Experiments[0]
		}
		return nil
	}
	var fopts []api.FeedbackOption
	if o.limits != nil {
		fopts = append(fopts, api.WithFeedbackLimits(*o.limits))
	}
	api.NewFeedback(s.signer, countingSink{s.rec, &s.fbAccepted}, lookup, fopts...).Register(eng)
	srv := httptest.NewServer(eng)
	t.Cleanup(srv.Close)
	s.url, s.srv = srv.URL, srv

	s.lcs = redisstore.NewLifecycle(s.rc, "")
	s.lc = rollout.NewLifecycle(s.lcs, cfg)
	s.ctl = rollout.NewController(s.lc, s.store, s.lcs, cfg.Controller, rollout.WithLogger(quiet),
		rollout.WithFenceFloor(func() int64 { return s.w.MaxFence() }))
	restore := func(ctx context.Context, last experiments.State) error {
		f := s.ctl.Fence()
		if f == 0 {
			return rollout.ErrNotLeader
		}
		_, err := s.lc.Restore(ctx, last, f, experiments.ControllerActor)
		return err
	}
	s.w = rollout.NewWatcher(s.lcs, cfg, func(id string, a *experiments.Allocation) {
		_ = h.SetAllocation(id, a)
	}, rollout.WithLogger(quiet), rollout.WithPollInterval(100*time.Millisecond), rollout.WithStoreLoss(nil, restore))
	if _, err := s.lc.Start(context.Background(), s.expID, "api:fault", "fault suite"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.ctl.Run(ctx) }()
	go func() { defer wg.Done(); s.w.Run(ctx) }()
	s.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(s.stop)
	waitUntil(t, 3*time.Second, "leader", func() bool { return s.ctl.Fence() > 0 })
	// As abgate serve does before it listens: the gateway serves the
	// stored state from the first request (the configured allocation
	// before it is the draft's, which serves the base unanalysed).
	if err := s.w.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// tally is what clients saw.
type tally struct {
	requests, requestFail    atomic.Int64
	fbSent, fb200            atomic.Int64
	fb429, fb503, fbOther    atomic.Int64
	fbRetried, fbRetryLanded atomic.Int64
	// fbUnanalysed counts 200s whose answer said "analysed": false: the
	// response's unit was not randomized, so the API accepts the feedback
	// without sending it to the recorder.
	fbUnanalysed atomic.Int64
	// fbAbandoned counts posts whose client gave up as the case ended: the
	// API may have accepted them without the client reading the 200.
	fbAbandoned atomic.Int64
}

// user asks one question and, 60% of the time, sends thumbs; a 503 is
// retried (same event id) until it lands or the case ends.
func (s *faultStack) user(ctx context.Context, c *http.Client, rng *rand.Rand, id string, tl *tally) {
	tl.requests.Add(1)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"support","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User-ID", id)
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			tl.requestFail.Add(1)
		}
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	tok := resp.Header.Get("X-Abgate-Token")
	if resp.StatusCode != http.StatusOK || tok == "" {
		tl.requestFail.Add(1)
		return
	}
	if rng.Float64() >= 0.6 {
		return
	}
	tl.fbSent.Add(1)
	body := fmt.Sprintf(`{"event_id":"%s-1","signals":{"thumbs":%t}}`, id, rng.Float64() < 0.6)
	for attempt := 0; ; attempt++ {
		code, analysed := s.postFeedback(ctx, c, tok, body)
		switch code {
		case http.StatusOK:
			tl.fb200.Add(1)
			if !analysed {
				tl.fbUnanalysed.Add(1)
			}
			if attempt > 0 {
				tl.fbRetryLanded.Add(1)
			}
			return
		case http.StatusServiceUnavailable:
			tl.fb503.Add(1)
			if attempt == 0 {
				tl.fbRetried.Add(1)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second): // Retry-After: 1
			}
		case http.StatusTooManyRequests:
			tl.fb429.Add(1)
			return
		default:
			if ctx.Err() == nil {
				tl.fbOther.Add(1)
			} else if code == 0 {
				tl.fbAbandoned.Add(1)
			}
			return
		}
	}
}

// postFeedback answers the status and, for a 200, whether the API sent
// the feedback on to the recorder (its "analysed" field).
func (s *faultStack) postFeedback(ctx context.Context, c *http.Client, tok, body string) (int, bool) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/feedback", bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Abgate-Token", tok)
	resp, err := c.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var res api.FeedbackResult
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
			return -1, false
		}
	}
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, res.Analysed
}

// traffic runs workers of new users for d while fault runs beside them.
func (s *faultStack) traffic(d time.Duration, workers int, fault func()) *tally {
	var tl tally
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	var n atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 10 * time.Second}
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for ctx.Err() == nil {
				s.user(ctx, c, rng, fmt.Sprintf("u%d", n.Add(1)), &tl)
			}
		}()
	}
	if fault != nil {
		fault()
	}
	wg.Wait()
	return &tl
}

// row is one line of the table.
type row struct {
	name                                string
	requests, requestFail               int64
	fbSent, fb200, fb429, fb503, fbLost int64
	fbUnanalysed, fbAbandoned           int64
	fbAccepted, fbStored                int64
	outAccepted, outPersisted, outDrop  int64
	state                               string
	heapMB                              float64
	note                                string
}

// finish closes the recorder and reads what the store holds. As abgate
// serve's shutdown does, the server stops first and waits for its
// handlers: the gateway records an outcome after the client has its
// answer, so a recorder closed while the last handlers still ran counted
// their outcomes as dropped_closed (one or two per baseline run).
func (s *faultStack) finish(t *testing.T, name string, tl *tally, before experiments.State) row {
	t.Helper()
	s.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.rec.Close(ctx); err != nil {
		t.Logf("%s: recorder close: %v", name, err)
	}
	st := s.rec.Stats()
	after, err := s.lc.State(ctx, s.expID)
	if err != nil {
		t.Fatalf("%s: state: %v", name, err)
	}
	var stored float64
	for _, period := range []int{before.Period, after.Period} {
		snap, err := s.store.Summaries(ctx, s.expID, period)
		if err != nil {
			t.Fatalf("%s: summaries: %v", name, err)
		}
		for v := 0; v < 2; v++ {
			stored += snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricThumbs}].SumY
		}
		if after.Period == before.Period {
			break
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r := row{
		name: name, requests: tl.requests.Load(), requestFail: tl.requestFail.Load(),
		fbSent: tl.fbSent.Load(), fb200: tl.fb200.Load(), fb429: tl.fb429.Load(), fb503: tl.fb503.Load(),
		fbUnanalysed: tl.fbUnanalysed.Load(), fbAbandoned: tl.fbAbandoned.Load(),
		fbAccepted: s.fbAccepted.Load(), fbStored: int64(stored),
		outAccepted: st.Accepted - s.fbAccepted.Load(), heapMB: float64(ms.HeapAlloc) / (1 << 20),
		state: fmt.Sprintf("%s@%d v%d → %s@%d v%d", before.Status, before.Step, before.Version, after.Status, after.Step, after.Version),
	}
	// Only outcomes are dropped, except feedback still pending when
	// Close's deadline passed (logged at error level by the recorder).
	r.outDrop = st.Dropped
	if st.DroppedClosed > 0 {
		r.note += fmt.Sprintf("%d outcomes observed after the recorder closed; ", st.DroppedClosed)
	}
	r.outPersisted = r.outAccepted - r.outDrop
	// The API's 200 means the recorder took the event, unless the answer
	// said "analysed": false (kept out of the statistics on purpose). The
	// recorder may hold a few more: posts whose client gave up as the
	// case ended, after the API had accepted them.
	if analysed := r.fb200 - r.fbUnanalysed; r.fbAccepted < analysed || r.fbAccepted > analysed+r.fbAbandoned {
		t.Errorf("%s: clients saw %d feedback 200s (%d not analysed, %d posts abandoned at the end), but the recorder accepted %d",
			name, r.fb200, r.fbUnanalysed, r.fbAbandoned, r.fbAccepted)
	}
	r.fbLost = r.fbAccepted - r.fbStored
	if tl.fbOther.Load() > 0 {
		r.note += fmt.Sprintf("%d feedback answered neither 200/429/503; ", tl.fbOther.Load())
	}
	return r
}

func (s *faultStack) state(t *testing.T) experiments.State {
	t.Helper()
	st, err := s.lc.State(context.Background(), s.expID)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestFault runs every case and prints the table (go test -tags fault -v).
func TestFault(t *testing.T) {
	var rows []row
	add := func(r row) { rows = append(rows, r) }
	const d = 3 * time.Second

	t.Run("baseline", func(t *testing.T) {
		s := startFaultStack(t, faultOpts{})
		before := s.state(t)
		tl := s.traffic(d, 4, nil)
		r := s.finish(t, "baseline", tl, before)
		add(r)
		if r.fbLost != 0 || r.outDrop != 0 {
			t.Errorf("feedback lost or outcomes dropped without a fault: %+v", r)
		}
	})

	t.Run("redis SIGKILL + restart (AOF)", func(t *testing.T) {
		s := startFaultStack(t, faultOpts{})
		before := s.state(t)
		tl := s.traffic(d, 4, func() {
			time.Sleep(700 * time.Millisecond)
			s.redis.Stop() // SIGKILL
			time.Sleep(time.Second)
			s.redis.Restart("--appendonly", "yes")
		})
		r := s.finish(t, "redis SIGKILL + restart (AOF)", tl, before)
		add(r)
		if r.fbLost != 0 || !strings.HasPrefix(r.state, "running@0") || !strings.Contains(r.state, "→ running@0") {
			t.Errorf("after a kill with AOF: %+v", r)
		}
	})

	t.Run("CLIENT PAUSE 1.5s", func(t *testing.T) {
		s := startFaultStack(t, faultOpts{})
		before := s.state(t)
		tl := s.traffic(d, 4, func() {
			time.Sleep(700 * time.Millisecond)
			if err := s.rc.Do(context.Background(), "CLIENT", "PAUSE", 1500, "ALL").Err(); err != nil {
				t.Errorf("CLIENT PAUSE: %v", err)
			}
		})
		r := s.finish(t, "CLIENT PAUSE 1.5s", tl, before)
		add(r)
		if r.fbLost != 0 {
			t.Errorf("after a pause: %+v", r)
		}
	})

	t.Run("redis restart empty", func(t *testing.T) {
		s := startFaultStack(t, faultOpts{})
		before := s.state(t)
		var lostSeen atomic.Bool
		tl := s.traffic(d, 4, func() {
			time.Sleep(700 * time.Millisecond)
			s.redis.Stop()
			s.redis.Restart("--appendonly", "no", "--appendfilename", "none.aof") // comes back empty
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) && !lostSeen.Load() {
				if len(s.w.Lost()) > 0 {
					lostSeen.Store(true)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
		waitUntil(t, 5*time.Second, "state restored", func() bool {
			st, err := s.lcs.State(context.Background(), s.expID)
			return err == nil && st.Status == experiments.StatusRunning
		})
		r := s.finish(t, "redis restart empty", tl, before)
		r.fbLost = 0 // not the recorder's: the store lost what it held
		ts, _ := s.lcs.Transitions(context.Background(), s.expID, 0)
		after := s.state(t)
		r.note += fmt.Sprintf("watcher saw loss: %t; trail after: %d transition(s), last %q; fence %d→%d; feedback before the loss is gone with the data",
			lostSeen.Load(), len(ts), lastAction(ts), before.Fence, after.Fence)
		add(r)
		if after.Status != experiments.StatusRunning || after.Step != before.Step || after.Period != before.Period || lastAction(ts) != string(experiments.ActionRestore) {
			t.Errorf("state after an empty restart: %+v (before %+v), trail %v", after, before, ts)
		}
	})

	t.Run("queue overflow (store down 2s)", func(t *testing.T) {
		s := startFaultStack(t, faultOpts{recording: experiments.Recording{QueueSize: 400, BatchSize: 100,
			FlushInterval: experiments.Duration(10 * time.Millisecond)}, pending: 600})
		before := s.state(t)
		tl := s.traffic(d+2*time.Second, 6, func() {
			time.Sleep(500 * time.Millisecond)
			s.redis.Stop()
			time.Sleep(2 * time.Second)
			s.redis.Restart("--appendonly", "yes")
		})
		r := s.finish(t, "queue overflow (store down 2s)", tl, before)
		r.note += fmt.Sprintf("503s retried by %d clients, %d landed", tl.fbRetried.Load(), tl.fbRetryLanded.Load())
		add(r)
		if r.fbLost != 0 {
			t.Errorf("accepted feedback lost on overflow: %+v", r)
		}
	})

	t.Run("feedback flood (3,000 ids, one token)", func(t *testing.T) {
		for _, limited := range []bool{false, true} {
			lim := api.FeedbackLimits{}
			name := "feedback flood, no rate limit"
			if limited {
				lim = api.DefaultFeedbackLimits
				name = "feedback flood, default limits"
			}
			s := startFaultStack(t, faultOpts{limits: &lim})
			before := s.state(t)
			c := &http.Client{}
			// A response of the candidate: ask as new users until one is.
			var tok string
			for i := 0; tok == ""; i++ {
				req, _ := http.NewRequest(http.MethodPost, s.url+"/v1/chat/completions",
					strings.NewReader(`{"model":"support","messages":[{"role":"user","content":"hi"}]}`))
				req.Header.Set("X-User-ID", fmt.Sprintf("flooder-%d", i))
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if got, err := s.signer.Verify(resp.Header.Get("X-Abgate-Token"), time.Now()); err == nil && got.Variant == 1 {
					tok = resp.Header.Get("X-Abgate-Token")
				}
			}
			// Honest users first: 40 on each arm-ish, 50% up.
			tl := s.traffic(time.Second, 2, nil)
			if err := s.waitPersisted(); err != nil {
				t.Fatal(err)
			}
			meanBefore := s.thumbsMean(t, 1, before.Period)
			tl.requests.Add(1)
			for i := 0; i < 3000; i++ {
				tl.fbSent.Add(1)
				code, _ := s.postFeedback(context.Background(), c, tok, fmt.Sprintf(`{"event_id":"flood-%d","signals":{"thumbs":"up"}}`, i))
				switch code {
				case 200:
					tl.fb200.Add(1)
				case 429:
					tl.fb429.Add(1)
				case 503:
					tl.fb503.Add(1)
				}
			}
			if err := s.waitPersisted(); err != nil {
				t.Fatal(err)
			}
			meanAfter := s.thumbsMean(t, 1, before.Period)
			r := s.finish(t, name, tl, before)
			// One vote per response: the 3,000 are stored once.
			r.fbLost = 0
			r.note += fmt.Sprintf("candidate thumbs mean %.3f → %.3f; the flood counted %d time(s)", meanBefore.mean, meanAfter.mean, int(meanAfter.n-meanBefore.n))
			add(r)
			if meanAfter.n-meanBefore.n > 1 {
				t.Errorf("%s: the flood moved the candidate by %v votes", name, meanAfter.n-meanBefore.n)
			}
			if limited && tl.fb429.Load() == 0 {
				t.Errorf("%s: no 429", name)
			}
		}
	})

	var b strings.Builder
	fmt.Fprintf(&b, "\n| case | requests | request failures | feedback posts | 200 | 429 | 503 | 200, not analysed | feedback accepted | feedback stored | accepted, not stored | outcomes accepted | outcomes persisted | outcomes dropped | lifecycle (status@step version) | heap MB | notes |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s | %.1f | %s |\n",
			r.name, r.requests, r.requestFail, r.fbSent, r.fb200, r.fb429, r.fb503, r.fbUnanalysed, r.fbAccepted, r.fbStored, r.fbLost,
			r.outAccepted, r.outPersisted, r.outDrop, r.state, r.heapMB, r.note)
	}
	t.Log(b.String())
}

func lastAction(ts []experiments.Transition) string {
	if len(ts) == 0 {
		return ""
	}
	return string(ts[len(ts)-1].Action)
}

// waitPersisted waits until the recorder holds nothing.
func (s *faultStack) waitPersisted() error {
	deadline := time.Now().Add(5 * time.Second)
	for s.rec.Stats().Pending > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("recorder still holds %d events", s.rec.Stats().Pending)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

type meanN struct{ mean, n float64 }

// thumbsMean is a variant's thumbs-up share and its number of votes.
func (s *faultStack) thumbsMean(t *testing.T, variant, period int) meanN {
	t.Helper()
	snap, err := s.store.Summaries(context.Background(), s.expID, period)
	if err != nil {
		t.Fatal(err)
	}
	sm := snap.Stats[experiments.VariantMetric{Variant: variant, Metric: experiments.MetricThumbs}]
	if sm.SumY == 0 {
		return meanN{}
	}
	return meanN{sm.SumX / sm.SumY, sm.SumY}
}
