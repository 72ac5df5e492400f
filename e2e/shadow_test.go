package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/gateway"
	"github.com/abgate/abgate/internal/fakemodel"
	"github.com/abgate/abgate/recorder"
	"github.com/abgate/abgate/rollout"
	"github.com/abgate/abgate/shadow"
	"github.com/abgate/abgate/stats"
)

// shadowStack is one replica as cmd/abgate wires it, with the shadow
// replay and a fake judge: gateway → recorder → memstore, the shadow
// service between the gateway and the recorder, the controller and the
// watcher on real timers.
type shadowStack struct {
	url         string
	base, tuned *fakemodel.Model
	judge       *fakemodel.Judge
	lc          *rollout.Lifecycle
	store       experiments.Store
	sh          *shadow.Service
	exp         *experiments.Experiment
	served      sync.Map // X-Abgate-Variant value → *atomic.Int64
}

func startShadowStack(t testing.TB, baseQ, tunedQ float64, withShadow bool, tweak ...func(*experiments.Experiment)) *shadowStack {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	s := &shadowStack{
		base:  &fakemodel.Model{Name: "m-base", Quality: baseQ, Chunks: 4},
		tuned: &fakemodel.Model{Name: "m-tuned", Quality: tunedQ, Chunks: 4},
		judge: &fakemodel.Judge{PositionBias: 0.05, Seed: 11},
	}
	srv := func(h http.Handler) string {
		x := httptest.NewServer(h)
		t.Cleanup(x.Close)
		return x.URL
	}
	share := 0.2
	r := experiments.Rollout{
		Steps:      []experiments.RampStep{{Percent: 10}, {Percent: 50}},
		Guardrails: []experiments.Guardrail{{Metric: experiments.MetricError, Margin: 0.05}},
	}
	e := experiments.Experiment{
		ID: "shadow-ft", Primary: experiments.MetricThumbs, Rollout: &r,
		Variants: []experiments.Variant{
			{Name: "base", Upstream: "base", Model: "m-base"},
			{Name: "tuned", Upstream: "tuned", Model: "m-tuned", PromptPrice: 1, CompletionPrice: 2},
		},
	}
	if withShadow {
		e.Judge = &experiments.Judge{URL: srv(s.judge), Model: "fake-judge", RatePerSecond: 1000, MaxConcurrency: 8, BothOrdersShare: &share,
			PromptPrice: 0.5, CompletionPrice: 0.5}
		e.Shadow = &experiments.Shadow{Percent: 100, MinUsers: 30}
	}
	for _, f := range tweak {
		f(&e)
	}
	cfg := &experiments.Config{
		Server:      experiments.Server{TokenSecret: "0123456789abcdef0123456789abcdef"},
		Upstreams:   []experiments.Upstream{{Name: "base", URL: srv(s.base)}, {Name: "tuned", URL: srv(s.tuned)}},
		Experiments: []experiments.Experiment{e},
		Routes:      []experiments.Route{{Alias: "support", Experiment: e.ID}},
		Recording:   experiments.Recording{FlushInterval: experiments.Duration(20 * time.Millisecond)},
		Controller:  experiments.Controller{Interval: experiments.Duration(100 * time.Millisecond), LeaseTTL: experiments.Duration(2 * time.Second)},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	s.exp = &cfg.Experiments[0]
	signer := experiments.NewSigner([]byte(cfg.Server.TokenSecret.Reveal()), time.Hour)
	store := memstore.New()
	s.store = store
	rec := recorder.New(store, cfg.Recording, recorder.WithLogger(quiet))
	t.Cleanup(func() { _ = rec.Close(context.Background()) })
	var err error
	if s.sh, err = shadow.New(cfg, rec, shadow.WithLogger(quiet)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.sh.Close)
	h, err := gateway.New(cfg, signer, gateway.WithRecorder(rec), gateway.WithLogger(quiet), gateway.WithShadow(s.sh))
	if err != nil {
		t.Fatal(err)
	}
	eng := gin.New()
	h.Register(eng)
	s.url = srv(eng)

	lcs := memstore.NewLifecycle()
	s.lc = rollout.NewLifecycle(lcs, cfg)
	ctl := rollout.NewController(s.lc, store, lcs, cfg.Controller, rollout.WithLogger(quiet))
	var applied atomic.Int64
	w := rollout.NewWatcher(lcs, cfg, func(id string, a *experiments.Allocation) {
		if err := h.SetAllocation(id, a); err != nil {
			t.Errorf("SetAllocation: %v", err)
		}
		applied.Add(1)
	}, rollout.WithLogger(quiet))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ctl.Run(ctx) }()
	go func() { defer wg.Done(); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	for start := time.Now(); applied.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 2*time.Second {
			t.Fatal("no initial allocation")
		}
	}
	return s
}

// ask sends one request of user id (every other one streamed) and
// returns the variant that answered.
func (s *shadowStack) ask(client *http.Client, id string, stream bool) (string, error) {
	body := fmt.Sprintf(`{"model":"support","stream":%t,"max_tokens":4000,"messages":[{"role":"user","content":"Where is order %s?"}]}`, stream, id)
	req, _ := http.NewRequest(http.MethodPost, s.url+"/v1/chat/completions", bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User-ID", id)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	v := resp.Header.Get(gateway.HeaderVariant)
	n, _ := s.served.LoadOrStore(v, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	return v, nil
}

// untilLeavesShadow sends new users until the experiment leaves shadow.
func (s *shadowStack) untilLeavesShadow(t *testing.T) experiments.State {
	t.Helper()
	ctx := context.Background()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		st, err := s.lc.State(ctx, s.exp.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != experiments.StatusShadow {
			return st
		}
		if time.Now().After(deadline) {
			sst, _ := s.sh.Stats(s.exp.ID)
			t.Fatalf("still in shadow after %d users; replay %+v", i, sst)
		}
		if _, err := s.ask(client, fmt.Sprintf("u%d", i), i%2 == 1); err != nil {
			t.Fatal(err)
		}
	}
}

// TestShadowStopsWorseCandidate: the judge prefers the base's answers;
// the controller stops the experiment in shadow. Every user got the
// base, the candidate's upstream only ever saw replays, and no outcome
// was recorded for the candidate as served, in any period.
func TestShadowStopsWorseCandidate(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end through the gateway")
	}
	t.Parallel()
	s := startShadowStack(t, 0.7, 0.4, true)
	ctx := context.Background()
	if _, err := s.lc.Start(ctx, s.exp.ID, "api:test", "go"); err != nil {
		t.Fatal(err)
	}
	st := s.untilLeavesShadow(t)
	h, _ := s.lc.History(ctx, s.exp.ID, 0)
	last := h[len(h)-1]
	if st.Status != experiments.StatusStopped || last.Action != experiments.ActionStop || !strings.HasPrefix(last.Reason, rollout.ReasonJudgeWorse) || len(last.Judge) != 1 {
		t.Fatalf("state %s; last transition %+v", st.Status, last)
	}
	t.Logf("stopped: %s", last.Reason)
	s.served.Range(func(k, _ any) bool {
		if k != "base" {
			t.Errorf("a user was served %q", k)
		}
		return true
	})
	for p := 1; p <= st.Period; p++ {
		snap, err := s.store.Summaries(ctx, s.exp.ID, p)
		if err != nil {
			t.Fatal(err)
		}
		if n := snap.Stats[experiments.VariantMetric{Variant: 1, Metric: experiments.MetricRequests}].N; n != 0 {
			t.Fatalf("period %d: %v users recorded as served by the candidate", p, n)
		}
	}
	sst, _ := s.sh.Stats(s.exp.ID)
	if sst.Replayed == 0 || s.tuned.Requests() < sst.Replayed || sst.ReplayCost <= 0 || sst.JudgeCost <= 0 {
		t.Fatalf("replay stats %+v, candidate requests %d", sst, s.tuned.Requests())
	}
}

// TestShadowPassesBetterCandidate: the judge prefers the candidate; the
// controller moves the experiment to ramp step 1, where users start to
// get the candidate.
func TestShadowPassesBetterCandidate(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end through the gateway")
	}
	t.Parallel()
	s := startShadowStack(t, 0.5, 0.75, true)
	ctx := context.Background()
	if _, err := s.lc.Start(ctx, s.exp.ID, "api:test", "go"); err != nil {
		t.Fatal(err)
	}
	st := s.untilLeavesShadow(t)
	h, _ := s.lc.History(ctx, s.exp.ID, 0)
	last := h[len(h)-1]
	if st.Status != experiments.StatusRunning || st.Step != 0 || last.Action != experiments.ActionShadowPass || len(last.Judge) != 1 {
		t.Fatalf("state %+v; last transition %+v", st, last)
	}
	t.Logf("passed: %s", last.Reason)
}

// TestLiveJudgeDuringRamp: with shadow.live_percent, the judge keeps
// judging after the shadow stage: during ramp step 1, requests the
// candidate serves are replayed to the base, judged, and recorded as the
// users' judge_score on the candidate in the step's period; the base's
// users get none.
func TestLiveJudgeDuringRamp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end through the gateway")
	}
	t.Parallel()
	s := startShadowStack(t, 0.5, 0.75, true, func(e *experiments.Experiment) { e.Shadow.LivePercent = 100 })
	ctx := context.Background()
	if _, err := s.lc.Start(ctx, s.exp.ID, "api:test", "go"); err != nil {
		t.Fatal(err)
	}
	st := s.untilLeavesShadow(t)
	if st.Status != experiments.StatusRunning {
		t.Fatalf("left shadow to %s", st.Status)
	}
	before, _ := s.sh.Stats(s.exp.ID)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		snap, err := s.store.Summaries(ctx, s.exp.ID, st.Period)
		if err != nil {
			t.Fatal(err)
		}
		cand := snap.Stats[experiments.VariantMetric{Variant: 1, Metric: experiments.MetricJudgeScore}]
		if b := snap.Stats[experiments.VariantMetric{Variant: 0, Metric: experiments.MetricJudgeScore}]; b.N != 0 {
			t.Fatalf("base users got judge scores: %+v", b)
		}
		if cand.N >= 5 {
			served := snap.Stats[experiments.VariantMetric{Variant: 1, Metric: experiments.MetricRequests}].N
			if cand.N > served {
				t.Fatalf("%v judged users on the candidate, only %v served by it", cand.N, served)
			}
			d := stats.JudgeGate(experiments.JudgeInput(snap, 1), s.exp.JudgePolicy())
			after, _ := s.sh.Stats(s.exp.ID)
			if after.Replayed <= before.Replayed || after.Judged <= before.Judged {
				t.Fatalf("replay stats before %+v, after %+v", before, after)
			}
			t.Logf("ramp step %d, period %d: %v judged users, win rate %v; %d replays to the base", st.Step+1, st.Period, cand.N, *d.WinRate, after.Replayed-before.Replayed)
			return
		}
		if time.Now().After(deadline) {
			sst, _ := s.sh.Stats(s.exp.ID)
			t.Fatalf("after %d requests: %v judged users in period %d; replay %+v", i, cand.N, st.Period, sst)
		}
		if _, err := s.ask(client, fmt.Sprintf("ramp%d", i), i%2 == 1); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkShadowLatency: a user's request through the gateway with the
// experiment in shadow (every user sampled, replayed and judged) and with
// no shadow (draft: the base for everyone, nothing replayed). The replay
// runs after the answer was sent, so both should cost the same.
func BenchmarkShadowLatency(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			// Manual: the controller only recommends, so the stage lasts
			// the whole benchmark.
			s := startShadowStack(b, 0.5, 0.6, on, func(e *experiments.Experiment) { e.Rollout.Manual = true })
			if on {
				if _, err := s.lc.Start(context.Background(), s.exp.ID, "api:bench", "bench"); err != nil {
					b.Fatal(err)
				}
				// The watcher applies the shadow allocation: wait for the
				// first replay.
				for start := time.Now(); ; {
					if _, err := s.ask(http.DefaultClient, "warm-up", false); err != nil {
						b.Fatal(err)
					}
					if st, _ := s.sh.Stats(s.exp.ID); st.Queued > 0 {
						break
					}
					if time.Since(start) > 5*time.Second {
						b.Fatal("no replay")
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := s.ask(client, fmt.Sprintf("b%d", i), false); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if on {
				st, _ := s.sh.Stats(s.exp.ID)
				b.ReportMetric(float64(st.Queued), "replays_queued")
				b.ReportMetric(float64(st.DroppedFull), "replays_dropped")
			}
		})
	}
}
