package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/abgate/abgate/internal/fakemodel"
)

// runFakeUpstream serves a simulated model until ctx ends. The load
// harness runs it as the upstream every proxy under test calls.
func runFakeUpstream(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fake-upstream", stderr)
	listen := fs.String("listen", "127.0.0.1:9001", "address to listen on (loopback only)")
	m := &fakemodel.Model{}
	fs.StringVar(&m.Name, "model", "fake-model", "model name reported when the request names none")
	fs.Float64Var(&m.Quality, "quality", 0.5, "simulated answer quality in [0,1]")
	fs.DurationVar(&m.Latency, "latency", 0, "wait before response headers")
	fs.DurationVar(&m.TokenDelay, "token-delay", 0, "wait between stream chunks")
	fs.IntVar(&m.Chunks, "chunks", 8, "content chunks per stream")
	fs.Float64Var(&m.ErrorRate, "error-rate", 0, "share of requests answered with a 500")
	judge := fs.Bool("judge", false, "serve a simulated LLM judge instead of a model (the load harness's shadow scenario)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := requireLoopback(*listen); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var h http.Handler = m
	if *judge {
		j := &fakemodel.Judge{Latency: m.Latency}
		// The harness waits for the first judge call (the shadow stage is
		// live) and reports the count at exit.
		var first sync.Once
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			first.Do(func() { fmt.Fprintln(stdout, "fake judge: first judge call") })
			j.ServeHTTP(w, r)
		})
		defer func() { fmt.Fprintf(stdout, "fake judge: %d judge calls\n", j.Requests()) }()
		fmt.Fprintf(stdout, "fake judge listening on http://%s\n", ln.Addr())
	} else {
		fmt.Fprintf(stdout, "fake upstream %q listening on http://%s\n", m.Name, ln.Addr())
	}
	// HTTP/1.1 and h2c (HTTP/2 with prior knowledge), as vLLM behind an
	// h2c-capable proxy would: the gateway's h2c upstreams are measured
	// against it.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return serveUntil(ctx, srv, ln, 5*time.Second)
}

// requireLoopback refuses non-loopback listen addresses for the commands
// that are only meant for local testing.
func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listen address %q: must be a loopback address (127.0.0.1, [::1], localhost)", addr)
	}
	return nil
}

// serveUntil serves on ln until ctx ends, then shuts down gracefully,
// letting in-flight requests (streams too) finish within grace.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
