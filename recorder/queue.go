package recorder

import (
	"sync"
	"sync/atomic"
)

// queue is a bounded FIFO of events that grows on demand. It replaces a
// buffered channel of the same bound: make(chan Outcome, 65536) allocates
// all 65,536 slots (about 21 MB) when the recorder starts, which the GC
// then counts as live heap for the life of the process, and so lets up to
// as much garbage pile up again before each collection (issue "Live
// streams at scale"). A queue holds only what waits: its backing array
// grows with append up to the high-water mark of one drain interval and
// is reused from then on (push and take swap two slices), so steady state
// allocates nothing, as the channel did.
//
// The lock is held for an append or a slice swap: the drainer never holds
// it while it aggregates. A full queue is refused without the lock (n is
// the length, read atomically), as a full channel refuses a send without
// taking its lock.
type queue[T any] struct {
	mu    sync.Mutex
	items []T
	spare []T // the array take gives the pushers next (recycle returns it)
	n     atomic.Int64
	limit int
}

func newQueue[T any](limit int) *queue[T] { return &queue[T]{limit: limit} }

// push appends v unless the queue holds limit events already; it returns
// the length after the push and whether v was taken.
func (q *queue[T]) push(v T) (int, bool) {
	if q.n.Load() >= int64(q.limit) {
		return 0, false
	}
	q.mu.Lock()
	if len(q.items) >= q.limit {
		q.mu.Unlock()
		return 0, false
	}
	q.items = append(q.items, v)
	n := len(q.items)
	q.n.Store(int64(n))
	q.mu.Unlock()
	return n, true
}

// len is the number of events waiting.
func (q *queue[T]) len() int { return int(q.n.Load()) }

// take removes and returns every waiting event, in order; the pushers
// continue into the spare array. The caller owns the slice until it
// passes it to recycle.
func (q *queue[T]) take() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	q.items, q.spare = q.spare[:0], nil
	q.n.Store(0)
	return out
}

// recycle hands back a slice take returned, once its events have been
// used: it becomes the spare the next take gives the pushers, so two
// arrays alternate and steady state allocates nothing. Events are zeroed
// first: they hold strings the GC should not keep alive.
func (q *queue[T]) recycle(s []T) {
	if cap(s) == 0 {
		return
	}
	clear(s)
	q.mu.Lock()
	if cap(s) > cap(q.spare) {
		q.spare = s[:0]
	}
	q.mu.Unlock()
}
