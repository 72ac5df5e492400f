package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel"

	"github.com/abgate/abgate/api"
	"github.com/abgate/abgate/drift"
	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/gateway"
	"github.com/abgate/abgate/recorder"
	"github.com/abgate/abgate/rollout"
	"github.com/abgate/abgate/shadow"
	"github.com/abgate/abgate/telemetry"
	"github.com/abgate/abgate/webhook"
)

// app is one abgate process: the store, the recorder, the proxy and the
// API, wired together. serve and demo both build one.
type app struct {
	log      *slog.Logger
	cfg      atomic.Pointer[experiments.Config]
	signer   *experiments.Signer
	stores   *stores
	recorder *recorder.Recorder
	gateway  *gateway.Handler
	// shadow replays sampled requests of experiments in their shadow
	// stage to the candidates and records the judge's verdicts.
	shadow  *shadow.Service
	tokens  *api.Tokens
	tracing *tracing
	ready   atomic.Bool
	started atomic.Bool // ready has been true once: a 503 now is draining
	// The last store ping, for /readyz.
	pingMu  sync.Mutex
	pingAt  time.Time
	pingErr error
	// version names the live config file (configVersion): logged at start
	// and on every reload, shown by /readyz.
	version atomic.Value // string
	// The rollout: lifecycle states, the leader-elected controller, the
	// watcher that applies allocation changes to this replica's gateway,
	// and the webhooks that hear about every transition.
	lifecycle  *rollout.Lifecycle
	controller *rollout.Controller
	watcher    *rollout.Watcher
	hooks      *hookSwitch
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

// newApp builds the services from cfg and wires them together: the
// store, the recorder, the gateway, the rollout (lifecycle, controller,
// watcher, catalog), webhooks, drift and the API tokens.
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
	a.version.Store(configVersion(cfg))
	a.signer = experiments.NewSigner([]byte(cfg.Server.TokenSecret.Reveal()), time.Duration(cfg.Server.TokenTTL))
	if a.stores, err = openStores(ctx, cfg.Redis, a.tracing.enabled, log); err != nil {
		return nil, err
	}
	a.recorder = recorder.New(a.stores.outcomes, cfg.Recording, recorder.WithLogger(log),
		recorder.WithExperiments(func(id string) *experiments.Experiment { return a.cfg.Load().Experiment(id) }))
	a.recorder.SetCaps(cfg)
	// Every outcome is counted for /metrics on its way to the recorder.
	mp := otel.GetMeterProvider()
	outcomes, err := telemetry.NewOutcomes(a.recorder, mp, a.cfg.Load)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	// Judge verdicts are feedback: they go straight to the recorder.
	if a.shadow, err = shadow.New(cfg, a.recorder, shadow.WithLogger(log)); err != nil {
		return nil, fmt.Errorf("shadow: %w", err)
	}
	if a.gateway, err = gateway.New(cfg, a.signer, gateway.WithRecorder(outcomes), gateway.WithLogger(log), gateway.WithShadow(a.shadow)); err != nil {
		return nil, err
	}
	lcs := a.stores.lifecycle
	a.hooks = newHookSwitch(webhook.New(cfg.Webhooks, webhook.WithLogger(log)), log)
	notify := notifiers{a.hooks, retention{a.stores.outcomes, a.cfg.Load, log}}
	if o.notify != nil {
		notify = append(notify, o.notify)
	}
	counted, err := telemetry.CountTransitions(notify, mp)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	a.lifecycle = rollout.NewLifecycle(lcs, cfg, rollout.WithNotifier(counted))
	a.controller = rollout.NewController(a.lifecycle, a.stores.outcomes, lcs, cfg.Controller,
		append([]rollout.Option{rollout.WithLogger(log), rollout.WithFenceFloor(func() int64 { return a.watcher.MaxFence() })}, o.controller...)...)
	if err := telemetry.RegisterLeader(mp, a.controller.Fence); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	a.watcher = rollout.NewWatcher(lcs, cfg, func(id string, al *experiments.Allocation) {
		if err := a.gateway.SetAllocation(id, al); err != nil {
			log.Warn("allocation change not applied", "experiment", id, "err", err)
		}
	}, rollout.WithLogger(log), rollout.WithStoreLoss(nil, a.restoreLost))
	if dr, ok := a.stores.outcomes.(experiments.DriftReader); ok {
		alert, err := telemetry.CountAlerts(a.driftAlert, mp, func(al drift.Alert) (string, string) { return al.Experiment, al.Feature })
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		a.drift = drift.New(dr, a.routedExperiments, alert, drift.WithLogger(log))
	}
	a.catalog = rollout.NewCatalog(cfg, a.stores.definitions, a.applyConfig, rollout.WithLogger(log))
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
	if err := a.shadow.Update(cfg); err != nil {
		a.log.Warn("shadow replay: some experiments' judges could not be set up", "err", err)
	}
	a.recorder.SetCaps(cfg)
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
