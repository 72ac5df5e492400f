package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/redisstore"
	"github.com/abgate/abgate/rollout"
)

// stores are what one process keeps state in: outcomes and feedback, the
// lifecycle (states, the controller's lease) and the experiments created
// through the API. All three live on one Redis, or all in memory.
type stores struct {
	outcomes    experiments.Store
	lifecycle   lifecycleStore
	definitions experiments.Definitions
	redis       redis.UniversalClient // nil in memory
}

// lifecycleStore is what the lifecycle, the controller's lease and the
// watcher need from a store; memstore and redisstore both provide it.
type lifecycleStore interface {
	experiments.LifecycleStore
	experiments.Leaser
	rollout.StateReader
}

// openStores is abgate's one store factory: Redis when cfg names
// addresses, memory otherwise. traced instruments the Redis client for
// OpenTelemetry. An unreachable Redis is logged, not an error: requests
// flow without it, outcomes buffer in the recorder and flush once it is
// back.
func openStores(ctx context.Context, cfg experiments.Redis, traced bool, log *slog.Logger) (*stores, error) {
	if len(cfg.Addrs) == 0 {
		log.Info("no redis configured: using the in-memory store (one replica, nothing survives a restart)")
		return &stores{
			outcomes:    memstore.New(),
			lifecycle:   memstore.NewLifecycle(),
			definitions: memstore.NewDefinitions(),
		}, nil
	}
	// go-redis logs its own events (a failed dial, a pool error) with the
	// standard log package; route them through the structured logger.
	redis.SetLogger(redisLogger{log})
	// A ClusterClient for several addresses, a single-node client for
	// one: go-redis's UniversalClient decides. Persistence is re-checked
	// on every (re)connect (a Redis restarted without AOF would lose the
	// rollout state next time).
	pw := &redisstore.PersistenceWatch{Log: log, OK: cfg.EphemeralOK}
	c := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:    cfg.Addrs,
		Username: cfg.Username,
		Password: cfg.Password.Reveal(),
		DB:       cfg.DB,
		// Without it go-redis ignores context deadlines, and the
		// recorder's apply timeout and shutdown budget would be bounded
		// only by the read timeout.
		ContextTimeoutEnabled: true,
		OnConnect:             pw.OnConnect,
		// Buffers sized to what abgate sends and reads, not go-redis's
		// 32 KiB (128 KiB for pipelines) per connection: commands and
		// their replies are under a KiB but for the reports' reads; the
		// recorder's batch pipelines are 5-50 KB, which a 16 KiB writer
		// sends in a few write(2)s ten times a second at most; the
		// replies to a batch are a few short lines. Larger payloads
		// still pass, in more system calls. A gateway holds about eight
		// connections (commands, two subscriptions, pipelines): the
		// defaults were 0.5 MiB of the 2.5 MiB it allocates at start-up,
		// resident as the buffers fill. (go-redis fixes the two
		// subscriptions' buffers at 32 KiB.)
		ReadBufferSize:          4 << 10,
		WriteBufferSize:         4 << 10,
		PipelineReadBufferSize:  4 << 10,
		PipelineWriteBufferSize: 16 << 10,
	})
	if traced {
		// Without the caller attributes (code.function, code.filepath,
		// code.lineno). redisotel's default fills them on every command
		// with runtime.Callers and a symbol lookup, and the caller is
		// always one of redisstore's own functions; the parent span
		// already names the operation and db.statement the command.
		// Those lookups read the binary's pc tables for every Redis call
		// path: idle RSS with Redis recording 28.4 → 28.0 MiB (medians of
		// 5 alternating hand runs of bench/abgate.yaml, OTLP/HTTP tracing).
		//
		// Nor the recorder's pipelines of script calls, which carry each
		// batch msgpack-encoded: redisotel spells every argument of a
		// pipeline out as its db.statement (it builds that string even
		// when statements are off), tens of kilobytes per flush of
		// binary that no one reads, formatted and exported ten times a
		// second: 1.4% of the CPU at full load on one core (pprof, load
		// harness config), and most of the bytes exported. The recorder
		// traces each batch itself (span abgate.recorder.apply: the
		// experiment, batch id, event count, attempt, duplicates).
		if err := redisotel.InstrumentTracing(c, redisotel.WithCallerEnabled(false),
			redisotel.WithCommandsFilter(scriptPipeline)); err != nil {
			c.Close()
			return nil, fmt.Errorf("redis tracing: %w", err)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		log.Warn("redis is not reachable yet; serving anyway, outcomes are buffered", "addrs", cfg.Addrs, "err", err)
	} else if err := checkPersistence(pctx, c, cfg, pw); err != nil {
		c.Close()
		return nil, err
	}
	return &stores{
		outcomes:    redisstore.New(c, redisstore.WithPrefix(cfg.KeyPrefix)),
		lifecycle:   redisstore.NewLifecycle(c, cfg.KeyPrefix),
		definitions: redisstore.NewDefinitions(c, cfg.KeyPrefix),
		redis:       c,
	}, nil
}

// ping reports whether the store answers; the in-memory stores always do.
func (s *stores) ping(ctx context.Context) error {
	if s.redis == nil {
		return nil
	}
	return s.redis.Ping(ctx).Err()
}

// close releases the Redis client; the in-memory stores hold nothing.
func (s *stores) close() {
	if s.redis != nil {
		s.redis.Close()
	}
}

// redisLogger is go-redis's logger interface over slog.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}

// scriptPipeline reports a pipeline of script calls (the recorder's
// batches: EVALSHA, or EVAL after a script cache flush), which the Redis
// tracing leaves out.
func scriptPipeline(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if n := c.Name(); n != "evalsha" && n != "eval" {
			return false
		}
	}
	return len(cmds) > 0
}
