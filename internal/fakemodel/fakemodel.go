// Package fakemodel is a simulated OpenAI-compatible model endpoint. The
// demo runs two of them (a base and a slightly better fine-tune), and the
// load harness runs one as the upstream that every proxy under test calls.
//
// It answers /v1/chat/completions, /v1/completions, /v1/responses (JSON or
// SSE when the body asks for "stream": true) and /v1/embeddings. The
// answer text carries the model's simulated quality ("quality=0.62"), which
// the demo's synthetic users read to decide their thumbs: they judge the
// answer, not the variant name.
package fakemodel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Model simulates one model endpoint. The zero value answers at once
// with quality 0.5; it is safe for concurrent use.
type Model struct {
	// Name is reported when the request names no model.
	Name string
	// Quality in [0,1] is embedded in every answer.
	Quality float64
	// Latency is the wait before response headers; TokenDelay the wait
	// between stream chunks.
	Latency    time.Duration
	TokenDelay time.Duration
	// Chunks is the number of content chunks in a stream (default 8).
	Chunks int
	// ErrorRate is the share of requests answered with a 500.
	ErrorRate float64
	// PromptTokens and CompletionTokens are reported in usage (defaults
	// 20 and 40).
	PromptTokens, CompletionTokens int

	requests atomic.Int64
}

// Requests is the number of requests the model has received.
func (m *Model) Requests() int64 { return m.requests.Load() }

// ServeHTTP answers one request.
func (m *Model) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.requests.Add(1)
	// The body is read whole but not decoded: a load test should measure
	// the proxy in front, not this fake's JSON decoding.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	if m.Latency > 0 {
		if !sleep(r, m.Latency) {
			return
		}
	}
	if m.ErrorRate > 0 && rand.Float64() < m.ErrorRate {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":{"message":"simulated upstream failure","type":"server_error","param":null,"code":null}}`)
		return
	}
	model := topLevelString(body, "model")
	if model == "" {
		model = m.Name
	}
	switch r.URL.Path {
	case "/v1/embeddings":
		m.embeddings(w, model)
	case "/v1/chat/completions", "/v1/completions", "/v1/responses":
		if isStream(body) {
			m.stream(w, r, model, bytes.Contains(body, []byte(`"include_usage":true`)))
			return
		}
		m.complete(w, r.URL.Path, model)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"message":"unknown path","type":"invalid_request_error","param":null,"code":"not_found"}}`)
	}
}

func (m *Model) tokens() (int, int) {
	p, c := m.PromptTokens, m.CompletionTokens
	if p == 0 {
		p = 20
	}
	if c == 0 {
		c = 40
	}
	return p, c
}

func (m *Model) answer() string {
	q := m.Quality
	if q == 0 {
		q = 0.5
	}
	return "This is a simulated answer. quality=" + strconv.FormatFloat(q, 'f', 3, 64)
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func (m *Model) usage() usage {
	p, c := m.tokens()
	return usage{p, c, p + c}
}

func (m *Model) complete(w http.ResponseWriter, path, model string) {
	var resp any
	switch path {
	case "/v1/completions":
		resp = map[string]any{
			"id": "cmpl-fake", "object": "text_completion", "created": time.Now().Unix(), "model": model,
			"choices": []any{map[string]any{"index": 0, "text": m.answer(), "finish_reason": "stop"}},
			"usage":   m.usage(),
		}
	case "/v1/responses":
		u := m.usage()
		resp = map[string]any{
			"id": "resp-fake", "object": "response", "created_at": time.Now().Unix(), "model": model, "status": "completed",
			"output": []any{map[string]any{"type": "message", "role": "assistant",
				"content": []any{map[string]any{"type": "output_text", "text": m.answer()}}}},
			"usage": map[string]int{"input_tokens": u.PromptTokens, "output_tokens": u.CompletionTokens, "total_tokens": u.TotalTokens},
		}
	default:
		resp = map[string]any{
			"id": "chatcmpl-fake", "object": "chat.completion", "created": time.Now().Unix(), "model": model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": m.answer()}}},
			"usage": m.usage(),
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func (m *Model) stream(w http.ResponseWriter, r *http.Request, model string, includeUsage bool) {
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	n := m.Chunks
	if n <= 0 {
		n = 8
	}
	words := []byte(m.answer())
	created := time.Now().Unix()
	// With include_usage OpenAI adds "usage":null to every chunk before
	// the usage-only one; the gateway must cut both when it asked.
	null := ""
	if includeUsage {
		null = `,"usage":null`
	}
	for i := 0; i < n; i++ {
		if i > 0 && m.TokenDelay > 0 && !sleep(r, m.TokenDelay) {
			return
		}
		part := words[i*len(words)/n : (i+1)*len(words)/n]
		content, _ := json.Marshal(string(part))
		fmt.Fprintf(w, `data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":%d,"model":%q,"choices":[{"index":0,"delta":{"content":%s},"finish_reason":null}]%s}`+"\n\n", created, model, content, null)
		if fl != nil {
			fl.Flush()
		}
	}
	fmt.Fprintf(w, `data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":%d,"model":%q,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]%s}`+"\n\n", created, model, null)
	if includeUsage {
		u, _ := json.Marshal(m.usage())
		fmt.Fprintf(w, `data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":%d,"model":%q,"choices":[],"usage":%s}`+"\n\n", created, model, u)
	}
	io.WriteString(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}

func (m *Model) embeddings(w http.ResponseWriter, model string) {
	p, _ := m.tokens()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"object": "list", "model": model,
		"data":  []any{map[string]any{"object": "embedding", "index": 0, "embedding": []float64{0.1, -0.2, 0.3, 0.05}}},
		"usage": map[string]int{"prompt_tokens": p, "total_tokens": p},
	})
}

// sleep waits d or until the client leaves; it reports whether the wait
// completed.
func sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// isStream reports whether the request body asks for a stream. A fake can
// afford a substring test; the gateway cannot.
func isStream(body []byte) bool {
	return bytes.Contains(body, []byte(`"stream":true`)) || bytes.Contains(body, []byte(`"stream": true`))
}

// topLevelString decodes body just enough to find one string field.
func topLevelString(body []byte, field string) string {
	var v map[string]json.RawMessage
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	var s string
	json.Unmarshal(v[field], &s)
	return s
}

// Quality parses the quality an answer text carries, for synthetic users;
// ok is false when the text carries none.
func Quality(answer string) (q float64, ok bool) {
	i := bytes.LastIndex([]byte(answer), []byte("quality="))
	if i < 0 {
		return 0, false
	}
	rest := answer[i+len("quality="):]
	j := 0
	for j < len(rest) && (rest[j] == '.' || rest[j] >= '0' && rest[j] <= '9') {
		j++
	}
	q, err := strconv.ParseFloat(rest[:j], 64)
	return q, err == nil
}
