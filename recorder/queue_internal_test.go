package recorder

import (
	"slices"
	"testing"
)

// TestQueue: bounded, in order, and a recycled array is reused so a
// steady flow of pushes and takes allocates nothing.
func TestQueue(t *testing.T) {
	q := newQueue[int](3)
	for i := 1; i <= 3; i++ {
		if n, ok := q.push(i); !ok || n != i {
			t.Fatalf("push %d: n %d ok %v", i, n, ok)
		}
	}
	if _, ok := q.push(4); ok {
		t.Fatal("push beyond the limit was taken")
	}
	if q.len() != 3 {
		t.Fatalf("len %d, want 3", q.len())
	}
	got := q.take()
	if !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("take %v", got)
	}
	if q.len() != 0 || len(q.take()) != 0 {
		t.Fatal("queue not empty after take")
	}
	q.recycle(got)
	if allocs := testing.AllocsPerRun(100, func() {
		q.push(1)
		q.push(2)
		q.recycle(q.take())
	}); allocs != 0 {
		t.Errorf("push/take/recycle allocates %v times", allocs)
	}
}

// TestQueueStartsEmpty: no slot is allocated before an event arrives
// (the channel it replaced allocated all of them at start).
func TestQueueStartsEmpty(t *testing.T) {
	t.Parallel()
	q := newQueue[[256]byte](1 << 16)
	if cap(q.items) != 0 || cap(q.spare) != 0 {
		t.Fatalf("new queue holds %d+%d slots", cap(q.items), cap(q.spare))
	}
	q.push([256]byte{})
	if c := cap(q.items); c > 8 {
		t.Errorf("one push grew the queue to %d slots", c)
	}
}
