package gateway

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"time"
)

// Limits of what the meter keeps of a response body. A JSON reply is
// teed up to teeCap; past that only its last teeTail bytes are kept,
// which is where "usage" sits in OpenAI-style replies. An SSE line longer
// than lineCap is skipped (no usage or end marker is that long).
const (
	teeCap  = 64 << 10
	teeTail = 16 << 10
	lineCap = 64 << 10
)

var meterBufs = sync.Pool{New: func() any { b := make([]byte, 0, teeCap); return &b }}

// bodyMeter wraps the upstream response body, like Caddy's
// bodyReadCloser: ReverseProxy reads it to copy the response to the
// client and closes it at the end, so Read sees every chunk as it is
// forwarded and Close marks the end of the body. It is embedded in the
// exchange (no allocation) and only the request goroutine uses it.
type bodyMeter struct {
	rc  io.ReadCloser
	now func() time.Time

	stream bool // text/event-stream
	tee    bool // 2xx non-stream: keep the body (or its tail) for usage

	seen      bool
	first     time.Time
	last      time.Time
	maxGap    time.Duration
	completed bool // stream: saw [DONE], a finish_reason or response.completed
	readErr   bool // a read failed with something other than EOF
	closed    bool

	prompt, completion int

	buf      *[]byte // pooled: the JSON tee, or a partial SSE line
	skipLine bool    // the current SSE line overflowed lineCap
}

var _ io.ReadCloser = (*bodyMeter)(nil)

func (m *bodyMeter) start(x *exchange, res *http.Response) {
	m.rc = res.Body
	m.now = x.h.now
	m.stream = isEventStream(res.Header.Get("Content-Type"))
	m.tee = !m.stream && res.StatusCode >= 200 && res.StatusCode < 300
}

func isEventStream(ct string) bool {
	const es = "text/event-stream"
	return len(ct) >= len(es) && equalFoldASCII(ct[:len(es)], es) &&
		(len(ct) == len(es) || ct[len(es)] == ';' || ct[len(es)] == ' ')
}

func equalFoldASCII(a, b string) bool {
	for i := 0; i < len(a); i++ {
		c, d := a[i], b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

func (m *bodyMeter) Read(p []byte) (int, error) {
	n, err := m.rc.Read(p)
	if n > 0 {
		now := m.now()
		if !m.seen {
			m.seen, m.first = true, now
		} else if gap := now.Sub(m.last); gap > m.maxGap {
			m.maxGap = gap
		}
		m.last = now
		switch {
		case m.stream:
			m.sse(p[:n])
		case m.tee:
			m.keep(p[:n])
		}
	}
	if err != nil && err != io.EOF {
		m.readErr = true
	}
	return n, err
}

// Close closes the upstream body and parses the kept JSON for usage. It
// is idempotent: ReverseProxy closes it, and finish closes it again in
// case the proxy never got that far.
func (m *bodyMeter) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	var err error
	if m.rc != nil {
		err = m.rc.Close()
	}
	if m.buf != nil {
		if m.tee {
			if p, c, ok := parseUsage(*m.buf); ok {
				m.prompt, m.completion = p, c
			}
		}
		*m.buf = (*m.buf)[:0]
		meterBufs.Put(m.buf)
		m.buf = nil
	}
	if !m.stream {
		m.maxGap = 0 // gaps only mean something between stream events
	}
	return err
}

func (m *bodyMeter) getBuf() []byte {
	if m.buf == nil {
		m.buf = meterBufs.Get().(*[]byte)
	}
	return *m.buf
}

// keep tees a JSON body: all of it up to teeCap, then a sliding tail.
func (m *bodyMeter) keep(p []byte) {
	b := m.getBuf()
	if len(b)+len(p) <= cap(b) {
		*m.buf = append(b, p...)
		return
	}
	if len(p) >= teeTail {
		*m.buf = append(b[:0], p[len(p)-teeTail:]...)
		return
	}
	k := min(len(b), teeTail-len(p))
	copy(b, b[len(b)-k:])
	*m.buf = append(b[:k], p...)
}

// sse splits forwarded bytes into lines, carrying a partial last line
// over to the next read.
func (m *bodyMeter) sse(p []byte) {
	for len(p) > 0 {
		nl := bytes.IndexByte(p, '\n')
		if nl < 0 {
			m.carry(p)
			return
		}
		line := p[:nl]
		p = p[nl+1:]
		if m.skipLine {
			m.skipLine = false
			continue
		}
		if m.buf != nil && len(*m.buf) > 0 {
			if len(*m.buf)+len(line) > lineCap {
				*m.buf = (*m.buf)[:0]
				continue
			}
			*m.buf = append(*m.buf, line...)
			line = *m.buf
			*m.buf = (*m.buf)[:0] // line still points at the bytes until the next append
		}
		m.line(line)
	}
}

func (m *bodyMeter) carry(p []byte) {
	if m.skipLine {
		return
	}
	b := m.getBuf()
	if len(b)+len(p) > lineCap {
		*m.buf = b[:0]
		m.skipLine = true
		return
	}
	*m.buf = append(b, p...)
}

var (
	dataPrefix   = []byte("data:")
	doneMarker   = []byte("[DONE]")
	finishKey    = []byte(`"finish_reason"`)
	usageKey     = []byte(`"usage"`)
	respComplete = []byte(`"response.completed"`)
)

// line looks at one SSE line. Chat and completions streams end with
// "data: [DONE]" and carry a non-null finish_reason in their last
// content chunk; the Responses API ends with a response.completed
// event. With stream_options.include_usage the final chunk carries
// "usage"; the Responses API nests it in response.completed.
func (m *bodyMeter) line(l []byte) {
	if len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	if !bytes.HasPrefix(l, dataPrefix) {
		return
	}
	d := bytes.TrimLeft(l[len(dataPrefix):], " ")
	if bytes.Equal(d, doneMarker) {
		m.completed = true
		return
	}
	if !m.completed && (hasFinishReason(d) || bytes.Contains(d, respComplete)) {
		m.completed = true
	}
	if bytes.Contains(d, usageKey) {
		if p, c, ok := parseUsage(d); ok {
			m.prompt, m.completion = p, c
		}
	}
}

// hasFinishReason reports a "finish_reason" key with a non-null value.
func hasFinishReason(d []byte) bool {
	for {
		i := bytes.Index(d, finishKey)
		if i < 0 {
			return false
		}
		d = d[i+len(finishKey):]
		j := skipWS(d, 0)
		if j < len(d) && d[j] == ':' {
			j = skipWS(d, j+1)
			if j < len(d) && d[j] != 'n' {
				return true
			}
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
