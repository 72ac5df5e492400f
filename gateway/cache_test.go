package gateway

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"testing"

	"github.com/abgate/abgate/experiments"
)

// TestCachedTokens: the outcome carries the cached prompt tokens of a
// chat completion (prompt_tokens_details) and of a Responses stream
// (input_tokens_details), and its cost prices them at the variant's
// cached prompt price, the rest of the prompt at the prompt price
// (issue 15).
func TestCachedTokens(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, path, body, ctype, reply string
		cachedPrice                    *float64
		wantCost                       float64
	}{
		{"chat", "/v1/chat/completions", chatBody(testAlias, "u"), "application/json",
			`{"id":"x","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":100,"prompt_tokens_details":{"cached_tokens":800}}}`,
			ptr(0.5), (200*2 + 800*0.5 + 100*8) / 1000.0},
		{"chat without a cached price", "/v1/chat/completions", chatBody(testAlias, "u"), "application/json",
			`{"id":"x","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":100,"prompt_tokens_details":{"cached_tokens":800}}}`,
			nil, (1000*2 + 100*8) / 1000.0},
		{"responses stream", "/v1/responses", `{"model":"` + testAlias + `","stream":true,"input":"hi"}`, "text/event-stream",
			"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":1000,\"input_tokens_details\":{\"cached_tokens\":400},\"output_tokens\":100}}}\n\n",
			ptr(0), (600*2 + 100*8) / 1000.0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				io.WriteString(w, tc.reply)
			}, nil, func(c *experiments.Config) {
				c.Experiments[0].Variants[1].Weight = 0
				v := &c.Experiments[0].Variants[0]
				v.PromptPrice, v.CompletionPrice, v.CachedPromptPrice = 2, 8, tc.cachedPrice
			})
			res, _ := post(t, nil, e.front.URL+tc.path, tc.body, nil)
			mustEqual(t, "status", res.StatusCode, http.StatusOK)
			o := e.rec.next(t)
			mustEqual(t, "prompt", o.PromptTokens, 1000)
			if o.CachedTokens == 0 || math.Abs(o.Cost-tc.wantCost) > 1e-12 {
				t.Errorf("cached %d cost %v, want cost %v", o.CachedTokens, o.Cost, tc.wantCost)
			}
		})
	}
}

// TestVariantCost: cached tokens beyond the prompt, or negative, are
// clamped.
func TestVariantCost(t *testing.T) {
	t.Parallel()
	v := variant{promptPrice: 2, cachedPrice: 1, completionPrice: 4}
	for _, tc := range []struct {
		prompt, cached, completion int
		want                       float64
	}{
		{1000, 0, 0, 2}, {1000, 1000, 0, 1}, {1000, 5000, 0, 1}, {1000, -5, 500, 4}, {0, 0, 0, 0},
	} {
		if got := v.cost(tc.prompt, tc.cached, tc.completion); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("cost(%d, %d, %d) = %v, want %v", tc.prompt, tc.cached, tc.completion, got, tc.want)
		}
	}
}

func ptr(x float64) *float64 { return &x }

// TestMeterSSECached: a chat stream's usage-only chunk carries the cached
// tokens too (the strip path's usageFields, whatever the read split).
func TestMeterSSECached(t *testing.T) {
	t.Parallel()
	stream := "data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":4,\"prompt_tokens_details\":{\"cached_tokens\":16}}}\n\n" +
		"data: [DONE]\n\n"
	for i := 0; i <= len(stream); i++ {
		var m bodyMeter
		m.stream = true
		m.sse([]byte(stream[:i]))
		m.sse([]byte(stream[i:]))
		if m.prompt != 30 || m.cached != 16 {
			t.Fatalf("split at %d: prompt %d cached %d", i, m.prompt, m.cached)
		}
		m.Close()
	}
}

// FuzzParseUsageCached: usage objects written by encoding/json, in
// either API's shape, parse back to the same counts, cached included.
func FuzzParseUsageCached(f *testing.F) {
	f.Add(uint32(1000), uint32(10), uint32(800), true, false)
	f.Add(uint32(0), uint32(0), uint32(0), false, true)
	f.Fuzz(func(t *testing.T, prompt, completion, cached uint32, responses, wrap bool) {
		in, out, details := "prompt_tokens", "completion_tokens", "prompt_tokens_details"
		if responses {
			in, out, details = "input_tokens", "output_tokens", "input_tokens_details"
		}
		u := map[string]any{in: prompt, out: completion, details: map[string]any{"cached_tokens": cached, "audio_tokens": 0}}
		var doc any = map[string]any{"id": "x", "usage": u}
		if wrap {
			doc = map[string]any{"type": "response.completed", "response": doc}
		}
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseUsage(b)
		if !ok || got != (tokenUsage{prompt: int(prompt), completion: int(completion), cached: int(cached)}) {
			t.Fatalf("%s: got %+v ok %v", b, got, ok)
		}
	})
}
