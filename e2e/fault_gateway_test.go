//go:build fault

// The gateway half of the fault suite (make fault): what slow, idle and
// broken clients and upstreams can do to one gateway. Each case builds
// its own small stack (gateway on memstore, fakemodel upstreams on
// loopback, a spy in front of the recorder), tears it down itself, and
// prints one row: what clients saw by status, what the recorder
// accepted, persisted and dropped, and the heap around the case.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/gateway"
	"github.com/abgate/abgate/internal/fakemodel"
	"github.com/abgate/abgate/recorder"
)

// gwOpts is what a case changes in the stack.
type gwOpts struct {
	bodyTimeout   time.Duration
	fallback      bool
	candidate     http.Handler  // the candidate's upstream (default: a fakemodel)
	candidateURL  string        // instead of candidate: e.g. a closed port
	headerTimeout time.Duration // the candidate upstream's header_timeout
}

// gwStack is one gateway on memstore, served the way serve serves it
// (ReadHeaderTimeout 10s, IdleTimeout 120s, a recovery that re-panics
// http.ErrAbortHandler).
type gwStack struct {
	url, addr string
	rec       *recorder.Recorder
	store     *memstore.Store
	spy       *spyRecorder
	srv       *httptest.Server
	ups       []*httptest.Server
	expID     string
	panics    atomic.Int64 // handler panics other than http.ErrAbortHandler
	errLog    *syncBuffer  // the gateway server's ErrorLog
	conns     atomic.Int64 // accepted connections
	closed    atomic.Int64 // connections the server saw closed
	torn      bool
}

func startGWStack(t *testing.T, o gwOpts) *gwStack {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	s := &gwStack{expID: "fault-gw", errLog: &syncBuffer{}}
	cfg := &experiments.Config{
		Server: experiments.Server{TokenSecret: "0123456789abcdef0123456789abcdef",
			BodyReadTimeout: experiments.Duration(o.bodyTimeout)},
		Experiments: []experiments.Experiment{{
			ID: s.expID, Primary: experiments.MetricThumbs, Fallback: o.fallback,
			Variants: []experiments.Variant{
				{Name: "base", Upstream: "base", Model: "m-base"},
				{Name: "tuned", Upstream: "tuned", Model: "m-tuned", Weight: 50},
			},
		}},
		Routes:    []experiments.Route{{Alias: "support", Experiment: s.expID}},
		Recording: experiments.Recording{FlushInterval: experiments.Duration(20 * time.Millisecond)},
	}
	base := httptest.NewServer(&fakemodel.Model{Name: "base", Quality: 0.6, Chunks: 6})
	s.ups = append(s.ups, base)
	cfg.Upstreams = append(cfg.Upstreams, experiments.Upstream{Name: "base", URL: base.URL})
	tunedURL := o.candidateURL
	if tunedURL == "" {
		h := o.candidate
		if h == nil {
			h = &fakemodel.Model{Name: "tuned", Quality: 0.62, Chunks: 6}
		}
		srv := httptest.NewServer(h)
		s.ups = append(s.ups, srv)
		tunedURL = srv.URL
	}
	cfg.Upstreams = append(cfg.Upstreams, experiments.Upstream{Name: "tuned", URL: tunedURL,
		ConnectTimeout: experiments.Duration(time.Second), HeaderTimeout: experiments.Duration(o.headerTimeout)})
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	signer := experiments.NewSigner([]byte(cfg.Server.TokenSecret.Reveal()), time.Hour)
	s.store = memstore.New()
	s.rec = recorder.New(s.store, cfg.Recording, recorder.WithLogger(quiet))
	s.spy = &spyRecorder{next: s.rec}
	h, err := gateway.New(cfg, signer, gateway.WithRecorder(s.spy), gateway.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	eng := gin.New()
	eng.Use(func(c *gin.Context) { // as cmd/abgate's recovery
		defer func() {
			if r := recover(); r != nil {
				if r != http.ErrAbortHandler {
					s.panics.Add(1)
				}
				panic(r)
			}
		}()
		c.Next()
	})
	h.Register(eng)
	s.srv = httptest.NewUnstartedServer(eng)
	s.srv.Config.ReadHeaderTimeout = 10 * time.Second
	s.srv.Config.IdleTimeout = 120 * time.Second
	s.srv.Config.ErrorLog = log.New(s.errLog, "", 0)
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.srv.Start()
	s.url = s.srv.URL
	s.addr = s.srv.Listener.Addr().String()
	t.Cleanup(func() { s.teardown() })
	return s
}

// teardown closes the gateway's listener and connections, the upstreams
// and the recorder (draining it into the store). Idempotent.
func (s *gwStack) teardown() {
	if s.torn {
		return
	}
	s.torn = true
	s.srv.Close()
	for _, u := range s.ups {
		u.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.rec.Close(ctx)
}

// spyRecorder counts each variant's outcomes on their way to the
// recorder.
type spyRecorder struct {
	next gateway.Recorder
	mu   sync.Mutex
	v    [2]spyCounts
}

type spyCounts struct{ n, errors, fallbacks, streams, aborted int }

func (s *spyRecorder) Observe(o experiments.Outcome) {
	s.mu.Lock()
	if o.Variant >= 0 && o.Variant < len(s.v) {
		c := &s.v[o.Variant]
		c.n++
		if o.Error {
			c.errors++
		}
		if o.Fallback {
			c.fallbacks++
		}
		if o.Stream {
			c.streams++
		}
		if o.StreamAborted {
			c.aborted++
		}
	}
	s.mu.Unlock()
	s.next.Observe(o)
}

func (s *spyRecorder) counts(v int) spyCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.v[v]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// seen is what clients saw: requests and answers by status (0: no
// answer, a transport error).
type seen struct {
	mu       sync.Mutex
	requests int
	status   map[int]int
}

func (c *seen) add(status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status == nil {
		c.status = map[int]int{}
	}
	c.requests++
	c.status[status]++
}

// merge returns c and o added up.
func (c *seen) merge(o *seen) *seen {
	m := &seen{status: map[int]int{}}
	for _, x := range []*seen{c, o} {
		x.mu.Lock()
		m.requests += x.requests
		for k, v := range x.status {
			m.status[k] += v
		}
		x.mu.Unlock()
	}
	return m
}

// failures renders the non-200 answers by status, "0" if none.
func (c *seen) failures() (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	n := 0
	keys := make([]int, 0, len(c.status))
	for k := range c.status {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == http.StatusOK {
			continue
		}
		n += c.status[k]
		label := fmt.Sprint(k)
		if k == 0 {
			label = "conn error"
		}
		parts = append(parts, fmt.Sprintf("%d × %s", c.status[k], label))
	}
	if n == 0 {
		return "0", 0
	}
	return strings.Join(parts, ", "), n
}

// ask sends one chat completion as user id and returns the status, the
// response headers and body (nil on a transport error).
func (s *gwStack) ask(ctx context.Context, c *http.Client, id string, stream bool) (int, http.Header, []byte, error) {
	body := `{"model":"support","messages":[{"role":"user","content":"hi"}]}`
	if stream {
		body = `{"model":"support","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User-ID", id)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// normal runs workers of ordinary requests until ctx ends; wait waits
// for them.
func (s *gwStack) normal(ctx context.Context, workers int, prefix string) (*seen, func()) {
	var sn seen
	var wg sync.WaitGroup
	var n atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 2}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for ctx.Err() == nil {
				st, _, _, err := s.ask(ctx, c, fmt.Sprintf("%s-%d", prefix, n.Add(1)), false)
				if ctx.Err() != nil && err != nil {
					return // the case ended mid-request
				}
				sn.add(st)
				time.Sleep(5 * time.Millisecond) // leave the 2 cores some room
			}
		}()
	}
	return &sn, wg.Wait
}

// heapInuse is HeapInuse after two GCs: sync.Pool keeps what it holds
// through one (the victim cache), so one GC would count the pooled
// buffers of connections already closed as still in use.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// peakSampler records the largest HeapInuse (no GC) every 100 ms.
func peakSampler(ctx context.Context) func() uint64 {
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	return func() uint64 { <-done; return peak.Load() }
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// oaiError reports whether b is OpenAI's error shape and returns its code.
func oaiError(b []byte) (string, bool) {
	var e struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" || e.Error.Code == nil {
		return "", false
	}
	return *e.Error.Code, true
}

// gwRow is one line of the gateway table.
type gwRow struct {
	name                   string
	requests               int
	failures               string
	accepted, persisted    int64
	dropped                int64
	heapBefore, heapAfter  float64
	heapPeak               float64
	saw                    string
	spy                    [2]spyCounts
	storeFallback, storeAb [2]float64
}

// finish tears the stack down and fills the recorder and store columns.
func (s *gwStack) finish(t *testing.T, r *gwRow, sn *seen) {
	t.Helper()
	s.teardown()
	st := s.rec.Stats()
	r.accepted, r.persisted, r.dropped = st.Accepted, st.Persisted, st.Dropped
	if sn != nil {
		r.requests = sn.requests
		r.failures, _ = sn.failures()
	}
	r.spy = [2]spyCounts{s.spy.counts(0), s.spy.counts(1)}
	snap, err := s.store.Summaries(context.Background(), s.expID, 1)
	if err != nil {
		t.Fatalf("summaries: %v", err)
	}
	for v := range 2 {
		r.storeFallback[v] = snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricFallback}].SumX
		r.storeAb[v] = snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricStreamAborted}].SumX
	}
	if p := s.panics.Load(); p > 0 {
		t.Errorf("%s: %d handler panic(s) other than http.ErrAbortHandler", r.name, p)
	}
	if strings.Contains(s.errLog.String(), "panic") {
		t.Errorf("%s: the server logged a panic:\n%s", r.name, s.errLog.String())
	}
}

// slowBody declares a 10 MiB body and sends one byte every gap until the
// gateway answers (or limit passes); it returns the answer, how long it
// took, and whether it said Connection: close (which http.ReadResponse
// takes out of the header into Response.Close).
func slowBody(addr, id string, gap, limit time.Duration) (int, http.Header, []byte, time.Duration, bool, error) {
	start := time.Now()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, nil, nil, 0, false, err
	}
	defer conn.Close()
	conn.SetDeadline(start.Add(limit))
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: abgate\r\nContent-Type: application/json\r\nX-User-ID: %s\r\nContent-Length: 10485760\r\n\r\n", id)
	type answer struct {
		resp *http.Response
		body []byte
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			got <- answer{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- answer{resp, b, err}
	}()
	tk := time.NewTicker(gap)
	defer tk.Stop()
	payload := []byte(`{"model":"support","messages":[`)
	for i := 0; ; i++ {
		select {
		case a := <-got:
			if a.resp == nil {
				return 0, nil, nil, time.Since(start), false, a.err
			}
			return a.resp.StatusCode, a.resp.Header, a.body, time.Since(start), a.resp.Close, a.err
		case <-tk.C:
			// A write error (the gateway closed) is fine: the answer is
			// read by the goroutine above.
			conn.Write(payload[i%len(payload) : i%len(payload)+1])
		}
	}
}

// cutStream answers a stream with a few SSE chunks, then drops the
// connection without [DONE]: an upstream that died mid-answer.
type cutStream struct{ chunks int }

func (c cutStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	for i := range c.chunks {
		fmt.Fprintf(w, `data: {"id":"chatcmpl-cut","object":"chat.completion.chunk","created":1,"model":"m-tuned","choices":[{"index":0,"delta":{"content":"part %d "},"finish_reason":null}]}`+"\n\n", i)
		w.(http.Flusher).Flush()
		time.Sleep(10 * time.Millisecond)
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// askUsers sends n users' requests over workers connections and returns
// what they saw; check sees each answer.
func (s *gwStack) askUsers(n, workers int, stream bool, check func(id string, status int, h http.Header, body []byte, err error)) *seen {
	var sn seen
	var wg sync.WaitGroup
	var next atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				id := fmt.Sprintf("user-%d", i)
				st, h, b, err := s.ask(context.Background(), c, id, stream)
				if err != nil && st == 0 {
					sn.add(0)
				} else {
					sn.add(st)
				}
				check(id, st, h, b, err)
			}
		}()
	}
	wg.Wait()
	return &sn
}

// TestFaultGateway runs the gateway cases and prints the table (go test
// -tags fault -run TestFaultGateway -v).
func TestFaultGateway(t *testing.T) {
	var rows []gwRow

	t.Run("slow bodies", func(t *testing.T) {
		const conns = 100
		s := startGWStack(t, gwOpts{bodyTimeout: 2 * time.Second})
		before := heapInuse() // with the stack (the recorder's queue alone is ~9 MiB)
		ctx, stop := context.WithCancel(context.Background())
		peak := peakSampler(ctx)
		normal, waitNormal := s.normal(ctx, 2, "normal")
		var slow seen
		var wg sync.WaitGroup
		var jsonOK, notJSON, closeHdr atomic.Int64
		var maxWait atomic.Int64
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, h, b, took, closing, err := slowBody(s.addr, fmt.Sprintf("slow-%d", i), 200*time.Millisecond, 10*time.Second)
				slow.add(st)
				if err != nil {
					t.Logf("slow body %d: %v", i, err)
				}
				if closing {
					closeHdr.Add(1)
				}
				if code, ok := oaiError(b); ok && code == "request_timeout" && strings.HasPrefix(h.Get("Content-Type"), "application/json") {
					jsonOK.Add(1)
				} else if st != 0 {
					notJSON.Add(1)
				}
				for d := int64(took); d > maxWait.Load(); {
					if maxWait.CompareAndSwap(maxWait.Load(), d) {
						break
					}
				}
			}()
		}
		wg.Wait()
		time.Sleep(300 * time.Millisecond) // normal traffic after the 408s too
		stop()
		waitNormal()
		peakB := peak()
		r := gwRow{name: fmt.Sprintf("slow bodies (%d × 10 MiB declared, 1 B/200 ms, body_read_timeout 2s)", conns)}
		s.finish(t, &r, normal.merge(&slow))
		after := heapInuse()
		r.heapBefore, r.heapPeak, r.heapAfter = mib(before), mib(peakB), mib(after)
		slowFail, _ := slow.failures()
		normalFail, _ := normal.failures()
		r.saw = fmt.Sprintf("slow: %s, %d with OpenAI JSON `request_timeout` and %d with `Connection: close`, slowest answer %.1fs; normal traffic alongside: %d requests, failures %s",
			slowFail, jsonOK.Load(), closeHdr.Load(), time.Duration(maxWait.Load()).Seconds(), normal.requests, normalFail)
		rows = append(rows, r)
		if slow.status[http.StatusRequestTimeout] != conns || jsonOK.Load() != conns || closeHdr.Load() != conns {
			t.Errorf("slow bodies: want %d × 408 with JSON, got %v (%d JSON)", conns, slow.status, jsonOK.Load())
		}
		if g := int64(peakB) - int64(before); g >= 64<<20 {
			t.Errorf("slow bodies: heap grew %.1f MiB (peak), want < 64 MiB", mib(uint64(g)))
		}
		if _, n := normal.failures(); n > 0 || normal.requests == 0 {
			t.Errorf("slow bodies: normal traffic: %d requests, failures %s", normal.requests, normalFail)
		}
	})

	t.Run("idle connections", func(t *testing.T) {
		const idle = 2000
		s := startGWStack(t, gwOpts{})
		before := heapInuse()
		var gsBefore runtime.MemStats
		runtime.ReadMemStats(&gsBefore)
		conns := make([]net.Conn, 0, idle)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := range idle {
			c, err := net.DialTimeout("tcp", s.addr, time.Second)
			if err != nil {
				t.Fatalf("dial %d: %v", i, err)
			}
			if i%2 == 1 {
				io.WriteString(c, "POST /v1/chat/comp") // a partial request line
			}
			conns = append(conns, c)
		}
		waitUntil(t, 5*time.Second, "idle connections accepted", func() bool { return s.conns.Load() >= idle })
		with := heapInuse()
		var msWith runtime.MemStats
		runtime.ReadMemStats(&msWith)
		ctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
		normal, waitNormal := s.normal(ctx, 2, "normal")
		<-ctx.Done()
		stop()
		waitNormal()
		time.Sleep(100 * time.Millisecond)
		for _, c := range conns {
			c.Close()
		}
		conns = conns[:0]
		// The server sees EOF on each and closes its side.
		waitUntil(t, 5*time.Second, "idle connections closed", func() bool { return s.closed.Load() == s.conns.Load() })
		r := gwRow{name: fmt.Sprintf("%d idle connections (half silent, half a partial request line)", idle)}
		s.finish(t, &r, normal)
		after := heapInuse()
		r.heapBefore, r.heapPeak, r.heapAfter = mib(before), mib(with), mib(after)
		perConn := float64(int64(with)-int64(before)) / idle / 1024
		stackPer := float64(int64(msWith.StackInuse)-int64(gsBefore.StackInuse)) / idle / 1024
		r.saw = fmt.Sprintf("normal traffic alongside: %d requests, failures %s; heap %.1f KiB and goroutine stack %.1f KiB per idle connection (server and client side); all %d closed by the test, the server saw %d of its %d connections close",
			normal.requests, r.failures, perConn, stackPer, idle, s.closed.Load(), s.conns.Load())
		rows = append(rows, r)
		if _, n := normal.failures(); n > 0 || normal.requests == 0 {
			t.Errorf("idle connections: normal traffic: %d requests, failures %s", normal.requests, r.failures)
		}
	})

	// The candidate's upstream fails before its first byte: every
	// candidate user gets the base's answer under the candidate's name.
	fallbackCase := func(t *testing.T, name string, o gwOpts, wantFallback bool) {
		o.fallback = wantFallback
		s := startGWStack(t, o)
		before := heapInuse()
		var cand, candOK, candFallbackHdr, candBaseBody, cand504JSON, baseOK atomic.Int64
		sn := s.askUsers(80, 4, false, func(id string, st int, h http.Header, b []byte, err error) {
			if h == nil {
				return
			}
			if h.Get(gateway.HeaderVariant) != "tuned" {
				if st == http.StatusOK {
					baseOK.Add(1)
				}
				return
			}
			cand.Add(1)
			if st == http.StatusOK {
				candOK.Add(1)
			}
			if h.Get(gateway.HeaderFallback) == "base" {
				candFallbackHdr.Add(1)
			}
			if bytes.Contains(b, []byte(`"model":"m-base"`)) {
				candBaseBody.Add(1)
			}
			if code, ok := oaiError(b); ok && st == http.StatusGatewayTimeout && code == "upstream_timeout" {
				cand504JSON.Add(1)
			}
		})
		r := gwRow{name: name}
		s.finish(t, &r, sn)
		r.heapBefore, r.heapAfter = mib(before), mib(heapInuse())
		c := r.spy[1]
		r.saw = fmt.Sprintf("%d candidate users: %d × 200, %d with `X-Abgate-Fallback: base`, %d with the base's answer, %d × 504 JSON `upstream_timeout`; base users %d × 200. Candidate outcomes: %d, error %d, fallback %d (store: fallback Σ %.0f)",
			cand.Load(), candOK.Load(), candFallbackHdr.Load(), candBaseBody.Load(), cand504JSON.Load(), baseOK.Load(),
			c.n, c.errors, c.fallbacks, r.storeFallback[1])
		rows = append(rows, r)
		n := cand.Load()
		if n == 0 {
			t.Fatalf("%s: no candidate users among 80", name)
		}
		if wantFallback {
			if candOK.Load() != n || candFallbackHdr.Load() != n || candBaseBody.Load() != n {
				t.Errorf("%s: candidate users %d, 200 %d, fallback header %d, base answer %d", name, n, candOK.Load(), candFallbackHdr.Load(), candBaseBody.Load())
			}
			if c.n != int(n) || c.errors != int(n) || c.fallbacks != int(n) || r.storeFallback[1] != float64(n) {
				t.Errorf("%s: candidate outcomes %+v, stored fallbacks %.0f, want %d each", name, c, r.storeFallback[1], n)
			}
		} else if cand504JSON.Load() != n || c.errors != int(n) || c.fallbacks != 0 {
			t.Errorf("%s: candidate users %d, 504 JSON %d, outcomes %+v", name, n, cand504JSON.Load(), c)
		}
		if b := r.spy[0]; b.errors != 0 || b.fallbacks != 0 || baseOK.Load() != int64(b.n) {
			t.Errorf("%s: base outcomes %+v, base 200s %d", name, b, baseOK.Load())
		}
		if r.dropped != 0 || r.persisted != r.accepted {
			t.Errorf("%s: recorder accepted %d, persisted %d, dropped %d", name, r.accepted, r.persisted, r.dropped)
		}
	}

	t.Run("upstream refused", func(t *testing.T) {
		fallbackCase(t, "candidate upstream refused (closed port), fallback on",
			gwOpts{candidateURL: "http://" + closedPort(t)}, true)
	})
	t.Run("upstream slow, fallback", func(t *testing.T) {
		fallbackCase(t, "candidate upstream slow (1s > header_timeout 200ms), fallback on",
			gwOpts{candidate: &fakemodel.Model{Name: "tuned", Latency: time.Second}, headerTimeout: 200 * time.Millisecond}, true)
	})
	t.Run("upstream slow, no fallback", func(t *testing.T) {
		fallbackCase(t, "candidate upstream slow (1s > header_timeout 200ms), fallback off",
			gwOpts{candidate: &fakemodel.Model{Name: "tuned", Latency: time.Second}, headerTimeout: 200 * time.Millisecond}, false)
	})
	t.Run("upstream 500", func(t *testing.T) {
		fallbackCase(t, "candidate upstream 500, fallback on",
			gwOpts{candidate: &fakemodel.Model{Name: "tuned", ErrorRate: 1}}, true)
	})

	t.Run("upstream cut mid-stream", func(t *testing.T) {
		g0 := runtime.NumGoroutine() // before the stack: its goroutines must go too
		s := startGWStack(t, gwOpts{candidate: cutStream{chunks: 3}, fallback: true})
		before := heapInuse()
		var cand, candNoDone, candChunks, baseDone atomic.Int64
		sn := s.askUsers(60, 4, true, func(id string, st int, h http.Header, b []byte, err error) {
			if h == nil {
				return
			}
			if h.Get(gateway.HeaderVariant) != "tuned" {
				if st == http.StatusOK && err == nil && bytes.Contains(b, []byte("data: [DONE]")) {
					baseDone.Add(1)
				}
				return
			}
			cand.Add(1)
			if !bytes.Contains(b, []byte("[DONE]")) {
				candNoDone.Add(1)
			}
			if bytes.Contains(b, []byte("part 2 ")) {
				candChunks.Add(1)
			}
		})
		r := gwRow{name: "candidate upstream cut after 3 SSE chunks"}
		s.finish(t, &r, sn)
		r.heapBefore, r.heapAfter = mib(before), mib(heapInuse())
		// Goroutines: everything the case opened is closed; the
		// transports' connection goroutines exit on the servers' closes.
		var g1 int
		deadline := time.Now().Add(3 * time.Second)
		for {
			g1 = runtime.NumGoroutine()
			if g1 <= g0+3 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		c, b := r.spy[1], r.spy[0]
		r.saw = fmt.Sprintf("%d candidate streams: %d ended without [DONE] after all 3 chunks (%d), base streams with [DONE] %d of %d. Candidate outcomes: stream %d, aborted %d, error %d (store: aborted Σ %.0f; base %.0f); goroutines %d → %d; handler panics %d",
			cand.Load(), candNoDone.Load(), candChunks.Load(), baseDone.Load(), b.n, c.streams, c.aborted, c.errors, r.storeAb[1], r.storeAb[0], g0, g1, s.panics.Load())
		rows = append(rows, r)
		n := cand.Load()
		if n == 0 {
			t.Fatal("no candidate users among 60")
		}
		// The client sees the failure as a truncated stream; a 200 was
		// already sent.
		if _, f := sn.failures(); f != 0 {
			t.Errorf("cut stream: statuses other than 200: %s", r.failures)
		}
		if candNoDone.Load() != n || candChunks.Load() != n {
			t.Errorf("cut stream: %d candidate streams, %d without [DONE], %d with all chunks", n, candNoDone.Load(), candChunks.Load())
		}
		if c.aborted != int(n) || c.errors != int(n) || r.storeAb[1] != float64(n) || r.storeAb[0] != 0 || baseDone.Load() != int64(b.n) {
			t.Errorf("cut stream: candidate outcomes %+v, stored aborted %v; base outcomes %+v, base [DONE] %d", c, r.storeAb, b, baseDone.Load())
		}
		if g1 > g0+3 {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("cut stream: goroutines %d before, %d after\n%s", g0, g1, buf)
		}
	})

	var b strings.Builder
	fmt.Fprintf(&b, "\n| case | requests | failures (by status) | outcomes accepted | persisted | dropped | heap MiB before → peak → after | what clients saw, what was recorded |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		peak := "—"
		if r.heapPeak > 0 {
			peak = fmt.Sprintf("%.1f", r.heapPeak)
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %d | %d | %d | %.1f → %s → %.1f | %s |\n",
			r.name, r.requests, r.failures, r.accepted, r.persisted, r.dropped, r.heapBefore, peak, r.heapAfter, r.saw)
	}
	t.Log(b.String())
}
