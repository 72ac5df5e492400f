//go:build !race

// The race detector enlarges every frame, so the depths below hold only
// without it: scripts/test.sh runs this file in a plain `go test` too.

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/internal/fakemodel"
)

// TestLiveStreamStack checks that a live stream's connection goroutine
// fits in the 8 KiB stack a goroutine starts with, through the real
// server (gin, the recovery middleware, the gateway, ReverseProxy) with
// an HTTP/1.1 and an h2c upstream. A stack that grows is never given
// back while the stream lives (the runtime halves a stack only when a
// quarter of it is in use, and a blocked stream uses more), so one extra
// frame on the deepest path costs every live stream 8 KiB (issue "Live
// streams at scale": it was 16 KiB until the gateway flushed a stream's
// headers from WriteHeader and closed the request body after reading it).
//
// The check runs in a child process: it warms the server up (first-time
// work such as building attribute sets and type-assertion caches runs
// once per process, on whichever goroutine comes first), then caps every
// goroutine's stack at 8 KiB with debug.SetMaxStack and streams through
// new connections. A goroutine that needs more kills the child with
// "stack overflow" and its trace, which the parent prints.
func TestLiveStreamStack(t *testing.T) {
	if os.Getenv("ABGATE_STACK_CHILD") == "" {
		if testing.Short() {
			t.Skip("starts a child process")
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestLiveStreamStack$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "ABGATE_STACK_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("streams within 8 KiB")) {
			if i := bytes.Index(out, []byte("stack overflow")); i >= 0 {
				out = out[max(0, i-300):min(len(out), i+6000)]
			}
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}

	up := &fakemodel.Model{Name: "m", TokenDelay: 20 * time.Millisecond, Chunks: 3}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: up, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	defer srv.Close()

	for _, h2c := range []bool{false, true} {
		cfg := serveConfig(t, "http://"+ln.Addr().String(), func(c *experiments.Config) {
			c.Upstreams[0].H2C = h2c
			c.Experiments[0].Fallback = true
		})
		_, urls, stop := startServe(t, cfg)
		waitReady(t, urls[0])
		streams := func(n int) {
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { streamOnce(t, urls[0], fmt.Sprintf("user-%v-%d-%d", h2c, n, i)) })
			}
			wg.Wait()
		}
		streams(16) // both arms, every first-time path
		old := debug.SetMaxStack(8 << 10)
		streams(32)
		debug.SetMaxStack(old)
		if err := stop(); err != nil && err != context.Canceled {
			t.Errorf("h2c=%v: stop: %v", h2c, err)
		}
	}
	fmt.Println("streams within 8 KiB")
}

// streamOnce sends one streaming chat request on a new connection and
// reads the stream to its end.
func streamOnce(t *testing.T, base, user string) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions",
		strings.NewReader(`{"model":"a","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User-ID", user)
	res, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("[DONE]")) {
		t.Errorf("%s: status %d, err %v, body %.200q", user, res.StatusCode, err, b)
	}
}
