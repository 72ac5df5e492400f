package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

func TestRoutesAndRewrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, forwardUnits) // the body stays the client's but for the model
	for _, tc := range []struct {
		name      string
		variant   int
		up        *fakeUpstream
		model     string
		authKey   string
		authValue string
	}{
		{"base", 0, e.base, baseModel, "Authorization", "Bearer base-secret-key"},
		{"candidate", 1, e.cand, candModel, "Api-Key", "tuned-secret-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := userFor(t, e.cfg, tc.variant)
			body := chatBody(testAlias, user)
			res, got := post(t, nil, e.front.URL+"/v1/chat/completions", body, map[string]string{
				"Authorization":      "Bearer client-key-must-not-leak",
				"Api-Key":            "client-azure-key-must-not-leak",
				"X-Abgate-Variant":   "smuggled",
				"X-Abgate-Debug":     "1",
				"Connection":         "X-Hop",
				"X-Hop":              "hop-by-hop",
				"X-Application-Info": "kept",
			})
			mustEqual(t, "status", res.StatusCode, http.StatusOK)
			mustEqual(t, "X-Upstream", res.Header.Get("X-Upstream"), tc.up.name)
			mustEqual(t, "X-Abgate-Variant", res.Header.Get(HeaderVariant), e.cfg.Experiments[0].Variants[tc.variant].Name)
			mustEqual(t, "X-Abgate-Variant values", len(res.Header.Values(HeaderVariant)), 1)
			if !strings.Contains(string(got), "hello from "+tc.up.name) {
				t.Errorf("body %q", got)
			}

			seen := tc.up.next(t)
			mustEqual(t, "upstream path", seen.Path, "/v1/chat/completions")
			want := strings.Replace(body, `"`+testAlias+`"`, `"`+tc.model+`"`, 1)
			mustEqual(t, "upstream body", string(seen.Body), want)
			mustEqual(t, "upstream Content-Length", seen.Header.Get("Content-Length"), fmt.Sprint(len(want)))
			mustEqual(t, "upstream "+tc.authKey, seen.Header.Get(tc.authKey), tc.authValue)
			if tc.authKey != "Authorization" && seen.Header.Get("Authorization") != "" {
				t.Errorf("client Authorization reached the upstream: %q", seen.Header.Get("Authorization"))
			}
			for k := range seen.Header {
				if strings.HasPrefix(strings.ToLower(k), "x-abgate") {
					t.Errorf("upstream saw gateway header %s", k)
				}
			}
			mustEqual(t, "hop-by-hop header", seen.Header.Get("X-Hop"), "")
			mustEqual(t, "end-to-end header", seen.Header.Get("X-Application-Info"), "kept")
			if tc.variant == 0 {
				mustEqual(t, "configured header", seen.Header.Get("OpenAI-Organization"), "org-acme")
				mustEqual(t, "client Api-Key", seen.Header.Get("Api-Key"), "")
			}
			<-e.rec.ch
		})
	}
}

func TestModelSpliceKeepsBytes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, func(c *experiments.Config) { c.Experiments[0].Variants[1].Weight = 0; forwardUnits(c) })
	// Odd spacing, escapes, the alias also appearing inside a prompt and
	// a nested "model" key: only the top-level value may change.
	prompt := "use \\\"model\\\": \\\"" + testAlias + "\\\""
	for _, tc := range []struct {
		name    string
		prompt  string
		chunked bool
	}{
		{"small", prompt, false},
		{"small chunked", prompt, true},
		{"large (not copied)", prompt + strings.Repeat(" lorem ipsum", 10000), false},
		{"large chunked", prompt + strings.Repeat(" lorem ipsum", 10000), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "{ \"messages\" : [{\"role\":\"user\",\"content\":\"" + tc.prompt + "\",\"model\":\"x\"}],\n\t\"model\" :  \"" + testAlias + "\" , \"user\":\"u1\"}"
			var r io.Reader = strings.NewReader(body)
			if tc.chunked {
				r = io.MultiReader(r)
			}
			res, err := http.Post(e.front.URL+"/v1/chat/completions", "application/json", r)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			mustEqual(t, "status", res.StatusCode, http.StatusOK)
			seen := e.base.next(t)
			want := strings.Replace(body, "\"model\" :  \""+testAlias+"\"", "\"model\" :  \""+baseModel+"\"", 1)
			mustEqual(t, "upstream body", string(seen.Body), want)
			<-e.rec.ch
		})
	}
}

func TestStickinessAndSplit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, nil)
	const users = 300
	counts := [2]int{}
	for i := 0; i < users; i++ {
		user := fmt.Sprintf("sticky-%d", i)
		var first string
		for j := 0; j < 3; j++ {
			var hdr map[string]string
			body := chatBody(testAlias, user)
			if j == 1 { // the header takes precedence over the body field
				hdr = map[string]string{"X-User-ID": user}
				body = chatBody(testAlias, "someone-else")
			}
			res, _ := post(t, nil, e.front.URL+"/v1/chat/completions", body, hdr)
			v := res.Header.Get(HeaderVariant)
			if j == 0 {
				first = v
			} else if v != first {
				t.Fatalf("user %s moved from %s to %s", user, first, v)
			}
		}
		if first == "base" {
			counts[0]++
		} else {
			counts[1]++
		}
	}
	// 50/50 split: 300 users, 4 standard deviations is ±35.
	if d := math.Abs(float64(counts[1]) - users/2); d > 35 {
		t.Errorf("split %v, want about %d each", counts, users/2)
	}
}

func TestStreaming(t *testing.T) {
	t.Parallel()
	firstRead := make(chan struct{})
	stream := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n")
		fl.Flush()
		select { // the upstream is not finished until the client saw chunk one
		case <-firstRead:
		case <-time.After(5 * time.Second):
			return
		}
		time.Sleep(20 * time.Millisecond)
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n")
		fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":2,\"total_tokens\":14}}\n\n")
		fmt.Fprint(w, "data: [DONE]\n\n")
	}
	e := newEnv(t, nil, stream, nil)
	user := userFor(t, e.cfg, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.front.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"`+testAlias+`","stream":true,"stream_options":{"include_usage":true},"messages":[],"user":"`+user+`"}`))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	mustEqual(t, "content type", res.Header.Get("Content-Type"), "text/event-stream")
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "Hel") {
		t.Fatalf("first chunk: %q, %v", line, err)
	}
	close(firstRead) // only now may the upstream finish
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("rest of stream: %q", rest)
	}

	o := e.rec.next(t)
	mustEqual(t, "variant", o.Variant, 1)
	mustEqual(t, "stream", o.Stream, true)
	mustEqual(t, "aborted", o.StreamAborted, false)
	mustEqual(t, "error", o.Error, false)
	mustEqual(t, "prompt tokens", o.PromptTokens, 12)
	mustEqual(t, "completion tokens", o.CompletionTokens, 2)
	if want := (12*0.3 + 2*1.2) / 1000; math.Abs(o.Cost-want) > 1e-12 {
		t.Errorf("cost %v, want %v", o.Cost, want)
	}
	if o.MaxGap < 15*time.Millisecond {
		t.Errorf("max gap %v, want at least the upstream's 20ms pause", o.MaxGap)
	}
	if o.TTFB <= 0 || o.TTFB > o.Latency {
		t.Errorf("ttfb %v latency %v", o.TTFB, o.Latency)
	}
}

func TestStreamAborted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the upstream dies mid-stream
	}, nil, nil)
	user := userFor(t, e.cfg, 0)
	req, _ := http.NewRequest(http.MethodPost, e.front.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"`+testAlias+`","stream":true,"user":"`+user+`"}`))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(res.Body)
	res.Body.Close()
	if err == nil {
		t.Error("client saw a clean end of an aborted stream")
	}
	o := e.rec.next(t)
	mustEqual(t, "stream", o.Stream, true)
	mustEqual(t, "aborted", o.StreamAborted, true)
	mustEqual(t, "error", o.Error, true)
	mustEqual(t, "status", o.Status, http.StatusOK)
}

func TestFallback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		candH  http.HandlerFunc
		candUp func(t testing.TB) string // replaces the candidate URL
		mutate func(*experiments.Config)
	}{
		{name: "5xx", candH: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusServiceUnavailable)
		}},
		{name: "connection refused", candUp: deadURL},
		{name: "header timeout", candH: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, mutate: func(c *experiments.Config) {
			c.Upstreams[1].HeaderTimeout = experiments.Duration(100 * time.Millisecond)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var dead string
			if tc.candUp != nil {
				dead = tc.candUp(t)
			}
			e := newEnv(t, nil, tc.candH, func(c *experiments.Config) {
				if dead != "" {
					c.Upstreams[1].URL = dead
				}
				if tc.mutate != nil {
					tc.mutate(c)
				}
			})
			user := userFor(t, e.cfg, 1)
			res, body := post(t, nil, e.front.URL+"/v1/chat/completions", chatBody(testAlias, user), nil)
			mustEqual(t, "status", res.StatusCode, http.StatusOK)
			mustEqual(t, "served by", res.Header.Get("X-Upstream"), "openai")
			mustEqual(t, "X-Abgate-Variant", res.Header.Get(HeaderVariant), "ft-v2")
			mustEqual(t, "X-Abgate-Fallback", res.Header.Get(HeaderFallback), "base")
			if !strings.Contains(string(body), "hello from openai") {
				t.Errorf("body %q", body)
			}
			seen := e.base.next(t)
			if !strings.Contains(string(seen.Body), `"model":"`+baseModel+`"`) {
				t.Errorf("base got %q", seen.Body)
			}
			tok, err := e.signer.Verify(res.Header.Get(HeaderToken), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, "token variant", tok.Variant, 1)

			o := e.rec.next(t)
			mustEqual(t, "outcome variant", o.Variant, 1)
			mustEqual(t, "fallback", o.Fallback, true)
			mustEqual(t, "error", o.Error, true)
			mustEqual(t, "status", o.Status, http.StatusOK)
			mustEqual(t, "prompt tokens", o.PromptTokens, 100)
			// Priced as the base that served it.
			if want := (100*0.15 + 50*0.6) / 1000; math.Abs(o.Cost-want) > 1e-12 {
				t.Errorf("cost %v, want %v", o.Cost, want)
			}
		})
	}
}

func TestNoFallbackWhenDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}, func(c *experiments.Config) { c.Experiments[0].Fallback = false })
	res, _ := post(t, nil, e.front.URL+"/v1/chat/completions", chatBody(testAlias, userFor(t, e.cfg, 1)), nil)
	mustEqual(t, "status", res.StatusCode, http.StatusInternalServerError)
	mustEqual(t, "X-Abgate-Fallback", res.Header.Get(HeaderFallback), "")
	o := e.rec.next(t)
	mustEqual(t, "error", o.Error, true)
	mustEqual(t, "fallback", o.Fallback, false)
}

func TestErrors(t *testing.T) {
	t.Parallel()
	slow := func(w http.ResponseWriter, r *http.Request) {
		select { // never sends headers in time
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	dead := deadURL(t)
	e := newEnv(t, slow, nil, func(c *experiments.Config) {
		c.Server.MaxBodyBytes = 4096
		c.Upstreams[0].HeaderTimeout = experiments.Duration(150 * time.Millisecond)
		c.Upstreams = append(c.Upstreams, experiments.Upstream{Name: "down", URL: dead})
		c.Experiments = append(c.Experiments, experiments.Experiment{ID: "down-exp", Fallback: true, Variants: []experiments.Variant{
			{Name: "base", Upstream: "down", Model: "m"},
		}})
		c.Routes = append(c.Routes, experiments.Route{Alias: "down-alias", Experiment: "down-exp"})
		// Same slow server, but the total timeout fires before the header timeout.
		c.Upstreams = append(c.Upstreams, experiments.Upstream{Name: "slow-total", URL: c.Upstreams[0].URL,
			HeaderTimeout: experiments.Duration(5 * time.Second), TotalTimeout: experiments.Duration(150 * time.Millisecond)})
		c.Experiments = append(c.Experiments, experiments.Experiment{ID: "slow-exp", Variants: []experiments.Variant{
			{Name: "base", Upstream: "slow-total", Model: "m"},
		}})
		c.Routes = append(c.Routes, experiments.Route{Alias: "slow-alias", Experiment: "slow-exp"})
	})
	big := `{"model":"` + testAlias + `","messages":[{"role":"user","content":"` + strings.Repeat("x", 5000) + `"}]}`
	for _, tc := range []struct {
		name     string
		path     string
		body     string
		chunked  bool
		status   int
		code     string
		param    string
		headers  bool // X-Abgate-Experiment expected
		outcome  bool
		errorSet bool
	}{
		{name: "too large", body: big, status: 413, code: "request_too_large"},
		{name: "too large chunked", body: big, chunked: true, status: 413, code: "request_too_large"},
		{name: "unknown alias", body: chatBody("gpt-5-nope", "u"), status: 404, code: "model_not_found", param: "model"},
		{name: "malformed", body: `{"model":"` + testAlias + `",`, status: 400, code: "invalid_request"},
		{name: "not an object", body: `["model"]`, status: 400, code: "invalid_request"},
		{name: "missing model", body: `{"messages":[]}`, status: 400, code: "invalid_request", param: "model"},
		{name: "model not a string", body: `{"model":42}`, status: 400, code: "invalid_request", param: "model"},
		{name: "unknown path", path: "/v1/files", body: chatBody(testAlias, "u"), status: 404, code: "unknown_url"},
		{name: "upstream down", body: chatBody("down-alias", "u"), status: 502, code: "upstream_unavailable", headers: true, outcome: true, errorSet: true},
		{name: "header timeout", body: chatBody(testAlias, userFor(t, e.cfg, 0)), status: 504, code: "upstream_timeout", headers: true, outcome: true, errorSet: true},
		{name: "total timeout", body: chatBody("slow-alias", "u"), status: 504, code: "upstream_timeout", headers: true, outcome: true, errorSet: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/v1/chat/completions"
			}
			var r io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				r = io.MultiReader(r) // hides the length: sent chunked
			}
			req, _ := http.NewRequest(http.MethodPost, e.front.URL+path, r)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			mustEqual(t, "status", res.StatusCode, tc.status)
			eb := decodeError(t, b)
			mustEqual(t, "code", eb.Error.Code, tc.code)
			if tc.param != "" {
				if eb.Error.Param == nil || *eb.Error.Param != tc.param {
					t.Errorf("param %v, want %q", eb.Error.Param, tc.param)
				}
			}
			mustEqual(t, "content type", res.Header.Get("Content-Type"), "application/json")
			if tc.path == "" && res.Header.Get(HeaderRequestID) == "" {
				t.Error("no request id")
			}
			mustEqual(t, "experiment header present", res.Header.Get(HeaderExperiment) != "", tc.headers)
			if tc.outcome {
				o := e.rec.next(t)
				mustEqual(t, "outcome status", o.Status, tc.status)
				mustEqual(t, "outcome error", o.Error, tc.errorSet)
			}
		})
	}
	// The 404 body has exactly OpenAI's shape.
	_, b := post(t, nil, e.front.URL+"/v1/chat/completions", chatBody("gpt-5-nope", ""), nil)
	want := `{"error":{"message":"The model ` + "`gpt-5-nope`" + ` does not exist or is not routed by this gateway.","type":"invalid_request_error","param":"model","code":"model_not_found"}}`
	mustEqual(t, "404 body", string(b), want)
	select {
	case o := <-e.rec.ch:
		t.Errorf("unexpected outcome %+v", o)
	default:
	}
}

func TestClientCancelReachesUpstream(t *testing.T) {
	t.Parallel()
	got := make(chan struct{})
	canceled := make(chan struct{})
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		close(got)
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-time.After(5 * time.Second):
		}
	}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.front.URL+"/v1/chat/completions",
		strings.NewReader(chatBody(testAlias, userFor(t, e.cfg, 0))))
	done := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream never got the request")
	}
	cancel()
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream did not observe the cancellation")
	}
	<-done
	o := e.rec.next(t)
	mustEqual(t, "status", o.Status, 0)
	mustEqual(t, "error", o.Error, false)
	mustEqual(t, "fallback", o.Fallback, false)
}

func TestHeadersAndToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, nil)
	for _, tc := range []struct {
		name     string
		user     string
		variant  int
		analysed bool
	}{
		{"hashed candidate", userFor(t, e.cfg, 1), 1, true},
		{"hashed base", userFor(t, e.cfg, 0), 0, true},
		{"no unit goes to base", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := post(t, nil, e.front.URL+"/v1/chat/completions", chatBody(testAlias, tc.user), nil)
			mustEqual(t, "status", res.StatusCode, 200)
			mustEqual(t, "experiment", res.Header.Get(HeaderExperiment), testExp)
			mustEqual(t, "variant", res.Header.Get(HeaderVariant), e.cfg.Experiments[0].Variants[tc.variant].Name)
			rid := res.Header.Get(HeaderRequestID)
			mustEqual(t, "request id length", len(rid), 32)
			tok, err := e.signer.Verify(res.Header.Get(HeaderToken), time.Now())
			if err != nil {
				t.Fatalf("token: %v", err)
			}
			var unit experiments.UnitKey
			if tc.user != "" {
				unit = e.signer.KeyUnit(tc.user)
			}
			want := experiments.Token{Experiment: testExp, Phase: 1, Variant: tc.variant, Unit: unit, Analysed: tc.analysed, RequestID: rid, Expires: tok.Expires}
			mustEqual(t, "token", tok, want)

			o := e.rec.next(t)
			mustEqual(t, "outcome variant", o.Variant, tc.variant)
			mustEqual(t, "outcome analysed", o.Analysed, tc.analysed)
			mustEqual(t, "outcome unit", o.Unit, unit)
			mustEqual(t, "outcome status", o.Status, 200)
			mustEqual(t, "outcome stream", o.Stream, false)
			mustEqual(t, "outcome prompt tokens", o.PromptTokens, 100)
			mustEqual(t, "outcome completion tokens", o.CompletionTokens, 50)
			v := e.cfg.Experiments[0].Variants[tc.variant]
			if want := (100*v.PromptPrice + 50*v.CompletionPrice) / 1000; math.Abs(o.Cost-want) > 1e-12 {
				t.Errorf("cost %v, want %v", o.Cost, want)
			}
			if o.TTFB <= 0 || o.Latency < o.TTFB {
				t.Errorf("ttfb %v latency %v", o.TTFB, o.Latency)
			}
		})
	}
}

func TestSetAllocationAndUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, nil)
	user := userFor(t, e.cfg, 0)
	variantOf := func() string {
		res, _ := post(t, nil, e.front.URL+"/v1/embeddings", `{"model":"`+testAlias+`","input":"x","user":"`+user+`"}`, nil)
		<-e.rec.ch
		return res.Header.Get(HeaderVariant)
	}
	mustEqual(t, "before", variantOf(), "base")

	a := e.cfg.Experiments[0].Allocation()
	a.Serve = 1
	if err := e.h.SetAllocation(testExp, a); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "promoted", variantOf(), "ft-v2")

	// A config reload keeps the override and the unchanged transports.
	before := e.h.snap.Load().upstreams["openai"].transport
	cfg := testConfig(e.base.URL, e.cand.URL)
	cfg.Upstreams[1].HeaderTimeout = experiments.Duration(time.Second)
	if err := e.h.Update(cfg); err != nil {
		t.Fatal(err)
	}
	s := e.h.snap.Load()
	if s.upstreams["openai"].transport != before {
		t.Error("unchanged upstream got a new transport")
	}
	mustEqual(t, "after reload", variantOf(), "ft-v2")

	if err := e.h.SetAllocation(testExp, nil); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "override cleared", variantOf(), "base")

	bad := e.cfg.Experiments[0].Allocation()
	bad.Shares = nil
	if err := e.h.SetAllocation(testExp, bad); err == nil {
		t.Error("allocation without a share per candidate accepted")
	}
	if err := e.h.SetAllocation("nope", a); err == nil {
		t.Error("unknown experiment accepted")
	}
	badCfg := testConfig(e.base.URL, e.cand.URL)
	badCfg.Experiments[0].Variants[1].Upstream = "missing"
	if err := e.h.Update(badCfg); err == nil {
		t.Error("config with an unknown upstream accepted")
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, nil)
	rec := httptest.NewRecorder()
	req, _ := http.NewRequest(http.MethodGet, "/v1/chat/completions", nil)
	e.h.ServeHTTP(rec, req)
	mustEqual(t, "status", rec.Code, http.StatusMethodNotAllowed)
}

func TestClientLeavesMidStream(t *testing.T) {
	t.Parallel()
	upstreamDone := make(chan struct{})
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		defer close(upstreamDone)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n")
		w.(http.Flusher).Flush()
		select { // keeps streaming until the gateway cancels it
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.front.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"`+testAlias+`","stream":true}`))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	res.Body.Close()
	select {
	case <-upstreamDone:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream stream not canceled")
	}
	o := e.rec.next(t)
	mustEqual(t, "stream", o.Stream, true)
	mustEqual(t, "aborted", o.StreamAborted, true)
	mustEqual(t, "error", o.Error, false)
	mustEqual(t, "analysed", o.Analysed, false)
}

// TestConcurrentUpdates serves traffic while the configuration and the
// allocation change underneath (run with -race).
func TestConcurrentUpdates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, nil)
	stop := make(chan struct{})
	updaterDone := make(chan struct{})
	go func() {
		defer close(updaterDone)
		a := e.cfg.Experiments[0].Allocation()
		a.Serve = 1
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				_ = e.h.SetAllocation(testExp, a)
			} else {
				_ = e.h.Update(testConfig(e.base.URL, e.cand.URL))
			}
			time.Sleep(time.Millisecond)
		}
	}()
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 25; i++ {
				// Not post: t.Fatal must not run off the test goroutine.
				res, err := http.Post(e.front.URL+"/v1/chat/completions", "application/json",
					strings.NewReader(chatBody(testAlias, fmt.Sprintf("c-%d-%d", g, i))))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Errorf("status %d", res.StatusCode)
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
	close(stop)
	<-updaterDone
}

// TestAllocationPeriod: outcomes and tokens carry the live allocation's
// data period, so each ramp step's data is kept apart.
func TestAllocationPeriod(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, nil)
	user := userFor(t, e.cfg, 0)
	phaseOf := func() (int, int) {
		res, _ := post(t, nil, e.front.URL+"/v1/embeddings", `{"model":"`+testAlias+`","input":"x","user":"`+user+`"}`, nil)
		o := e.rec.next(t)
		tok, err := e.signer.Verify(res.Header.Get(HeaderToken), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return o.Phase, tok.Phase
	}
	o, tok := phaseOf()
	mustEqual(t, "configured outcome phase", o, e.cfg.Experiments[0].PhaseOrOne())
	mustEqual(t, "configured token phase", tok, e.cfg.Experiments[0].PhaseOrOne())

	a := e.cfg.Experiments[0].Allocation()
	a.Period = 7
	if err := e.h.SetAllocation(testExp, a); err != nil {
		t.Fatal(err)
	}
	o, tok = phaseOf()
	mustEqual(t, "outcome phase after a ramp step", o, 7)
	mustEqual(t, "token phase after a ramp step", tok, 7)
}

// TestRolloutStartsAsDraft: an experiment with a rollout serves the base
// to everyone until its lifecycle allocation arrives, whatever weights
// its config holds, so nobody reaches a candidate before the start.
func TestRolloutStartsAsDraft(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, func(c *experiments.Config) {
		c.Experiments[0].Rollout = &experiments.Rollout{}
	})
	for i := range 40 {
		res, _ := post(t, nil, e.front.URL+"/v1/embeddings",
			`{"model":"`+testAlias+`","input":"x","user":"draft-user-`+strconv.Itoa(i)+`"}`, nil)
		if v := res.Header.Get(HeaderVariant); v != "base" {
			t.Fatalf("user %d got %q before the rollout started", i, v)
		}
		if o := e.rec.next(t); o.Analysed {
			t.Fatalf("a draft experiment's request was analysed: %+v", o)
		}
	}
	// Started, at the default rollout's last step (50%): about half the
	// users now reach the candidate.
	a := e.cfg.Experiments[0].AllocationFor(experiments.State{Status: experiments.StatusRunning, Step: 3, Period: 2, SaltPhase: 1})
	if err := e.h.SetAllocation(testExp, a); err != nil {
		t.Fatal(err)
	}
	cand := 0
	for i := range 40 {
		res, _ := post(t, nil, e.front.URL+"/v1/embeddings",
			`{"model":"`+testAlias+`","input":"x","user":"draft-user-`+strconv.Itoa(i)+`"}`, nil)
		e.rec.next(t)
		if res.Header.Get(HeaderVariant) != "base" {
			cand++
		}
	}
	if cand < 5 || cand > 35 {
		t.Errorf("%d of 40 users on the candidate at 50%%", cand)
	}
}

// TestUpgradeNotForwarded: a client's protocol upgrade (curl --http2 on
// cleartext sends "Connection: Upgrade" and "Upgrade: h2c") never reaches
// a model upstream, and a malformed Upgrade value is not taken for an
// upstream failure: ReverseProxy rejects it before Rewrite through the
// ErrorHandler, which used to fall back to the base and answer 502.
func TestUpgradeNotForwarded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, nil)
	for _, tc := range []struct {
		name    string
		variant int
		upgrade string
	}{
		{"h2c on the base", 0, "h2c"},
		{"websocket on the candidate", 1, "websocket"},
		{"non-printable on the candidate", 1, "web\tsocket"},
		{"non-printable on the base", 0, "web\tsocket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := post(t, nil, e.front.URL+"/v1/chat/completions", chatBody(testAlias, userFor(t, e.cfg, tc.variant)), map[string]string{
				"Connection": "Upgrade, HTTP2-Settings",
				"Upgrade":    tc.upgrade,
			})
			mustEqual(t, "status", res.StatusCode, http.StatusOK)
			mustEqual(t, "X-Abgate-Fallback", res.Header.Get(HeaderFallback), "")
			up := e.base
			if tc.variant == 1 {
				up = e.cand
			}
			mustEqual(t, "served by", res.Header.Get("X-Upstream"), up.name)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("body %s", body)
			}
			seen := up.next(t)
			mustEqual(t, "upstream Upgrade", seen.Header.Get("Upgrade"), "")
			mustEqual(t, "upstream Connection", seen.Header.Get("Connection"), "")
			o := e.rec.next(t)
			mustEqual(t, "outcome error", o.Error, false)
			mustEqual(t, "outcome fallback", o.Fallback, false)
		})
	}
}

// TestInformationalResponseKeepsHeaders: ReverseProxy relays an
// upstream's 1xx (103 Early Hints) and then clears the whole response
// header map, which held the gateway's X-Abgate-* headers; the final
// response must still carry them, once each.
func TestInformationalResponseKeepsHeaders(t *testing.T) {
	t.Parallel()
	early := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}`)
	}
	fail := func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}
	for _, tc := range []struct {
		name         string
		baseH, candH http.HandlerFunc
		variant      int
		status       int
		fallback     string
	}{
		{"base", early, nil, 0, http.StatusOK, ""},
		{"candidate", nil, early, 1, http.StatusOK, ""},
		{"candidate fails after 103, base answers", nil, fail, 1, http.StatusOK, "base"},
		{"candidate fails, base sends 103", early, fail, 1, http.StatusOK, "base"},
		{"base fails after 103", fail, nil, 0, http.StatusServiceUnavailable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.baseH, tc.candH, nil)
			res, body := post(t, nil, e.front.URL+"/v1/chat/completions", chatBody(testAlias, userFor(t, e.cfg, tc.variant)), nil)
			mustEqual(t, "status", res.StatusCode, tc.status)
			for _, k := range []string{HeaderExperiment, HeaderVariant, HeaderRequestID, HeaderToken} {
				if n := len(res.Header.Values(k)); n != 1 {
					t.Errorf("%s: %d values %q (body %s)", k, n, res.Header.Values(k), body)
				}
			}
			mustEqual(t, "X-Abgate-Variant", res.Header.Get(HeaderVariant), e.cfg.Experiments[0].Variants[tc.variant].Name)
			mustEqual(t, "X-Abgate-Fallback", res.Header.Get(HeaderFallback), tc.fallback)
			mustEqual(t, "X-Abgate-Fallback values", len(res.Header.Values(HeaderFallback)), min(len(tc.fallback), 1))
			if _, err := e.signer.Verify(res.Header.Get(HeaderToken), time.Now()); err != nil {
				t.Errorf("token: %v", err)
			}
			o := e.rec.next(t)
			mustEqual(t, "outcome status", o.Status, tc.status)
		})
	}
}

// TestLargeMessagesThroughSmallBuffers: headers, bodies and SSE events
// several times the upstream connection's small buffers (upstreamReadBuf,
// upstreamWriteBuf) pass through whole, both ways.
func TestLargeMessagesThroughSmallBuffers(t *testing.T) {
	t.Parallel()
	bigHeader := strings.Repeat("h", 3<<10)
	content := strings.Repeat("x", 20<<10)
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Big") != bigHeader {
			http.Error(w, "request header cut", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Big-Answer", bigHeader)
		if strings.Contains(r.URL.RawQuery, "stream") {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q}}]}\n\n", content)
			w.(http.Flusher).Flush()
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"choices":[{"message":{"content":%q}}],"echo":%d}`, content, len(mustRead(r.Body)))
	}, nil, nil)
	user := userFor(t, e.cfg, 0)
	prompt := strings.Repeat("p", 10<<10)
	body := `{"model":"` + testAlias + `","messages":[{"role":"user","content":"` + prompt + `"}],"user":"` + user + `"}`
	for _, q := range []string{"", "?stream"} {
		res, got := post(t, nil, e.front.URL+"/v1/chat/completions"+q, body, map[string]string{"X-Big": bigHeader})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%q: status %d: %s", q, res.StatusCode, got)
		}
		if res.Header.Get("X-Big-Answer") != bigHeader {
			t.Errorf("%q: response header cut", q)
		}
		if !strings.Contains(string(got), content) {
			t.Errorf("%q: body cut: %d bytes", q, len(got))
		}
	}
}

func mustRead(r io.Reader) []byte {
	b, _ := io.ReadAll(r)
	return b
}
