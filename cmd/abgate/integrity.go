package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/abgate/abgate/api"
	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/redisstore"
	"github.com/abgate/abgate/rollout"
	"github.com/redis/go-redis/v9"
)

// checkPersistence refuses to serve on a Redis that persists nothing
// unless redis.ephemeral_ok says so (docs/recording.md, "Persistence").
// An unreachable Redis is checked when go-redis connects (the
// PersistenceWatch hook); an unknown answer is a warning.
func checkPersistence(ctx context.Context, c redis.UniversalClient, cfg experiments.Redis, pw *redisstore.PersistenceWatch) error {
	ps, err := redisstore.CheckPersistence(ctx, c)
	if err != nil {
		pw.Report(redisstore.Persistence{}, err)
		return nil
	}
	for _, p := range ps {
		if p.Known && !p.Durable() && !cfg.EphemeralOK {
			return fmt.Errorf("%w at %s: a restart would lose every lifecycle state and statistic; run Redis with --appendonly yes, or set redis.ephemeral_ok: true to accept that",
				redisstore.ErrEphemeral, p.Addr)
		}
		pw.Report(p, nil)
	}
	return nil
}

// restoreLost is the watcher's restore callback: the controller's leader
// puts a lost lifecycle state back under its fence; other replicas leave
// it to the leader.
func (a *app) restoreLost(ctx context.Context, last experiments.State) error {
	f := a.controller.Fence()
	if f == 0 {
		return rollout.ErrNotLeader
	}
	t, err := a.lifecycle.Restore(ctx, last, f, experiments.ControllerActor)
	if errors.Is(err, experiments.ErrConflict) {
		return nil // someone put a state back first; the next read takes it
	}
	if err == nil {
		a.log.Error("lifecycle state restored after store loss", "experiment", t.Experiment, "status", t.To, "step", t.ToStep, "version", t.Seq, "fence", f)
	}
	return err
}

// integrity feeds the reports' integrity section: the recorder's drops
// and the watcher's store-loss flag.
type integrity struct{ a *app }

func (i integrity) Integrity(id string) api.ReportIntegrity {
	s := i.a.recorder.Experiment(id)
	return api.ReportIntegrity{Accepted: s.Accepted, Dropped: s.Dropped, DroppedShare: s.DroppedShare, StateLost: i.a.watcher.IsLost(id)}
}
