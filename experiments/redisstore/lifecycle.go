package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/experiments"
)

var (
	_ experiments.LifecycleStore = (*Lifecycle)(nil)
	_ experiments.Leaser         = (*Lifecycle)(nil)
	_ experiments.ChangeFeed     = (*Lifecycle)(nil)
	_ experiments.StateRestorer  = (*Lifecycle)(nil)
)

// Lifecycle keys. On a single Redis, an experiment's state, history and
// latest recommendation carry its hash tag {exp:<id>} like its
// statistics, and the controller lease has its own tag. Layout (prefix
// "abgate"):
//
//	abgate:{exp:<id>}:lifecycle:state   HASH    v -> version, s -> State JSON
//	abgate:{exp:<id>}:lifecycle:log     LIST    Transition JSON, oldest first
//	abgate:{exp:<id>}:lifecycle:rec     STRING  latest Recommendation JSON
//	abgate:{lease}:controller           STRING  "<fence>:<holder>", PX = lease TTL
//	abgate:{lease}:controller:fence     STRING  fence counter (INCR)
//	abgate:lifecycle                    channel experiment ids of committed changes
//
// The commit script checks the writer's fence against the lease key in
// the same atomic step as the compare-and-set, which on Redis Cluster
// needs the lease and the state in one slot. With a *redis.ClusterClient
// every lifecycle key therefore shares the tag {lifecycle} instead
// ("abgate:{lifecycle}:exp:<id>:state", "abgate:{lifecycle}:lease", ...):
// lifecycle data is small and written rarely, so one slot carries it
// easily.
type lifecycleKeys struct {
	prefix string
	shared bool // one hash tag for every lifecycle key (Redis Cluster)
}

func (k lifecycleKeys) base(id string) string {
	if k.shared {
		return k.prefix + ":{lifecycle}:exp:" + id
	}
	return k.prefix + ":{exp:" + id + "}:lifecycle"
}

func (k lifecycleKeys) state(id string) string { return k.base(id) + ":state" }
func (k lifecycleKeys) log(id string) string   { return k.base(id) + ":log" }
func (k lifecycleKeys) rec(id string) string   { return k.base(id) + ":rec" }

func (k lifecycleKeys) lease() string {
	if k.shared {
		return k.prefix + ":{lifecycle}:lease"
	}
	return k.prefix + ":{lease}:controller"
}

func (k lifecycleKeys) fenceCounter() string { return k.lease() + ":fence" }
func (k lifecycleKeys) channel() string      { return k.prefix + ":lifecycle" }

func leaseValue(fence int64, holder string) string {
	return strconv.FormatInt(fence, 10) + ":" + holder
}

// commitScript is the lifecycle compare-and-set.
//
// KEYS[1] -> state hash {v: version, s: State JSON}
// KEYS[2] -> transition log (list)
// KEYS[3] -> lease key (only passed, and read, when ARGV[4] is not "0")
// ARGV[1] -> expected stored version ("0": nothing stored yet)
// ARGV[2] -> new version
// ARGV[3] -> new State JSON
// ARGV[4] -> writer's fence ("0": unfenced API write)
// ARGV[5] -> Transition JSON
// ARGV[6] -> pub/sub channel
// ARGV[7] -> experiment id (the message)
//
// Returns 1 when committed, -1 on a version conflict, -2 when the fence is
// not the current lease's (nothing written in either case).
var commitScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then
  return -1
end
if ARGV[4] ~= '0' then
  local l = redis.call('GET', KEYS[3])
  if not l or string.sub(l, 1, #ARGV[4] + 1) ~= ARGV[4] .. ':' then
    return -2
  end
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 's', ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
`)

// restoreScript puts back a lost state (experiments.StateRestorer).
//
// KEYS[1] -> state hash
// KEYS[2] -> transition log
// KEYS[3] -> fence counter
// KEYS[4] -> lease key (only passed, and read, when ARGV[3] is not "0")
// ARGV[1] -> new version
// ARGV[2] -> State JSON
// ARGV[3] -> writer's fence ("0": unfenced)
// ARGV[4] -> Transition JSON
// ARGV[5] -> pub/sub channel
// ARGV[6] -> experiment id (the message)
// ARGV[7] -> fence floor: the counter is raised to at least this
//
// Returns 1 when restored, -1 when a state is stored, -2 when the fence
// is not the current lease's (nothing written in either case).
var restoreScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
if ARGV[3] ~= '0' then
  local l = redis.call('GET', KEYS[4])
  if not l or string.sub(l, 1, #ARGV[3] + 1) ~= ARGV[3] .. ':' then
    return -2
  end
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 's', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[4])
if (tonumber(redis.call('GET', KEYS[3])) or 0) < tonumber(ARGV[7]) then
  redis.call('SET', KEYS[3], ARGV[7])
end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
`)

// seedFenceScript raises the fence counter to at least ARGV[1].
//
// KEYS[1] -> fence counter
// ARGV[1] -> floor
//
// Returns the counter afterwards.
var seedFenceScript = redis.NewScript(`
local c = tonumber(redis.call('GET', KEYS[1])) or 0
if c < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return tonumber(ARGV[1])
end
return c
`)

// putRecScript stores the latest recommendation, fenced like a commit.
//
// KEYS[1] -> recommendation key
// KEYS[2] -> lease key (only passed, and read, when ARGV[2] is not "0")
// ARGV[1] -> Recommendation JSON
// ARGV[2] -> writer's fence ("0": unfenced)
//
// Returns 1 when stored, -2 when the fence is not the current lease's
// (nothing written).
var putRecScript = redis.NewScript(`
if ARGV[2] ~= '0' then
  local l = redis.call('GET', KEYS[2])
  if not l or string.sub(l, 1, #ARGV[2] + 1) ~= ARGV[2] .. ':' then
    return -2
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
`)

// acquireScript takes or extends the lease.
//
// KEYS[1] -> lease key, value "<fence>:<holder>"
// KEYS[2] -> fence counter
// ARGV[1] -> holder id
// ARGV[2] -> TTL in milliseconds
//
// Returns the fence when ARGV[1] holds the lease afterwards (a new lease
// gets INCR of the counter; the holder's own lease is extended and keeps
// its fence), 0 when another holder has it.
var acquireScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, ':', 1, true)
  if string.sub(cur, sep + 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(cur, 1, sep - 1))
  end
  return 0
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], fence .. ':' .. ARGV[1], 'NX', 'PX', ARGV[2])
return fence
`)

// renewScript extends the lease only if the caller still holds it.
//
// KEYS[1] -> lease key
// ARGV[1] -> "<fence>:<holder>"
// ARGV[2] -> TTL in milliseconds
//
// Returns 1 when renewed, 0 when the lease is gone or someone else's.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// releaseScript deletes the lease only if the caller still holds it.
//
// KEYS[1] -> lease key
// ARGV[1] -> "<fence>:<holder>"
//
// Returns 1 when released, 0 otherwise.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Lifecycle is the Redis lifecycle store, controller lease and change
// feed. It is safe for concurrent use by any number of replicas.
type Lifecycle struct {
	c redis.UniversalClient
	k lifecycleKeys
}

// NewLifecycle returns a Lifecycle using c and key prefix (default
// "abgate" when empty). With a *redis.ClusterClient all lifecycle keys
// share one hash tag (see lifecycleKeys).
func NewLifecycle(c redis.UniversalClient, prefix string) *Lifecycle {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	_, cluster := c.(*redis.ClusterClient)
	return &Lifecycle{c: c, k: lifecycleKeys{prefix: prefix, shared: cluster}}
}

// State implements experiments.LifecycleStore.
func (l *Lifecycle) State(ctx context.Context, exp string) (experiments.State, error) {
	var s experiments.State
	b, err := l.c.HGet(ctx, l.k.state(exp), "s").Bytes()
	if errors.Is(err, redis.Nil) {
		return s, fmt.Errorf("lifecycle state of %q: %w", exp, experiments.ErrNotFound)
	}
	if err != nil {
		return s, fmt.Errorf("read lifecycle state of %q: %w", exp, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode lifecycle state of %q: %w", exp, err)
	}
	return s, nil
}

// Commit implements experiments.LifecycleStore.
func (l *Lifecycle) Commit(ctx context.Context, prev int64, next experiments.State, t experiments.Transition) error {
	if next.Version != prev+1 || t.Seq != next.Version || next.Experiment == "" || t.Experiment != next.Experiment {
		return fmt.Errorf("lifecycle commit of %q: version %d after %d, seq %d: inconsistent", next.Experiment, next.Version, prev, t.Seq)
	}
	sj, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tj, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode transition: %w", err)
	}
	id := next.Experiment
	keys := []string{l.k.state(id), l.k.log(id)}
	if t.Fence != 0 {
		keys = append(keys, l.k.lease())
	}
	res, err := commitScript.Run(ctx, l.c, keys,
		prev, next.Version, sj, t.Fence, tj, l.k.channel(), id).Int64()
	if err != nil {
		return fmt.Errorf("lifecycle commit of %q: %w", id, err)
	}
	switch res {
	case 1:
		return nil
	case -1:
		return fmt.Errorf("lifecycle commit of %q at version %d: %w", id, prev, experiments.ErrConflict)
	case -2:
		return fmt.Errorf("lifecycle commit of %q with fence %d: %w", id, t.Fence, experiments.ErrFenced)
	}
	return fmt.Errorf("lifecycle commit of %q: unexpected script result %d", id, res)
}

// Restore implements experiments.StateRestorer.
func (l *Lifecycle) Restore(ctx context.Context, next experiments.State, t experiments.Transition) error {
	if t.Seq != next.Version || next.Version < 1 || next.Experiment == "" || t.Experiment != next.Experiment {
		return fmt.Errorf("lifecycle restore of %q: version %d, seq %d: inconsistent", next.Experiment, next.Version, t.Seq)
	}
	sj, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tj, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode transition: %w", err)
	}
	id := next.Experiment
	keys := []string{l.k.state(id), l.k.log(id), l.k.fenceCounter()}
	if t.Fence != 0 {
		keys = append(keys, l.k.lease())
	}
	res, err := restoreScript.Run(ctx, l.c, keys,
		next.Version, sj, t.Fence, tj, l.k.channel(), id, next.Fence).Int64()
	if err != nil {
		return fmt.Errorf("lifecycle restore of %q: %w", id, err)
	}
	switch res {
	case 1:
		return nil
	case -1:
		return fmt.Errorf("lifecycle restore of %q: a state is stored: %w", id, experiments.ErrConflict)
	case -2:
		return fmt.Errorf("lifecycle restore of %q with fence %d: %w", id, t.Fence, experiments.ErrFenced)
	}
	return fmt.Errorf("lifecycle restore of %q: unexpected script result %d", id, res)
}

// SeedFence implements experiments.StateRestorer.
func (l *Lifecycle) SeedFence(ctx context.Context, floor int64) error {
	if err := seedFenceScript.Run(ctx, l.c, []string{l.k.fenceCounter()}, floor).Err(); err != nil {
		return fmt.Errorf("seed fence counter: %w", err)
	}
	return nil
}

// Transitions implements experiments.LifecycleStore.
func (l *Lifecycle) Transitions(ctx context.Context, exp string, limit int) ([]experiments.Transition, error) {
	start := int64(0)
	if limit > 0 {
		start = -int64(limit)
	}
	raw, err := l.c.LRange(ctx, l.k.log(exp), start, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read transitions of %q: %w", exp, err)
	}
	out := make([]experiments.Transition, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal([]byte(r), &out[i]); err != nil {
			return nil, fmt.Errorf("decode transition of %q: %w", exp, err)
		}
	}
	return out, nil
}

// PutRecommendation implements experiments.LifecycleStore.
func (l *Lifecycle) PutRecommendation(ctx context.Context, r experiments.Recommendation) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode recommendation: %w", err)
	}
	keys := []string{l.k.rec(r.Experiment)}
	if r.Fence != 0 {
		keys = append(keys, l.k.lease())
	}
	res, err := putRecScript.Run(ctx, l.c, keys, b, r.Fence).Int64()
	if err != nil {
		return fmt.Errorf("store recommendation of %q: %w", r.Experiment, err)
	}
	if res != 1 {
		return fmt.Errorf("store recommendation of %q with fence %d: %w", r.Experiment, r.Fence, experiments.ErrFenced)
	}
	return nil
}

// Recommendation implements experiments.LifecycleStore.
func (l *Lifecycle) Recommendation(ctx context.Context, exp string) (experiments.Recommendation, error) {
	var r experiments.Recommendation
	b, err := l.c.Get(ctx, l.k.rec(exp)).Bytes()
	if errors.Is(err, redis.Nil) {
		return r, fmt.Errorf("recommendation of %q: %w", exp, experiments.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("read recommendation of %q: %w", exp, err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode recommendation of %q: %w", exp, err)
	}
	return r, nil
}

// Acquire implements experiments.Leaser.
func (l *Lifecycle) Acquire(ctx context.Context, holder string, ttl time.Duration) (int64, bool, error) {
	f, err := acquireScript.Run(ctx, l.c, []string{l.k.lease(), l.k.fenceCounter()}, holder, ttl.Milliseconds()).Int64()
	if err != nil {
		return 0, false, fmt.Errorf("acquire lease: %w", err)
	}
	return f, f > 0, nil
}

// Renew implements experiments.Leaser.
func (l *Lifecycle) Renew(ctx context.Context, holder string, fence int64, ttl time.Duration) (bool, error) {
	n, err := renewScript.Run(ctx, l.c, []string{l.k.lease()}, leaseValue(fence, holder), ttl.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("renew lease: %w", err)
	}
	return n == 1, nil
}

// Release implements experiments.Leaser.
func (l *Lifecycle) Release(ctx context.Context, holder string, fence int64) error {
	if err := releaseScript.Run(ctx, l.c, []string{l.k.lease()}, leaseValue(fence, holder)).Err(); err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}

// Subscribe implements experiments.ChangeFeed with Redis pub/sub.
func (l *Lifecycle) Subscribe(ctx context.Context) (<-chan string, error) {
	return subscribe(ctx, l.c, l.k.channel())
}

// subscribe relays the payloads published on channel until ctx ends. The
// subscription is confirmed before it returns; go-redis reconnects it
// after a connection loss. Messages published meanwhile, or while the
// reader is busy, are lost: every ChangeFeed reader polls as well.
func subscribe(ctx context.Context, c redis.UniversalClient, channel string) (<-chan string, error) {
	ps := c.Subscribe(ctx, channel)
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return nil, fmt.Errorf("subscribe to %s: %w", channel, err)
	}
	msgs := ps.Channel()
	out := make(chan string, 64)
	go func() {
		defer close(out)
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				select {
				case out <- m.Payload:
				default: // the reader is busy; it polls as well
				}
			}
		}
	}()
	return out, nil
}
