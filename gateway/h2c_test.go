package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// TestH2CUpstream: an upstream configured h2c is spoken to over HTTP/2
// without TLS, streams pass through as they come, and concurrent streams
// share one connection instead of taking one each.
func TestH2CUpstream(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	var mu sync.Mutex
	used := map[string]int{} // streams per upstream connection (its client address)
	release := make(chan struct{})
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "want HTTP/2, got "+r.Proto, http.StatusHTTPVersionNotSupported)
			return
		}
		mu.Lock()
		used[r.RemoteAddr]++
		mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n")
		fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n")
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	up.Config.Protocols = new(http.Protocols)
	up.Config.Protocols.SetUnencryptedHTTP2(true)
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)

	e := newEnv(t, nil, nil, func(c *experiments.Config) {
		c.Upstreams[0].URL = up.URL
		c.Upstreams[0].H2C = true
	})
	const n = 8
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var started, done sync.WaitGroup
	started.Add(n)
	errs := make(chan error, n)
	firstLive := make(chan struct{})
	for i := 0; i < n; i++ {
		if i == 1 {
			// The first stream has its connection; the others must share
			// it (requests that start together while it is being dialled
			// may each dial their own, as with HTTP/1).
			<-firstLive
		}
		done.Add(1)
		go func() {
			defer done.Done()
			first := false
			defer func() {
				if !first {
					if i == 0 {
						close(firstLive)
					}
					started.Done()
				}
			}()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.front.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"`+testAlias+`","stream":true,"messages":[]}`))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			br := bufio.NewReader(res.Body)
			line, err := br.ReadString('\n')
			if err != nil || !strings.Contains(line, "Hel") {
				errs <- fmt.Errorf("status %d, first chunk %q, %v", res.StatusCode, line, err)
				return
			}
			first = true
			if i == 0 {
				close(firstLive)
			}
			started.Done() // every stream is live before the upstream ends any
			rest, _ := io.ReadAll(br)
			if !strings.Contains(string(rest), "[DONE]") || strings.Contains(string(rest), "usage") {
				errs <- fmt.Errorf("rest of stream: %q", rest)
			}
		}()
	}
	started.Wait()
	close(release)
	done.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every stream rides the one connection. A request that starts
	// while another is being served may still dial in parallel (net/http
	// races a dial against the pool); such a connection carries no stream.
	if len(used) != 1 {
		t.Errorf("%d live streams rode %d upstream connections (%v), want 1", n, len(used), used)
	}
	if c := conns.Load(); c != 1 {
		t.Logf("%d upstream connections opened, %d carried streams", c, len(used))
	}
	for i := 0; i < n; i++ {
		o := e.rec.next(t)
		mustEqual(t, "stream", o.Stream, true)
		mustEqual(t, "prompt tokens", o.PromptTokens, 7)
	}
}

// TestH2CNeedsHTTP: h2c on an https:// upstream is refused.
func TestH2CNeedsHTTP(t *testing.T) {
	t.Parallel()
	cfg := testConfig("https://example.com", "http://127.0.0.1:1")
	cfg.Upstreams[0].H2C = true
	if _, err := New(cfg, experiments.NewSigner([]byte(testSecret), time.Hour)); err == nil || !strings.Contains(err.Error(), "h2c") {
		t.Fatalf("err = %v, want an h2c error", err)
	}
}

// TestHTTPSUpstreamNegotiatesHTTP2: an https:// upstream that offers
// HTTP/2 by ALPN gets it. Hosted model APIs speak HTTP/2, and a
// Transport with its own DialContext silently stays on HTTP/1.1 unless
// ForceAttemptHTTP2 is set; with HTTP/1.1 every live stream would hold a
// connection, its buffers and two goroutines (issue "Live streams at
// scale").
func TestHTTPSUpstreamNegotiatesHTTP2(t *testing.T) {
	t.Parallel()
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Proto)
	}))
	up.EnableHTTP2 = true
	up.StartTLS()
	t.Cleanup(up.Close)

	tr := newTransport(transportKey{url: up.URL, connect: 5 * time.Second, header: 5 * time.Second, maxIdle: 4})
	t.Cleanup(tr.CloseIdleConnections)
	// Trust the test server's certificate; nothing else of the
	// production Transport changes.
	tr.TLSClientConfig = up.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, up.URL+"/v1/chat/completions", strings.NewReader("{}"))
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.ProtoMajor != 2 || string(body) != "HTTP/2.0" {
		t.Fatalf("https upstream spoken to over %s (server saw %q), want HTTP/2", res.Proto, body)
	}
}
