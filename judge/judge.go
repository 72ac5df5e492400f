// Package judge is abgate's client for an LLM judge: any OpenAI-compatible
// chat-completions endpoint and model that compares a candidate's answer
// with the base's answer to the same prompt, blind.
//
// For each comparison the order shown is drawn at random, and on a
// configured share both orders are asked, so the judge's position bias
// can be measured (stats.JudgeGate reads it). Answers are parsed
// tolerantly ("A", "B", "TIE", a JSON verdict, MT-Bench's [[A]]).
//
// A Judge never blocks its caller: calls beyond MaxConcurrency, beyond
// the token bucket or beyond the hourly or daily cost budget are refused
// at once with ErrBusy, ErrRateLimited or ErrBudget, and every call has a
// timeout. Failures, unparseable answers and refusals are counted (Stats).
// Streams are not used.
//
// It imports experiments only for ConfigFrom; it must not import the HTTP
// layers (gateway, api), the stores or the recorder: the gateway's replay
// hook and the recorder call it and record its Verdicts.
package judge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"
)

// Errors of Compare, matched with errors.Is.
var (
	// ErrBusy: MaxConcurrency comparisons are already in flight.
	ErrBusy = errors.New("judge: too many comparisons in flight")
	// ErrRateLimited: the token bucket is empty.
	ErrRateLimited = errors.New("judge: rate limit reached")
	// ErrBudget: the hourly or daily cost budget would be exceeded.
	ErrBudget = errors.New("judge: cost budget exhausted")
	// ErrUnparseable: the judge's answer was not A, B or TIE.
	ErrUnparseable = errors.New("judge: unparseable verdict")
	// ErrUpstream: the endpoint failed (transport error or non-2xx).
	ErrUpstream = errors.New("judge: endpoint failed")
)

// Preference is the judge's verdict, from the candidate's side.
type Preference string

const (
	CandidateWins Preference = "candidate"
	BaseWins      Preference = "base"
	Tie           Preference = "tie"
)

// Verdict is one comparison's outcome.
type Verdict struct {
	Preference Preference `json:"preference"`
	// Score is the candidate's preference score: 1 win, ½ tie, 0 loss;
	// with BothOrders, the mean of the two verdicts (so a judge that
	// flips with the order gives ½). This is the x the recorder sums
	// per user for stats.JudgeInput.Preference.
	Score float64 `json:"score"`
	// BothOrders: the comparison was asked twice, answers swapped.
	BothOrders bool `json:"both_orders"`
	// CandidateFirst: the candidate's answer was shown first (in the
	// first asking, when BothOrders).
	CandidateFirst bool `json:"candidate_first"`
	// FirstShownPreferred is the share of the verdicts that preferred the
	// first-shown answer (a tie counts half): 0, ½ or 1 for one asking;
	// 0, ¼, ½, ¾ or 1 with BothOrders. Recorded, for BothOrders
	// comparisons only, as stats.JudgeInput.FirstShown.
	FirstShownPreferred float64 `json:"first_shown_preferred"`
	// Raw holds the judge's answers as received (one per asking), for
	// audit when prompt retention is on; callers drop it otherwise.
	Raw              []string `json:"raw,omitempty"`
	PromptTokens     int      `json:"prompt_tokens"`
	CompletionTokens int      `json:"completion_tokens"`
	Cost             float64  `json:"cost"`
}

// Config is a Judge's configuration (ConfigFrom builds it from an
// experiment's judge block). Zero fields take the defaults of
// experiments' judge block, except budgets and prices (0 = none).
type Config struct {
	// URL is the endpoint's base URL; "/v1/chat/completions" is appended
	// to its path, as for upstreams.
	URL string
	// APIKey is sent as "Authorization: Bearer <key>", or raw in
	// AuthHeader when set. Headers are added to every call.
	APIKey     string
	AuthHeader string
	Headers    map[string]string
	Model      string
	// Rubric is a text/template over Prompt, A, B and Criteria
	// (experiments.RubricFields); "" is DefaultRubric.
	Rubric   string
	Criteria string
	// BothOrdersShare of comparisons are asked in both orders (0..1).
	BothOrdersShare float64
	MaxConcurrency  int
	RatePerSecond   float64
	Burst           int
	MaxTokens       int
	// Timeout bounds one Compare, both orders included.
	Timeout time.Duration
	// Prices per 1,000 tokens and budgets per clock hour and UTC day.
	PromptPrice, CompletionPrice float64
	BudgetPerHour, BudgetPerDay  float64
}

// DefaultRubric is the built-in judge prompt. It asks for a strict JSON
// verdict; the parser also takes a bare "A", "B" or "TIE".
const DefaultRubric = `You are an impartial judge. Compare two AI assistant answers to the same user request and decide which one serves the user better.
{{if .Criteria}}
Criteria: {{.Criteria}}
{{end}}
Judge correctness first, then helpfulness, completeness, clarity and safety. The order of the answers is random: do not favour a position. Do not favour an answer for its length alone. If they are equally good, or equally bad, say TIE.

[User request]
{{.Prompt}}
[End of user request]

[Answer A]
{{.A}}
[End of answer A]

[Answer B]
{{.B}}
[End of answer B]

Reply with only one JSON object and nothing else: {"verdict": "A"}, {"verdict": "B"} or {"verdict": "TIE"}.`

// rubricData is what a rubric sees; its fields are
// experiments.RubricFields (TestRubricFields keeps them in step).
type rubricData struct{ Prompt, A, B, Criteria string }

// Option configures a Judge.
type Option func(*Judge)

// WithRand sets the source of the order and both-orders draws (default:
// a random seed). A Judge serialises its use.
func WithRand(src rand.Source) Option { return func(j *Judge) { j.rng = rand.New(src) } }

// WithClock sets the clock of the token bucket and the budget windows.
func WithClock(now func() time.Time) Option { return func(j *Judge) { j.now = now } }

// Judge compares answers with an LLM judge. It is safe for concurrent
// use.
type Judge struct {
	cfg      Config
	endpoint string
	hc       *http.Client
	tmpl     *template.Template
	now      func() time.Time
	sem      chan struct{}

	rngMu sync.Mutex
	rng   *rand.Rand

	mu       sync.Mutex // guards the bucket and the budget windows
	tokens   float64
	refilled time.Time
	hourKey  int64
	hourCost float64
	dayKey   int64
	dayCost  float64

	st counters
}

type counters struct {
	comparisons, bothOrders, candWins, baseWins, ties atomic.Int64
	calls, unparseable, failures                      atomic.Int64
	busy, rateLimited, overBudget                     atomic.Int64
	promptTokens, completionTokens                    atomic.Int64
	costNano                                          atomic.Int64 // total cost × 1e9
}

// Stats is a snapshot of a Judge's counters.
type Stats struct {
	// Comparisons completed (each BothOrders one counts once), and their
	// outcomes.
	Comparisons, BothOrders, CandidateWins, BaseWins, Ties int64
	// Calls made to the endpoint; Unparseable answers and Failures
	// (transport errors, non-2xx, timeouts) among them.
	Calls, Unparseable, Failures int64
	// Refused comparisons, by reason.
	RefusedBusy, RefusedRate, RefusedBudget int64
	PromptTokens, CompletionTokens          int64
	// Cost is the total spent; CostThisHour and CostToday the current
	// budget windows (including reservations of calls in flight).
	Cost, CostThisHour, CostToday float64
}

// New returns a Judge for cfg. hc nil means http.DefaultClient. It fails
// on a missing URL or model or a rubric that does not parse.
func New(cfg Config, hc *http.Client, opts ...Option) (*Judge, error) {
	if cfg.URL == "" || cfg.Model == "" {
		return nil, errors.New("judge: URL and Model are required")
	}
	if !(cfg.BothOrdersShare >= 0 && cfg.BothOrdersShare <= 1) {
		return nil, errors.New("judge: BothOrdersShare must be in [0,1]")
	}
	if cfg.MaxConcurrency <= 0 {
		cfg.MaxConcurrency = 4
	}
	if !(cfg.RatePerSecond > 0) {
		cfg.RatePerSecond = 2
	}
	if cfg.Burst <= 0 {
		cfg.Burst = max(1, int(math.Ceil(2*cfg.RatePerSecond)))
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	src := cfg.Rubric
	if src == "" {
		src = DefaultRubric
	}
	t, err := template.New("rubric").Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("judge: rubric: %w", err)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	j := &Judge{
		cfg:      cfg,
		endpoint: strings.TrimRight(cfg.URL, "/") + "/v1/chat/completions",
		hc:       hc,
		tmpl:     t,
		now:      time.Now,
		sem:      make(chan struct{}, cfg.MaxConcurrency),
		rng:      rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		tokens:   float64(cfg.Burst),
	}
	for _, o := range opts {
		o(j)
	}
	j.refilled = j.now()
	return j, nil
}

// Compare asks the judge which of the candidate's and the base's answers
// to prompt is better. The order shown is drawn at random; on
// BothOrdersShare of comparisons both orders are asked and the verdicts
// averaged. It returns at once with ErrBusy, ErrRateLimited or ErrBudget
// when the comparison can't start, and otherwise within Config.Timeout
// (or ctx's deadline, if sooner). A comparison with any failed or
// unparseable asking returns an error and no verdict: half a both-orders
// comparison would bias the score.
func (j *Judge) Compare(ctx context.Context, prompt, candidate, base string) (Verdict, error) {
	j.rngMu.Lock()
	candFirst := j.rng.IntN(2) == 0
	both := j.cfg.BothOrdersShare > 0 && j.rng.Float64() < j.cfg.BothOrdersShare
	j.rngMu.Unlock()
	calls := 1
	if both {
		calls = 2
	}

	select {
	case j.sem <- struct{}{}:
		defer func() { <-j.sem }()
	default:
		j.st.busy.Add(1)
		return Verdict{}, ErrBusy
	}
	// Reserve the calls' estimated cost (prompt ≈ bytes/3 tokens, the full
	// max_tokens of completion), so concurrent comparisons can't overrun
	// a budget; the estimate is settled against the usage reported.
	est := float64(calls) * j.cost(len(prompt)/3+len(candidate)/3+len(base)/3+len(DefaultRubric)/4, j.cfg.MaxTokens)
	if err := j.take(calls, est); err != nil {
		return Verdict{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, j.cfg.Timeout)
	defer cancel()

	v := Verdict{BothOrders: both, CandidateFirst: candFirst}
	var score, first float64
	order := candFirst
	var spent float64
	for range calls {
		a, b := base, candidate
		if order {
			a, b = candidate, base
		}
		raw, pt, ct, err := j.ask(ctx, prompt, a, b)
		c := j.cost(pt, ct)
		spent += c
		v.PromptTokens += pt
		v.CompletionTokens += ct
		if err != nil {
			j.settle(est, spent)
			return Verdict{}, err
		}
		v.Raw = append(v.Raw, raw)
		w, ok := Parse(raw)
		if !ok {
			j.st.unparseable.Add(1)
			j.settle(est, spent)
			return Verdict{}, fmt.Errorf("%w: %q", ErrUnparseable, truncate(raw, 64))
		}
		switch w {
		case "A":
			first++
			if order {
				score++
			}
		case "B":
			if !order {
				score++
			}
		default: // TIE
			first += 0.5
			score += 0.5
		}
		order = !order
	}
	j.settle(est, spent)
	v.Score = score / float64(calls)
	v.FirstShownPreferred = first / float64(calls)
	v.Cost = spent
	switch {
	case v.Score > 0.5:
		v.Preference = CandidateWins
		j.st.candWins.Add(1)
	case v.Score < 0.5:
		v.Preference = BaseWins
		j.st.baseWins.Add(1)
	default:
		v.Preference = Tie
		j.st.ties.Add(1)
	}
	j.st.comparisons.Add(1)
	if both {
		j.st.bothOrders.Add(1)
	}
	j.st.promptTokens.Add(int64(v.PromptTokens))
	j.st.completionTokens.Add(int64(v.CompletionTokens))
	return v, nil
}

func (j *Judge) cost(promptTokens, completionTokens int) float64 {
	return (float64(promptTokens)*j.cfg.PromptPrice + float64(completionTokens)*j.cfg.CompletionPrice) / 1000
}

// Ready reports whether a comparison could start now: a free concurrency
// slot and a token in the bucket. It takes nothing. The shadow replay asks
// before it replays a sample to a model, so a sample the judge would
// refuse costs no model call (a Compare may still be refused when another
// took the last token in between).
func (j *Judge) Ready() bool {
	if len(j.sem) >= cap(j.sem) {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.refill(j.now())
	return j.tokens >= 1
}

// refill adds the tokens earned since the last refill, up to the burst;
// j.mu is held.
func (j *Judge) refill(now time.Time) {
	if dt := now.Sub(j.refilled).Seconds(); dt > 0 {
		j.tokens = math.Min(float64(j.cfg.Burst), j.tokens+dt*j.cfg.RatePerSecond)
		j.refilled = now
	}
}

// take refills the bucket, then takes n tokens and reserves est of both
// budgets, or refuses.
func (j *Judge) take(n int, est float64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := j.now()
	j.refill(now)
	if j.tokens < float64(n) {
		j.st.rateLimited.Add(1)
		return ErrRateLimited
	}
	j.rollWindows(now)
	if (j.cfg.BudgetPerHour > 0 && j.hourCost+est > j.cfg.BudgetPerHour) ||
		(j.cfg.BudgetPerDay > 0 && j.dayCost+est > j.cfg.BudgetPerDay) {
		j.st.overBudget.Add(1)
		return ErrBudget
	}
	j.tokens -= float64(n)
	j.hourCost += est
	j.dayCost += est
	return nil
}

// settle replaces a reservation with what was spent (in the current
// windows: a call that straddles the hour is charged to the new one).
func (j *Judge) settle(reserved, spent float64) {
	j.mu.Lock()
	j.rollWindows(j.now())
	j.hourCost = math.Max(j.hourCost-reserved, 0) + spent
	j.dayCost = math.Max(j.dayCost-reserved, 0) + spent
	j.mu.Unlock()
	j.st.costNano.Add(int64(math.Round(spent * 1e9)))
}

func (j *Judge) rollWindows(now time.Time) {
	u := now.UTC()
	if h := u.Unix() / 3600; h != j.hourKey {
		j.hourKey, j.hourCost = h, 0
	}
	if d := u.Unix() / 86400; d != j.dayKey {
		j.dayKey, j.dayCost = d, 0
	}
}

type chatRequest struct {
	Model       string        `json:"model"`
	Messages    []chatMessage `json:"messages"`
	MaxTokens   int           `json:"max_tokens"`
	Temperature float64       `json:"temperature"`
	Stream      bool          `json:"stream"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatResponse struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// maxResponseBytes bounds what is read of a judge's answer.
const maxResponseBytes = 1 << 20

// ask makes one call with the answers in the order given.
func (j *Judge) ask(ctx context.Context, prompt, a, b string) (raw string, promptTokens, completionTokens int, err error) {
	var msg bytes.Buffer
	if err := j.tmpl.Execute(&msg, rubricData{Prompt: prompt, A: a, B: b, Criteria: j.cfg.Criteria}); err != nil {
		j.st.failures.Add(1)
		return "", 0, 0, fmt.Errorf("judge: rubric: %w", err)
	}
	body, err := json.Marshal(chatRequest{
		Model:     j.cfg.Model,
		Messages:  []chatMessage{{Role: "user", Content: msg.String()}},
		MaxTokens: j.cfg.MaxTokens,
		// Temperature 0: the judge's randomness would only add noise to
		// the preference; the order is what we randomise.
		Temperature: 0,
		Stream:      false,
	})
	if err != nil {
		return "", 0, 0, fmt.Errorf("judge: encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.endpoint, bytes.NewReader(body))
	if err != nil {
		j.st.failures.Add(1)
		return "", 0, 0, fmt.Errorf("%w: %v", ErrUpstream, err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range j.cfg.Headers {
		req.Header.Set(k, v)
	}
	if j.cfg.APIKey != "" {
		if j.cfg.AuthHeader != "" {
			req.Header.Set(j.cfg.AuthHeader, j.cfg.APIKey)
		} else {
			req.Header.Set("Authorization", "Bearer "+j.cfg.APIKey)
		}
	}
	j.st.calls.Add(1)
	resp, err := j.hc.Do(req)
	if err != nil {
		j.st.failures.Add(1)
		return "", 0, 0, fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		j.st.failures.Add(1)
		return "", 0, 0, fmt.Errorf("%w: reading the answer: %w", ErrUpstream, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		j.st.failures.Add(1)
		return "", 0, 0, fmt.Errorf("%w: status %d", ErrUpstream, resp.StatusCode)
	}
	var cr chatResponse
	if err := json.Unmarshal(data, &cr); err != nil || len(cr.Choices) == 0 {
		j.st.failures.Add(1)
		return "", 0, 0, fmt.Errorf("%w: not a chat completion", ErrUpstream)
	}
	return cr.Choices[0].Message.Content, max(cr.Usage.PromptTokens, 0), max(cr.Usage.CompletionTokens, 0), nil
}

// Stats returns the counters.
func (j *Judge) Stats() Stats {
	j.mu.Lock()
	j.rollWindows(j.now())
	hour, day := j.hourCost, j.dayCost
	j.mu.Unlock()
	return Stats{
		Comparisons: j.st.comparisons.Load(), BothOrders: j.st.bothOrders.Load(),
		CandidateWins: j.st.candWins.Load(), BaseWins: j.st.baseWins.Load(), Ties: j.st.ties.Load(),
		Calls: j.st.calls.Load(), Unparseable: j.st.unparseable.Load(), Failures: j.st.failures.Load(),
		RefusedBusy: j.st.busy.Load(), RefusedRate: j.st.rateLimited.Load(), RefusedBudget: j.st.overBudget.Load(),
		PromptTokens: j.st.promptTokens.Load(), CompletionTokens: j.st.completionTokens.Load(),
		Cost: float64(j.st.costNano.Load()) / 1e9, CostThisHour: hour, CostToday: day,
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
