package fakemodel

import (
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Judge simulates an LLM judge on an OpenAI-compatible chat-completions
// endpoint. It reads the two answers of the judge package's default
// rubric ("[Answer A]" … "[End of answer A]", likewise B), parses the
// quality each simulated answer carries, and prefers A with probability
//
//	clamp(0.5 + Sensitivity·(quality A − quality B) + PositionBias, 0, 1)
//
// so it knowingly prefers the higher-quality model, and the first-shown
// answer by PositionBias. It answers {"verdict": "A"} or {"verdict": "B"}
// (TIE when either answer carries no quality). Safe for concurrent use.
type Judge struct {
	// Sensitivity scales the preference for quality (default 2).
	Sensitivity float64
	// PositionBias is the extra probability of preferring the answer
	// shown first (A).
	PositionBias float64
	// Latency is the wait before the answer.
	Latency time.Duration
	// Seed, when not 0, makes the verdicts reproducible.
	Seed uint64

	once     sync.Once
	mu       sync.Mutex
	rng      *rand.Rand
	requests atomic.Int64
}

// Requests is the number of judge calls received.
func (j *Judge) Requests() int64 { return j.requests.Load() }

// PreferA is the probability the judge prefers answer A of qualities qa
// (shown first) and qb.
func (j *Judge) PreferA(qa, qb float64) float64 {
	s := j.Sensitivity
	if s == 0 {
		s = 2
	}
	return math.Min(1, math.Max(0, 0.5+s*(qa-qb)+j.PositionBias))
}

// ServeHTTP answers one judge call.
func (j *Judge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	j.requests.Add(1)
	j.once.Do(func() {
		seed := j.Seed
		if seed == 0 {
			seed = rand.Uint64()
		}
		j.rng = rand.New(rand.NewPCG(seed, 0x6a756467))
	})
	var req struct {
		Messages []struct {
			Content string `json:"content"`
		} `json:"messages"`
	}
	body, _ := io.ReadAll(r.Body)
	if json.Unmarshal(body, &req) != nil || len(req.Messages) == 0 {
		http.Error(w, `{"error":{"message":"bad judge request"}}`, http.StatusBadRequest)
		return
	}
	if j.Latency > 0 && !sleep(r, j.Latency) {
		return
	}
	msg := req.Messages[len(req.Messages)-1].Content
	qa, okA := Quality(between(msg, "[Answer A]", "[End of answer A]"))
	qb, okB := Quality(between(msg, "[Answer B]", "[End of answer B]"))
	verdict := "TIE"
	if okA && okB {
		j.mu.Lock()
		u := j.rng.Float64()
		j.mu.Unlock()
		verdict = "B"
		if u < j.PreferA(qa, qb) {
			verdict = "A"
		}
	}
	content, _ := json.Marshal(map[string]string{"verdict": verdict})
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-judge", "object": "chat.completion", "created": time.Now().Unix(), "model": "fake-judge",
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": string(content)}}},
		"usage": usage{len(msg) / 4, 6, len(msg)/4 + 6},
	})
}

// between returns the text of s between the markers ("" if absent).
func between(s, from, to string) string {
	_, rest, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	in, _, _ := strings.Cut(rest, to)
	return in
}
