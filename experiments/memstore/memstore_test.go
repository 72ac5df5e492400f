package memstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
)

// clock is a settable clock shared by the stores of one test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestConformance(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)}
	storetest.Run(t, func(t *testing.T) experiments.Store {
		return memstore.New(memstore.WithClock(clk.now))
	}, storetest.WithExpiryCheck(func(t *testing.T, s experiments.Store, exp string, after time.Duration) {
		ctx := context.Background()
		clk.add(after - time.Second)
		if snap, _ := s.Summaries(ctx, exp, 1); len(snap.Stats) == 0 {
			t.Fatal("data gone before the deadline")
		}
		clk.add(time.Second)
		for _, ph := range []int{1, 2} {
			if snap, _ := s.Summaries(ctx, exp, ph); len(snap.Stats) != 0 {
				t.Errorf("phase %d: data still there after the deadline", ph)
			}
		}
		if hs, _ := s.Hourly(ctx, exp, 1, time.Unix(0, 0), clk.now()); len(hs) != 0 {
			t.Errorf("hourly data still there after the deadline")
		}
	}), storetest.WithHistoryExpiry(func(t *testing.T, _ experiments.Store, _ string, ttl time.Duration) {
		clk.add(ttl)
	}))
}
