package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/experiments"
)

// logRecords adds a batch's feedback records to the experiment's log, a
// ZSET scored by each record's expiry: expired records (free text past
// its retention) are removed on every write, and past logMax the records
// closest to expiry go first. Adding a member twice is a no-op, so a
// retried batch does not log twice. It runs after the batch's scripts;
// a failure here makes Apply fail and the recorder retry, which is safe.
func (s *Store) logRecords(ctx context.Context, b *experiments.Batch) error {
	if len(b.Records) == 0 {
		return nil
	}
	key := s.k.feedbackLog(b.Experiment)
	zs := make([]redis.Z, 0, len(b.Records))
	for _, r := range b.Records {
		if r.Expires.IsZero() {
			r.Expires = r.At.Add(s.logKeep)
		}
		js, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode feedback record: %w", err)
		}
		zs = append(zs, redis.Z{Score: float64(r.Expires.UnixMilli()), Member: js})
	}
	args := make([]any, 0, 2+2*len(zs))
	args = append(args, time.Now().UnixMilli(), s.logMax)
	for _, z := range zs {
		args = append(args, z.Score, z.Member)
	}
	return translate(logScript.Run(ctx, s.c, []string{s.k.keySet(b.Experiment), key}, args...).Err())
}

// logScript adds feedback records to an experiment's log and prunes it.
//
// Input:
//
//	KEYS[1] -> abgate:{exp:<id>}:keys (SET of the experiment's keys)
//	KEYS[2] -> abgate:{exp:<id>}:feedback (ZSET record JSON scored by expiry in ms)
//	ARGV[1] -> now in ms; ARGV[2] -> most records kept
//	ARGV[3..] -> score, member pairs
//
// Records past their expiry are removed, then the ones closest to expiry
// past the bound. If the experiment is already expiring (KEYS[1] has a
// TTL), the log gets the same TTL, as the apply script does.
var logScript = redis.NewScript(`
for k = 3, #ARGV, 2 do redis.call('ZADD', KEYS[2], ARGV[k], ARGV[k + 1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[2]) - 1)
redis.call('SADD', KEYS[1], KEYS[2])
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 and redis.call('PTTL', KEYS[2]) == -1 then redis.call('PEXPIRE', KEYS[2], pttl) end
return 1
`)

// FeedbackRecords implements experiments.FeedbackLog.
func (s *Store) FeedbackRecords(ctx context.Context, exp string, since time.Time, limit int) ([]experiments.FeedbackRecord, error) {
	now := time.Now().UnixMilli()
	ms, err := s.c.ZRangeByScore(ctx, s.k.feedbackLog(exp), &redis.ZRangeBy{Min: "(" + strconv.FormatInt(now, 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("read feedback log of %q: %w", exp, translate(err))
	}
	all := make([]experiments.FeedbackRecord, 0, len(ms))
	for _, m := range ms {
		var r experiments.FeedbackRecord
		if err := json.Unmarshal([]byte(m), &r); err != nil {
			return nil, fmt.Errorf("read feedback log of %q: %w", exp, err)
		}
		all = append(all, r)
	}
	// Deduplicate over the whole log before filtering by since, so an
	// export resuming after an event doesn't get its retry.
	sort.SliceStable(all, func(i, j int) bool { return all[i].At.Before(all[j].At) })
	var out []experiments.FeedbackRecord
	for _, r := range experiments.DedupRecords(all) {
		if !r.At.Before(since) {
			out = append(out, r)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// DriftHistograms implements experiments.DriftReader.
func (s *Store) DriftHistograms(ctx context.Context, exp string, from, to time.Time) ([]experiments.HourHistograms, error) {
	hours, hashes, err := s.readHours(ctx, s.k.driftHours(exp), func(h experiments.Hour) string { return s.k.drift(exp, h) }, from, to)
	if err != nil {
		return nil, fmt.Errorf("read drift histograms of %q: %w", exp, err)
	}
	out := make([]experiments.HourHistograms, 0, len(hours))
	for i, fields := range hashes {
		hh := experiments.HourHistograms{Hour: hours[i].Time(), Counts: make(map[experiments.HistKey]int64, len(fields))}
		for f, val := range fields {
			parts := strings.Split(f, ":")
			if len(parts) != 3 {
				return nil, fmt.Errorf("read drift histograms of %q: bad field %q", exp, f)
			}
			v, err1 := strconv.Atoi(parts[0])
			bin, err2 := strconv.Atoi(parts[2])
			n, err3 := strconv.ParseInt(val, 10, 64)
			if err1 != nil || err2 != nil || err3 != nil {
				return nil, fmt.Errorf("read drift histograms of %q: bad field %q=%q", exp, f, val)
			}
			hh.Counts[experiments.HistKey{Variant: v, Feature: parts[1], Bin: bin}] = n
		}
		out = append(out, hh)
	}
	return out, nil
}
