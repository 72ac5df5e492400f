package gateway

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

type discardRecorder struct{}

func (discardRecorder) Observe(experiments.Outcome) {}

var _ Recorder = discardRecorder{}

// reply is a typical small chat completion.
var reply = []byte(`{"id":"chatcmpl-1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29}}`)

func benchUpstream(b *testing.B) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(reply)
	}))
	b.Cleanup(s.Close)
	return s
}

// BenchmarkServeHTTP is the whole gateway (scan, assign, token, rewrite,
// proxy over loopback, meter, outcome) against a bare
// httputil.ReverseProxy doing only SetURL over an identical transport.
// The difference is what abgate adds per request.
func BenchmarkServeHTTP(b *testing.B) {
	up := benchUpstream(b)
	body := benchBody(1 << 10)
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-User-ID", "user-123456")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	}
	b.Run("abgate", func(b *testing.B) {
		cfg := testConfig(up.URL, up.URL)
		h, err := New(cfg, experiments.NewSigner([]byte(testSecret), time.Hour), WithRecorder(discardRecorder{}))
		if err != nil {
			b.Fatal(err)
		}
		run(b, h)
	})
	b.Run("abgate-forward", func(b *testing.B) {
		// The unit id forwarded as sent: what the default hash of the
		// body's "user" costs is the difference to "abgate".
		cfg := testConfig(up.URL, up.URL)
		forwardUnits(cfg)
		h, err := New(cfg, experiments.NewSigner([]byte(testSecret), time.Hour), WithRecorder(discardRecorder{}))
		if err != nil {
			b.Fatal(err)
		}
		run(b, h)
	})
	b.Run("abgate-segments", func(b *testing.B) {
		// Three segment dimensions (two headers, one body field): issue #7.
		cfg := testConfig(up.URL, up.URL)
		withSegments(cfg)
		h, err := New(cfg, experiments.NewSigner([]byte(testSecret), time.Hour), WithRecorder(discardRecorder{}))
		if err != nil {
			b.Fatal(err)
		}
		run(b, h)
	})
	b.Run("bare-reverseproxy", func(b *testing.B) {
		target, _ := url.Parse(up.URL)
		p := &httputil.ReverseProxy{
			Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
			Transport:     newTransport(transportKey{connect: 5 * time.Second, header: time.Minute, maxIdle: 512}),
			FlushInterval: -1,
			BufferPool:    copyBuffers,
		}
		run(b, p)
	})
}

// TestAssignPathAllocations pins the gateway's own per-request work:
// snapshot, scan, route lookup and Assign allocate nothing.
func TestAssignPathAllocations(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1", "http://127.0.0.1:2")
	h, err := New(cfg, experiments.NewSigner([]byte(testSecret), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	body := benchBody(4 << 10)
	// AllocsPerRun counts the whole process's allocations, so goroutines
	// an earlier test left winding down (in a shuffled order) can add to
	// one measurement; they only ever add, so the least of three is the
	// path's own count.
	allocs := math.Inf(1)
	for range 3 {
		allocs = min(allocs, testing.AllocsPerRun(100, func() {
			s := h.snap.Load()
			f, err := scanBody(body, s.unitField)
			if err != nil {
				t.Fatal(err)
			}
			e := s.routes[string(f.model)]
			_ = experiments.Assign(s.allocs[e.idx], "user-123456")
		}))
	}
	if allocs != 0 {
		t.Errorf("%v allocations per request on the assignment path", allocs)
	}
}
