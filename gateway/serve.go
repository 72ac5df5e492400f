package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/abgate/abgate/experiments"
)

// Response headers.
const (
	HeaderExperiment = "X-Abgate-Experiment"
	HeaderVariant    = "X-Abgate-Variant"
	HeaderRequestID  = "X-Abgate-Request-Id"
	HeaderToken      = "X-Abgate-Token"
	HeaderFallback   = "X-Abgate-Fallback"
)

// Span attribute keys. Unit ids never become attributes.
const (
	attrExperiment = attribute.Key("abgate.experiment")
	attrVariant    = attribute.Key("abgate.variant")
	attrServed     = attribute.Key("abgate.served_variant")
	attrUpstream   = attribute.Key("abgate.upstream")
	attrFallback   = attribute.Key("abgate.fallback")
	attrStatus     = attribute.Key("http.response.status_code")
)

var (
	fallbackBase = []string{"base"}
	traceContext = propagation.TraceContext{}
)

// exchange is one proxied request's state. It is also the context of the
// outbound request (it embeds the attempt's context and answers Value for
// exchangeKey with itself), so Rewrite, ModifyResponse and ErrorHandler
// find it without a context.WithValue allocation.
//
// Only the request goroutine touches its fields: ReverseProxy runs
// Rewrite, ModifyResponse, ErrorHandler and the body copy on it. The
// transport's goroutines see the exchange only as a context (Done, Err,
// Value), and read the request body through the guarded reqBody.
type exchange struct {
	context.Context // the current attempt: span + upstream total timeout

	h      *Handler
	in     *http.Request   // inbound request with this exchange as context
	rw     headerFlusher   // the client's writer, as the proxy gets it
	ids    []string        // the X-Abgate-Request-Id and X-Abgate-Token values
	client context.Context // the inbound request's own context
	parent context.Context // span context, parent of every attempt
	cancel context.CancelFunc

	body    []byte // the whole request body (pooled)
	bodyBuf *[]byte
	held    int64 // of the in-flight body budget (limits.go)
	inline  bool  // the current attempt sent a copy of the body, not the pooled bytes
	guard   bodyGuard
	modelAt span
	// usage asks the upstream for a stream's usage the client did not
	// ask for (with is nil when no edit is needed); the meter then cuts
	// the usage out of what the client receives.
	usage      edit
	units      [maxUnitFields]unitMember
	nUnits     int
	unitHeader string // canonical, from the snapshot
	exp        *experiment
	period     int // the allocation's data period: Outcome.Phase
	segs       experiments.SegmentValues
	sp         trace.Span          // the request's span (begin)
	key        experiments.UnitKey // the unit's keyed hash; zero without a unit
	analysed   bool                // the assignment randomized the unit (Outcome.Analysed)
	assigned   *variant
	serving    *variant // whose model and upstream the current attempt uses
	fallback   bool
	start      time.Time

	status  int  // sent to the client; 0 if none
	failed  bool // upstream 5xx, timeout or connection error
	errKind string
	meter   bodyMeter
	tap     *answerTap // non-nil when the shadow replay sampled the request (shadow.go)
}

type exchangeKey struct{}

func (x *exchange) Value(k any) any {
	if _, ok := k.(exchangeKey); ok {
		return x
	}
	return x.Context.Value(k)
}

func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// canFallback: the experiment allows it, the candidate is still the one
// serving, and the client is still there.
func (x *exchange) canFallback() bool {
	return x.exp.fallback && !x.fallback && x.assigned.idx != 0 && x.client.Err() == nil
}

// ServeHTTP proxies one OpenAI-style request (see Paths).
//
// Its frame stays on the connection goroutine's stack below the proxy for
// a stream's whole life, so it holds nothing but the exchange: begin and
// route do the work before the proxy, end the work after it (see route).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := h.begin(w, r)
	if x == nil {
		return // answered
	}
	defer h.end(x)
	x.serving.up.proxy.ServeHTTP(&x.rw, x.in)
	x.rw.flushBuffered()
}

// headerFlusher is the ResponseWriter the proxy writes to: the client's,
// except that an event stream's response headers go out as soon as the
// proxy sets the status, instead of with the stream's first chunk.
//
// Why: net/http serialises the headers (chunkWriter.writeHeader, a
// 2.8 KiB frame, then Header.writeSubset) at the first flush, and
// ReverseProxy's first flush of a stream comes from deep in its copy loop
// (copyResponse, copyBuffer, maxLatencyWriter, ResponseController). That
// path passed the 8 KiB a connection goroutine starts with, so every live
// stream held a 16 KiB stack for its whole life; flushing from
// WriteHeader, about 600 bytes shallower, keeps it at 8 KiB (issue "Live
// streams at scale"; cmd/abgate/stack_test.go checks the depth). The client
// also sees the status as soon as the upstream sends it. Other responses
// keep net/http's default (headers with the body, one write).
type headerFlusher struct {
	http.ResponseWriter
	x *exchange
}

func (f *headerFlusher) WriteHeader(code int) {
	f.ResponseWriter.WriteHeader(code)
	if code >= http.StatusOK && f.x.meter.stream {
		if fl, ok := f.ResponseWriter.(http.Flusher); ok {
			fl.Flush()
		}
	}
}

// Unwrap lets http.ResponseController reach the client's writer (Flush,
// deadlines).
func (f *headerFlusher) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// begin admits the request, starts its span and routes it (route); it
// returns nil when the request was answered here.
//
//go:noinline
func (h *Handler) begin(w http.ResponseWriter, r *http.Request) *exchange {
	start := h.now()
	wh := w.Header()
	rid := newRequestID()
	ids := make([]string, 2) // request id and token: one allocation for both values
	ids[0] = rid
	wh[HeaderRequestID] = ids[0:1:1]

	if !isProxiedPath(r.URL.Path) {
		writeUnknownURL(w, r)
		return nil
	}
	if r.Method != http.MethodPost {
		writeMethodNotAllowed(w, r)
		return nil
	}
	s := h.snap.Load()
	if !h.admit(&s.limits) {
		writeBusy(w, "too many requests in progress; retry shortly")
		return nil
	}
	ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, sp := h.tracer.Start(ctx, "abgate.proxy", h.spanOpts...)
	var x *exchange
	defer func() {
		if x == nil { // answered, or route panicked: end here what end would
			sp.End()
			h.inflight.Add(-1)
		}
	}()
	x = h.route(ctx, w, r, s, sp, start, ids)
	if x != nil {
		x.sp = sp
	}
	return x
}

// end runs after the proxy returned (or panicked with
// http.ErrAbortHandler): it records the outcome, ends the span and the
// request's admission, in that order.
func (h *Handler) end(x *exchange) {
	defer h.inflight.Add(-1)
	defer x.sp.End()
	h.finish(x, x.sp)
}

// flushBuffered sends a response that net/http still buffers (an answer
// with a Content-Length, which ReverseProxy does not flush) once the
// proxy has copied it, before the gateway's bookkeeping (recording, the
// span's end) instead of after the handler returns: the client's latency
// does not include abgate's own work after the upstream answered. The
// write is the one net/http would have made, only earlier. Without a
// Content-Length a flush would switch a small answer to chunked encoding
// and cost a second write, so those stay as they are; event streams are
// flushed as they go. Not called when the proxy aborts (it panics).
func (f *headerFlusher) flushBuffered() {
	if f.x.status == 0 || f.x.meter.stream || f.ResponseWriter.Header().Get("Content-Length") == "" {
		return
	}
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// route reads and scans the request body, assigns the unit, issues the
// token and builds the exchange; on bad input it answers the client and
// returns nil.
//
// It is a function of its own, never inlined, to keep ServeHTTP's frame
// small: ServeHTTP stays on the connection goroutine's stack below the
// proxy for a stream's whole life, and with route's locals in it (the
// scanned fields, the token, about 2.4 KiB) the deepest path of a stream
// (the copy loop's usage scan, or net/http writing the response headers)
// passed 8 KiB, so every live stream's connection goroutine grew its
// stack to 16 KiB (issue "Live streams at scale").
//
//go:noinline
func (h *Handler) route(ctx context.Context, w http.ResponseWriter, r *http.Request, s *snapshot, sp trace.Span,
	start time.Time, ids []string) *exchange {
	wh := w.Header()
	rid := ids[0]
	var held int64
	bodyBuf, body, err := h.readBody(w, r, s, &held)
	if err != nil {
		h.releaseBody(bodyBuf, held)
		switch {
		case errors.Is(err, errTooLarge):
			setSpanStatus(sp, http.StatusRequestEntityTooLarge)
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "", "request_too_large", err.Error())
		case errors.Is(err, errBusy):
			setSpanStatus(sp, http.StatusServiceUnavailable)
			wh.Set("Connection", "close") // the rest of the body is not read
			writeBusy(w, "the gateway is reading too many request bodies; retry shortly")
		case isTimeout(err):
			setSpanStatus(sp, http.StatusRequestTimeout)
			wh.Set("Connection", "close")
			writeError(w, http.StatusRequestTimeout, "invalid_request_error", "", "request_timeout",
				"the request body did not arrive within "+s.limits.bodyTimeout.String())
		default:
			// The client went away or sent a broken body; nobody to answer.
			setSpanStatus(sp, http.StatusBadRequest)
			writeError(w, http.StatusBadRequest, "invalid_request_error", "", "invalid_body", "could not read request body")
		}
		return nil
	}
	f, err := scanBodyFields(body, s.unitField, s.segFields)
	if err != nil {
		h.releaseBody(bodyBuf, held)
		setSpanStatus(sp, http.StatusBadRequest)
		param := "model"
		if errors.Is(err, errMalformed) {
			param = ""
		}
		writeError(w, http.StatusBadRequest, "invalid_request_error", param, "invalid_request", err.Error())
		return nil
	}
	e := s.routes[string(f.model)] // no allocation: map index by converted bytes
	if e == nil {
		h.releaseBody(bodyBuf, held)
		setSpanStatus(sp, http.StatusNotFound)
		writeError(w, http.StatusNotFound, "invalid_request_error", "model", "model_not_found",
			"The model `"+string(f.model)+"` does not exist or is not routed by this gateway.")
		return nil
	}

	var unit string
	if v := r.Header[s.unitHeader]; len(v) > 0 && v[0] != "" {
		unit = v[0]
	} else if len(f.unit) > 0 {
		unit = string(f.unit)
	}
	alloc := s.allocs[e.idx]
	a := experiments.Assign(alloc, unit)
	// The data period follows the live allocation (each ramp step is its
	// own period), so outcomes and feedback of different splits never
	// pool; a config-only allocation's period is the experiment's phase.
	period := alloc.Period
	if period < 1 {
		period = e.phase
	}
	if a.Variant < 0 || a.Variant >= len(e.variants) {
		a = experiments.Assignment{Reason: experiments.ReasonServe} // unreachable with checked allocations
	}
	v := &e.variants[a.Variant]
	var key experiments.UnitKey
	if unit != "" {
		key = h.signer.KeyUnit(unit)
	}
	segs := e.segments(r.Header, &f)
	ids[1] = h.signer.Issue(experiments.Token{
		Experiment: e.id,
		Phase:      period,
		Variant:    v.idx,
		Unit:       key,
		Analysed:   a.Analysed(),
		RequestID:  rid,
		Segments:   segs,
	}, start)
	wh[HeaderExperiment] = e.hdr
	wh[HeaderVariant] = v.hdr
	wh[HeaderToken] = ids[1:2:2]

	x := &exchange{
		h:          h,
		rw:         headerFlusher{ResponseWriter: w},
		ids:        ids,
		client:     r.Context(),
		parent:     ctx,
		body:       body,
		bodyBuf:    bodyBuf,
		held:       held,
		modelAt:    f.modelValue,
		units:      f.units,
		nUnits:     f.nUnits,
		unitHeader: s.unitHeader,
		exp:        e,
		period:     period,
		segs:       segs,
		assigned:   v,
		serving:    v,
		start:      start,
	}
	if asksUsage(r.URL.Path) {
		if ed, ok := f.usageEdit(body); ok {
			x.usage = ed
		}
	}
	x.rw.x = x
	x.analysed = a.Analysed()
	x.key = key
	x.tap = h.shadowTap(alloc, e.id, unit, v.idx, x.analysed, r)
	x.Context, x.cancel = context.WithTimeout(ctx, v.up.total)
	x.in = r.WithContext(x)
	if _, ok := r.Header["Upgrade"]; ok {
		// Rare path. ReverseProxy forwards a client's protocol upgrade
		// (curl --http2 sends "Upgrade: h2c" in clear text), which a model
		// API has no use for, and rejects a non-printable one before
		// Rewrite, through errorHandler, as if the upstream had failed. The
		// proxied copy of the request gets its own headers without it; r
		// is not modified.
		x.in.Header = r.Header.Clone()
		delete(x.in.Header, "Upgrade")
	}
	return x
}

// finish runs once per routed request, after the proxy returned: the
// body has been copied, aborted (ReverseProxy panics with
// http.ErrAbortHandler; this is deferred, so it still runs) or never
// started. It records the outcome and releases the request's buffers.
func (h *Handler) finish(x *exchange, sp trace.Span) {
	end := h.now()
	x.cancel()
	m := &x.meter
	m.Close() // idempotent; releases the meter's buffer if the proxy didn't close
	// After the guard is closed no transport goroutine can read the body
	// again (Issue 46866: RoundTrip may outlive the handler), so its
	// buffer can go back to the pool.
	x.guard.close()
	h.offerShadow(x) // before the body's buffer goes back to the pool
	h.releaseBody(x.bodyBuf, x.held)

	if m.readErr && x.client.Err() == nil {
		x.failed = true // the upstream broke or timed out mid-body
		if x.errKind == "" {
			x.errKind = "upstream body"
		}
	}
	if sp.IsRecording() {
		// Every attribute at once, at the end: set when the request was
		// routed, the span's attribute slice would be one more allocation
		// held for a stream's whole life, and grown again here.
		sp.SetAttributes(
			attrExperiment.String(x.exp.id),
			attrVariant.String(x.assigned.name),
			attrUpstream.String(x.assigned.up.name),
			attrStatus.Int(x.status),
			attrServed.String(x.serving.name),
			attrFallback.Bool(x.fallback),
		)
		if x.failed {
			sp.SetStatus(codes.Error, x.errKind)
		}
	}
	if h.rec == nil {
		return
	}
	o := experiments.Outcome{
		Experiment:       x.exp.id,
		Phase:            x.period,
		Variant:          x.assigned.idx,
		Unit:             x.key,
		Analysed:         x.analysed,
		At:               x.start,
		Status:           x.status,
		Latency:          end.Sub(x.start),
		MaxGap:           m.maxGap,
		Stream:           m.stream,
		StreamAborted:    m.stream && !m.completed,
		Error:            x.failed || x.status >= 500,
		Fallback:         x.fallback,
		PromptTokens:     m.prompt,
		CachedTokens:     min(m.cached, m.prompt),
		CompletionTokens: m.completion,
		Segments:         x.segs,
	}
	if m.seen {
		o.TTFB = m.first.Sub(x.start)
	}
	// A response served without usage has unknown tokens and cost, not
	// zero ones (a stream whose upstream ignored include_usage, a client
	// that left mid-stream, a reply too long to find "usage" in). What
	// was not served (an error status, no response at all) cost nothing.
	o.UsageMissing = !m.usage && x.status >= 200 && x.status < 300
	// Cost at the prices of the variant that actually served: on a
	// fallback that is the base, and the candidate's arm really paid it.
	o.Cost = x.serving.cost(m.prompt, m.cached, m.completion)
	h.rec.Observe(o)
}

func setSpanStatus(sp trace.Span, status int) {
	if sp.IsRecording() {
		sp.SetAttributes(attrStatus.Int(status))
	}
}

// rewrite builds the outbound request for the serving variant. In is
// never modified.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	x := exchangeFrom(pr.In.Context())
	v := x.serving
	up := v.up
	out := pr.Out
	pr.SetURL(up.url)

	hdr := out.Header
	for k := range hdr {
		// The gateway's own headers are for the application, not the
		// model; a client must not be able to smuggle them either.
		if len(k) >= 9 && strings.EqualFold(k[:9], "X-Abgate-") {
			delete(hdr, k)
		}
	}
	// The client's credentials never reach an upstream; the upstream's
	// key is added below. Hop-by-hop and X-Forwarded-* headers were
	// already removed by ReverseProxy (it would add back Connection and
	// Upgrade for a protocol upgrade, but ServeHTTP drops the client's
	// Upgrade before the proxy sees it); we don't set X-Forwarded-* again
	// because upstreams are often third-party APIs that have no business
	// learning the application's network layout.
	delete(hdr, "Authorization")
	delete(hdr, "Api-Key")   // Azure OpenAI's header
	delete(hdr, "X-Api-Key") // and the other common one
	delete(hdr, "Cookie")
	delete(hdr, "Content-Length")  // out.ContentLength is authoritative
	delete(hdr, "Expect")          // the body is already here
	delete(hdr, "Accept-Encoding") // identity bodies: see newTransport
	delete(hdr, "Traceparent")
	delete(hdr, "Tracestate")
	// Shared, capacity-1 value slices: nothing appends to an outbound
	// request's header values, and an append would copy anyway.
	if up.authHeader != "" {
		hdr[up.authHeader] = up.authValue
	}
	for _, kv := range up.headers {
		hdr[kv.key] = kv.value
	}
	traceContext.Inject(out.Context(), propagation.HeaderCarrier(hdr))

	v.up.applyHeaderPrivacy(hdr, x.unitHeader)

	x.inline = false
	// The body with the attempt's edits spliced in (the variant's model,
	// the upstream's unit id policy, stream_options); every other byte is
	// the client's.
	var es [maxEdits]edit
	edits, n := x.edits(v, &es)
	out.TransferEncoding = nil
	out.ContentLength = int64(n)
	if n <= inlineBody {
		// Most requests: one contiguous copy behind a *bytes.Reader.
		// net/http knows that type can't block, so it writes headers and
		// body in one packet instead of flushing the headers on their own
		// (transferWriter.FlushHeaders); that saves ~10µs a request on
		// loopback. The copy is not pooled: the transport may read it
		// after the handler returned, so the GC owns its lifetime.
		b := make([]byte, 0, n)
		at := 0
		for _, d := range edits {
			b = append(b, x.body[at:d.at.start]...)
			b = append(b, d.with...)
			at = d.at.end
		}
		b = append(b, x.body[at:]...)
		out.Body = io.NopCloser(bytes.NewReader(b))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		x.inline = true
		return
	}
	// Large bodies are not copied: a reader walks the client's bytes and
	// the edits over the pooled buffer, behind the exchange's guard. Each
	// attempt (a fallback, a transport retry through GetBody) gets its own
	// reader; it is not embedded in the exchange, which every live stream
	// holds, for the few requests above inlineBody.
	rb := new(reqBody)
	x.spliceInto(rb, edits)
	fresh := *rb
	out.Body = rb
	out.GetBody = func() (io.ReadCloser, error) {
		b := fresh
		return &b, nil
	}
}

// inlineBody is the largest request body sent as a contiguous copy.
const inlineBody = 32 << 10

// An attempt edits the body at most maxEdits times: the model, every
// unit member, stream_options. maxParts is what reqBody walks.
const (
	maxEdits = 2 + maxUnitFields
	maxParts = 2*maxEdits + 1
)

// edits returns the attempt's body edits for v, in body order, and the
// length of the edited body. They are per attempt: a fallback serves
// another upstream, with its own unit id policy and hash key.
func (x *exchange) edits(v *variant, es *[maxEdits]edit) ([]edit, int) {
	e := append(es[:0], edit{x.modelAt, v.model})
	if x.usage.with != nil {
		e = append(e, x.usage)
	}
	e = v.up.unitEdits(e, x.body, x.units[:x.nUnits])
	// Insertion sort: at most six edits, which never overlap; at one
	// position an insertion goes before a removal.
	for i := 1; i < len(e); i++ {
		for j := i; j > 0 && (e[j].at.start < e[j-1].at.start ||
			e[j].at.start == e[j-1].at.start && e[j].at.end < e[j-1].at.end); j-- {
			e[j], e[j-1] = e[j-1], e[j]
		}
	}
	n := len(x.body)
	for _, d := range e {
		n += len(d.with) - (d.at.end - d.at.start)
	}
	return e, n
}

func (x *exchange) spliceInto(rb *reqBody, edits []edit) {
	rb.g = &x.guard
	k, at := 0, 0
	for _, d := range edits {
		rb.parts[k] = x.body[at:d.at.start]
		rb.parts[k+1] = d.with
		k += 2
		at = d.at.end
	}
	rb.parts[k] = x.body[at:]
	rb.n = k + 1
}

// asksUsage: the endpoints whose streams report usage only when asked
// (stream_options.include_usage). The Responses API always reports it in
// response.completed.
func asksUsage(path string) bool {
	return path == "/v1/chat/completions" || path == "/v1/completions"
}

// modifyResponse runs once the upstream's headers arrived and before
// anything is written to the client. That is the last moment a failed
// candidate can still be replaced by the base: a 5xx returns
// errRetryOnBase, ReverseProxy closes the candidate's body unread and
// passes the error to errorHandler, which serves the base on the same,
// still untouched, ResponseWriter. No body byte is ever buffered.
func (h *Handler) modifyResponse(res *http.Response) error {
	x := exchangeFrom(res.Request.Context())
	if res.StatusCode >= 500 && x.canFallback() {
		return &statusError{status: res.StatusCode}
	}
	hdr := res.Header
	// The upstream can't speak for the gateway.
	delete(hdr, HeaderExperiment)
	delete(hdr, HeaderVariant)
	delete(hdr, HeaderRequestID)
	delete(hdr, HeaderToken)
	delete(hdr, HeaderFallback)

	x.restoreHeaders()

	x.status = res.StatusCode
	if res.StatusCode >= 500 {
		x.failed = true
		x.errKind = "upstream status"
	}
	// No fallback is possible from here on, and an inline body was sent
	// as its own copy: the pooled request body can go back now instead of
	// being held for the life of a stream. A request the shadow replay
	// sampled keeps it: finish offers it for replay (offerShadow).
	if x.inline && x.tap == nil {
		h.releaseBody(x.bodyBuf, x.held)
		x.body, x.bodyBuf, x.held = nil, nil, 0
	}
	x.meter.start(x, res)
	if x.meter.strip {
		// The client gets fewer bytes than the upstream sent: a declared
		// length would be wrong (SSE rarely has one).
		delete(hdr, "Content-Length")
		res.ContentLength = -1
	}
	res.Body = x.tap.wrap(&x.meter)
	return nil
}

// statusError is a candidate's 5xx turned into an error so it reaches
// errorHandler before anything was written.
type statusError struct{ status int }

func (e *statusError) Error() string { return "upstream returned " + http.StatusText(e.status) }

// errorHandler is the single failure door: transport errors (refused,
// reset, header timeout, total timeout, client gone) and a candidate's
// 5xx from modifyResponse. Nothing has been written to w yet.
func (h *Handler) errorHandler(w http.ResponseWriter, req *http.Request, err error) {
	x := exchangeFrom(req.Context())
	if x == nil { // not ours; cannot happen through ServeHTTP
		writeError(w, http.StatusBadGateway, "upstream_error", "", "upstream_unavailable", "upstream unavailable")
		return
	}
	x.restoreHeaders()
	if x.client.Err() != nil {
		// The client left: the canceled context is what stopped the
		// upstream request. Nobody is listening for an answer.
		x.status = 0
		x.errKind = "client canceled"
		return
	}
	x.failed = true
	if x.canFallback() {
		var se *statusError
		if errors.As(err, &se) {
			x.errKind = "candidate status"
		} else {
			x.errKind = "candidate " + errorKind(err)
		}
		h.log.Warn("gateway: candidate failed, serving base", "experiment", x.exp.id, "variant", x.assigned.name, "error", err)
		h.serveFallback(w, x)
		return
	}
	status, code, msg := http.StatusBadGateway, "upstream_unavailable", "the model upstream could not be reached"
	if isTimeout(err) {
		status, code, msg = http.StatusGatewayTimeout, "upstream_timeout", "the model upstream timed out"
	}
	x.errKind = errorKind(err)
	x.status = status
	h.log.Warn("gateway: upstream failed", "experiment", x.exp.id, "variant", x.serving.name, "upstream", x.serving.up.name, "error", err)
	writeError(w, status, "upstream_error", "", code, msg)
}

// serveFallback retries the request once on the base variant, with its
// own model, upstream and total timeout. The outcome keeps the assigned
// candidate (intent-to-treat) with Fallback and Error set; the response
// still says X-Abgate-Variant: <candidate>, plus X-Abgate-Fallback: base.
func (h *Handler) serveFallback(w http.ResponseWriter, x *exchange) {
	x.cancel() // end the candidate attempt
	x.fallback = true
	base := &x.exp.variants[0]
	x.serving = base
	w.Header()[HeaderFallback] = fallbackBase
	if sp := trace.SpanFromContext(x.parent); sp.IsRecording() {
		sp.AddEvent("abgate.fallback", trace.WithAttributes(attrVariant.String(x.assigned.name), attribute.String("abgate.error", x.errKind)))
	}
	ctx, cancel := context.WithTimeout(x.parent, base.up.total)
	defer cancel()
	ctx = context.WithValue(ctx, exchangeKey{}, x)
	base.up.proxy.ServeHTTP(w, x.in.WithContext(ctx))
}

// restoreHeaders puts the gateway's response headers back if they are
// gone. ReverseProxy relays an upstream's 1xx response (103 Early Hints)
// and then clears the whole response header map, ours included; this runs
// after the attempt's RoundTrip returned, when no 1xx can come any more.
func (x *exchange) restoreHeaders() {
	wh := x.rw.Header()
	if _, ok := wh[HeaderRequestID]; ok {
		return
	}
	wh[HeaderRequestID] = x.ids[0:1:1]
	wh[HeaderToken] = x.ids[1:2:2]
	wh[HeaderExperiment] = x.exp.hdr
	wh[HeaderVariant] = x.assigned.hdr
	if x.fallback {
		wh[HeaderFallback] = fallbackBase
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func errorKind(err error) string {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return "status"
	case isTimeout(err):
		return "timeout"
	default:
		return "connection"
	}
}
