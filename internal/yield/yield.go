// Package yield lets a long background loop give its core to the
// requests a gateway serves, including requests whose bytes have arrived
// but that the Go scheduler has not yet noticed.
//
// On a gateway pinned to one core (GOMAXPROCS=1) a background loop that
// runs for 2 ms (the in-memory store applying a 100 ms batch at 2,000
// requests/s; the Redis store encoding one) delays every request that
// arrives meanwhile by up to that long: the runtime preempts a goroutine
// only after 10 ms. runtime.Gosched is not enough. It puts the goroutine
// on the global run queue, and the scheduler's findRunnable takes the
// run queues before it polls the network, so when no other goroutine is
// runnable the yielding goroutine runs again at once and a request
// waiting in the kernel stays there until the loop ends (or until sysmon
// polls, after 10 ms). A short sleep parks the goroutine on a timer that
// has not yet fired, so findRunnable finds both queues empty and polls
// the network: the requests that arrived get the core, then the loop
// resumes. That is Pause.
//
// Why not a library: this is about the runtime's scheduler order, which
// has no public knob; no library we found does it.
package yield

import (
	"runtime"
	"time"
)

// Slice is how long a background loop runs between pauses under Slicer.
// A request passes through the core four times (its handler, the
// upstream connection's writer, its reader, the handler again), and each
// time it may wait for the rest of a slice, so a request that meets a
// background loop waits up to four slices: 25 µs keeps that near 100 µs
// (with 100 µs slices the p99 of the load harness's tail scenario moved
// with every flush). A pause costs about a microsecond and a half (a
// timer, two context switches), 6% of the loop's time.
const Slice = 25 * time.Microsecond

// pause is the sleep in Pause: long enough that the timer has not fired
// when the scheduler looks at timers on the way to the network poll. On
// an otherwise idle process the sleep lasts up to a millisecond (Linux's
// network poll waits in whole milliseconds), which a background loop
// does not mind.
const pause = 20 * time.Microsecond

// Pause lets every goroutine that is runnable, or that the network has
// made runnable, run before the caller continues. With more than one P
// an idle P polls the network by itself, so runtime.Gosched does.
//
// On one P the sleep alone would not be enough either: the expired
// timer readies the caller as the P's next goroutine, ahead of requests
// already waiting in the run queue. The Gosched after it sends the
// caller to the back of the global queue, which the scheduler looks at
// after the P's own.
func Pause() {
	if runtime.GOMAXPROCS(0) == 1 {
		time.Sleep(pause)
	}
	runtime.Gosched()
}

// Slicer calls Pause from a loop about every Slice of the loop's time.
// The zero value is ready; it is not safe for concurrent use.
type Slicer struct {
	since time.Time
	n     uint
}

// checkEvery is how many Ticks go by between clock reads: a tick is a
// loop iteration of a few microseconds, a clock read about 25 ns.
const checkEvery = 4

// Tick counts one iteration of the loop and pauses when the loop has
// run for Slice since the last pause (or since its first Tick).
func (s *Slicer) Tick() {
	s.n++
	if s.n == 1 {
		s.since = time.Now()
		return
	}
	if s.n%checkEvery != 0 {
		return
	}
	now := time.Now()
	if now.Sub(s.since) < Slice {
		return
	}
	Pause()
	s.since = time.Now()
}
