package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/experiments"
)

var (
	_ experiments.Definitions = (*Definitions)(nil)
	_ experiments.ChangeFeed  = (*Definitions)(nil)
)

// Definition keys. A definition carries its experiment's hash tag like
// the rest of the experiment's keys; the index of ids has its own tag.
// Layout (prefix "abgate"):
//
//	abgate:{exp:<id>}:definition   HASH     v -> version, d -> StoredExperiment JSON
//	abgate:{definitions}:index     SET      ids of stored definitions
//	abgate:definitions             channel  id of every Put
//
// A Put adds the id to the index before the compare-and-set, so the index
// may name an id whose first Put failed; List skips such ids. The two
// tags live in different Cluster slots, which is why they are not written
// by one script.
type defKeys struct{ prefix string }

func (k defKeys) def(id string) string { return k.prefix + ":{exp:" + id + "}:definition" }
func (k defKeys) index() string        { return k.prefix + ":{definitions}:index" }
func (k defKeys) channel() string      { return k.prefix + ":definitions" }

// putDefScript is the definitions compare-and-set.
//
// KEYS[1] -> definition hash {v: version, d: StoredExperiment JSON}
// ARGV[1] -> expected stored version ("0": nothing stored yet)
// ARGV[2] -> new version
// ARGV[3] -> StoredExperiment JSON
// ARGV[4] -> pub/sub channel
// ARGV[5] -> experiment id (the message)
//
// Returns 1 when stored, -1 on a version conflict (nothing written).
var putDefScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then
  return -1
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
`)

// Definitions is the Redis experiments.Definitions and its change feed,
// shared by every replica.
type Definitions struct {
	c redis.UniversalClient
	k defKeys
}

// NewDefinitions returns a Definitions using c and key prefix (default
// "abgate" when empty).
func NewDefinitions(c redis.UniversalClient, prefix string) *Definitions {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Definitions{c: c, k: defKeys{prefix: prefix}}
}

// Get implements experiments.Definitions.
func (d *Definitions) Get(ctx context.Context, id string) (experiments.StoredExperiment, error) {
	var s experiments.StoredExperiment
	b, err := d.c.HGet(ctx, d.k.def(id), "d").Bytes()
	if errors.Is(err, redis.Nil) {
		return s, fmt.Errorf("experiment definition %q: %w", id, experiments.ErrNotFound)
	}
	if err != nil {
		return s, fmt.Errorf("read experiment definition %q: %w", id, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode experiment definition %q: %w", id, err)
	}
	return s, nil
}

// List implements experiments.Definitions: the index, then every
// definition in one pipeline.
func (d *Definitions) List(ctx context.Context) ([]experiments.StoredExperiment, error) {
	ids, err := d.c.SMembers(ctx, d.k.index()).Result()
	if err != nil {
		return nil, fmt.Errorf("read experiment definition index: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	slices.Sort(ids)
	cmds := make([]*redis.StringCmd, len(ids))
	pipe := d.c.Pipeline()
	for i, id := range ids {
		cmds[i] = pipe.HGet(ctx, d.k.def(id), "d")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read experiment definitions: %w", err)
	}
	out := make([]experiments.StoredExperiment, 0, len(ids))
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		if errors.Is(err, redis.Nil) {
			continue // indexed before a Put that failed
		}
		if err != nil {
			return nil, fmt.Errorf("read experiment definition %q: %w", ids[i], err)
		}
		var s experiments.StoredExperiment
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("decode experiment definition %q: %w", ids[i], err)
		}
		out = append(out, s)
	}
	return out, nil
}

// Put implements experiments.Definitions.
func (d *Definitions) Put(ctx context.Context, prev int64, s experiments.StoredExperiment) error {
	id := s.ID()
	if id == "" || strings.ContainsAny(id, "{}") || s.Version != prev+1 {
		return fmt.Errorf("put experiment definition %q: version %d after %d: inconsistent", id, s.Version, prev)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode experiment definition %q: %w", id, err)
	}
	if prev == 0 {
		if err := d.c.SAdd(ctx, d.k.index(), id).Err(); err != nil {
			return fmt.Errorf("index experiment definition %q: %w", id, err)
		}
	}
	res, err := putDefScript.Run(ctx, d.c, []string{d.k.def(id)}, prev, s.Version, b, d.k.channel(), id).Int64()
	if err != nil {
		return fmt.Errorf("put experiment definition %q: %w", id, err)
	}
	if res != 1 {
		return fmt.Errorf("put experiment definition %q at version %d: %w", id, prev, experiments.ErrConflict)
	}
	return nil
}

// Subscribe implements experiments.ChangeFeed with Redis pub/sub; the
// catalog polls as well for what it misses.
func (d *Definitions) Subscribe(ctx context.Context) (<-chan string, error) {
	return subscribe(ctx, d.c, d.k.channel())
}
