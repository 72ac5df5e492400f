package shadow

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/judge"
)

// Bounds on what the replay reads and shows the judge.
const (
	maxReplayResponse = 1 << 20
	maxPromptChars    = 32 << 10
	defaultReplayWait = 60 * time.Second
)

// replay sends the sample's request to candidate v's upstream with its
// model, stream false, max_tokens capped and the unit id removed, and
// returns the candidate's answer text. Its cost, at the candidate's
// prices, is the shadow's own.
func (s *Service) replay(ctx context.Context, l *lane, v int, smp experiments.ShadowSample) (string, error) {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(smp.Body, &req); err != nil {
		return "", fmt.Errorf("decode request: %w", err)
	}
	vr := &l.exp.Variants[v]
	req["model"], _ = json.Marshal(vr.Model)
	req["stream"] = json.RawMessage("false")
	delete(req, "stream_options")
	// The candidate's upstream learns nothing of the user: the replay is
	// not the user's request.
	delete(req, "user")
	delete(req, l.unitF)
	capped := false
	for _, k := range []string{"max_tokens", "max_completion_tokens", "max_output_tokens"} {
		raw, ok := req[k]
		if !ok {
			continue
		}
		capped = true
		if n := 0; json.Unmarshal(raw, &n) != nil || n <= 0 || n > MaxReplayTokens {
			req[k] = json.RawMessage(strconv.Itoa(MaxReplayTokens))
		}
	}
	if !capped {
		k := "max_tokens"
		if smp.Path == "/v1/responses" {
			k = "max_output_tokens"
		}
		req[k] = json.RawMessage(strconv.Itoa(MaxReplayTokens))
	}
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	up := &l.ups[v]
	wait := time.Duration(up.TotalTimeout)
	if wait <= 0 {
		wait = defaultReplayWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(up.URL, "/")+smp.Path, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	hr.Header.Set("Content-Type", "application/json")
	for k, val := range up.Headers {
		hr.Header.Set(k, val)
	}
	if key := up.APIKey.Reveal(); key != "" {
		if up.AuthHeader != "" {
			hr.Header.Set(up.AuthHeader, key)
		} else {
			hr.Header.Set("Authorization", "Bearer "+key)
		}
	}
	resp, err := s.hc.Do(hr)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReplayResponse))
	if err != nil {
		return "", err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("candidate upstream status %d", resp.StatusCode)
	}
	text, pt, ct, ok := completionText(data)
	if !ok {
		return "", fmt.Errorf("candidate answer is not a completion")
	}
	l.st.addReplayCost(pt, ct, (float64(pt)*vr.PromptPrice+float64(ct)*vr.CompletionPrice)/1000)
	return text, nil
}

// completion is the part of a chat completion, a completion or a
// Responses API answer the replay reads.
type completion struct {
	Choices []struct {
		Text    string `json:"text"`
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Output []struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"output"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		InputTokens      int `json:"input_tokens"`
		OutputTokens     int `json:"output_tokens"`
	} `json:"usage"`
}

func (c *completion) text() string {
	var b strings.Builder
	if len(c.Choices) > 0 {
		ch := &c.Choices[0]
		b.WriteString(ch.Message.Content)
		b.WriteString(ch.Text)
		b.WriteString(ch.Delta.Content)
	}
	for _, o := range c.Output {
		for _, p := range o.Content {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// completionText reads a non-streamed answer: its text and usage.
func completionText(data []byte) (text string, promptTokens, completionTokens int, ok bool) {
	var c completion
	if json.Unmarshal(data, &c) != nil || (len(c.Choices) == 0 && len(c.Output) == 0) {
		return "", 0, 0, false
	}
	if u := c.Usage; u != nil {
		promptTokens, completionTokens = u.PromptTokens+u.InputTokens, u.CompletionTokens+u.OutputTokens
	}
	return c.text(), promptTokens, completionTokens, true
}

// answerText is the base's answer as the client got it: a JSON body, or
// the text assembled from an SSE stream's chunks.
func answerText(raw []byte, stream bool) (string, bool) {
	if !stream {
		t, _, _, ok := completionText(raw)
		return t, ok
	}
	var b strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), len(raw)+1)
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:"))
		data = bytes.TrimSpace(data)
		if !ok || len(data) == 0 || bytes.Equal(data, []byte("[DONE]")) {
			continue
		}
		var c completion
		if json.Unmarshal(data, &c) == nil && len(c.Choices) > 0 {
			ch := &c.Choices[0]
			b.WriteString(ch.Delta.Content)
			b.WriteString(ch.Text)
		}
	}
	return b.String(), sc.Err() == nil
}

// promptText is what the judge is shown as the user's request: the
// messages (role: text), the prompt or the input, bounded.
func promptText(body []byte) (string, bool) {
	var req struct {
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		Prompt json.RawMessage `json:"prompt"`
		Input  json.RawMessage `json:"input"`
	}
	if json.Unmarshal(body, &req) != nil {
		return "", false
	}
	var b strings.Builder
	for _, m := range req.Messages {
		if t := contentText(m.Content); t != "" {
			if len(req.Messages) > 1 {
				b.WriteString(m.Role + ": ")
			}
			b.WriteString(t)
			b.WriteByte('\n')
		}
	}
	b.WriteString(contentText(req.Prompt))
	b.WriteString(contentText(req.Input))
	s := strings.TrimSpace(b.String())
	if len(s) > maxPromptChars {
		s = s[len(s)-maxPromptChars:] // the latest turns matter most
	}
	return s, s != ""
}

// contentText reads a string, or the text parts of an array of parts.
func contentText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text    string          `json:"text"`
		Content json.RawMessage `json:"content"`
		Role    string          `json:"role"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
		b.WriteString(contentText(p.Content))
	}
	return b.String()
}

// counters are one experiment's replay counts (they survive reloads).
type counters struct {
	queued, droppedFull, capped, private, skipped        atomic.Int64
	replayed, replayFailed, judged, judgeRefused         atomic.Int64
	judgeFailed, recordFailed                            atomic.Int64
	replayPromptTokens, replayCompletionTokens, costNano atomic.Int64
	judgeCarryNano                                       atomic.Int64 // cost of judges replaced on reload
	judge                                                atomic.Pointer[judge.Judge]
}

func (c *counters) addReplayCost(pt, ct int, cost float64) {
	c.replayPromptTokens.Add(int64(pt))
	c.replayCompletionTokens.Add(int64(ct))
	c.costNano.Add(int64(cost * 1e9))
}

// Stats are one experiment's shadow counts and spend: what the replay
// cost (the candidates' tokens at their prices) and what the judge cost,
// kept apart from both arms' user metrics.
type Stats struct {
	Queued       int64 `json:"queued"`
	DroppedFull  int64 `json:"dropped_queue_full"`
	Capped       int64 `json:"skipped_user_capped"`
	Private      int64 `json:"skipped_private"`
	Skipped      int64 `json:"skipped_unreadable"`
	Replayed     int64 `json:"replayed"`
	ReplayFailed int64 `json:"replay_failed"`
	Judged       int64 `json:"judged"`
	JudgeRefused int64 `json:"judge_refused"`
	JudgeFailed  int64 `json:"judge_failed"`
	RecordFailed int64 `json:"record_failed"`
	// ReplayCost is the replays at the replayed variant's prices (the
	// base's for live judgments during a ramp step); JudgeCost
	// the judge's calls at the judge's prices.
	ReplayPromptTokens     int64       `json:"replay_prompt_tokens"`
	ReplayCompletionTokens int64       `json:"replay_completion_tokens"`
	ReplayCost             float64     `json:"replay_cost"`
	JudgeCost              float64     `json:"judge_cost"`
	Judge                  judge.Stats `json:"judge"`
}

// Stats returns an experiment's counts; ok is false for an experiment
// that never had a shadow lane in this process.
func (s *Service) Stats(experiment string) (st Stats, ok bool) {
	s.mu.Lock()
	c := s.counts[experiment]
	s.mu.Unlock()
	if c == nil {
		return Stats{}, false
	}
	st = Stats{
		Queued: c.queued.Load(), DroppedFull: c.droppedFull.Load(), Capped: c.capped.Load(), Private: c.private.Load(),
		Skipped: c.skipped.Load(), Replayed: c.replayed.Load(), ReplayFailed: c.replayFailed.Load(), Judged: c.judged.Load(),
		JudgeRefused: c.judgeRefused.Load(), JudgeFailed: c.judgeFailed.Load(), RecordFailed: c.recordFailed.Load(),
		ReplayPromptTokens: c.replayPromptTokens.Load(), ReplayCompletionTokens: c.replayCompletionTokens.Load(),
		ReplayCost: float64(c.costNano.Load()) / 1e9,
	}
	if j := c.judge.Load(); j != nil {
		st.Judge = j.Stats()
	}
	st.JudgeCost = st.Judge.Cost + float64(c.judgeCarryNano.Load())/1e9
	return st, true
}
