package api

import (
	"strconv"
	"testing"
	"time"
)

// TestLimiterBounded: a flood of distinct keys never holds more buckets
// than MaxKeys, and a key over its burst is refused with a wait.
func TestLimiterBounded(t *testing.T) {
	t.Parallel()
	const maxKeys = 1000
	l := newLimiter(Rate{Burst: 2, PerSecond: 1}, maxKeys)
	now := time.Unix(1_700_000_000, 0)
	for i := range 50_000 {
		if ok, _ := l.allow("k"+strconv.Itoa(i), now); !ok {
			t.Fatalf("a new key %d was refused", i)
		}
	}
	if n := l.size(); n > maxKeys {
		t.Errorf("%d buckets held, more than MaxKeys %d", n, maxKeys)
	}
	l.allow("hot", now)
	l.allow("hot", now)
	if ok, wait := l.allow("hot", now); ok || wait <= 0 || wait > time.Second {
		t.Errorf("third event in a burst of 2: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.allow("hot", now.Add(time.Second)); !ok {
		t.Error("not refilled after a second at 1/s")
	}
}
