package judge_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/judge"
	"github.com/abgate/abgate/stats"
)

// fakeJudge is an OpenAI-compatible judge with a known preference and a
// known position bias. Answers carry markers: the candidate's contains
// "CAND", the base's "BASE". With probability bias it answers "A" (the
// first shown) whatever the answers; otherwise it prefers the candidate
// with probability pCand, the base with pBase, and says TIE otherwise.
type fakeJudge struct {
	pCand, pBase, bias float64
	reply              func(verdict string) string // formats the answer (default JSON)
	status             int                         // non-zero: fail with it
	block              chan struct{}               // non-nil: wait for it (or the request's end)
	mu                 sync.Mutex
	rng                *rand.Rand
	reqs               atomic.Int64
	last               atomic.Pointer[http.Request]
	lastBody           atomic.Pointer[[]byte]
}

func (f *fakeJudge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.reqs.Add(1)
	f.last.Store(r)
	body, _ := io.ReadAll(r.Body)
	f.lastBody.Store(&body)
	if f.block != nil {
		select {
		case <-f.block:
		case <-r.Context().Done():
			return
		}
	}
	if f.status != 0 {
		w.WriteHeader(f.status)
		return
	}
	var req struct {
		Messages []struct{ Content string } `json:"messages"`
	}
	_ = json.Unmarshal(body, &req)
	msg := req.Messages[0].Content
	// The answer shown first is the one whose marker comes first.
	ic, ib := strings.Index(msg, "CAND"), strings.Index(msg, "BASE")
	candIsA := ic >= 0 && (ib < 0 || ic < ib)
	f.mu.Lock()
	u, v := f.rng.Float64(), f.rng.Float64()
	f.mu.Unlock()
	verdict := "TIE"
	switch {
	case u < f.bias:
		verdict = "A"
	case v < f.pCand:
		verdict = map[bool]string{true: "A", false: "B"}[candIsA]
	case v < f.pCand+f.pBase:
		verdict = map[bool]string{true: "B", false: "A"}[candIsA]
	}
	content := `{"verdict": "` + verdict + `"}`
	if f.reply != nil {
		content = f.reply(verdict)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": content}}},
		"usage":   map[string]any{"prompt_tokens": 300, "completion_tokens": 5},
	})
}

func newFake(t *testing.T, f *fakeJudge) *httptest.Server {
	t.Helper()
	if f.rng == nil {
		f.rng = rand.New(rand.NewPCG(99, 1))
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv
}

func mustNew(t *testing.T, cfg judge.Config, opts ...judge.Option) *judge.Judge {
	t.Helper()
	j, err := judge.New(cfg, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// run makes n comparisons and accumulates the statistics the recorder
// would keep, one comparison per user.
func run(t *testing.T, j *judge.Judge, n int) (stats.JudgeInput, int) {
	t.Helper()
	var in stats.JudgeInput
	candFirst := 0
	for range n {
		v, err := j.Compare(context.Background(), "How do I reset my password?", "CAND answer", "BASE answer")
		if err != nil {
			t.Fatal(err)
		}
		if v.CandidateFirst {
			candFirst++
		}
		add(&in.Preference, v.Score)
		if v.BothOrders {
			add(&in.FirstShown, v.FirstShownPreferred)
		}
	}
	return in, candFirst
}

func add(s *stats.Summary, x float64) {
	s.N++
	s.SumX += x
	s.SumX2 += x * x
	s.SumY++
	s.SumY2++
	s.SumXY += x
}

func fastCfg(url string) judge.Config {
	return judge.Config{URL: url, Model: "judge-1", RatePerSecond: 1e9, Burst: 1 << 30, MaxConcurrency: 8}
}

func TestKnownPreference(t *testing.T) {
	t.Parallel()
	srv := newFake(t, &fakeJudge{pCand: 0.6, pBase: 0.3})
	j := mustNew(t, fastCfg(srv.URL), judge.WithRand(rand.NewPCG(1, 2)))
	in, candFirst := run(t, j, 2000)
	// E[score] = 0.6 + 0.1/2 = 0.65.
	if w := in.Preference.SumX / in.Preference.SumY; math.Abs(w-0.65) > 0.035 {
		t.Errorf("win rate %.3f, want 0.65", w)
	}
	if math.Abs(float64(candFirst)/2000-0.5) > 0.04 {
		t.Errorf("candidate shown first %d of 2000: order not randomised", candFirst)
	}
	st := j.Stats()
	if st.Comparisons != 2000 || st.Calls != 2000 || st.CandidateWins+st.BaseWins+st.Ties != 2000 || st.BothOrders != 0 {
		t.Errorf("stats %+v", st)
	}
	d := stats.JudgeGate(in, stats.JudgePolicy{NonInferiorityMargin: 0.05, SuperiorityMargin: 0.05})
	if d.Verdict != stats.JudgePass || !d.Superior {
		t.Errorf("gate %+v", d)
	}
}

// TestPositionBiasDetected: a judge that answers "A" a third of the time
// regardless is caught from the both-orders comparisons, and the gate is
// inconclusive even though the candidate looks better.
func TestPositionBiasDetected(t *testing.T) {
	t.Parallel()
	srv := newFake(t, &fakeJudge{pCand: 0.6, pBase: 0.3, bias: 0.35})
	cfg := fastCfg(srv.URL)
	cfg.BothOrdersShare = 0.5
	j := mustNew(t, cfg, judge.WithRand(rand.NewPCG(3, 4)))
	in, _ := run(t, j, 1500)
	// P(first preferred) = 0.35 + 0.65·(0.45 + 0.05) = 0.675: bias 0.175.
	d := stats.JudgeGate(in, stats.JudgePolicy{NonInferiorityMargin: 0.05})
	if d.PositionBias == nil || math.Abs(*d.PositionBias-0.175) > 0.04 {
		t.Fatalf("position bias %v, want about 0.175", d.PositionBias)
	}
	if d.Verdict != stats.JudgeInconclusive || !d.Biased {
		t.Errorf("gate %+v", d)
	}
	if st := j.Stats(); math.Abs(float64(st.BothOrders)/1500-0.5) > 0.05 || st.Calls != 1500+st.BothOrders {
		t.Errorf("both-orders share: %+v", st)
	}
	// An unbiased judge's estimate is near zero, and the gate passes.
	srv2 := newFake(t, &fakeJudge{pCand: 0.6, pBase: 0.3})
	cfg2 := fastCfg(srv2.URL)
	cfg2.BothOrdersShare = 1
	j2 := mustNew(t, cfg2, judge.WithRand(rand.NewPCG(5, 6)))
	in2, _ := run(t, j2, 600)
	d2 := stats.JudgeGate(in2, stats.JudgePolicy{NonInferiorityMargin: 0.05})
	if d2.Biased || math.Abs(*d2.PositionBias) > 0.05 || d2.Verdict != stats.JudgePass {
		t.Errorf("unbiased judge: %+v", d2)
	}
}

func TestBothOrdersScoring(t *testing.T) {
	t.Parallel()
	// Always "A": a pure position-bias judge. Asked both ways it gives
	// the candidate exactly ½ and prefers the first shown every time.
	srv := newFake(t, &fakeJudge{bias: 1})
	cfg := fastCfg(srv.URL)
	cfg.BothOrdersShare = 1
	j := mustNew(t, cfg)
	v, err := j.Compare(context.Background(), "p", "CAND", "BASE")
	if err != nil {
		t.Fatal(err)
	}
	if !v.BothOrders || v.Score != 0.5 || v.Preference != judge.Tie || v.FirstShownPreferred != 1 || len(v.Raw) != 2 {
		t.Errorf("verdict %+v", v)
	}
	if v.PromptTokens != 600 || v.CompletionTokens != 10 {
		t.Errorf("usage %d/%d", v.PromptTokens, v.CompletionTokens)
	}
}

func TestRequestShape(t *testing.T) {
	t.Parallel()
	f := &fakeJudge{pCand: 1}
	srv := newFake(t, f)
	cfg := fastCfg(srv.URL + "/base/")
	cfg.APIKey, cfg.MaxTokens, cfg.Criteria = "sk-test", 12, "Be kind."
	cfg.Headers = map[string]string{"X-Team": "ml"}
	j := mustNew(t, cfg)
	if _, err := j.Compare(context.Background(), "the prompt", "CAND", "BASE"); err != nil {
		t.Fatal(err)
	}
	r := f.last.Load()
	if r.URL.Path != "/base/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer sk-test" || r.Header.Get("X-Team") != "ml" {
		t.Errorf("request %s %v", r.URL.Path, r.Header)
	}
	var body struct {
		Model       string
		MaxTokens   int `json:"max_tokens"`
		Temperature *float64
		Stream      *bool
		Messages    []struct{ Role, Content string }
	}
	if err := json.Unmarshal(*f.lastBody.Load(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Model != "judge-1" || body.MaxTokens != 12 || body.Stream == nil || *body.Stream || body.Temperature == nil || *body.Temperature != 0 {
		t.Errorf("body %+v", body)
	}
	c := body.Messages[0].Content
	for _, want := range []string{"the prompt", "CAND", "BASE", "Be kind.", `{"verdict": "A"}`} {
		if !strings.Contains(c, want) {
			t.Errorf("rubric lacks %q:\n%s", want, c)
		}
	}
}

func TestFailuresCounted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Unparseable answers.
	srv := newFake(t, &fakeJudge{pCand: 1, reply: func(string) string { return "I cannot decide, both have merits." }})
	j := mustNew(t, fastCfg(srv.URL))
	if _, err := j.Compare(ctx, "p", "CAND", "BASE"); !errors.Is(err, judge.ErrUnparseable) {
		t.Errorf("err %v", err)
	}
	if st := j.Stats(); st.Unparseable != 1 || st.Comparisons != 0 {
		t.Errorf("stats %+v", st)
	}
	// Tolerant parsing: a bare token in a fence works.
	srv = newFake(t, &fakeJudge{pCand: 1, reply: func(v string) string { return "```\n" + v + "\n```" }})
	j = mustNew(t, fastCfg(srv.URL))
	if v, err := j.Compare(ctx, "p", "CAND", "BASE"); err != nil || v.Preference != judge.CandidateWins {
		t.Errorf("fenced: %+v %v", v, err)
	}
	// 5xx.
	srv = newFake(t, &fakeJudge{status: http.StatusBadGateway})
	j = mustNew(t, fastCfg(srv.URL))
	if _, err := j.Compare(ctx, "p", "CAND", "BASE"); !errors.Is(err, judge.ErrUpstream) {
		t.Errorf("err %v", err)
	}
	// Connection refused.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	j = mustNew(t, fastCfg(dead.URL))
	if _, err := j.Compare(ctx, "p", "CAND", "BASE"); !errors.Is(err, judge.ErrUpstream) {
		t.Errorf("err %v", err)
	}
	if st := j.Stats(); st.Failures != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestTimeoutAndConcurrency(t *testing.T) {
	t.Parallel()
	f := &fakeJudge{pCand: 1, block: make(chan struct{})}
	srv := newFake(t, f)
	t.Cleanup(func() { close(f.block) })
	cfg := fastCfg(srv.URL)
	cfg.MaxConcurrency = 1
	cfg.Timeout = 50 * time.Millisecond
	j := mustNew(t, cfg)
	// The first comparison occupies the only slot until it times out.
	started := make(chan struct{})
	done := make(chan error)
	go func() {
		close(started)
		_, err := j.Compare(context.Background(), "p", "CAND", "BASE")
		done <- err
	}()
	<-started
	for f.reqs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := j.Compare(context.Background(), "p", "CAND", "BASE"); !errors.Is(err, judge.ErrBusy) {
		t.Errorf("second comparison: %v, want ErrBusy", err)
	}
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("first comparison: %v, want a deadline", err)
	}
	// A caller's own deadline is honoured too.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	cfg.Timeout = time.Hour
	j = mustNew(t, cfg)
	if _, err := j.Compare(ctx, "p", "CAND", "BASE"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("caller deadline: %v", err)
	}
	if st := j.Stats(); st.Failures != 1 || st.RefusedBusy != 0 {
		t.Errorf("stats %+v", st)
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	srv := newFake(t, &fakeJudge{pCand: 1})
	clk := &clock{t: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)}
	j := mustNew(t, judge.Config{URL: srv.URL, Model: "m", RatePerSecond: 1, Burst: 2}, judge.WithClock(clk.now))
	ctx := context.Background()
	for i := range 2 {
		if !j.Ready() {
			t.Fatalf("call %d: not ready with a token in the bucket", i)
		}
		if _, err := j.Compare(ctx, "p", "CAND", "BASE"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if j.Ready() {
		t.Fatal("ready with an empty bucket")
	}
	if _, err := j.Compare(ctx, "p", "CAND", "BASE"); !errors.Is(err, judge.ErrRateLimited) {
		t.Fatalf("third: %v", err)
	}
	clk.add(time.Second)
	if !j.Ready() {
		t.Fatal("not ready after the refill")
	}
	if _, err := j.Compare(ctx, "p", "CAND", "BASE"); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	if st := j.Stats(); st.RefusedRate != 1 || st.Comparisons != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestBudget(t *testing.T) {
	t.Parallel()
	srv := newFake(t, &fakeJudge{pCand: 1})
	clk := &clock{t: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)}
	// Each call: 300 prompt tokens × 1/1k + 5 completion × 2/1k = 0.31;
	// the reservation (max_tokens 64) is a little more.
	cfg := judge.Config{URL: srv.URL, Model: "m", RatePerSecond: 1e9, Burst: 1 << 30,
		PromptPrice: 1, CompletionPrice: 2, MaxTokens: 64, BudgetPerHour: 1, BudgetPerDay: 1.6}
	j := mustNew(t, cfg, judge.WithClock(clk.now))
	ctx := context.Background()
	ok := 0
	for range 5 {
		if _, err := j.Compare(ctx, "p", "CAND", "BASE"); err == nil {
			ok++
		} else if !errors.Is(err, judge.ErrBudget) {
			t.Fatal(err)
		}
	}
	st := j.Stats()
	if ok != 3 || st.RefusedBudget != 2 || math.Abs(st.Cost-0.93) > 1e-9 || math.Abs(st.CostThisHour-0.93) > 1e-9 {
		t.Fatalf("hour 1: ok %d, stats %+v", ok, st)
	}
	clk.add(time.Hour) // a new hour, the same day: the day budget allows 2 more
	ok = 0
	for range 5 {
		if _, err := j.Compare(ctx, "p", "CAND", "BASE"); err == nil {
			ok++
		}
	}
	if st := j.Stats(); ok != 2 || st.CostToday > 1.6 || math.Abs(st.CostThisHour-0.62) > 1e-9 {
		t.Fatalf("hour 2: ok %d, stats %+v", ok, st)
	}
	clk.add(24 * time.Hour)
	if _, err := j.Compare(ctx, "p", "CAND", "BASE"); err != nil {
		t.Fatalf("next day: %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	srv := newFake(t, &fakeJudge{pCand: 0.5, pBase: 0.5})
	cfg := fastCfg(srv.URL)
	cfg.BothOrdersShare = 0.3
	j := mustNew(t, cfg)
	var wg sync.WaitGroup
	var ok, busy atomic.Int64
	for range 32 {
		wg.Go(func() {
			for range 10 {
				switch _, err := j.Compare(context.Background(), "p", "CAND", "BASE"); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, judge.ErrBusy):
					busy.Add(1)
				default:
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	st := j.Stats()
	if st.Comparisons != ok.Load() || st.RefusedBusy != busy.Load() || ok.Load()+busy.Load() != 320 {
		t.Errorf("stats %+v, ok %d busy %d", st, ok.Load(), busy.Load())
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []judge.Config{{Model: "m"}, {URL: "http://x"}, {URL: "http://x", Model: "m", Rubric: "{{"}, {URL: "http://x", Model: "m", BothOrdersShare: 2}} {
		if _, err := judge.New(c, nil); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// TestRubricFields: the default rubric passes the config validation, and
// a rubric the validation accepts executes in the judge.
func TestRubricFields(t *testing.T) {
	t.Parallel()
	for _, rubric := range []string{judge.DefaultRubric, "Q {{.Prompt}} A {{.A}} B {{.B}} C {{.Criteria}}"} {
		y := `
upstreams: [{name: up, url: "http://127.0.0.1:1"}]
experiments:
  - id: e
    variants: [{name: b, upstream: up, model: m0}, {name: c, upstream: up, model: m1, weight: 50}]
    judge: {upstream: up, model: judge, rubric: ` + jsonQuote(rubric) + `}
`
		c, err := experiments.Parse([]byte(y), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatalf("config refuses the rubric: %v", err)
		}
		cfg, err := judge.ConfigFrom(c.Experiments[0].Judge, c.Upstreams)
		if err != nil {
			t.Fatal(err)
		}
		srv := newFake(t, &fakeJudge{pCand: 1})
		cfg.URL = srv.URL
		if v, err := mustNew(t, cfg).Compare(context.Background(), "p", "CAND", "BASE"); err != nil || v.Preference != judge.CandidateWins {
			t.Errorf("rubric %q: %+v %v", rubric, v, err)
		}
	}
	if got := strings.Join(experiments.RubricFields, ","); got != "Prompt,A,B,Criteria" {
		t.Errorf("experiments.RubricFields = %s: update rubricData", got)
	}
}

func jsonQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestConfigFrom(t *testing.T) {
	t.Parallel()
	y := `
upstreams:
  - {name: up, url: "http://127.0.0.1:1"}
  - {name: oa, url: "https://api.example.com", api_key: "${KEY}", headers: {X-Org: o}}
experiments:
  - id: e
    variants: [{name: b, upstream: up, model: m0}, {name: c, upstream: up, model: m1, weight: 50}]
    judge: {upstream: oa, model: judge, both_orders_share: 0.25, budget_per_day: 3, completion_price_per_1k: 0.01}
`
	c, err := experiments.Parse([]byte(y), func(k string) (string, bool) { return "sk-" + k, true })
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := judge.ConfigFrom(c.Experiments[0].Judge, c.Upstreams)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "https://api.example.com" || cfg.APIKey != "sk-KEY" || cfg.Headers["X-Org"] != "o" ||
		cfg.BothOrdersShare != 0.25 || cfg.BudgetPerDay != 3 || cfg.MaxTokens != 64 || cfg.Timeout != 30*time.Second {
		t.Errorf("config %+v", cfg)
	}
	if _, err := judge.ConfigFrom(nil, nil); err == nil {
		t.Error("nil judge: no error")
	}
}
