package recorder

import "sync"

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
// it while it aggregates.
type queue[T any] struct {
	mu    sync.Mutex
	items []T
	spare []T // the slice take handed out last time, returned by recycle
	limit int
}

func newQueue[T any](limit int) *queue[T] { return &queue[T]{limit: limit} }

// push appends v unless the queue holds limit events already; it returns
// the length after the push and whether v was taken.
func (q *queue[T]) push(v T) (int, bool) {
	q.mu.Lock()
	if len(q.items) >= q.limit {
		q.mu.Unlock()
		return 0, false
	}
	if q.items == nil {
		q.items = q.spare[:0]
		q.spare = nil
	}
	q.items = append(q.items, v)
	n := len(q.items)
	q.mu.Unlock()
	return n, true
}

// len is the number of events waiting.
func (q *queue[T]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// take removes and returns every waiting event, in order. The caller owns
// the slice until it passes it to recycle.
func (q *queue[T]) take() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	q.items = nil
	return out
}

// recycle hands back a slice take returned, once its events have been
// used, so the next pushes reuse its array. Events are zeroed first: they
// hold strings the GC should not keep alive.
func (q *queue[T]) recycle(s []T) {
	if cap(s) == 0 {
		return
	}
	clear(s)
	q.mu.Lock()
	if q.spare == nil || cap(s) > cap(q.spare) {
		q.spare = s[:0]
	}
	q.mu.Unlock()
}
