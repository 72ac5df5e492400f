package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/internal/fakemodel"
)

// openAIStream is a chat completion stream as OpenAI sends it: with
// include_usage every chunk carries "usage":null and a usage-only chunk
// precedes [DONE]; without it, neither.
func openAIStream(includeUsage bool) string {
	var b strings.Builder
	null := ""
	if includeUsage {
		null = `,"usage":null`
	}
	for i, part := range []string{"Hel", "lo", " there"} {
		fmt.Fprintf(&b, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]%s}`+"\n\n", part, null)
		_ = i
	}
	fmt.Fprintf(&b, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]%s}`+"\n\n", null)
	if includeUsage {
		b.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":31,"completion_tokens":7,"total_tokens":38}}` + "\n\n")
	}
	b.WriteString("data: [DONE]\n\n")
	return b.String()
}

// streamingUpstream answers like OpenAI: usage when the body asks for
// it, unless ignoreUsage. It writes in small pieces, flushing each, so
// the gateway sees lines split across reads.
func streamingUpstream(ignoreUsage bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			StreamOptions *struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &req); err != nil {
			http.Error(w, "bad json: "+err.Error(), http.StatusBadRequest)
			return
		}
		usage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage && !ignoreUsage
		w.Header().Set("Content-Type", "text/event-stream")
		s := openAIStream(usage)
		for len(s) > 0 {
			n := min(len(s), 37)
			io.WriteString(w, s[:n])
			w.(http.Flusher).Flush()
			s = s[n:]
		}
	}
}

func TestStreamUsage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streamingUpstream(false), nil, func(c *experiments.Config) { c.Experiments[0].Variants[1].Weight = 0 })
	ignoring := newEnv(t, streamingUpstream(true), nil, func(c *experiments.Config) { c.Experiments[0].Variants[1].Weight = 0 })
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	for _, tc := range []struct {
		name      string
		env       *testEnv
		path      string
		body      string
		upstream  string // the body the upstream must see, model aside
		client    string // the stream the client must see
		missing   bool
		tokens    int
		usageSeen bool
	}{
		{name: "no stream_options", env: e,
			body:     `{"model":"` + testAlias + `","stream":true,` + msgs + `}`,
			upstream: `{"model":"` + baseModel + `","stream":true,` + msgs + `,"stream_options":{"include_usage":true}}`,
			client:   openAIStream(false), tokens: 31},
		{name: "empty stream_options", env: e,
			body:     `{"model":"` + testAlias + `","stream":true,"stream_options":{},` + msgs + `}`,
			upstream: `{"model":"` + baseModel + `","stream":true,"stream_options":{"include_usage":true},` + msgs + `}`,
			client:   openAIStream(false), tokens: 31},
		{name: "other stream_options", env: e,
			body:     `{"model":"` + testAlias + `","stream":true,"stream_options": { "x" : 1 },` + msgs + `}`,
			upstream: `{"model":"` + baseModel + `","stream":true,"stream_options": {"include_usage":true, "x" : 1 },` + msgs + `}`,
			client:   openAIStream(false), tokens: 31},
		{name: "include_usage false", env: e,
			body:     `{"model":"` + testAlias + `","stream":true,"stream_options":{"include_usage":false},` + msgs + `}`,
			upstream: `{"model":"` + baseModel + `","stream":true,"stream_options":{"include_usage":true},` + msgs + `}`,
			client:   openAIStream(false), tokens: 31},
		{name: "stream_options null", env: e,
			body:     `{"model":"` + testAlias + `","stream":true,"stream_options":null,` + msgs + `}`,
			upstream: `{"model":"` + baseModel + `","stream":true,"stream_options":{"include_usage":true},` + msgs + `}`,
			client:   openAIStream(false), tokens: 31},
		{name: "client asked", env: e,
			body:     `{"model":"` + testAlias + `","stream":true,"stream_options":{"include_usage":true},` + msgs + `}`,
			upstream: `{"model":"` + baseModel + `","stream":true,"stream_options":{"include_usage":true},` + msgs + `}`,
			client:   openAIStream(true), tokens: 31},
		{name: "legacy completions", env: e, path: "/v1/completions",
			body:     `{"model":"` + testAlias + `","stream":true,"prompt":"hi"}`,
			upstream: `{"model":"` + baseModel + `","stream":true,"prompt":"hi","stream_options":{"include_usage":true}}`,
			client:   openAIStream(false), tokens: 31},
		{name: "upstream gives no usage", env: ignoring,
			body:     `{"model":"` + testAlias + `","stream":true,` + msgs + `}`,
			upstream: `{"model":"` + baseModel + `","stream":true,` + msgs + `,"stream_options":{"include_usage":true}}`,
			client:   openAIStream(false), missing: true},
		{name: "stream false", env: e,
			body:     `{"model":"` + testAlias + `","stream":false,` + msgs + `}`,
			upstream: `{"model":"` + baseModel + `","stream":false,` + msgs + `}`,
			client:   openAIStream(false), missing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/v1/chat/completions"
			}
			res, got := post(t, nil, tc.env.front.URL+path, tc.body, nil)
			mustEqual(t, "status", res.StatusCode, http.StatusOK)
			mustEqual(t, "client stream", string(got), tc.client)
			seen := tc.env.base.next(t)
			mustEqual(t, "upstream body", string(seen.Body), tc.upstream)
			o := tc.env.rec.next(t)
			mustEqual(t, "usage missing", o.UsageMissing, tc.missing)
			mustEqual(t, "prompt tokens", o.PromptTokens, tc.tokens)
			mustEqual(t, "aborted", o.StreamAborted, false)
			if !tc.missing {
				mustEqual(t, "completion tokens", o.CompletionTokens, 7)
				if want := (31*0.15 + 7*0.6) / 1000; math.Abs(o.Cost-want) > 1e-12 {
					t.Errorf("cost %v, want %v", o.Cost, want)
				}
			}
		})
	}
}

// TestStripUsageSplits runs the filter over every way an upstream can
// split its stream into reads, CRLF line ends included: the client's
// bytes and the usage read never depend on the split.
func TestStripUsageSplits(t *testing.T) {
	t.Parallel()
	for _, crlf := range []bool{false, true} {
		in, want := openAIStream(true), openAIStream(false)
		if crlf {
			in, want = strings.ReplaceAll(in, "\n", "\r\n"), strings.ReplaceAll(want, "\n", "\r\n")
		}
		for name, r := range map[string]func() io.Reader{
			"whole":     func() io.Reader { return strings.NewReader(in) },
			"one byte":  func() io.Reader { return iotest.OneByteReader(strings.NewReader(in)) },
			"half":      func() io.Reader { return iotest.HalfReader(strings.NewReader(in)) },
			"data+EOF":  func() io.Reader { return iotest.DataErrReader(strings.NewReader(in)) },
			"no DONE\n": func() io.Reader { return strings.NewReader(strings.TrimSuffix(in, "\n")) },
		} {
			t.Run(fmt.Sprintf("%s crlf=%v", name, crlf), func(t *testing.T) {
				want := want
				if name == "no DONE\n" {
					want = strings.TrimSuffix(want, "\n")
				}
				// The proxy's buffer: one byte (the window path only), a
				// little more than minDirect, and ReverseProxy's.
				for _, size := range []int{1, minDirect + 100, copyBufSize} {
					m := &bodyMeter{rc: io.NopCloser(r()), now: time.Now, stream: true, strip: true}
					got, err := readAllWith(m, size)
					if err != nil {
						t.Fatal(err)
					}
					if m.buf != nil {
						t.Errorf("buffer %d: the window was not given back at the end", size)
					}
					m.Close()
					mustEqual(t, fmt.Sprintf("client bytes (buffer %d)", size), string(got), want)
					mustEqual(t, "usage", m.usage, true)
					mustEqual(t, "prompt", m.prompt, 31)
					mustEqual(t, "completed", m.completed, true)
				}
			})
		}
	}
}

// TestStripUsageKeepsOtherLines: comments, events and non-JSON lines
// pass untouched, as do chunks whose usage is not null; an overlong line
// passes through whole.
func TestStripUsageKeepsOtherLines(t *testing.T) {
	t.Parallel()
	long := `data: {"choices":[{"delta":{"content":"` + strings.Repeat("x", 100<<10) + `"}}],"usage":null}` + "\n\n"
	in := ": keep-alive\n\nevent: ping\ndata: not json \"usage\"\n\n" +
		`data: {"choices":[{"delta":{}}],"usage":{"prompt_tokens":1}}` + "\n\n" + long +
		`data: {"usage":null,"choices":[]}` + "\n\n" +
		`data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":6}}` + "\n\n" + "data: [DONE]\n\n"
	want := ": keep-alive\n\nevent: ping\ndata: not json \"usage\"\n\n" +
		`data: {"choices":[{"delta":{}}],"usage":{"prompt_tokens":1}}` + "\n\n" + long +
		`data: {"choices":[]}` + "\n\n" + "data: [DONE]\n\n"
	m := &bodyMeter{rc: io.NopCloser(iotest.HalfReader(strings.NewReader(in))), now: time.Now, stream: true, strip: true}
	got, err := io.ReadAll(m)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if string(got) != want {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("client bytes differ at %d: got %.80q, want %.80q", i, got[i:], want[i:])
	}
	mustEqual(t, "prompt", m.prompt, 5)
	mustEqual(t, "completion", m.completion, 6)
}

// TestResponsesUsage: the Responses API reports usage in its
// response.completed event, which carries the whole response and can be
// far longer than the meter keeps of a line.
func TestResponsesUsage(t *testing.T) {
	t.Parallel()
	for _, size := range []int{100, 200 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			text := strings.Repeat("y", size)
			stream := "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n" +
				"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"" + text[:10] + "\"}\n\n" +
				"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"" + text + "\"}]}],\"usage\":{\"input_tokens\":12,\"output_tokens\":345,\"total_tokens\":357},\"user\":null,\"metadata\":{}},\"sequence_number\":9}\n\n"
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, stream)
			}, nil, func(c *experiments.Config) { c.Experiments[0].Variants[1].Weight = 0 })
			body := `{"model":"` + testAlias + `","stream":true,"input":"hi"}`
			res, got := post(t, nil, e.front.URL+"/v1/responses", body, nil)
			mustEqual(t, "status", res.StatusCode, http.StatusOK)
			if !bytes.Equal(got, []byte(stream)) {
				t.Error("the Responses stream was changed")
			}
			seen := e.base.next(t)
			mustEqual(t, "upstream body", string(seen.Body), `{"model":"`+baseModel+`","stream":true,"input":"hi"}`)
			o := e.rec.next(t)
			mustEqual(t, "usage missing", o.UsageMissing, false)
			mustEqual(t, "input tokens", o.PromptTokens, 12)
			mustEqual(t, "output tokens", o.CompletionTokens, 345)
			mustEqual(t, "aborted", o.StreamAborted, false)
		})
	}
}

// TestUsageMissingJSON: a reply without usage is missing, an error
// costs nothing (known zero).
func TestUsageMissingJSON(t *testing.T) {
	t.Parallel()
	noUsage := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","choices":[]}`)
	}, nil, func(c *experiments.Config) { c.Experiments[0].Variants[1].Weight = 0 })
	post(t, nil, noUsage.front.URL+"/v1/chat/completions", chatBody(testAlias, "u"), nil)
	mustEqual(t, "missing", noUsage.rec.next(t).UsageMissing, true)

	failing := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{}}`, http.StatusBadRequest)
	}, nil, func(c *experiments.Config) { c.Experiments[0].Variants[1].Weight = 0 })
	post(t, nil, failing.front.URL+"/v1/chat/completions", chatBody(testAlias, "u"), nil)
	mustEqual(t, "missing on 400", failing.rec.next(t).UsageMissing, false)
}

// TestStreamUsageFakeModel runs the demo's fake model as the upstream:
// a client that did not ask for usage sees no usage at all, and the
// outcome has the model's token counts.
func TestStreamUsageFakeModel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, func(c *experiments.Config) { c.Experiments[0].Variants[1].Weight = 0 })
	e.base.handle = (&fakemodel.Model{Chunks: 5}).ServeHTTP
	res, got := post(t, nil, e.front.URL+"/v1/chat/completions", `{"model":"`+testAlias+`","stream":true,"messages":[]}`, nil)
	mustEqual(t, "status", res.StatusCode, http.StatusOK)
	if strings.Contains(string(got), "usage") || !strings.HasSuffix(string(got), "data: [DONE]\n\n") {
		t.Errorf("client stream: %s", got)
	}
	mustEqual(t, "events", strings.Count(string(got), "\n\n"), 5+2)
	o := e.rec.next(t)
	mustEqual(t, "usage missing", o.UsageMissing, false)
	mustEqual(t, "prompt", o.PromptTokens, 20)
	mustEqual(t, "completion", o.CompletionTokens, 40)
}

// TestStripDropsContentLength: an upstream stream with a declared length
// reaches the client without it, since the gateway cuts bytes.
func TestStripDropsContentLength(t *testing.T) {
	t.Parallel()
	s := openAIStream(true)
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(s)))
		io.WriteString(w, s)
	}, nil, func(c *experiments.Config) { c.Experiments[0].Variants[1].Weight = 0 })
	res, got := post(t, nil, e.front.URL+"/v1/chat/completions", `{"model":"`+testAlias+`","stream":true}`, nil)
	mustEqual(t, "status", res.StatusCode, http.StatusOK)
	mustEqual(t, "client stream", string(got), openAIStream(false))
	mustEqual(t, "prompt", e.rec.next(t).PromptTokens, 31)
}

// readAllWith reads r to EOF through a buffer of the given size, as
// ReverseProxy's copy loop does.
func readAllWith(r io.Reader, size int) ([]byte, error) {
	var out []byte
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
