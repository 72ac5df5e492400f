package gateway

import (
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"

	"github.com/abgate/abgate/internal/oaierr"
)

// copyBufSize is the proxies' copy buffer: 512 bytes, not ReverseProxy's
// default 32 KiB. ReverseProxy holds its buffer for the whole response,
// and a live stream spends its life waiting for the next event of a few
// hundred bytes, so 32 KiB a stream was the largest single cost of many
// live streams (issue "Live streams at scale"; 2 KiB until the HTTP/1.1
// round: 2,000 streams over HTTP/1.1, 52.0 -> 50.5 KiB a stream above
// idle). 512 bytes still take a typical SSE event (chat deltas are
// 150-400 bytes) in one read, so one write and one flush to the client;
// a larger event goes out in 512-byte writes, each flushed. Large JSON
// replies, which are short-lived, take more reads of the body, none of
// them a system call of its own: over HTTP/1.1 the reads come out of the
// upstream connection's 1 KiB buffer (upstreamReadBuf: one read(2) per
// KiB), over HTTP/2 out of the stream's buffer; each is a Write into the
// response's 2 KiB buffer (no flush for them). Below minDirect (meter.go)
// usage stripping would copy every event through its window.
const copyBufSize = 512

// bufferPool is the proxies' httputil.BufferPool. It pools fixed-size
// array pointers rather than slices: putting a []byte in a sync.Pool
// boxes the slice header (an allocation per Put), a pointer does not.
type bufferPool struct{ p sync.Pool }

var copyBuffers = &bufferPool{p: sync.Pool{New: func() any { return new([copyBufSize]byte) }}}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufSize]byte)[:] }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) >= copyBufSize {
		b.p.Put((*[copyBufSize]byte)(buf[:copyBufSize]))
	}
}

// Request bodies are read whole (we must see "model" before choosing an
// upstream) into pooled buffers. Buffers above maxPooledBody are left to
// the GC so one huge request doesn't pin memory in the pool.
//
// A body that declares a length of at most smallBodyBuf bytes gets a
// buffer of exactly that length, not pooled. With one pool of 16 KiB
// buffers, a ramp of many streams (each holding its buffer until the
// response headers arrive) left the pool holding hundreds of them long
// after, 4.3 KiB of heap per live stream at 2,000 streams for bodies of
// 100 bytes (issue "Live streams at scale"); a pool of 4 KiB buffers
// still held about 1 KiB per live stream after a ramp (heap profile at
// every allocation, 500 streams). An exact buffer is garbage once the
// headers are in, is charged to the in-flight budget for what it holds,
// and costs one small allocation.
const (
	smallBodyBuf   = 4 << 10
	initialBodyBuf = 16 << 10
	maxPooledBody  = 1 << 20
)

var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, initialBodyBuf); return &b }}

// getBodyBuf is a buffer for a body of declared length n (-1: unknown):
// exact for a small body, else pooled.
func getBodyBuf(n int64) *[]byte {
	if n > 0 && n <= smallBodyBuf {
		b := make([]byte, 0, n)
		return &b
	}
	return bodyBufs.Get().(*[]byte)
}

// putBodyBuf pools what getBodyBuf took from the pool (and a buffer
// readBody grew from one), up to maxPooledBody.
func putBodyBuf(p *[]byte) {
	if p == nil || cap(*p) < initialBodyBuf || cap(*p) > maxPooledBody {
		return
	}
	*p = (*p)[:0]
	bodyBufs.Put(p)
}

var errTooLarge = errors.New("request body too large")

func tooLarge(max int64) error {
	return &tooLargeError{max}
}

type tooLargeError struct{ max int64 }

func (e *tooLargeError) Error() string {
	return "request body exceeds " + strconv.FormatInt(e.max, 10) + " bytes"
}

func (e *tooLargeError) Is(target error) bool { return target == errTooLarge }

// bodyGuard makes a pooled request body safe to reuse. The transport may
// still read an outbound body after RoundTrip returned (Issue 46866), so
// every reader checks the guard under its lock, and the exchange closes
// the guard before returning the buffer to the pool.
type bodyGuard struct {
	mu     sync.Mutex
	closed bool
}

func (g *bodyGuard) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

var errBodyReleased = errors.New("gateway: request body read after the request finished")

// reqBody reads the spliced request body: the client's bytes between
// the edits and each edit's bytes (the variant's model, hashed unit ids,
// stream_options), in order. No copy of the body is made.
type reqBody struct {
	g     *bodyGuard
	parts [maxParts][]byte
	n     int // parts in use
}

var (
	_ io.ReadCloser       = (*reqBody)(nil)
	_ httputil.BufferPool = (*bufferPool)(nil)
)

func (b *reqBody) Read(p []byte) (int, error) {
	b.g.mu.Lock()
	defer b.g.mu.Unlock()
	if b.g.closed {
		return 0, errBodyReleased
	}
	n := 0
	for i := 0; i < b.n && len(p) > 0; i++ {
		c := copy(p, b.parts[i])
		b.parts[i] = b.parts[i][c:]
		p = p[c:]
		n += c
	}
	for i := 0; i < b.n; i++ {
		if len(b.parts[i]) > 0 {
			return n, nil
		}
	}
	return n, io.EOF
}

// Close does nothing: the exchange owns the buffer (see bodyGuard).
func (b *reqBody) Close() error { return nil }

// newRequestID is 128 random bits in hex. math/rand/v2's global source
// is a per-thread ChaCha8 seeded by the runtime: unpredictable enough for
// an id, lock-free, and far cheaper than crypto/rand.
func newRequestID() string {
	var raw [16]byte
	a, b := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		raw[i] = byte(a >> (8 * i))
		raw[8+i] = byte(b >> (8 * i))
	}
	var out [32]byte
	hex.Encode(out[:], raw[:])
	return string(out[:])
}

// writeError answers with an OpenAI-style error (see oaierr), so SDKs
// surface the gateway's errors like the model's.
func writeError(w http.ResponseWriter, status int, typ, param, code, msg string) {
	oaierr.Write(w, status, oaierr.New(typ, code, param, msg))
}

// writeUnknownURL is OpenAI's answer to a path it does not serve.
func writeUnknownURL(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "invalid_request_error", "", "unknown_url",
		"Unknown request URL: "+r.Method+" "+r.URL.Path+". Please check the URL for typos.")
}

// writeMethodNotAllowed answers a method a served path does not take;
// allow lists the ones it does.
func writeMethodNotAllowed(w http.ResponseWriter, r *http.Request, allow ...string) {
	if len(allow) == 0 {
		allow = []string{http.MethodPost}
	}
	w.Header()["Allow"] = allow
	writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "", "method_not_allowed",
		"Invalid method for URL ("+r.Method+" "+r.URL.Path+")")
}

// writeBusy is the 503 of a gateway at one of its load limits.
func writeBusy(w http.ResponseWriter, msg string) {
	w.Header()["Retry-After"] = retryAfter
	writeError(w, http.StatusServiceUnavailable, "server_error", "", "server_overloaded", msg)
}
