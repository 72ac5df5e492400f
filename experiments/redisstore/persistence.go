package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrEphemeral: the Redis persists nothing, so a restart loses every
// lifecycle state and statistic; serve refuses it unless the config sets
// redis.ephemeral_ok.
var ErrEphemeral = errors.New("redis persists nothing (no AOF, no RDB snapshots)")

// Persistence is what one Redis server says about its durability.
type Persistence struct {
	Addr string
	AOF  bool // appendonly yes
	RDB  bool // save has snapshot rules
	// Known is false when the server answered neither CONFIG GET nor
	// INFO persistence usefully (managed Redis may refuse CONFIG): then
	// AOF and RDB say nothing.
	Known bool
	// Source is "config" or "info" (INFO tells AOF only: RDB is taken as
	// off unless the server reports snapshots).
	Source string
}

// Durable reports whether a restart keeps the data (as far as known).
func (p Persistence) Durable() bool { return p.AOF || p.RDB }

func (p Persistence) String() string {
	if !p.Known {
		return p.Addr + ": persistence unknown (CONFIG and INFO refused)"
	}
	return fmt.Sprintf("%s: appendonly=%t rdb_snapshots=%t (from %s)", p.Addr, p.AOF, p.RDB, p.Source)
}

// nodeCmds is what CheckPersistence needs of a client or a connection.
type nodeCmds interface {
	ConfigGet(ctx context.Context, parameter string) *redis.MapStringStringCmd
	Info(ctx context.Context, section ...string) *redis.StringCmd
}

// CheckPersistence asks every master c talks to (one for a single
// server) whether it persists: CONFIG GET appendonly and save, or, where
// CONFIG is refused, INFO persistence.
func CheckPersistence(ctx context.Context, c redis.UniversalClient) ([]Persistence, error) {
	if cc, ok := c.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		var out []Persistence
		err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			p, err := nodePersistence(ctx, n, n.Options().Addr)
			mu.Lock()
			out = append(out, p)
			mu.Unlock()
			return err
		})
		return out, err
	}
	addr := ""
	if cl, ok := c.(*redis.Client); ok {
		addr = cl.Options().Addr
	}
	p, err := nodePersistence(ctx, c, addr)
	return []Persistence{p}, err
}

func nodePersistence(ctx context.Context, c nodeCmds, addr string) (Persistence, error) {
	p := Persistence{Addr: addr}
	cfg, err := c.ConfigGet(ctx, "appendonly").Result()
	if err == nil {
		save, serr := c.ConfigGet(ctx, "save").Result()
		if serr == nil {
			p.AOF = cfg["appendonly"] == "yes"
			p.RDB = strings.TrimSpace(save["save"]) != ""
			p.Known, p.Source = true, "config"
			return p, nil
		}
		err = serr
	}
	if isConnErr(err) {
		return p, fmt.Errorf("check persistence of %s: %w", addr, err)
	}
	info, ierr := c.Info(ctx, "persistence").Result()
	if ierr != nil {
		if isConnErr(ierr) {
			return p, fmt.Errorf("check persistence of %s: %w", addr, ierr)
		}
		return p, nil // both refused: unknown
	}
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "aof_enabled":
			p.AOF, p.Known = v == "1", true
		case "rdb_saves", "rdb_bgsave_in_progress":
			// Redis 7+ counts snapshots taken since start; any means
			// snapshots are configured (or were asked for).
			if v != "0" && v != "" {
				p.RDB = true
			}
		}
	}
	p.Source = "info"
	return p, nil
}

// isConnErr tells a network failure from a refused command.
func isConnErr(err error) bool {
	if err == nil {
		return false
	}
	var re redis.Error
	return !errors.As(err, &re)
}

// PersistenceWatch re-checks persistence whenever go-redis opens a new
// connection (start, reconnect after an outage or a failover), at most
// once per interval, and logs at error level when a server persists
// nothing: a Redis that came back without persistence would lose
// everything at its next restart. Set OnConnect as the client's
// OnConnect option.
type PersistenceWatch struct {
	Log      *slog.Logger
	Interval time.Duration // default 10s
	// OK: the config allows an ephemeral Redis (then it logs a warning).
	OK bool

	mu   sync.Mutex
	last map[string]time.Time
}

// OnConnect is a go-redis OnConnect hook. It never fails the connection.
func (w *PersistenceWatch) OnConnect(ctx context.Context, cn *redis.Conn) error {
	addr := cn.String()
	w.mu.Lock()
	if w.last == nil {
		w.last = make(map[string]time.Time)
	}
	iv := w.Interval
	if iv <= 0 {
		iv = 10 * time.Second
	}
	due := time.Since(w.last[addr]) >= iv
	if due {
		w.last[addr] = time.Now()
	}
	w.mu.Unlock()
	if !due {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	p, err := nodePersistence(cctx, cn, addr)
	w.Report(p, err)
	return nil
}

// Report logs one server's persistence: error level when it persists
// nothing (warning with OK), warning when unknown.
func (w *PersistenceWatch) Report(p Persistence, err error) {
	log := w.Log
	if log == nil {
		log = slog.Default()
	}
	switch {
	case err != nil:
		log.Warn("redis persistence not checked", "err", err)
	case !p.Known:
		log.Warn("redis persistence unknown (CONFIG and INFO refused): make sure it runs with AOF (appendonly yes)", "server", p.Addr)
	case !p.Durable() && w.OK:
		log.Warn("redis persists nothing; allowed by redis.ephemeral_ok: a restart loses every lifecycle state and statistic", "server", p.Addr)
	case !p.Durable():
		log.Error("redis persists nothing: a restart loses every lifecycle state and statistic; run it with --appendonly yes", "server", p.Addr)
	}
}
