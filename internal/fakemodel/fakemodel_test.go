package fakemodel

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCompleteAndStream(t *testing.T) {
	t.Parallel()
	m := &Model{Name: "base", Quality: 0.7, Chunks: 3}
	srv := httptest.NewServer(m)
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"ft-1","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got.Model != "ft-1" || got.Usage.PromptTokens != 20 {
		t.Fatalf("got %+v", got)
	}
	if q, ok := Quality(got.Choices[0].Message.Content); !ok || q != 0.7 {
		t.Fatalf("quality %v %v from %q", q, ok, got.Choices[0].Message.Content)
	}

	resp, err = http.Post(srv.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"ft-1","stream":true,"stream_options":{"include_usage":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, line)
		}
	}
	// 3 content chunks, the finish chunk, the usage chunk, [DONE].
	if len(events) != 6 || events[5] != "[DONE]" || !strings.Contains(events[4], `"prompt_tokens":20`) {
		t.Fatalf("events %q", events)
	}
}

func TestErrorRate(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(&Model{ErrorRate: 1})
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
