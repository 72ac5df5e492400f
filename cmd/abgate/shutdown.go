package main

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Shutdown budgets besides server.shutdown_timeout, which bounds the
// in-flight requests.
const (
	leaseReleaseBudget = 3 * time.Second  // hand the controller's lease over
	drainBudget        = 10 * time.Second // each: the recorder's flush, the webhooks' queue
)

// shutdown stops the process in order. Readiness drops first so a load
// balancer stops sending (and, with server.drain_delay, the listeners
// keep accepting for that long); in-flight requests (streams too) get
// server.shutdown_timeout to finish, then their connections are closed;
// the background loops stop (stopBackground returns once they have); the
// controller's lease is released; the recorder flushes and the webhooks
// drain; last the store's connections and the tracer close.
func (a *app) shutdown(servers []*http.Server, stopBackground func()) {
	a.ready.Store(false)
	// Keep serving while load balancers see /readyz fail and take the
	// replica out (server.drain_delay); only then stop accepting.
	if d := time.Duration(a.cfg.Load().Server.DrainDelay); d > 0 {
		a.log.Info("draining: readiness is 503; listeners close after the drain delay", "drain_delay", d)
		time.Sleep(d)
	}
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
	stopBackground()
	// Hand the lease over at once rather than after its TTL; then flush
	// the recorder and drain the webhooks side by side, each with its own
	// budget, so a receiver that keeps failing can't eat the time the
	// recorder needs to persist what it accepted.
	lctx, lcancel := context.WithTimeout(context.Background(), leaseReleaseBudget)
	if err := a.controller.Release(lctx); err != nil {
		a.log.Warn("controller lease not released", "err", err)
	}
	lcancel()
	// The shadow replay stops before the recorder flushes: replays in
	// flight are cancelled, so no verdict arrives after the flush.
	a.shadow.Close()
	// The spans and metrics still queued go out last (the recorder's
	// flush makes spans too), within what is left of the drain budget:
	// unbounded, a collector that was down held the process for each
	// queued batch's export timeout and retries, past the orchestrator's
	// grace period (docs/deploy.md computes it from these budgets).
	drainEnd := time.Now().Add(drainBudget)
	var drain sync.WaitGroup
	drain.Add(2)
	go func() {
		defer drain.Done()
		ctx, cancel := context.WithTimeout(context.Background(), drainBudget)
		defer cancel()
		if err := a.hooks.Close(ctx); err != nil {
			a.log.Warn("webhook deliveries still queued at shutdown", "err", err)
		}
	}()
	go func() {
		defer drain.Done()
		ctx, cancel := context.WithTimeout(context.Background(), drainBudget)
		defer cancel()
		if err := a.recorder.Close(ctx); err != nil {
			a.log.Error("recorder did not flush everything", "err", err)
		}
	}()
	drain.Wait()
	st := a.recorder.Stats()
	a.log.Info("stopped", "outcomes_accepted", st.Accepted, "persisted", st.Persisted, "dropped", st.Dropped)
	a.stores.close()
	tctx, tcancel := context.WithDeadline(context.Background(), drainEnd)
	if err := a.tracing.shutdown(tctx); err != nil {
		a.log.Warn("telemetry not flushed at shutdown; the rest is dropped", "err", err)
	}
	tcancel()
}
