// Package gateway is abgate's data plane: an OpenAI-compatible reverse
// proxy that routes each request for a model alias to the base or a
// candidate variant of the experiment owning that alias, stickily per
// unit, and measures what happened.
//
// The hot path reads one immutable snapshot through an atomic pointer,
// scans the request body for "model" and the unit id without decoding
// it, assigns the unit (experiments.Assign, no allocation), splices the
// variant's real model name into the body and hands the request to the
// upstream's httputil.ReverseProxy. Every failure leaves through the
// proxy's ErrorHandler, which is also where the fallback to the base
// happens. One Outcome per request goes to the Recorder after the
// response body has finished or aborted.
package gateway

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/abgate/abgate/experiments"
)

// Recorder receives one Outcome per proxied request, after its response
// body finished or aborted. It is declared here, by its user; the
// experiments recorder (a bounded, batching queue) implements it.
// Observe runs on the request goroutine, so it must not block: enqueue
// or drop.
type Recorder interface {
	Observe(experiments.Outcome)
}

// Option configures a Handler.
type Option func(*Handler)

// WithRecorder sends outcomes to r. Without it (or with nil) nothing is
// recorded.
func WithRecorder(r Recorder) Option { return func(h *Handler) { h.rec = r } }

// WithTracerProvider sets where proxy spans go (default
// otel.GetTracerProvider() at New).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(h *Handler) { h.tp = tp }
}

// WithLogger sets the logger for configuration changes and proxy errors
// (default slog.Default()). Nothing is logged per successful request.
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// Handler is the proxy. It is safe for concurrent use; Update and
// SetAllocation may run while requests are served.
type Handler struct {
	signer *experiments.Signer
	rec    Recorder
	shadow Shadower // nil: no shadow replay (shadow.go)
	tp     trace.TracerProvider
	tracer trace.Tracer
	now    func() time.Time
	log    *slog.Logger
	errLog *log.Logger // the ReverseProxy's logger, bridged to log

	spanOpts []trace.SpanStartOption // built once: variadic options allocate

	mu        sync.Mutex // serialises Update and SetAllocation
	overrides map[string]*experiments.Allocation
	snap      atomic.Pointer[snapshot]

	// Load now, against the snapshot's limits (limits.go).
	inflight  atomic.Int64 // proxied requests in progress
	bodyBytes atomic.Int64 // buffer capacity held by request bodies
}

var _ http.Handler = (*Handler)(nil)

// New builds a Handler serving cfg. The signer issues X-Abgate-Token and
// keys unit ids; it is required.
func New(cfg *experiments.Config, signer *experiments.Signer, opts ...Option) (*Handler, error) {
	if signer == nil {
		return nil, errors.New("gateway: nil signer")
	}
	h := &Handler{signer: signer, now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(h)
	}
	if h.tp == nil {
		h.tp = otel.GetTracerProvider()
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.tracer = h.tp.Tracer("github.com/abgate/abgate/gateway")
	h.spanOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	h.errLog = slog.NewLogLogger(h.log.Handler(), slog.LevelWarn)
	if err := h.Update(cfg); err != nil {
		return nil, err
	}
	return h, nil
}

// Check reports whether Update would accept cfg, changing nothing: a
// reload asks before it commits to a new config. (The snapshot it builds
// is thrown away; new Transports in it have opened no connection.)
func (h *Handler) Check(cfg *experiments.Config) error {
	if cfg == nil {
		return errors.New("gateway: nil config")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := h.build(cfg, h.snap.Load()); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}

// Update rebuilds the snapshot from cfg and swaps it in atomically.
// In-flight requests finish on the snapshot they started with. Upstreams
// whose URL, timeouts and pool size are unchanged keep their Transport
// (and so their warm connections); the idle connections of replaced or
// removed upstreams are closed. Live allocation overrides (SetAllocation)
// survive when they still fit the experiment (same salt, same number of
// candidates) and are dropped otherwise.
func (h *Handler) Update(cfg *experiments.Config) error {
	if cfg == nil {
		return errors.New("gateway: nil config")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.snap.Load()
	s, err := h.build(cfg, old)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	for id, a := range h.overrides {
		e := s.experiments[id]
		if e == nil || checkAllocation(e, a) != nil || a.Salt != s.allocs[e.idx].Salt {
			h.log.Warn("gateway: dropping allocation override that no longer fits", "experiment", id)
			delete(h.overrides, id)
			continue
		}
		s.allocs[e.idx] = a
	}
	h.snap.Store(s)
	if old != nil {
		for name, up := range old.upstreams {
			if n := s.upstreams[name]; n == nil || n.transport != up.transport {
				up.transport.CloseIdleConnections()
			}
		}
	}
	return nil
}

// SetAllocation overrides the allocation of one experiment (the rollout
// controller ramps, promotes and stops through it) and swaps a new
// snapshot; a nil a returns to the configured allocation. The override
// must fit the experiment: one share per candidate, Serve and allowlist
// indices within its variants. a must not be modified afterwards.
func (h *Handler) SetAllocation(experimentID string, a *experiments.Allocation) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.snap.Load()
	e := cur.experiments[experimentID]
	if e == nil {
		return fmt.Errorf("gateway: unknown experiment %q", experimentID)
	}
	if a == nil {
		delete(h.overrides, experimentID)
		a = e.configured
	} else {
		if err := checkAllocation(e, a); err != nil {
			return fmt.Errorf("gateway: allocation for %q: %w", experimentID, err)
		}
		if h.overrides == nil {
			h.overrides = make(map[string]*experiments.Allocation)
		}
		h.overrides[experimentID] = a
	}
	next := *cur
	next.allocs = append([]*experiments.Allocation(nil), cur.allocs...)
	next.allocs[e.idx] = a
	h.snap.Store(&next)
	return nil
}

func checkAllocation(e *experiment, a *experiments.Allocation) error {
	n := len(e.variants)
	if len(a.Shares) != n-1 {
		return fmt.Errorf("%d shares for %d candidates", len(a.Shares), n-1)
	}
	if a.Serve >= n {
		return fmt.Errorf("serve variant %d of %d", a.Serve, n)
	}
	for i, s := range a.Shares {
		if s > experiments.MaxShare(n-1) {
			return fmt.Errorf("share %d of candidate %d above %d", s, i+1, experiments.MaxShare(n-1))
		}
	}
	for _, v := range a.Allowlist {
		if v < 0 || v >= n {
			return fmt.Errorf("allowlist variant %d of %d", v, n)
		}
	}
	return nil
}

// Paths are the OpenAI-compatible endpoints the gateway proxies (POST).
var Paths = []string{
	"/v1/chat/completions",
	"/v1/completions",
	"/v1/embeddings",
	"/v1/responses",
}

func isProxiedPath(p string) bool {
	switch p {
	case "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses":
		return true
	}
	return false
}

// Register mounts the proxy on r as POST routes for Paths, and the model
// list (GET /v1/models, GET /v1/models/{id}; models.go). Add no
// per-request logger or gin.Recovery in front of it: a stream aborted
// mid-body panics with http.ErrAbortHandler, and net/http must see that
// panic to cut the connection (gin's Recovery swallows it, so the client
// would see a clean end of a truncated stream).
func (h *Handler) Register(r gin.IRouter) {
	hf := gin.WrapH(h)
	for _, p := range Paths {
		r.POST(p, hf)
	}
	r.GET("/v1/models", h.listModels)
	r.GET("/v1/models/*id", h.getModel)
}

// Engine returns a gin engine in release mode serving only the proxy
// routes, with no middleware; other paths and methods get OpenAI-style
// 404 and 405 errors. gin.SetMode is process-wide.
func (h *Handler) Engine() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	h.Register(e)
	HandleUnrouted(e)
	return e
}

// HandleUnrouted makes e answer unknown paths (404 unknown_url) and wrong
// methods (405 method_not_allowed, with Allow) in OpenAI's error shape,
// as OpenAI does, so SDKs surface them like any API error. Any engine
// serving the proxy routes should call it.
func HandleUnrouted(e *gin.Engine) {
	e.HandleMethodNotAllowed = true
	e.NoRoute(func(c *gin.Context) { writeUnknownURL(c.Writer, c.Request) })
	e.NoMethod(func(c *gin.Context) {
		// gin has already set Allow to the methods the path takes.
		writeMethodNotAllowed(c.Writer, c.Request, c.Writer.Header().Values("Allow")...)
	})
}
