// Command minproxy is the load harness's baseline: the least a Go A/B
// proxy can do. gin (release mode, no logger, no recovery), a murmur3
// hash of X-User-ID (mod 10000) picking one of two upstream URLs, and
// httputil.ReverseProxy with a sized connection pool. With --bare it is
// less still: net/http serving a ReverseProxy whose Rewrite is SetURL.
// abgate is measured
// against it (bench/run.sh); it is not part of the product.
//
//	minproxy --listen 127.0.0.1:18081 --upstream http://127.0.0.1:18090
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/spaolacci/murmur3"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18081", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:18090", "upstream base URL (used for both variants)")
	upstreamB := flag.String("upstream-b", "", "second variant's upstream base URL (default: --upstream)")
	idle := flag.Int("max-idle-conns", 1024, "idle connections kept per upstream host")
	pool := flag.Bool("buffer-pool", false, "reuse the 32 KiB body-copy buffers (httputil.BufferPool) instead of allocating one per request")
	flush := flag.Duration("flush-interval", -1, "httputil.ReverseProxy.FlushInterval: -1 flushes every write; 0 flushes only SSE and unknown-length bodies at once")
	h2c := flag.Bool("h2c", false, "speak HTTP/2 without TLS (prior knowledge) to the upstream")
	bare := flag.Bool("bare", false, "no gin and no hashing: net/http serving httputil.ReverseProxy (Rewrite = SetURL) directly, the floor for CPU per request")
	debug := flag.String("debug", "", "serve net/http/pprof on this loopback address (e.g. 127.0.0.1:6061)")
	flag.Parse()
	if *debug != "" {
		go func() { log.Println(http.ListenAndServe(*debug, pprofMux())) }()
	}
	if *upstreamB == "" {
		*upstreamB = *upstream
	}
	ua, err := url.Parse(*upstream)
	if err != nil {
		log.Fatalf("minproxy: --upstream: %v", err)
	}
	ub, err := url.Parse(*upstreamB)
	if err != nil {
		log.Fatalf("minproxy: --upstream-b: %v", err)
	}
	targets := [2]*url.URL{ua, ub}

	// Go's default Transport keeps 2 idle connections per host, which
	// halves throughput under load: size the pool.
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          *idle,
		MaxIdleConnsPerHost:   *idle,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ForceAttemptHTTP2:     false,
	}
	if *h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			uid := pr.In.Header.Get("X-User-ID")
			bucket := murmur3.Sum32([]byte(uid)) % 10000
			t := targets[0]
			if bucket >= 5000 {
				t = targets[1]
			}
			pr.SetURL(t)
			pr.SetXForwarded()
			// The HTTP/1 server closes the inbound body once the response
			// headers are written; the Transport, having copied
			// Content-Length bytes, reads once more to check for excess,
			// hits the closed body and tears down the upstream connection
			// mid-response (golang/go#40747: "use of closed network
			// connection", the client sees a truncated stream). Capping
			// the reader at Content-Length answers that extra read with
			// EOF without touching the closed body.
			if n := pr.In.ContentLength; n > 0 {
				pr.Out.Body = limitedBody{io.LimitReader(pr.In.Body, n), pr.In.Body}
			}
		},
		Transport:     tr,
		FlushInterval: *flush, // -1 (default): flush every write, streams pass through at once
	}

	if *pool {
		rp.BufferPool = &bufferPool{}
	}

	var h http.Handler = rp
	if *bare {
		rp.Rewrite = func(pr *httputil.ProxyRequest) {
			pr.SetURL(ua)
			if n := pr.In.ContentLength; n > 0 { // see above
				pr.Out.Body = limitedBody{io.LimitReader(pr.In.Body, n), pr.In.Body}
			}
		}
	} else {
		gin.SetMode(gin.ReleaseMode)
		r := gin.New() // no logger, no recovery
		r.Any("/v1/*path", func(c *gin.Context) { rp.ServeHTTP(c.Writer, c.Request) })
		h = r
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("minproxy: %v", err)
	}
	fmt.Fprintf(os.Stdout, "minproxy listening on http://%s -> %s, %s\n", ln.Addr(), ua, ub)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}

// pprofMux serves net/http/pprof's handlers on their own mux, not the
// proxy's.
func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}

// limitedBody reads at most Content-Length bytes of the inbound body and
// closes the original.
type limitedBody struct {
	io.Reader
	io.Closer
}

// bufferPool is an httputil.BufferPool of 32 KiB buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[32 << 10]byte); ok {
		return v[:]
	}
	return new([32 << 10]byte)[:]
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == 32<<10 {
		b.p.Put((*[32 << 10]byte)(buf[:32<<10]))
	}
}
