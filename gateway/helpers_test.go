package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/internal/oaierr"
)

const (
	testAlias     = "support-bot"
	testExp       = "support-ft"
	baseModel     = "gpt-4o-mini"
	candModel     = "ft:gpt-4o-mini:acme:v2"
	testSecret    = "0123456789abcdef0123456789abcdef"
	defaultWeight = 50
)

// seenRequest is what a fake upstream received.
type seenRequest struct {
	Path   string
	Header http.Header
	Body   []byte
}

// fakeUpstream is a real HTTP server standing in for a model API. It
// records every request, then runs handle (or answers a chat completion
// with usage).
type fakeUpstream struct {
	*httptest.Server
	name   string
	reqs   chan seenRequest
	handle http.HandlerFunc
}

func newFakeUpstream(t testing.TB, name string, handle http.HandlerFunc) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{name: name, reqs: make(chan seenRequest, 4096), handle: handle}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case u.reqs <- seenRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: b}:
		default:
		}
		w.Header().Set("X-Upstream", name)
		w.Header().Set("X-Abgate-Variant", "spoofed")
		if u.handle != nil {
			r.Body = io.NopCloser(bytes.NewReader(b)) // the handler may read it too
			u.handle(w, r)
			return
		}
		var req struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(b, &req)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hello from %s"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":50,"total_tokens":150,"prompt_tokens_details":{"cached_tokens":0}}}`, req.Model, name)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *fakeUpstream) next(t testing.TB) seenRequest {
	t.Helper()
	select {
	case r := <-u.reqs:
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("upstream %s received no request", u.name)
		return seenRequest{}
	}
}

// fakeRecorder collects outcomes.
type fakeRecorder struct{ ch chan experiments.Outcome }

func newFakeRecorder() *fakeRecorder { return &fakeRecorder{ch: make(chan experiments.Outcome, 4096)} }

func (f *fakeRecorder) Observe(o experiments.Outcome) {
	select {
	case f.ch <- o:
	default:
	}
}

var _ Recorder = (*fakeRecorder)(nil)

func (f *fakeRecorder) next(t testing.TB) experiments.Outcome {
	t.Helper()
	select {
	case o := <-f.ch:
		return o
	case <-time.After(5 * time.Second):
		t.Fatal("no outcome recorded")
		return experiments.Outcome{}
	}
}

func testConfig(baseURL, candURL string) *experiments.Config {
	return &experiments.Config{
		Server: experiments.Server{MaxBodyBytes: 1 << 20, UnitHeader: "X-User-ID", UnitBodyField: "user"},
		Upstreams: []experiments.Upstream{
			{
				Name: "openai", URL: baseURL, APIKey: "base-secret-key",
				Headers:        map[string]string{"OpenAI-Organization": "org-acme"},
				ConnectTimeout: experiments.Duration(2 * time.Second),
				HeaderTimeout:  experiments.Duration(5 * time.Second),
				TotalTimeout:   experiments.Duration(20 * time.Second),
			},
			{
				Name: "tuned", URL: candURL, APIKey: "tuned-secret-key", AuthHeader: "api-key",
				ConnectTimeout: experiments.Duration(2 * time.Second),
				HeaderTimeout:  experiments.Duration(5 * time.Second),
				TotalTimeout:   experiments.Duration(20 * time.Second),
			},
		},
		Experiments: []experiments.Experiment{{
			ID: testExp, Phase: 1, Fallback: true,
			Variants: []experiments.Variant{
				{Name: "base", Upstream: "openai", Model: baseModel, PromptPrice: 0.15, CompletionPrice: 0.6},
				{Name: "ft-v2", Upstream: "tuned", Model: candModel, Weight: defaultWeight, PromptPrice: 0.3, CompletionPrice: 1.2},
			},
		}},
		Routes: []experiments.Route{{Alias: testAlias, Experiment: testExp}},
	}
}

type testEnv struct {
	base, cand *fakeUpstream
	cfg        *experiments.Config
	h          *Handler
	front      *httptest.Server
	rec        *fakeRecorder
	signer     *experiments.Signer
}

// newEnv starts a base and a candidate upstream and the gateway (through
// its gin engine) in front of them.
func newEnv(t testing.TB, baseH, candH http.HandlerFunc, mutate func(*experiments.Config), opts ...Option) *testEnv {
	t.Helper()
	e := &testEnv{
		base:   newFakeUpstream(t, "openai", baseH),
		cand:   newFakeUpstream(t, "tuned", candH),
		rec:    newFakeRecorder(),
		signer: experiments.NewSigner([]byte(testSecret), time.Hour),
	}
	e.cfg = testConfig(e.base.URL, e.cand.URL)
	if mutate != nil {
		mutate(e.cfg)
	}
	quiet := slog.New(slog.DiscardHandler)
	h, err := New(e.cfg, e.signer, append([]Option{WithRecorder(e.rec), WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	e.front = httptest.NewServer(h.Engine())
	t.Cleanup(e.front.Close)
	return e
}

// userFor returns a unit id that the configured allocation hashes onto
// variant v.
func userFor(t testing.TB, cfg *experiments.Config, v int) string {
	t.Helper()
	a := cfg.Experiments[0].Allocation()
	for i := 0; i < 10000; i++ {
		u := fmt.Sprintf("user-%d", i)
		if experiments.Assign(a, u).Variant == v {
			return u
		}
	}
	t.Fatalf("no user for variant %d", v)
	return ""
}

func chatBody(model, user string) string {
	if user == "" {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"Say \"hi\" \u00e9"}],"temperature":0.2}`
	}
	return `{"model":"` + model + `","messages":[{"role":"user","content":"Say \"hi\" \u00e9"}],"user":"` + user + `","temperature":0.2}`
}

func post(t testing.TB, ctx context.Context, url, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// deadURL is an address nothing listens on.
func deadURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func decodeError(t testing.TB, b []byte) oaierr.Body {
	t.Helper()
	var e oaierr.Body
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Message == "" {
		t.Fatalf("not an OpenAI error body: %q (%v)", b, err)
	}
	return e
}

func mustEqual[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// forwardUnits makes every upstream receive the unit id as sent, for
// tests about other rewrites.
func forwardUnits(c *experiments.Config) {
	for i := range c.Upstreams {
		c.Upstreams[i].Privacy = experiments.UpstreamPrivacy{UnitHeader: experiments.PrivacyForward, UnitField: experiments.PrivacyForward}
	}
}
