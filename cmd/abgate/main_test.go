package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/internal/fakemodel"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestUsage(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := run(context.Background(), nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "demo") {
		t.Fatalf("no args: code %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown: code %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"serve", "--nope"}, &out, &errb); code != 2 {
		t.Fatalf("bad flag: code %d", code)
	}
	if code := run(context.Background(), []string{"demo", "--listen", "0.0.0.0:0"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "loopback") {
		t.Fatalf("non-loopback demo: code %d, stderr %q", code, errb.String())
	}
}

func TestValidate(t *testing.T) {
	// Give every variable the example references a value long enough for
	// any secret, so the test follows the example as it grows.
	example, err := os.ReadFile("../../examples/abgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`).FindAllStringSubmatch(string(example), -1) {
		t.Setenv(m[1], "test-value-"+strings.Repeat("s", 40))
	}
	t.Setenv("OPENAI_API_KEY", "sk-test-secret-value")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"validate", "--config", "../../examples/abgate.yaml"}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "ok") {
		t.Fatalf("example config: code %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(`
server:
  token_secret: short
upstreams:
  - name: up
    url: ftp://example
    api_key: ${OPENAI_API_KEY}
experiments:
  - id: e1
    variants:
      - {name: base, upstream: up, model: m}
      - {name: ft, upstream: nowhere, model: m2, weight: 60}
      - {name: ft2, upstream: up, model: m3, weight: 10}
routes:
  - {alias: a, experiment: missing}
`), 0o600)
	out.Reset()
	errb.Reset()
	code = run(context.Background(), []string{"validate", "--config", bad}, &out, &errb)
	msg := errb.String()
	if code != 1 {
		t.Fatalf("bad config: code %d, stderr %q", code, msg)
	}
	for _, want := range []string{"upstreams[0].url", "experiments[0].variants[1].upstream", "experiments[0].variants[1].weight", "routes[0].experiment", "server.token_secret"} {
		if !strings.Contains(msg, want) {
			t.Errorf("stderr lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "sk-test-secret-value") {
		t.Errorf("stderr leaks the API key:\n%s", msg)
	}
}

func TestDemoSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for a few seconds")
	}
	var out, errb syncBuffer
	code := run(context.Background(), []string{"demo", "--listen", "127.0.0.1:0", "--duration", "3s", "--rps", "50", "--print-every", "1s"}, &out, &errb)
	if code != 0 {
		t.Fatalf("demo exited %d: %s", code, errb.String())
	}
	s := out.String()
	if !regexp.MustCompile(`curl -si http://127\.0\.0\.1:\d+/v1/chat/completions`).MatchString(s) {
		t.Errorf("no curl line in:\n%s", s)
	}
	// The demo starts with the shadow stage: every user gets the base
	// while the judge compares the fine-tune's replayed answers.
	if !strings.Contains(s, "start → shadow") || !regexp.MustCompile(`ft-v2\s+users\s+0 .*judged\s+[1-9]`).MatchString(s) {
		t.Errorf("the demo never showed the judged shadow stage:\n%s", s)
	}
	if strings.Contains(errb.String(), "panic") {
		t.Errorf("stderr: %s", errb.String())
	}
}

// TestGracefulShutdown: a stream in flight when shutdown begins runs to
// its end, readiness drops at once, and new connections are refused.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	model := &fakemodel.Model{TokenDelay: 100 * time.Millisecond, Chunks: 6}
	up := httptest.NewServer(model)
	defer up.Close()
	a, urls, stop := startServe(t, serveConfig(t, up.URL, nil))
	url := urls[0]
	done := make(chan error, 1)
	waitReady(t, url)

	resp, err := http.Post(url+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"a","stream":true,"user":"u1"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() {
		t.Fatal("no first chunk")
	}
	go func() { done <- stop() }() // shutdown begins with the stream in flight
	deadline := time.Now().Add(2 * time.Second)
	for a.ready.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if a.ready.Load() {
		t.Error("still ready after shutdown began")
	}
	sawDone := false
	for sc.Scan() {
		if sc.Text() == "data: [DONE]" {
			sawDone = true
		}
	}
	if !sawDone {
		t.Error("the in-flight stream was cut before [DONE]")
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if st := a.recorder.Stats(); st.Accepted != st.Persisted+st.Dropped || st.Accepted == 0 {
		t.Errorf("recorder after shutdown: %+v", st)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("still accepting connections after shutdown")
	}
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("never became ready")
}
