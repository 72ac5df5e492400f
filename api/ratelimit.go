package api

import (
	"hash/maphash"
	"math"
	"strconv"
	"sync"
	"time"
)

// Rate is a token bucket: Burst events at once, refilled at PerSecond.
type Rate struct {
	Burst     float64
	PerSecond float64
}

// FeedbackLimits are the feedback API's rate limits (docs/api.md, "Rate
// limits"). A zero Rate disables that limit.
type FeedbackLimits struct {
	// PerToken limits events about one response (one X-Abgate-Token's
	// request id).
	PerToken Rate
	// PerUnit limits events about one unit (user) across its responses.
	PerUnit Rate
	// MaxKeys bounds the buckets kept in memory (default 100,000).
	MaxKeys int
}

// DefaultFeedbackLimits: a response takes a few signals (thumbs, a
// rating, a correction) and a user a few per minute; the bursts leave
// room for a client retrying a batch.
var DefaultFeedbackLimits = FeedbackLimits{
	PerToken: Rate{Burst: 10, PerSecond: 0.2},
	PerUnit:  Rate{Burst: 120, PerSecond: 2},
	MaxKeys:  100_000,
}

// limiter is a set of token buckets by key with bounded memory: keys are
// spread over shards, and a shard that reaches its share of MaxKeys first
// forgets buckets that have refilled (they are equal to new ones), then
// arbitrary ones. Forgetting a bucket that is not full lets its key burst
// again, so the bound trades a little precision under a flood of distinct
// keys for memory that never grows past MaxKeys.
//
// Hand-written rather than golang.org/x/time/rate plus an LRU: a bucket is
// two numbers, and the keyed, bounded map is the part those don't give.
type limiter struct {
	rate     Rate
	perShard int
	seed     maphash.Seed
	shards   [limiterShards]limiterShard
}

const limiterShards = 32

type limiterShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(r Rate, maxKeys int) *limiter {
	if r.Burst <= 0 || r.PerSecond <= 0 {
		return nil
	}
	if maxKeys <= 0 {
		maxKeys = DefaultFeedbackLimits.MaxKeys
	}
	l := &limiter{rate: r, perShard: max(1, maxKeys/limiterShards), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*bucket)
	}
	return l
}

// allow takes one token from key's bucket. When it is empty it returns
// false and how long until a token is back. A nil limiter allows all.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	sh := &l.shards[maphash.String(l.seed, key)%limiterShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[key]
	if b == nil {
		if len(sh.buckets) >= l.perShard {
			l.evict(sh, now)
		}
		b = &bucket{tokens: l.rate.Burst, at: now}
		sh.buckets[key] = b
	}
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.tokens = math.Min(l.rate.Burst, b.tokens+el*l.rate.PerSecond)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate.PerSecond * float64(time.Second))
	return false, wait
}

// evict makes room in a full shard. Call with sh.mu held.
func (l *limiter) evict(sh *limiterShard, now time.Time) {
	full := time.Duration(l.rate.Burst / l.rate.PerSecond * float64(time.Second))
	for k, b := range sh.buckets {
		if now.Sub(b.at) >= full {
			delete(sh.buckets, k)
		}
	}
	// Still full: forget a tenth, arbitrary (map order).
	for k := range sh.buckets {
		if len(sh.buckets) < l.perShard-l.perShard/10 {
			break
		}
		delete(sh.buckets, k)
	}
}

// size is the number of buckets held, for tests.
func (l *limiter) size() int {
	n := 0
	for i := range l.shards {
		l.shards[i].mu.Lock()
		n += len(l.shards[i].buckets)
		l.shards[i].mu.Unlock()
	}
	return n
}

// retryAfter formats a wait as whole seconds for Retry-After (at least 1).
func retryAfter(d time.Duration) string {
	s := int64(math.Ceil(d.Seconds()))
	return strconv.FormatInt(max(1, s), 10)
}
