package shadow

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/internal/fakemodel"
)

// feedbackLog is a Recorder that keeps what it is given.
type feedbackLog struct {
	mu  sync.Mutex
	got []experiments.Feedback
}

func (f *feedbackLog) Feedback(fb experiments.Feedback) error {
	f.mu.Lock()
	f.got = append(f.got, fb)
	f.mu.Unlock()
	return nil
}

func (f *feedbackLog) all() []experiments.Feedback {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]experiments.Feedback(nil), f.got...)
}

// TestLiveJudgeDuringRamp: during a ramp step, a request the candidate
// served is replayed to the base (never to the candidate), judged, and
// the verdict recorded as the user's judge_score on the candidate in the
// step's period; the live share samples by its own unit hash, and
// nothing is sampled without live_percent.
func TestLiveJudgeDuringRamp(t *testing.T) {
	t.Parallel()
	base := &fakemodel.Model{Name: "m-base", Quality: 0.2}
	tuned := &fakemodel.Model{Name: "m-tuned", Quality: 0.9}
	jd := &fakemodel.Judge{Seed: 3}
	srv := func(h http.Handler) string {
		x := httptest.NewServer(h)
		t.Cleanup(x.Close)
		return x.URL
	}
	e := experiments.Experiment{
		ID: "live-ft", Primary: experiments.MetricThumbs,
		Rollout: &experiments.Rollout{Steps: []experiments.RampStep{{Percent: 10}, {Percent: 50}}},
		Variants: []experiments.Variant{
			{Name: "base", Upstream: "base", Model: "m-base", PromptPrice: 1, CompletionPrice: 1},
			{Name: "tuned", Upstream: "tuned", Model: "m-tuned"},
		},
		Judge:  &experiments.Judge{URL: srv(jd), Model: "fake-judge", RatePerSecond: 1000, MaxConcurrency: 2},
		Shadow: &experiments.Shadow{Percent: 10, MinUsers: 30, LivePercent: 100},
	}
	cfg := &experiments.Config{
		Server:      experiments.Server{TokenSecret: "0123456789abcdef0123456789abcdef"},
		Upstreams:   []experiments.Upstream{{Name: "base", URL: srv(base)}, {Name: "tuned", URL: srv(tuned)}},
		Experiments: []experiments.Experiment{e},
		Routes:      []experiments.Route{{Alias: "support", Experiment: e.ID}},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	rec := &feedbackLog{}
	s, err := New(cfg, rec, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)

	if !s.Sample(e.ID, "salt", "user-1", true, http.Header{}) {
		t.Fatal("live_percent 100 did not sample")
	}
	body := []byte(`{"model":"support","messages":[{"role":"user","content":"how do I reset my password?"}]}`)
	res, err := http.Post(cfg.Upstreams[1].URL+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	served := tuned.Requests()

	var unit experiments.UnitKey
	unit[0] = 7
	if !s.Offer(experiments.ShadowSample{Experiment: e.ID, Variant: 1, Period: 3, Unit: unit, Path: "/v1/chat/completions", Body: body, Answer: answer, At: time.Now()}) {
		t.Fatal("offer refused")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.all()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := rec.all()
	if len(got) == 0 {
		t.Fatalf("no verdict recorded; stats %+v", must(s.Stats(e.ID)))
	}
	f := got[0]
	if f.Metric != experiments.MetricJudgeScore || f.Variant != 1 || f.Phase != 3 || f.Unit != unit || f.RequestID != experiments.ShadowVoteID(3) {
		t.Errorf("recorded %+v", f)
	}
	if base.Requests() != 1 || tuned.Requests() != served {
		t.Errorf("base replays %d (want 1), candidate requests %d (want %d: never replayed)", base.Requests(), tuned.Requests(), served)
	}
	st := must(s.Stats(e.ID))
	if st.Replayed != 1 || st.Judged != 1 || st.ReplayCost <= 0 {
		t.Errorf("stats %+v", st)
	}

	// The same user is capped (max_per_user 1) in the period.
	if s.Offer(experiments.ShadowSample{Experiment: e.ID, Variant: 1, Period: 3, Unit: unit, Body: body, Answer: answer}) {
		t.Error("a capped user was offered again")
	}

	// Without live_percent, nothing is sampled during a ramp step.
	// (A reload brings a new config: a new shadow block.)
	sh := *cfg.Experiments[0].Shadow
	sh.LivePercent = 0
	cfg.Experiments[0].Shadow = &sh
	if err := s.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if s.Sample(e.ID, "salt", "user-1", true, http.Header{}) {
		t.Error("sampled a live request without live_percent")
	}
}

// TestLiveJudgeBaseServed: during a ramp step, a request the base served
// is replayed to the candidate, judged, and recorded only as the base's
// judge_served (1 − the candidate's score), never as a judge_score; a
// candidate-served request records judge_served equal to its
// judge_score.
func TestLiveJudgeBaseServed(t *testing.T) {
	t.Parallel()
	base := &fakemodel.Model{Name: "m-base", Quality: 0.2}
	tuned := &fakemodel.Model{Name: "m-tuned", Quality: 0.9}
	jd := &fakemodel.Judge{Seed: 5}
	srv := func(h http.Handler) string {
		x := httptest.NewServer(h)
		t.Cleanup(x.Close)
		return x.URL
	}
	e := experiments.Experiment{
		ID: "live-base", Primary: experiments.MetricThumbs,
		Rollout: &experiments.Rollout{Steps: []experiments.RampStep{{Percent: 10}, {Percent: 50}}},
		Variants: []experiments.Variant{
			{Name: "base", Upstream: "base", Model: "m-base"},
			{Name: "tuned", Upstream: "tuned", Model: "m-tuned", PromptPrice: 1, CompletionPrice: 1},
		},
		Judge:  &experiments.Judge{URL: srv(jd), Model: "fake-judge", RatePerSecond: 1000, MaxConcurrency: 2},
		Shadow: &experiments.Shadow{Percent: 10, MinUsers: 30, LivePercent: 100},
	}
	cfg := &experiments.Config{
		Server:      experiments.Server{TokenSecret: "0123456789abcdef0123456789abcdef"},
		Upstreams:   []experiments.Upstream{{Name: "base", URL: srv(base)}, {Name: "tuned", URL: srv(tuned)}},
		Experiments: []experiments.Experiment{e},
		Routes:      []experiments.Route{{Alias: "support", Experiment: e.ID}},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	rec := &feedbackLog{}
	s, err := New(cfg, rec, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	body := []byte(`{"model":"support","messages":[{"role":"user","content":"how do I reset my password?"}]}`)
	ask := func(url string) []byte {
		res, err := http.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return b
	}
	wait := func(n int) []experiments.Feedback {
		deadline := time.Now().Add(5 * time.Second)
		for len(rec.all()) < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		return rec.all()
	}
	var u0, u1 experiments.UnitKey
	u0[0], u1[0] = 1, 2
	baseAnswer := ask(cfg.Upstreams[0].URL)
	before := tuned.Requests()
	if !s.Offer(experiments.ShadowSample{Experiment: e.ID, Variant: 0, Live: true, Period: 2, Unit: u0, Path: "/v1/chat/completions", Body: body, Answer: baseAnswer}) {
		t.Fatal("offer refused")
	}
	got := wait(1)
	if len(got) != 1 || got[0].Metric != experiments.MetricJudgeServed || got[0].Variant != 0 || got[0].Phase != 2 || got[0].Unit != u0 {
		t.Fatalf("recorded %+v, want one judge_served on the base; stats %+v", got, must(s.Stats(e.ID)))
	}
	if tuned.Requests() != before+1 {
		t.Errorf("candidate replays %d, want 1", tuned.Requests()-before)
	}
	baseScore := got[0].Value

	if !s.Offer(experiments.ShadowSample{Experiment: e.ID, Variant: 1, Live: true, Period: 2, Unit: u1, Path: "/v1/chat/completions", Body: body, Answer: ask(cfg.Upstreams[1].URL)}) {
		t.Fatal("offer refused")
	}
	got = wait(3)
	byMetric := map[string]experiments.Feedback{}
	for _, f := range got[1:] {
		byMetric[f.Metric] = f
	}
	sc, sv := byMetric[experiments.MetricJudgeScore], byMetric[experiments.MetricJudgeServed]
	if sc.Variant != 1 || sv.Variant != 1 || sv.Value != sc.Value || sv.Unit != u1 {
		t.Errorf("candidate-served: judge_score %+v, judge_served %+v (want equal, on the candidate)", sc, sv)
	}
	// The fake judge prefers the better model: the base's answer loses.
	if !(baseScore < 0.5) || !(sc.Value > 0.5) {
		t.Errorf("base's served score %v, candidate's %v: want below and above ½", baseScore, sc.Value)
	}
}

func must(st Stats, ok bool) Stats {
	if !ok {
		panic("no stats")
	}
	return st
}

// TestLiveBaseHalfQueue: base-served live samples fill at most half the
// replay queue, so the candidate's (the gate's data) always find room;
// candidate samples may fill it.
func TestLiveBaseHalfQueue(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var calls sync.WaitGroup
	calls.Add(1)
	var once sync.Once
	blocked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(calls.Done)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.Error(w, "released", http.StatusServiceUnavailable)
	}))
	t.Cleanup(blocked.Close)
	t.Cleanup(func() { close(release) })
	model := httptest.NewServer(&fakemodel.Model{Name: "m"})
	t.Cleanup(model.Close)
	e := experiments.Experiment{
		ID: "half", Primary: experiments.MetricThumbs,
		Rollout: &experiments.Rollout{Steps: []experiments.RampStep{{Percent: 10}, {Percent: 50}}},
		Variants: []experiments.Variant{
			{Name: "base", Upstream: "base", Model: "m-base"},
			{Name: "tuned", Upstream: "tuned", Model: "m-tuned"},
		},
		Judge:  &experiments.Judge{URL: blocked.URL, Model: "fake-judge", RatePerSecond: 1000, MaxConcurrency: 1},
		Shadow: &experiments.Shadow{Percent: 10, MinUsers: 30, LivePercent: 100, QueueSize: 4},
	}
	cfg := &experiments.Config{
		Server:      experiments.Server{TokenSecret: "0123456789abcdef0123456789abcdef"},
		Upstreams:   []experiments.Upstream{{Name: "base", URL: model.URL}, {Name: "tuned", URL: model.URL}},
		Experiments: []experiments.Experiment{e},
		Routes:      []experiments.Route{{Alias: "support", Experiment: e.ID}},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	s, err := New(cfg, &feedbackLog{}, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	body := []byte(`{"model":"support","messages":[{"role":"user","content":"hi"}]}`)
	answer := []byte(`{"choices":[{"message":{"role":"assistant","content":"hello"}}]}`)
	offer := func(u byte, v int) bool {
		var unit experiments.UnitKey
		unit[0] = u
		return s.Offer(experiments.ShadowSample{Experiment: e.ID, Variant: v, Live: true, Period: 2, Unit: unit, Path: "/v1/chat/completions", Body: body, Answer: answer})
	}
	if !offer(1, 0) {
		t.Fatal("first base sample refused")
	}
	calls.Wait() // the one worker holds it, blocked in the judge: the queue is empty
	got := []bool{offer(2, 0), offer(3, 0), offer(4, 0), offer(5, 1), offer(6, 1), offer(7, 1)}
	want := []bool{true, true, false, true, true, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("offers (base, base, base, candidate, candidate, candidate) into a queue of 4: %v, want %v", got, want)
		}
	}
	if st := must(s.Stats(e.ID)); st.DroppedFull != 2 {
		t.Errorf("dropped %d, want 2", st.DroppedFull)
	}
}
