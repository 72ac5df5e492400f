package main

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/api"
	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/internal/fakemodel"
)

// demoOptions are the demo's knobs.
type demoOptions struct {
	listen   string
	users    int
	rps      float64
	duration time.Duration
	every    time.Duration
}

// runDemo runs everything in one process on loopback: the gateway with
// the in-memory store, two simulated models (the fine-tune a little
// better), and synthetic users who send requests and feedback.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	var o demoOptions
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address for everything the demo serves (loopback only)")
	fs.IntVar(&o.users, "users", 1000000, "synthetic users (drawn at random; most requests come from a new user, as on a busy service)")
	fs.Float64Var(&o.rps, "rps", 80, "synthetic requests per second (0: no synthetic traffic)")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	fs.DurationVar(&o.every, "print-every", 10*time.Second, "how often to print the running numbers")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := requireLoopback(o.listen); err != nil {
		return err
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.listen, err)
	}
	addr := ln.Addr().String()
	adminToken := "demo-admin-" + hex.EncodeToString(randomSecret(12))
	cfg := demoConfig(addr, adminToken)
	if err := cfg.Validate(); err != nil {
		ln.Close()
		return fmt.Errorf("demo config: %w", err)
	}
	// Only warnings: the demo's own lines are the show.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := time.Now()
	a, err := newApp(ctx, cfg, log, func(o *appOptions) {
		o.notify = transitionPrinter{w: stdout, start: start, exp: &cfg.Experiments[0]}
	})
	if err != nil {
		ln.Close()
		return err
	}

	a.listeners = []net.Listener{ln}
	base := &fakemodel.Model{Name: "base-model", Quality: 0.58, Latency: 40 * time.Millisecond, TokenDelay: 15 * time.Millisecond}
	ft := &fakemodel.Model{Name: "support-ft-v2", Quality: 0.72, Latency: 35 * time.Millisecond, TokenDelay: 15 * time.Millisecond}
	// The judge prefers the better answer, and (a little) the one shown
	// first: the gate measures that bias on the comparisons asked twice.
	jm := &fakemodel.Judge{Sensitivity: 2, PositionBias: 0.04, Latency: 20 * time.Millisecond}
	a.extraRoutes = func(r *gin.Engine) {
		// The simulated models live on the demo's own address, so
		// everything it serves is on one port.
		r.Any("/_demo/base/*path", gin.WrapH(http.StripPrefix("/_demo/base", base)))
		r.Any("/_demo/ft/*path", gin.WrapH(http.StripPrefix("/_demo/ft", ft)))
		r.Any("/_demo/judge/*path", gin.WrapH(http.StripPrefix("/_demo/judge", jm)))
	}

	url := "http://" + addr
	fmt.Fprintf(stdout, `abgate demo: the gateway, two simulated models and synthetic users, all on %s

The experiment "support-ft" compares the base model with a fine-tune whose
answers are a little better. First, a shadow stage: every user gets the base,
and half of the users' requests are replayed to the fine-tune after their
answer was sent; an LLM judge (simulated) compares the two answers, blind.
Only once the judge shows the fine-tune not worse does any user see it.
Then the rollout controller gives the fine-tune 10%%,
then 25%%, then 50%% of the users while the error and latency guardrails hold,
and promotes it once the thumbs-up rate shows it is better: watch it below,
usually within two or three minutes. Point any OpenAI client at %s/v1 with
model "demo", or try:

  curl -si %s/v1/chat/completions -H 'X-User-ID: alice' \
    -d '{"model":"demo","messages":[{"role":"user","content":"Where is my order?"}]}'

then send feedback with the X-Abgate-Token header of that response:

  curl -s %s/v1/feedback -H "X-Abgate-Token: $TOKEN" -d '{"signals":{"thumbs":"up"}}'

The report, for people:   %s/reports/support-ft
              for scripts: %s/api/v1/experiments/support-ft/report
              in a terminal: go run ./cmd/abgate report support-ft --server %s

Reads are open here; changes (pause, promote, roll back…) need the admin token:

  export ABGATE_TOKEN=%s
  go run ./cmd/abgate experiments transitions support-ft --server %s

`, addr, url, url, url, url, url, url, adminToken, url)
	if o.rps > 0 {
		fmt.Fprintf(stdout, "Synthetic traffic: %d users, %.0f requests/s; numbers every %s. Ctrl-C stops.\n\n", o.users, o.rps, o.every)
	}

	if _, err := a.lifecycle.Start(ctx, demoExperiment, "demo", "the demo starts the rollout at boot"); err != nil {
		ln.Close()
		return fmt.Errorf("start the demo rollout: %w", err)
	}
	var wg sync.WaitGroup
	if o.rps > 0 {
		sim := newSimulator(url, o)
		wg.Add(2)
		go func() { defer wg.Done(); sim.run(ctx) }()
		go func() { defer wg.Done(); printProgress(ctx, stdout, a, sim, o.every) }()
	}
	err = a.run(ctx, io.Discard)
	wg.Wait()
	return err
}

// demoExperiment is the demo's one experiment.
const demoExperiment = "support-ft"

// transitionPrinter prints every lifecycle transition as it happens.
type transitionPrinter struct {
	w     io.Writer
	start time.Time
	exp   *experiments.Experiment
}

func (p transitionPrinter) Notify(t experiments.Transition, s experiments.State) {
	what := string(t.Action)
	switch {
	case s.Status == experiments.StatusRunning || s.Status == experiments.StatusPaused:
		steps := experiments.RolloutSteps(p.exp)
		if s.Step < len(steps) {
			what += fmt.Sprintf(" → step %d of %d: %s gets %g%% of users", s.Step+1, len(steps),
				p.exp.Variants[1].Name, steps[s.Step].Percent)
		}
	case s.Status == experiments.StatusPromoted:
		what += fmt.Sprintf(" → %s now serves everyone", p.exp.Variants[s.Winner].Name)
	default:
		what += " → " + string(s.Status)
	}
	fmt.Fprintf(p.w, "[%s] %s (by %s): %s\n", since(p.start), what, t.Actor, t.Reason)
	for i, d := range t.Judge {
		if d.WinRate != nil {
			fmt.Fprintf(p.w, "    judge result for %s: %s, win rate %.1f%% [%.1f%%, %.1f%%] over %.0f users (%.0f compared in both orders)\n",
				p.exp.Variants[i+1].Name, d.Verdict, 100**d.WinRate, 100*d.WinRateCI.Low, 100*d.WinRateCI.High, d.Users, d.BothOrders)
		}
	}
}

// demoBothOrders is the demo judge's share of comparisons asked in both
// orders (position bias).
var demoBothOrders = 0.25

// demoConfig is the demo's config: two upstreams on the demo's own
// address, one experiment, one route, reads and feedback open on
// loopback.
func demoConfig(addr, adminToken string) *experiments.Config {
	cfg := &experiments.Config{
		Server: experiments.Server{
			Listen:      addr,
			TokenSecret: experiments.Secret(hex.EncodeToString(randomSecret(32))),
		},
		Upstreams: []experiments.Upstream{
			{Name: "demo-base", URL: "http://" + addr + "/_demo/base", APIKey: "demo-base-key"},
			{Name: "demo-ft", URL: "http://" + addr + "/_demo/ft", APIKey: "demo-ft-key"},
		},
		Experiments: []experiments.Experiment{{
			ID:          demoExperiment,
			Description: "Does the support fine-tune v2 get more thumbs up than the base model?",
			Fallback:    true,
			Variants: []experiments.Variant{
				{Name: "base", Upstream: "demo-base", Model: "base-model", PromptPrice: 0.15, CompletionPrice: 0.60},
				{Name: "ft-v2", Upstream: "demo-ft", Model: "support-ft-v2", PromptPrice: 0.30, CompletionPrice: 1.20},
			},
			// A rollout compressed into minutes; real ones take days. The
			// guardrail margins are loose so that each step needs hundreds
			// of users rather than thousands (at the default 0.5-point error
			// margin a 10% step needs about 1,500 error-free users on the
			// candidate), and max_users sets the sequential test's N* to
			// the demo's scale.
			// The fake models answer within ~100 ms: a 1 s cap is the
			// tightest defensible one. The default, the upstreams' 10-minute
			// total_timeout, keeps the bounded latency test valid but would
			// need far more users than the demo has (issue 11).
			Caps: map[string]float64{experiments.MetricLatencyMS: 1000, experiments.MetricTTFBMS: 1000, experiments.MetricMaxGapMS: 1000},
			Rollout: &experiments.Rollout{
				Steps: []experiments.RampStep{
					{Percent: 10, MinDuration: experiments.Duration(10 * time.Second), MinUsers: 50},
					{Percent: 25, MinDuration: experiments.Duration(10 * time.Second), MinUsers: 100},
					{Percent: 50},
				},
				Guardrails: []experiments.Guardrail{
					{Metric: experiments.MetricError, Margin: 0.03},
					{Metric: experiments.MetricLatencyMS, Margin: 0.25, Relative: true},
				},
				MinUsers: 200,
				MaxUsers: 4000,
			},
			// The shadow stage before step 1: half of the users (by hash)
			// are replayed and judged, 150 of them at least (about 10 s).
			Judge: &experiments.Judge{URL: "http://" + addr + "/_demo/judge", Model: "fake-judge",
				RatePerSecond: 20, MaxConcurrency: 8, BothOrdersShare: &demoBothOrders,
				PromptPrice: 0.5, CompletionPrice: 1.5},
			// During the ramp steps the judge keeps judging a share of
			// both arms' users (live_percent), and the report compares it
			// with the users' thumbs ("Judge vs humans").
			Shadow: &experiments.Shadow{Percent: 50, MinUsers: 150, LivePercent: 30},
		}},
		Routes: []experiments.Route{{Alias: "demo", Experiment: demoExperiment}},
		// Reads and feedback are open on loopback; changes need the
		// admin token the demo prints.
		Auth: experiments.Auth{OpenReads: true, OpenFeedback: true, Tokens: []experiments.AuthToken{
			{Name: "demo-admin", Role: "admin", Token: experiments.Secret(adminToken)}}},
		Controller: experiments.Controller{Interval: experiments.Duration(2 * time.Second), LeaseTTL: experiments.Duration(10 * time.Second)},
	}
	cfg.SetDefaults()
	return cfg
}

// simulator sends synthetic users' requests and feedback through the
// gateway, over real HTTP, as an application backend would.
type simulator struct {
	url    string
	o      demoOptions
	client *http.Client

	mu        sync.Mutex
	requests  int
	failures  int
	feedbacks int
}

func newSimulator(url string, o demoOptions) *simulator {
	return &simulator{url: url, o: o, client: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
	}}
}

func (s *simulator) run(ctx context.Context) {
	interval := time.Duration(float64(time.Second) / s.o.rps)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sem := make(chan struct{}, 64) // bounds concurrent synthetic requests
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			continue // the gateway is slower than the rate: skip a beat
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.one(ctx)
		}()
	}
}

// one is one synthetic user's turn: ask, read the answer, and judge it.
// Users judge the answer's quality (the simulated models embed it), not
// the variant name: the thumbs-up probability is the answer's quality.
func (s *simulator) one(ctx context.Context) {
	user := fmt.Sprintf("user-%07d", rand.IntN(s.o.users))
	stream := rand.IntN(4) == 0
	body := fmt.Sprintf(`{"model":"demo","stream":%t,"messages":[{"role":"user","content":"Where is my order %d?"}]}`, stream, rand.IntN(1e6))
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User-ID", user)
	resp, err := s.client.Do(req)
	if err != nil {
		s.count(false, false)
		return
	}
	answer, err := readAnswer(resp)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		s.count(false, false)
		return
	}
	q, ok := fakemodel.Quality(answer)
	token := resp.Header.Get("X-Abgate-Token")
	if !ok || token == "" || rand.Float64() > 0.7 { // not every user leaves feedback
		s.count(true, false)
		return
	}
	thumbs := "down"
	if rand.Float64() < q {
		thumbs = "up"
	}
	signals := map[string]any{"thumbs": thumbs}
	if rand.IntN(3) == 0 {
		signals["task_completed"] = rand.Float64() < q+0.1
	}
	fb, _ := json.Marshal(map[string]any{"event_id": fmt.Sprintf("%s-%d", user, rand.Int64()), "signals": signals})
	freq, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/feedback", bytes.NewReader(fb))
	freq.Header.Set("X-Abgate-Token", token)
	fresp, err := s.client.Do(freq)
	if err != nil {
		s.count(true, false)
		return
	}
	io.Copy(io.Discard, fresp.Body)
	fresp.Body.Close()
	s.count(true, fresp.StatusCode == http.StatusOK)
}

func (s *simulator) count(ok, feedback bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if !ok {
		s.failures++
	}
	if feedback {
		s.feedbacks++
	}
}

// readAnswer returns the assistant's text from a JSON reply or an SSE
// stream of chunks.
func readAnswer(resp *http.Response) (string, error) {
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok || data == "[DONE]" {
				continue
			}
			var chunk struct {
				Choices []struct {
					Delta struct{ Content string } `json:"delta"`
				} `json:"choices"`
			}
			if json.Unmarshal([]byte(data), &chunk) == nil && len(chunk.Choices) > 0 {
				b.WriteString(chunk.Choices[0].Delta.Content)
			}
		}
		return b.String(), sc.Err()
	}
	var reply struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return "", err
	}
	if len(reply.Choices) == 0 {
		return "", fmt.Errorf("no choices")
	}
	return reply.Choices[0].Message.Content, nil
}

// printProgress prints, every interval, what the store holds per variant.
func printProgress(ctx context.Context, w io.Writer, a *app, s *simulator, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		exp := a.cfg.Load().Experiment(demoExperiment)
		st, err := a.lifecycle.State(ctx, exp.ID)
		if err != nil {
			continue // shutting down
		}
		snap, err := a.stores.outcomes.Summaries(ctx, exp.ID, st.Period)
		if err != nil {
			fmt.Fprintf(w, "[%s] store: %v\n", since(start), err)
			continue
		}
		s.mu.Lock()
		reqs, fails, fbs := s.requests, s.failures, s.feedbacks
		s.mu.Unlock()
		fmt.Fprintf(w, "[%s] %s; %d requests (%d failed), %d feedback events; this step's data:\n",
			since(start), st.Status, reqs, fails, fbs)
		variants := make([]int, 0, len(exp.Variants))
		for i := range exp.Variants {
			variants = append(variants, i)
		}
		sort.Ints(variants)
		for _, v := range variants {
			users := snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricRequests}]
			thumbs := snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricThumbs}]
			lat := snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricLatencyMS}]
			fmt.Fprintf(w, "    %-6s users %5.0f  requests %6.0f  thumbs-up %s  mean latency %s",
				exp.Variants[v].Name, users.N, users.SumX, rate(thumbs), mean(lat, "ms"))
			if j := snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricJudgeScore}]; j.N > 0 {
				fmt.Fprintf(w, "  judged %.0f users, judge win rate %s", j.N, rate(j))
			}
			fmt.Fprintln(w)
		}
		// The report's cohort sentence (which users the step is decided
		// on), and its judge vs humans sentence once a ramp step has
		// judged users who also gave thumbs.
		if st.Status == experiments.StatusRunning {
			r := api.BuildReport(exp, api.ReportStatus{Status: string(st.Status), Step: st.Step, Period: st.Period, Started: st.StepStarted}, nil, snap, nil, time.Now())
			if r.Cohort != nil {
				fmt.Fprintf(w, "    %s\n", r.Cohort.Sentence)
			}
			if r.Judge != nil && r.Judge.Humans != nil {
				for _, c := range r.Judge.Humans.Candidates {
					fmt.Fprintf(w, "    judge vs humans: %s\n", c.Sentence)
				}
			}
		}
	}
}

func since(t time.Time) string { return time.Since(t).Truncate(time.Second).String() }

func rate(s experiments.Summary) string {
	if s.SumY == 0 {
		return "   -  "
	}
	return fmt.Sprintf("%5.1f%%", 100*s.SumX/s.SumY)
}

func mean(s experiments.Summary, unit string) string {
	if s.SumY == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f %s", s.SumX/s.SumY, unit)
}

// randomSecret returns n random bytes for the demo's secrets (its
// callers hex-encode them).
func randomSecret(n int) []byte {
	b := make([]byte, n)
	crand.Read(b)
	return b
}
