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

// The meter's buffers come in two sizes, pooled apart: a page, which
// holds a partial SSE line or a typical JSON reply, and teeCap for the
// few that need more. A buffer is taken only when something must be
// kept and, on a stream, given back as soon as it is empty again, so a
// live stream waiting for its next token holds none (it used to hold a
// 64 KiB one for its whole life: issue "Live streams at scale"). Like
// copyBuffers, the pools hold array pointers, which a Put doesn't box.
const smallMeterBuf = 4 << 10

var (
	smallMeterBufs = sync.Pool{New: func() any { return new([smallMeterBuf]byte) }}
	largeMeterBufs = sync.Pool{New: func() any { return new([teeCap]byte) }}
)

// getMeterBuf returns an empty buffer with room for n bytes (n <= teeCap).
func getMeterBuf(n int) []byte {
	if n <= smallMeterBuf {
		return smallMeterBufs.Get().(*[smallMeterBuf]byte)[:0]
	}
	return largeMeterBufs.Get().(*[teeCap]byte)[:0]
}

func putMeterBuf(b []byte) {
	switch cap(b) {
	case smallMeterBuf:
		smallMeterBufs.Put((*[smallMeterBuf]byte)(b[:smallMeterBuf]))
	case teeCap:
		largeMeterBufs.Put((*[teeCap]byte)(b[:teeCap]))
	}
}

// bodyMeter wraps the upstream response body, like Caddy's
// bodyReadCloser: ReverseProxy reads it to copy the response to the
// client and closes it at the end, so Read sees every chunk as it is
// forwarded and Close marks the end of the body. It is embedded in the
// exchange (no allocation) and only the request goroutine uses it.
type bodyMeter struct {
	rc  io.ReadCloser
	now func() time.Time
	// res is the upstream's response until the first Read, which drops
	// its header map (see dropHeader).
	res *http.Response

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
	cached             int  // prompt tokens served from the upstream's cache
	usage              bool // the upstream reported usage

	// buf is pooled (getMeterBuf), nil when nothing is kept: the JSON
	// tee or a partial SSE line (its length is what is kept), or
	// readStrip's window (its capacity; win says what is in it).
	buf      []byte
	skipLine bool // the current SSE line overflowed lineCap: only its tail is kept

	// strip: the gateway asked the upstream for usage the client did not
	// ask for, so the usage-only event and every chunk's "usage":null are
	// cut from what the client receives (see readStrip).
	strip bool
	win   window
}

// window is readStrip's state over the pooled buffer: buf[r:emit] is
// ready for the client, buf[emit:w] is a line not complete yet.
type window struct {
	r, emit, w int
	err        error // the upstream's read error, returned once the window is empty
	passLine   bool  // the current line overflowed the window: pass it through
	dropBlank  bool  // a usage-only event was cut: cut the blank line ending it
}

var _ io.ReadCloser = (*bodyMeter)(nil)

func (m *bodyMeter) start(x *exchange, res *http.Response) {
	m.rc = res.Body
	m.res = res
	m.now = x.h.now
	m.stream = isEventStream(res.Header.Get("Content-Type"))
	m.tee = !m.stream && res.StatusCode >= 200 && res.StatusCode < 300
	m.strip = m.stream && x.usage.with != nil
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
	if m.res != nil {
		m.dropHeader()
	}
	if m.strip {
		return m.readStrip(p)
	}
	n, err := m.rc.Read(p)
	if n > 0 {
		m.arrived()
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

// dropHeader lets the upstream's response header map go, on the body's
// first Read: by then ReverseProxy has copied it into the client's
// headers and read it for the last time (flushInterval, just before the
// copy loop; after the body it reads only Trailer), and nothing else
// reads it. The *http.Response itself stays referenced by the proxy and
// the transport's read loop for the whole response, and with it the map:
// about 0.4 KiB of every live stream (issue "Live streams at scale").
// Reads of a nil Header are safe.
func (m *bodyMeter) dropHeader() {
	m.res.Header = nil
	m.res = nil
}

// arrived times a read that brought bytes from the upstream.
func (m *bodyMeter) arrived() {
	now := m.now()
	if !m.seen {
		m.seen, m.first = true, now
	} else if gap := now.Sub(m.last); gap > m.maxGap {
		m.maxGap = gap
	}
	m.last = now
}

// readStrip is Read for a stream whose usage the gateway asked for: the
// client gets the upstream's bytes except the usage-only event (choices
// empty, usage set) and the "usage":null member OpenAI adds to every
// other chunk once usage is requested, which is exactly the stream it
// would have had without stream_options.include_usage.
//
// Whole lines are needed to tell, so only complete lines are handed on;
// a partial line waits for its end (the client could not parse it before
// anyway). All complete lines of one upstream read are handed on
// together, so the proxy still writes and flushes once per upstream
// chunk. A line longer than lineCap can't be a usage event and passes
// through unparsed, like the meter's lineCap. No allocation per chunk.
//
// The usual read, whole events into an empty window, is filtered in
// place in the proxy's own buffer (readDirect); only a line split across
// reads is kept in the window, a pooled buffer that goes back to the
// pool as soon as it has been handed on.
func (m *bodyMeter) readStrip(p []byte) (int, error) {
	w := &m.win
	for {
		if m.buf == nil { // the window is empty
			if w.err != nil {
				return 0, w.err
			}
			if len(p) >= minDirect {
				if n := m.readDirect(p); n > 0 {
					return n, nil
				}
				continue
			}
			m.buf = getMeterBuf(0)
		}
		buf := m.buf[:cap(m.buf)]
		if w.r < w.emit {
			n := copy(p, buf[w.r:w.emit])
			w.r += n
			if w.r == w.w { // all handed on
				m.dropWindow()
			}
			return n, nil
		}
		if w.err != nil {
			if w.emit < w.w { // a last line without its newline: as it came
				w.emit = w.w
				continue
			}
			m.dropWindow()
			return 0, w.err
		}
		if w.r > 0 { // keep the partial line, at the front
			w.w = copy(buf, buf[w.r:w.w])
			w.r, w.emit = 0, 0
		}
		if w.w == len(buf) {
			if len(buf) < lineCap { // a long line: a larger window
				nb := getMeterBuf(lineCap)
				copy(nb[:cap(nb)], buf[:w.w])
				putMeterBuf(m.buf)
				m.buf = nb
				continue
			}
			w.passLine = true
			w.emit = w.w
			continue
		}
		n, err := m.rc.Read(buf[w.w:])
		if n > 0 {
			m.arrived()
			w.w += n
			m.decide(buf)
		}
		if err != nil {
			if err != io.EOF {
				m.readErr = true
			}
			w.err = err
		}
	}
}

// minDirect is the smallest client buffer readStrip filters in place;
// ReverseProxy's (copyBufSize) always is.
const minDirect = 512

// readDirect reads the upstream into p and filters it there: the
// complete lines, cut as decide says, are p[:n]; a partial last line
// moves into the window. n is 0 when nothing is ready yet (all of it was
// cut, or it is one partial line).
func (m *bodyMeter) readDirect(p []byte) int {
	w := &m.win
	n, err := m.rc.Read(p)
	if n > 0 {
		m.arrived()
	}
	if err != nil {
		if err != io.EOF {
			m.readErr = true
		}
		w.err = err
	}
	w.r, w.emit, w.w = 0, 0, n
	m.decide(p)
	ready := w.emit
	part := p[w.emit:w.w]
	w.r, w.emit, w.w = 0, 0, 0
	if len(part) > 0 {
		if len(part) > lineCap { // too long for any window: it passes
			w.passLine = true
			return ready + len(part)
		}
		m.buf = getMeterBuf(len(part))
		w.w = copy(m.buf[:cap(m.buf)], part)
	}
	return ready
}

// dropWindow gives readStrip's window back to the pool once everything
// in it has been handed on.
func (m *bodyMeter) dropWindow() {
	putMeterBuf(m.buf)
	m.buf = nil
	m.win.r, m.win.emit, m.win.w = 0, 0, 0
}

// decide moves emit over the complete lines of buf[emit:w], cutting
// what the client did not ask for out of the window as it goes.
func (m *bodyMeter) decide(buf []byte) {
	w := &m.win
	for w.emit < w.w {
		nl := bytes.IndexByte(buf[w.emit:w.w], '\n')
		if nl < 0 {
			if w.passLine {
				w.emit = w.w
			}
			return
		}
		ls, le := w.emit, w.emit+nl+1
		if w.passLine {
			w.passLine = false
			w.emit = le
			continue
		}
		l := buf[ls : le-1]
		if len(l) > 0 && l[len(l)-1] == '\r' {
			l = l[:len(l)-1]
		}
		if w.dropBlank {
			w.dropBlank = false
			if len(l) == 0 {
				w.cut(buf, ls, le)
				continue
			}
		}
		m.event(l)
		cut, only, usage := usageMember(l)
		if usage > 0 { // one scan finds the member and reads it
			u := objScanner{b: l, i: usage}
			if u.open() {
				if tu, ok := usageFields(&u); ok {
					m.prompt, m.completion, m.cached, m.usage = tu.prompt, tu.completion, tu.cached, true
				}
			}
		}
		switch {
		case only:
			w.cut(buf, ls, le)
			w.dropBlank = true
		case cut.end > 0:
			w.cut(buf, ls+cut.start, ls+cut.end) // cut is relative to l, which starts at ls
			w.emit = le - (cut.end - cut.start)
		default:
			w.emit = le
		}
	}
}

// cut removes buf[from:to] from the window; emit stays at from.
func (w *window) cut(buf []byte, from, to int) {
	w.w = from + copy(buf[from:], buf[to:w.w])
	w.emit = from
}

// usageMember looks at one SSE line: only reports a usage-only event
// (its "choices" empty, its "usage" an object); otherwise cut is the
// span, relative to the line, of a top-level "usage":null member with
// one comma, or zero. usage is where a top-level usage object starts
// in l, or 0. Lines without "usage" cost one search.
func usageMember(l []byte) (cut span, only bool, usage int) {
	if !bytes.HasPrefix(l, dataPrefix) {
		return span{}, false, 0
	}
	// Fast path: OpenAI puts "usage":null last. Right before the line's
	// final brace these bytes can only be a top-level member (inside a
	// string the quotes would be escaped), so no scan is needed: it
	// halves the cost of a chunk.
	if bytes.HasSuffix(l, usageNullTail) {
		return span{len(l) - len(usageNullTail), len(l) - 1}, false, 0
	}
	if !bytes.Contains(l, usageKey) {
		return span{}, false, 0
	}
	d := len(dataPrefix)
	for d < len(l) && l[d] == ' ' {
		d++
	}
	s := objScanner{b: l, i: d}
	if !s.open() {
		return span{}, false, 0
	}
	emptyChoices, usageObj := false, false
	prevEnd, first := -1, true
	var null span
	for {
		key, _, vs, ve, ok := s.next()
		if !ok {
			break
		}
		switch string(key) {
		case "choices":
			j := skipWS(l, vs+1)
			emptyChoices = l[vs] == '[' && j < ve && l[j] == ']'
		case "usage":
			usageObj = l[vs] == '{'
			if usageObj {
				usage = vs
			}
			if l[vs] == 'n' {
				if first {
					null = span{s.ks, ve}
					if j := skipWS(l, ve); j < len(l) && l[j] == ',' {
						null.end = j + 1
					}
				} else {
					null = span{prevEnd, ve}
				}
			}
		}
		prevEnd, first = ve, false
	}
	if s.err != nil {
		return span{}, false, 0 // not JSON we understand: leave it alone
	}
	if emptyChoices && usageObj {
		return span{}, true, usage
	}
	return null, false, usage
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
			m.parseUsage(m.buf)
		}
		putMeterBuf(m.buf)
		m.buf = nil
	}
	if !m.stream {
		m.maxGap = 0 // gaps only mean something between stream events
	}
	return err
}

// reserve makes room in buf for n bytes in all (n <= teeCap), moving
// what it holds from a page to a large buffer when it must.
func (m *bodyMeter) reserve(n int) {
	if m.buf != nil && cap(m.buf) >= n {
		return
	}
	nb := append(getMeterBuf(n), m.buf...)
	putMeterBuf(m.buf)
	m.buf = nb
}

// keep tees a JSON body: all of it up to teeCap, then a sliding tail.
func (m *bodyMeter) keep(p []byte) {
	if len(m.buf)+len(p) <= teeCap {
		m.reserve(len(m.buf) + len(p))
		m.buf = append(m.buf, p...)
		return
	}
	m.reserve(teeCap)
	b := m.buf
	if len(p) >= teeTail {
		m.buf = append(b[:0], p[len(p)-teeTail:]...)
		return
	}
	k := min(len(b), teeTail-len(p))
	copy(b, b[len(b)-k:])
	m.buf = append(b[:k], p...)
}

// sse splits forwarded bytes into lines, carrying a partial last line
// over to the next read. The carry's buffer goes back to the pool once
// its line is complete.
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
			// The end of a line too long to keep: its usage, if any, is
			// in the tail (response.completed carries the whole response,
			// output included, and "usage" near its end).
			m.skipLine = false
			m.keep(line)
			m.parseUsage(m.buf)
			m.buf = m.buf[:0]
			continue
		}
		if len(m.buf) > 0 {
			if len(m.buf)+len(line) > lineCap {
				m.carry(line) // overflows: keeps the tail
				m.skipLine = false
				m.parseUsage(m.buf)
				m.buf = m.buf[:0]
				continue
			}
			m.reserve(len(m.buf) + len(line))
			m.buf = append(m.buf, line...)
			line = m.buf
			m.buf = m.buf[:0] // line still points at the bytes until the next append
		}
		m.line(line)
	}
	if m.buf != nil && len(m.buf) == 0 {
		putMeterBuf(m.buf)
		m.buf = nil
	}
}

func (m *bodyMeter) carry(p []byte) {
	if m.skipLine {
		m.keep(p)
		return
	}
	b := m.buf
	if len(b)+len(p) > lineCap {
		// Too long to keep whole: note from its head whether it ends a
		// Responses API stream, then keep only a sliding tail.
		head := b
		if len(head) < 256 {
			head = p[:min(len(p), 256)] // the event type is in the first bytes
		}
		if bytes.Contains(b[:min(len(b), 256)], respComplete) || bytes.Contains(head, respComplete) {
			m.completed = true
		}
		m.skipLine = true
		m.keep(p)
		return
	}
	m.reserve(len(b) + len(p))
	m.buf = append(m.buf, p...)
}

var (
	dataPrefix   = []byte("data:")
	doneMarker   = []byte("[DONE]")
	finishKey    = []byte(`"finish_reason"`)
	usageKey     = []byte(`"usage"`)
	respComplete = []byte(`"response.completed"`)
	// usageNullTail ends every chunk but the last of a stream with
	// include_usage, at OpenAI.
	usageNullTail = []byte(`,"usage":null}`)
)

// line looks at one SSE line. Chat and completions streams end with
// "data: [DONE]" and carry a non-null finish_reason in their last
// content chunk; the Responses API ends with a response.completed
// event. With stream_options.include_usage the final chunk carries
// "usage"; the Responses API nests it in response.completed.
func (m *bodyMeter) line(l []byte) {
	if d, ok := m.event(l); ok && bytes.Contains(d, usageKey) {
		m.parseUsage(d)
	}
}

// event notes whether a line ends the stream and returns its data
// payload; ok is false for other lines and for [DONE].
func (m *bodyMeter) event(l []byte) (d []byte, ok bool) {
	if len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	if !bytes.HasPrefix(l, dataPrefix) {
		return nil, false
	}
	d = bytes.TrimLeft(l[len(dataPrefix):], " ")
	if bytes.Equal(d, doneMarker) {
		m.completed = true
		return nil, false
	}
	if !m.completed && (hasFinishReason(d) || bytes.Contains(d, respComplete)) {
		m.completed = true
	}
	return d, true
}

func (m *bodyMeter) parseUsage(b []byte) {
	if tu, ok := parseUsage(b); ok {
		m.prompt, m.completion, m.cached, m.usage = tu.prompt, tu.completion, tu.cached, true
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
