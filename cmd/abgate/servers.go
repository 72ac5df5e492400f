package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/api"
	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/gateway"
	"github.com/abgate/abgate/internal/oaierr"
)

// listen opens the listeners so their addresses are known (port 0 works)
// before anything is printed or configured from them.
func (a *app) listen() error {
	cfg := a.cfg.Load()
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Server.Listen, err)
	}
	a.listeners = []net.Listener{ln}
	if cfg.Server.AdminListen != "" {
		aln, err := net.Listen("tcp", cfg.Server.AdminListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen %s: %w", cfg.Server.AdminListen, err)
		}
		a.listeners = append(a.listeners, aln)
	}
	return nil
}

// startServers serves the proxy engine on the first listener and, when
// the admin API has its own address, the admin engine on the second. The
// channel gets each server's Serve error.
func (a *app) startServers() ([]*http.Server, <-chan error) {
	proxy, admin := a.engines()
	servers := []*http.Server{newServer(proxy)}
	if admin != nil {
		servers = append(servers, newServer(admin))
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(a.listeners[i]) }()
	}
	return servers, errc
}

// newServer is the http.Server settings of both listeners.
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: streams may last minutes; upstream timeouts
		// bound them instead.
		IdleTimeout: 120 * time.Second,
	}
}

// engines builds the proxy engine and, when the admin API has its own
// address, the admin engine.
func (a *app) engines() (proxy, admin *gin.Engine) {
	gin.SetMode(gin.ReleaseMode)
	proxy = gin.New()
	// No request logger: it would cost more than the proxying.
	proxy.Use(a.recovery())
	a.gateway.Register(proxy)
	a.health(proxy)
	if a.extraRoutes != nil {
		a.extraRoutes(proxy)
	}
	admin = proxy
	if addr := a.cfg.Load().Server.AdminListen; addr != "" {
		admin = gin.New()
		admin.Use(a.recovery())
		a.health(admin)
		// A client that calls the admin side on the proxy's listener is
		// told where it is, not given a bare 404 (a README's feedback
		// call, the CLI's default --server).
		wrong := func(c *gin.Context) {
			c.Abort()
			c.Header("Content-Type", "application/json; charset=utf-8")
			oaierr.Write(c.Writer, http.StatusNotFound, oaierr.New(oaierr.InvalidRequest, "wrong_listener", "",
				"this address serves the OpenAI-compatible proxy only; feedback, the admin API, reports, sign-in and /metrics are on the admin listener (server.admin_listen "+addr+")"))
		}
		for _, p := range []string{"/v1/feedback", "/v1/feedback/batch", "/api/*rest", "/reports", "/reports/*rest", "/signin", "/signout", "/metrics"} {
			proxy.Any(p, wrong)
		}
	}
	a.registerAPI(admin)
	// Unknown paths and wrong methods answer in OpenAI's error shape on
	// both listeners (404 unknown_url, 405 method_not_allowed).
	gateway.HandleUnrouted(proxy)
	if admin == proxy {
		admin = nil
	} else {
		gateway.HandleUnrouted(admin)
	}
	return proxy, admin
}

// recovery turns a handler panic into a logged 500. It re-panics
// http.ErrAbortHandler, which ReverseProxy raises when a client leaves
// mid-stream, so net/http aborts the connection quietly as it intends;
// gin's Recovery would log a request dump for every such client.
func (a *app) recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			if r == http.ErrAbortHandler {
				panic(r)
			}
			a.log.Error("handler panic", "path", c.Request.URL.Path, "panic", r, "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				c.Abort()
				c.Header("Content-Type", "application/json; charset=utf-8") // as gin's c.JSON
				oaierr.Write(c.Writer, http.StatusInternalServerError, oaierr.New(oaierr.Server, "internal_error", "", "internal error"))
			}
		}()
		c.Next()
	}
}

func (a *app) health(r *gin.Engine) {
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", a.readyz)
}

// readyz is the readiness probe (docs/api.md, "Health"). 503 while the
// process starts or drains, and, with server.ready_requires_store, while
// the store does not answer; otherwise 200, "degraded" when the store is
// unreachable or a lifecycle state was lost (the replica still serves:
// outcomes buffer, the last known allocations hold). The body says which
// config version is live.
func (a *app) readyz(c *gin.Context) {
	body := gin.H{"config_version": a.version.Load(), "store": "memory"}
	if !a.ready.Load() {
		body["status"] = "draining"
		if !a.started.Load() {
			body["status"] = "starting"
		}
		c.JSON(http.StatusServiceUnavailable, body)
		return
	}
	status, code := "ready", http.StatusOK
	if a.stores.redis != nil {
		if err := a.storeReachable(c.Request.Context()); err != nil {
			body["store"] = "unreachable"
			status = "degraded"
			if a.cfg.Load().Server.ReadyRequiresStore {
				code = http.StatusServiceUnavailable
			}
		} else {
			body["store"] = "ok"
		}
	}
	if lost := a.watcher.Lost(); len(lost) > 0 {
		// Still serving (the last known allocations): taking every
		// replica out of the load balancer would turn a store loss into
		// an outage.
		status = "degraded"
		body["lifecycle_state_lost"] = lost
	}
	body["status"] = status
	c.JSON(code, body)
}

// storeReachable pings the store at most once a second, however often
// probes come.
func (a *app) storeReachable(ctx context.Context) error {
	a.pingMu.Lock()
	defer a.pingMu.Unlock()
	if time.Since(a.pingAt) < time.Second {
		return a.pingErr
	}
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	a.pingErr, a.pingAt = a.stores.ping(pctx), time.Now()
	return a.pingErr
}

// registerAPI mounts the feedback, admin and report routes, the browser
// sign-in, and /metrics.
func (a *app) registerAPI(r *gin.Engine) {
	metrics := []gin.HandlerFunc{gin.WrapH(a.tracing.metrics)}
	if a.cfg.Load().Auth.ProtectMetrics {
		metrics = append([]gin.HandlerFunc{a.tokens.RequireRead()}, metrics...)
	}
	r.GET("/metrics", metrics...)
	a.tokens.RegisterSignIn(r)
	// The current config's experiment: the config changes on reload.
	lookup := func(id string) *experiments.Experiment { return a.cfg.Load().Experiment(id) }
	fb := api.NewFeedback(a.signer, a.recorder, lookup)
	fb.Register(r, a.tokens.RequireFeedback())
	r.GET("/api/v1/recorder", a.tokens.RequireRead(), func(c *gin.Context) {
		c.JSON(http.StatusOK, a.recorder.Stats())
	})
	ropts := []api.ReportsOption{api.WithReportsIntegrity(integrity{a}), api.WithReportsShadow(a.shadowSpend)}
	if a.drift != nil {
		ropts = append(ropts, api.WithReportsDrift(a.drift))
	}
	api.NewReports(reportSource{a}, a.stores.outcomes, ropts...).Register(r, a.tokens.RequireRead())
	api.NewAdmin(a.catalog, a.lifecycle).Register(r, a.tokens)
	if fl, ok := a.stores.outcomes.(experiments.FeedbackLog); ok {
		// The export can hold users' own words: admin only.
		api.NewFeedbackExport(fl, lookup).Register(r, a.tokens.RequireWrite())
	}
}
