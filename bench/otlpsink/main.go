// Command otlpsink is the load harness's trace collector: an OTLP/HTTP
// endpoint that accepts every export (POST /v1/traces) and throws it
// away, counting requests and bytes. It lets bench/run.sh measure abgate
// with tracing really on (spans recorded, batched, encoded and sent)
// without a collector. It prints its counts when stopped.
//
//	otlpsink --listen 127.0.0.1:18092
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18092", "address to listen on")
	flag.Parse()
	var reqs, bytes atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		reqs.Add(1)
		bytes.Add(n)
		// An empty body is a valid, empty ExportTraceServiceResponse.
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("otlpsink: %v", err)
	}
	fmt.Printf("otlpsink listening on http://%s/v1/traces\n", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatalf("otlpsink: %v", err)
	}
	fmt.Printf("otlpsink: %d exports, %d bytes\n", reqs.Load(), bytes.Load())
}
