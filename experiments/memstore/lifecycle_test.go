package memstore_test

import (
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
)

func TestLifecycleConformance(t *testing.T) {
	t.Parallel()
	storetest.RunLifecycle(t, func(t *testing.T) (storetest.LifecycleStore, func(time.Duration)) {
		var mu sync.Mutex
		now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		elapse := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
		return memstore.NewLifecycle(memstore.WithLifecycleClock(clock)), elapse
	})
}
