package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync"
	"syscall"

	"github.com/abgate/abgate/api"
	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/webhook"
)

// runServe is `abgate serve`: flags, the config, SIGHUP reloads, and run.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "abgate.yaml", "config file")
	if err := parse(fs, args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	startDebug(log)
	defer startGCFloor(log).Stop()
	cfg, err := experiments.LoadForServe(*path)
	if err != nil {
		return err
	}
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	log.Info("config loaded", "path", *path, "config_version", a.version.Load())
	// SIGHUP reloads the config without dropping a request: every field a
	// running process can change is applied, or the reload is refused
	// whole, naming the fields that need a restart (see reload.go).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			prev := a.version.Load()
			next, err := experiments.LoadForServe(*path)
			if err == nil {
				err = a.reload(ctx, next)
			}
			if err != nil {
				log.Error("config reload refused; still serving the previous config", "path", *path, "config_version", prev, "err", err)
				continue
			}
			log.Info("config reloaded", "path", *path, "config_version", a.version.Load(), "previous_version", prev)
		}
	}()
	return a.run(ctx, stdout)
}

// reload serves a new config file (SIGHUP), all of it or none of it. It
// refuses a file that changes a field only a restart can apply (naming
// each), that would re-randomize an experiment without a new phase, whose
// tokens are invalid, or that the gateway would not take; then it applies
// the experiments, routes and upstreams (through the catalog), the auth
// section, the webhooks and the controller section. Its experiments are
// checked against everything served now, the API's too: a file
// experiment that takes over the id of one created through the API
// replaces it in the merge.
func (a *app) reload(ctx context.Context, next *experiments.Config) error {
	if fields := needsRestart(a.catalog.File(), next); len(fields) > 0 {
		return fmt.Errorf("%s changed: only a restart applies %s; nothing was reloaded",
			strings.Join(fields, ", "), map[bool]string{true: "it", false: "them"}[len(fields) == 1])
	}
	if err := experiments.CheckReshuffles(a.catalog.Config(), next); err != nil {
		return err
	}
	if _, err := api.NewTokens(next.Auth); err != nil {
		return err
	}
	merged, _ := experiments.MergeLenient(next, a.catalog.StoredList())
	if err := a.gateway.Check(merged); err != nil {
		return err
	}
	live := a.catalog.File()
	a.log.Info("config reload", "changed", changedSections(live, next))
	if err := a.catalog.SetFile(ctx, next); err != nil {
		return err
	}
	if err := a.tokens.Update(next.Auth); err != nil {
		return err // checked above; a tokens file that changed in between
	}
	if !reflect.DeepEqual(live.Webhooks, next.Webhooks) {
		a.hooks.swap(webhook.New(next.Webhooks, webhook.WithLogger(a.log)))
	}
	a.controller.Update(next.Controller)
	a.version.Store(configVersion(next))
	return nil
}

// run serves until ctx ends, then shuts down (see shutdown).
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
	stopBackground := a.startBackground()
	servers, errc := a.startServers()
	a.ready.Store(true)
	a.started.Store(true)
	fmt.Fprintf(stdout, "abgate listening on http://%s\n", a.listeners[0].Addr())
	if len(a.listeners) > 1 {
		fmt.Fprintf(stdout, "admin API on http://%s\n", a.listeners[1].Addr())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	a.shutdown(servers, stopBackground)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// startBackground starts the loops that run beside the servers: the
// watcher, the catalog, the drift monitor and the controller. They get
// their own context, not ctx, so they outlive the servers' drain; the
// returned func stops them and waits.
func (a *app) startBackground() (stop func()) {
	bg, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); a.watcher.Run(bg) }()
	go func() { defer wg.Done(); a.catalog.Run(bg) }()
	if a.drift != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.drift.Run(bg) }()
	}
	go func() { defer wg.Done(); a.controller.Run(bg) }()
	return func() {
		cancel()
		wg.Wait()
	}
}
