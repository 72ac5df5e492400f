package gateway

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/abgate/abgate/experiments"
)

// limits bound what slow or numerous clients can hold (issue "Decision
// integrity": 100 connections declaring 10 MiB bodies and trickling a
// byte a second took the heap from 59 MiB to 1 GiB, because the body
// buffer was sized from Content-Length before a byte arrived).
type limits struct {
	// bodyTimeout bounds reading a request body, from the moment the
	// handler starts: a body still incomplete then gets 408.
	bodyTimeout time.Duration
	// bodyBytes caps the buffer capacity all in-flight request bodies
	// hold together; a body that would pass it gets 503.
	bodyBytes int64
	// requests caps the proxied requests in progress; past it, 503.
	requests int64
}

func newLimits(s *experiments.Server, maxBody int64) limits {
	l := limits{
		bodyTimeout: time.Duration(s.BodyReadTimeout),
		bodyBytes:   s.MaxInflightBodyBytes,
		requests:    int64(s.MaxInflightRequests),
	}
	if l.bodyTimeout <= 0 {
		l.bodyTimeout = time.Duration(experiments.DefaultBodyReadTimeout)
	}
	if l.bodyBytes <= 0 {
		l.bodyBytes = max(experiments.DefaultMaxInflightBodyBytes, maxBody)
	}
	if l.requests <= 0 {
		l.requests = experiments.DefaultMaxInflightRequests
	}
	return l
}

// retryAfter is the Retry-After of a 503 for load: a second, the time a
// typical completion in flight needs to make room.
var retryAfter = []string{"1"}

// admit counts a request in, or reports that the in-flight limit is
// reached. A counted request must call h.inflight.Add(-1).
func (h *Handler) admit(l *limits) bool {
	if h.inflight.Add(1) > l.requests {
		h.inflight.Add(-1)
		return false
	}
	return true
}

// errBusy: the in-flight body budget is spent.
var errBusy = errors.New("gateway: in-flight request bodies at their memory limit")

// reserve takes n bytes of the in-flight body budget, or reports that
// it would pass the limit.
func (h *Handler) reserve(n, limit int64) bool {
	if h.bodyBytes.Add(n) > limit {
		h.bodyBytes.Add(-n)
		return false
	}
	return true
}

// readBody reads r's body, at most max bytes, within the snapshot's body
// limits. The buffer grows with the bytes that actually arrive, never to
// the declared Content-Length up front; every byte of capacity it holds
// is reserved from the in-flight budget first, and *held says how much
// to give back (with putBodyBuf) once nothing reads the body. The
// returned pointer is the pooled buffer.
//
// The read deadline is set on the connection through
// http.ResponseController (Go 1.20): the only way to interrupt a body
// Read that a trickling client keeps waiting. It is cleared afterwards,
// or net/http's background read, which watches for the client leaving
// during a long stream, would hit it and cancel the request.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, s *snapshot, held *int64) (*[]byte, []byte, error) {
	limit := s.maxBody
	if r.ContentLength > limit {
		return nil, nil, tooLarge(limit) // early 413, before a byte is read
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil, nil
	}
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(h.now().Add(s.limits.bodyTimeout)) == nil {
		defer rc.SetReadDeadline(time.Time{})
	}
	// The most the buffer needs: the declared length exactly (net/http
	// stops the body there), or one byte past the limit to detect a
	// chunked body that is too large.
	want := limit + 1
	if r.ContentLength > 0 {
		want = r.ContentLength
	}
	p := getBodyBuf(r.ContentLength)
	if !h.reserve(int64(cap(*p)), s.limits.bodyBytes) {
		putBodyBuf(p)
		return nil, nil, errBusy
	}
	*held = int64(cap(*p))
	b := (*p)[:0]
	for {
		if len(b) == cap(b) {
			if int64(len(b)) >= want {
				// Only a chunked body fills max+1 bytes (a declared
				// length is whole once in, below).
				*p = b[:0]
				return p, nil, tooLarge(limit)
			}
			// Double, but never past what the body can still need, so a
			// small body isn't charged for a large buffer.
			n := min(max(2*int64(cap(b)), initialBodyBuf), want)
			// Only the growth is reserved: the old buffer is garbage once
			// copied, so the budget never counts a body twice.
			grow := n - int64(cap(b))
			if !h.reserve(grow, s.limits.bodyBytes) {
				*p = b[:0]
				return p, nil, errBusy
			}
			nb := make([]byte, len(b), n)
			copy(nb, b)
			*held += grow
			b = nb
			*p = b[:0]
		}
		n, err := r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			*p = b[:0]
			return p, nil, tooLarge(limit)
		}
		// A body is whole at EOF, or once its declared length is in:
		// net/http reads no further, and a reader that is not net/http's
		// may say EOF only on the next Read, for which a buffer of
		// exactly that length has no room.
		if err == io.EOF || (r.ContentLength > 0 && int64(len(b)) == r.ContentLength) {
			*p = b[:0]
			// Closed now, at this shallow depth: net/http's response
			// header writer otherwise "discards the rest" of an unclosed
			// body (io.CopyN into io.Discard, here zero bytes), a call
			// chain below its own 2.8 KiB frame that pushed every live
			// stream's connection goroutine past its 8 KiB stack, to 16 KiB
			// (issue "Live streams at scale"). With the whole body read,
			// Close reads nothing and cannot fail.
			r.Body.Close()
			return p, b, nil
		}
		if err != nil {
			*p = b[:0]
			return p, nil, err
		}
	}
}

// releaseBody gives a request body's buffer back to the pool and its
// reservation back to the budget.
func (h *Handler) releaseBody(p *[]byte, held int64) {
	putBodyBuf(p)
	if held != 0 {
		h.bodyBytes.Add(-held)
	}
}
