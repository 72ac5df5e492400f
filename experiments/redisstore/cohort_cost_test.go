package redisstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/redisstore"
	"github.com/abgate/abgate/experiments/storetest"
)

// TestCohortRecordCost measures what rollout.cohort "new" without CUPED
// costs Redis per user and salt phase (docs/recording.md): the same
// 20 000 users, one request and one thumb each in one period, recorded
// without Covariates and with the metric-less Covariates of cohort "new";
// the difference of MEMORY USAGE (SAMPLES 0) over the experiment's keys,
// per user. It is the first-exposure record (a field of s<k>:first; no
// copy in s<k>:z, since no history is kept) plus the fresh flag in the
// user's state; the fresh sums are a few dozen fields per variant.
func TestCohortRecordCost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	ctx := context.Background()
	c := newClient(t)
	s := redisstore.New(c, redisstore.WithPrefix("cost"))
	const users = 20000
	usage := func(exp string, cov *experiments.Covariates) int64 {
		for start := 0; start < users; start += 1000 {
			b := &experiments.Batch{ID: fmt.Sprint(exp, start), Experiment: exp, Phase: 1, Covariates: cov}
			for u := start; u < start+1000; u++ {
				k := storetest.Unit(u)
				b.Deltas = append(b.Deltas,
					experiments.Delta{Variant: u % 2, Unit: k, Metric: experiments.MetricRequests, DX: 1, DY: 1},
					experiments.Delta{Variant: u % 2, Unit: k, Metric: experiments.MetricThumbs, DX: float64(u % 3 % 2), DY: 1})
			}
			if _, err := s.Apply(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		var total int64
		iter := c.Scan(ctx, 0, "cost:{exp:"+exp+"}:*", 1000).Iterator()
		for iter.Next(ctx) {
			n, err := c.MemoryUsage(ctx, iter.Val(), 0).Result()
			if err != nil && err != redis.Nil {
				t.Fatal(err)
			}
			total += n
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
		return total
	}
	off := usage("off", nil)
	on := usage("on", storetest.CohortCovariatesFor("on", 1))
	per := float64(on-off) / users
	t.Logf("Redis memory for %d users: %d bytes without the record, %d with it: %.0f bytes per user and salt phase", users, off, on, per)
	if !(per > 0 && per < 150) {
		t.Errorf("the first-exposure record costs %.0f bytes per user, want (0, 150)", per)
	}
}
