package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"

	"github.com/abgate/abgate/api"
	"github.com/abgate/abgate/drift"
	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/redisstore"
	"github.com/abgate/abgate/gateway"
	"github.com/abgate/abgate/recorder"
	"github.com/abgate/abgate/rollout"
	"github.com/abgate/abgate/telemetry"
	"github.com/abgate/abgate/webhook"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "abgate.yaml", "config file")
	if err := parse(fs, args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	startDebug(log)
	cfg, err := experiments.LoadForServe(*path)
	if err != nil {
		return err
	}
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	// SIGHUP reloads the config: routes, experiments and upstreams change
	// without dropping a request; listeners and the store stay.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			next, err := experiments.LoadForServe(*path)
			if err == nil {
				err = a.reload(ctx, next)
			}
			if err != nil {
				log.Error("config reload refused; still serving the previous config", "err", err)
				continue
			}
			log.Info("config reloaded", "path", *path)
		}
	}()
	return a.run(ctx, stdout)
}

// reload serves a new config file (SIGHUP) unless it would re-randomize
// an experiment without a new phase. Its experiments are checked against
// everything served now, the API's too: a file experiment that takes over
// the id of one created through the API replaces it in the merge.
func (a *app) reload(ctx context.Context, next *experiments.Config) error {
	if err := experiments.CheckReshuffles(a.catalog.Config(), next); err != nil {
		return err
	}
	return a.catalog.SetFile(ctx, next)
}

// app is one abgate process: the store, the recorder, the proxy and the
// API, wired together. serve and demo both build one.
type app struct {
	log      *slog.Logger
	cfg      atomic.Pointer[experiments.Config]
	signer   *experiments.Signer
	store    experiments.Store
	redis    redis.UniversalClient // nil with the in-memory store
	recorder *recorder.Recorder
	gateway  *gateway.Handler
	tokens   *api.Tokens
	tracing  *tracing
	ready    atomic.Bool
	// The rollout: lifecycle states, the leader-elected controller, the
	// watcher that applies allocation changes to this replica's gateway,
	// and the webhooks that hear about every transition.
	lifecycle  *rollout.Lifecycle
	controller *rollout.Controller
	watcher    *rollout.Watcher
	hooks      *webhook.Sender
	// catalog merges the config file's experiments with those created
	// through the admin API; cfg holds its merged view.
	catalog *rollout.Catalog
	// drift compares each routed experiment's recent traffic with its
	// reference window; nil when the store keeps no drift histograms.
	drift *drift.Monitor

	// extraRoutes lets the demo mount its simulated models on the proxy
	// listener.
	extraRoutes func(r *gin.Engine)

	listeners []net.Listener // proxy first; admin second when separate
}

// appOptions are what the demo adds to a serve process.
type appOptions struct {
	controller []rollout.Option
	notify     rollout.Notifier // also hears every transition
}

func newApp(ctx context.Context, cfg *experiments.Config, log *slog.Logger, opts ...func(*appOptions)) (*app, error) {
	var o appOptions
	for _, f := range opts {
		f(&o)
	}
	a := &app{log: log}
	a.cfg.Store(cfg)
	var err error
	if a.tracing, err = setupTracing(ctx); err != nil {
		return nil, err
	}
	a.signer = experiments.NewSigner([]byte(cfg.Server.TokenSecret.Reveal()), time.Duration(cfg.Server.TokenTTL))
	if len(cfg.Redis.Addrs) > 0 {
		a.redis = redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs:    cfg.Redis.Addrs,
			Username: cfg.Redis.Username,
			Password: cfg.Redis.Password.Reveal(),
			DB:       cfg.Redis.DB,
			// Without it go-redis ignores context deadlines, and the
			// recorder's apply timeout and shutdown budget would be bounded
			// only by the read timeout.
			ContextTimeoutEnabled: true,
		})
		if a.tracing.enabled {
			if err := redisotel.InstrumentTracing(a.redis); err != nil {
				return nil, fmt.Errorf("redis tracing: %w", err)
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if err := a.redis.Ping(pctx).Err(); err != nil {
			// Requests flow without Redis: outcomes buffer in the recorder
			// and flush once it is back.
			log.Warn("redis is not reachable yet; serving anyway, outcomes are buffered", "addrs", cfg.Redis.Addrs, "err", err)
		}
		cancel()
		a.store = redisstore.New(a.redis, redisstore.WithPrefix(cfg.Redis.KeyPrefix))
	} else {
		log.Info("no redis configured: using the in-memory store (one replica, nothing survives a restart)")
		a.store = memstore.New()
	}
	a.recorder = recorder.New(a.store, cfg.Recording, recorder.WithLogger(log))
	// Every outcome is counted for /metrics on its way to the recorder.
	mp := otel.GetMeterProvider()
	outcomes, err := telemetry.NewOutcomes(a.recorder, mp, a.cfg.Load)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if a.gateway, err = gateway.New(cfg, a.signer, gateway.WithRecorder(outcomes), gateway.WithLogger(log)); err != nil {
		return nil, err
	}
	var lcs lifecycleStore = memstore.NewLifecycle()
	if a.redis != nil {
		lcs = redisstore.NewLifecycle(a.redis, cfg.Redis.KeyPrefix)
	}
	a.hooks = webhook.New(cfg.Webhooks, webhook.WithLogger(log))
	notify := notifiers{a.hooks, retention{a.store, a.cfg.Load, log}}
	if o.notify != nil {
		notify = append(notify, o.notify)
	}
	counted, err := telemetry.CountTransitions(notify, mp)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	a.lifecycle = rollout.NewLifecycle(lcs, cfg, rollout.WithNotifier(counted))
	a.controller = rollout.NewController(a.lifecycle, a.store, lcs, cfg.Controller,
		append([]rollout.Option{rollout.WithLogger(log)}, o.controller...)...)
	if err := telemetry.RegisterLeader(mp, a.controller.Fence); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	a.watcher = rollout.NewWatcher(lcs, cfg, func(id string, al *experiments.Allocation) {
		if err := a.gateway.SetAllocation(id, al); err != nil {
			log.Warn("allocation change not applied", "experiment", id, "err", err)
		}
	}, rollout.WithLogger(log))
	if dr, ok := a.store.(experiments.DriftReader); ok {
		alert, err := telemetry.CountAlerts(a.driftAlert, mp, func(al drift.Alert) (string, string) { return al.Experiment, al.Feature })
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		a.drift = drift.New(dr, a.routedExperiments, alert, drift.WithLogger(log))
	}
	var defs experiments.Definitions = memstore.NewDefinitions()
	if a.redis != nil {
		defs = redisstore.NewDefinitions(a.redis, cfg.Redis.KeyPrefix)
	}
	a.catalog = rollout.NewCatalog(cfg, defs, a.applyConfig, rollout.WithLogger(log))
	if err := a.catalog.Refresh(ctx); err != nil {
		log.Warn("experiments created through the API are unreadable for now; serving the config file's", "err", err)
	}
	if a.tokens, err = api.NewTokens(cfg.Auth); err != nil {
		return nil, err
	}
	// Browsers sign in at /signin for a session cookie signed with a key
	// derived from the token secret (demo and serve both have one).
	if secret := cfg.Server.TokenSecret.Reveal(); secret != "" {
		a.tokens.EnableSessions([]byte(secret), time.Duration(cfg.Auth.SessionTTL))
	}
	if a.tokens.Empty() && !cfg.Auth.OpenReads {
		log.Warn("no API tokens configured: the admin, report and feedback API refuse every request (set auth.tokens, or auth.open_reads / auth.open_feedback)")
	}
	return a, nil
}

// applyConfig serves a new merged config (the file's experiments and the
// API's) without dropping a request. The watcher refreshes last: the
// gateway drops allocation overrides whose salt changed, and the
// lifecycle's allocations go back on top.
func (a *app) applyConfig(cfg *experiments.Config) {
	if err := a.gateway.Update(cfg); err != nil {
		a.log.Error("config refused by the gateway; still serving the previous one", "err", err)
		return
	}
	a.cfg.Store(cfg)
	a.lifecycle.Update(cfg)
	a.watcher.Update(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.watcher.Refresh(ctx); err != nil {
		a.log.Warn("live allocations not refreshed after a config change", "err", err)
	}
}

// routedExperiments are the experiments a route points at: drift is
// watched for as long as the route exists, promoted or not.
func (a *app) routedExperiments() []string {
	cfg := a.cfg.Load()
	seen := make(map[string]bool, len(cfg.Routes))
	var ids []string
	for _, r := range cfg.Routes {
		if !seen[r.Experiment] {
			seen[r.Experiment] = true
			ids = append(ids, r.Experiment)
		}
	}
	return ids
}

// driftAlert sends a drift alert to the webhooks from the controller's
// leader only: every replica evaluates, one speaks.
func (a *app) driftAlert(ctx context.Context, al drift.Alert) {
	if a.controller.Fence() == 0 {
		return
	}
	a.log.Warn("drift", "experiment", al.Experiment, "variant", al.Variant, "feature", al.Feature, "psi", al.PSI, "p", al.PValue)
	a.hooks.NotifyDrift(ctx, al)
}

// lifecycleStore is what the lifecycle, the controller's lease and the
// watcher need from a store; memstore and redisstore both provide it.
type lifecycleStore interface {
	experiments.LifecycleStore
	experiments.Leaser
	rollout.StateReader
}

// notifiers fans a transition out to several notifiers.
type notifiers []rollout.Notifier

func (ns notifiers) Notify(t experiments.Transition, s experiments.State) {
	for _, n := range ns {
		n.Notify(t, s)
	}
}

// retention makes an experiment's data expire recording.retention after
// it ends (promoted, rolled back or stopped).
type retention struct {
	store experiments.Store
	cfg   func() *experiments.Config
	log   *slog.Logger
}

func (r retention) Notify(t experiments.Transition, s experiments.State) {
	switch s.Status {
	case experiments.StatusPromoted, experiments.StatusRolledBack, experiments.StatusStopped:
	default:
		return
	}
	after := time.Duration(r.cfg().Recording.Retention)
	go func() { // Notify must not block
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.store.Expire(ctx, t.Experiment, after); err != nil {
			r.log.Warn("could not set the retention of an ended experiment's data", "experiment", t.Experiment, "err", err)
		}
	}()
}

// experiment finds an experiment in the current config.
func (a *app) experiment(id string) *experiments.Experiment {
	cfg := a.cfg.Load()
	for i := range cfg.Experiments {
		if cfg.Experiments[i].ID == id {
			return &cfg.Experiments[i]
		}
	}
	return nil
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
	if a.cfg.Load().Server.AdminListen != "" {
		admin = gin.New()
		admin.Use(a.recovery())
		a.health(admin)
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
				c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": gin.H{
					"message": "internal error", "type": "server_error", "param": nil, "code": "internal_error"}})
			}
		}()
		c.Next()
	}
}

func (a *app) health(r *gin.Engine) {
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", func(c *gin.Context) {
		if !a.ready.Load() {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "shutting down"})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	})
}

// registerAPI mounts the feedback, admin and report routes, and /metrics.
func (a *app) registerAPI(r *gin.Engine) {
	metrics := []gin.HandlerFunc{gin.WrapH(a.tracing.metrics)}
	if a.cfg.Load().Auth.ProtectMetrics {
		metrics = append([]gin.HandlerFunc{a.tokens.RequireRead()}, metrics...)
	}
	r.GET("/metrics", metrics...)
	a.tokens.RegisterSignIn(r)
	fb := api.NewFeedback(a.signer, a.recorder, a.experiment)
	fb.Register(r, a.tokens.RequireFeedback())
	r.GET("/api/v1/recorder", a.tokens.RequireRead(), func(c *gin.Context) {
		c.JSON(http.StatusOK, a.recorder.Stats())
	})
	var ropts []api.ReportsOption
	if a.drift != nil {
		ropts = append(ropts, api.WithReportsDrift(a.drift))
	}
	api.NewReports(reportSource{a}, a.store, ropts...).Register(r, a.tokens.RequireRead())
	api.NewAdmin(a.catalog, a.lifecycle).Register(r, a.tokens)
	if fl, ok := a.store.(experiments.FeedbackLog); ok {
		// The export can hold users' own words: admin only.
		api.NewFeedbackExport(fl, a.experiment).Register(r, a.tokens.RequireWrite())
	}
}

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

// run serves until ctx ends, then shuts down: readiness drops first so a
// load balancer stops sending, in-flight requests (streams too) get the
// shutdown timeout to finish, and the recorder flushes what it holds.
func (a *app) run(ctx context.Context, stdout io.Writer) error {
	if a.listeners == nil {
		if err := a.listen(); err != nil {
			return err
		}
	}
	// Apply the live allocations before the first request: a replica
	// starting in the middle of a ramp must not serve the static weights.
	if err := a.watcher.Refresh(ctx); err != nil {
		a.log.Warn("could not read the experiments' live state; serving configured allocations until the store answers", "err", err)
	}
	bg, stopBG := context.WithCancel(context.Background())
	var bgWG sync.WaitGroup
	bgWG.Add(3)
	go func() { defer bgWG.Done(); a.watcher.Run(bg) }()
	go func() { defer bgWG.Done(); a.catalog.Run(bg) }()
	if a.drift != nil {
		bgWG.Add(1)
		go func() { defer bgWG.Done(); a.drift.Run(bg) }()
	}
	go func() { defer bgWG.Done(); a.controller.Run(bg) }()

	proxy, admin := a.engines()
	servers := []*http.Server{newServer(proxy)}
	if admin != nil {
		servers = append(servers, newServer(admin))
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(a.listeners[i]) }()
	}
	a.ready.Store(true)
	fmt.Fprintf(stdout, "abgate listening on http://%s\n", a.listeners[0].Addr())
	if len(a.listeners) > 1 {
		fmt.Fprintf(stdout, "admin API on http://%s\n", a.listeners[1].Addr())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	a.ready.Store(false)
	grace := time.Duration(a.cfg.Load().Server.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(sctx); err != nil {
				a.log.Warn("shutdown did not finish in time; closing connections", "err", err)
				srv.Close()
			}
		}()
	}
	wg.Wait()
	stopBG()
	bgWG.Wait()
	// Hand the lease over at once rather than after its TTL; then flush
	// the recorder and drain the webhooks side by side, each with its own
	// budget, so a receiver that keeps failing can't eat the time the
	// recorder needs to persist what it accepted.
	lctx, lcancel := context.WithTimeout(context.Background(), 3*time.Second)
	if err := a.controller.Release(lctx); err != nil {
		a.log.Warn("controller lease not released", "err", err)
	}
	lcancel()
	var drain sync.WaitGroup
	drain.Add(2)
	go func() {
		defer drain.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.hooks.Close(ctx); err != nil {
			a.log.Warn("webhook deliveries still queued at shutdown", "err", err)
		}
	}()
	go func() {
		defer drain.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.recorder.Close(ctx); err != nil {
			a.log.Error("recorder did not flush everything", "err", err)
		}
	}()
	drain.Wait()
	st := a.recorder.Stats()
	a.log.Info("stopped", "outcomes_accepted", st.Accepted, "persisted", st.Persisted, "dropped", st.Dropped)
	if a.redis != nil {
		a.redis.Close()
	}
	a.tracing.shutdown(context.Background())
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: streams may last minutes; upstream timeouts
		// bound them instead.
		IdleTimeout: 120 * time.Second,
	}
}

// randomSecret returns n random bytes, hex-free, for the demo's secrets.
func randomSecret(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
