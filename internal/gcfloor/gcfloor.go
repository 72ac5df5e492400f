// Package gcfloor keeps the garbage collector from running more often
// than once per Floor bytes of allocation while the live heap is small.
//
// The Go runtime starts a cycle when the heap reaches live × (1 +
// GOGC/100), but at least 4 MiB × GOGC/100 (its heapMinimum). A gateway
// idles at a live heap of a few MiB and allocates about 18 KiB per
// request, so at 2,000 requests/s it collected several times a second,
// and on one core each cycle's mark work ran for about a millisecond at a
// time before the request goroutines got the core back: the largest
// source of the proxy's p99 beside the span exports (runtime/trace of the
// load harness's tail scenario, issue "Live streams at scale").
//
// After every cycle, Tuner raises GOGC so that the next cycle starts no
// sooner than Floor bytes above the live heap, and lowers it back to the
// configured GOGC as the live heap grows past Floor. So it changes
// nothing at idle (nothing is allocated), nothing with many live streams
// (their live heap is far above Floor), and lets the heap grow by at
// most Floor under request load. GOMEMLIMIT still bounds the total, and
// GOGC=off turns the tuner off.
//
// Why not a library: the runtime has no such setting (GOMEMLIMIT is a
// ceiling, not a floor), and the known tuners (a heap ballast, uber's and
// bytedance's gctuner) either also raise GOGC at large heaps, where the
// memory per live stream counts, or are not in our module proxy.
package gcfloor

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// MaxPercent caps the GOGC the tuner sets. A GOGC set for one cycle's
// live heap applies to the next, so a live heap that jumps (load starts)
// overshoots the floor by the jump's factor; the cap bounds the goal to
// 6× the live heap.
const MaxPercent = 500

// Tuner adjusts GOGC after each GC cycle; see the package comment.
type Tuner struct {
	floor   uint64
	base    int
	set     atomic.Int64 // the GOGC in force, for tests and Percent
	stopped atomic.Bool
	sample  []metrics.Sample
}

// running is set while a Tuner runs: GOGC is one per process, so is
// the tuner (tests start several servers in one process).
var running atomic.Bool

// Start reads the configured GOGC and starts tuning toward floor bytes of
// headroom. It returns nil, and changes nothing, when floor is 0, GOGC is
// off, or a tuner already runs in this process.
func Start(floor uint64) *Tuner {
	if floor == 0 || !running.CompareAndSwap(false, true) {
		return nil
	}
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base <= 0 {
		running.Store(false)
		return nil
	}
	t := &Tuner{floor: floor, base: base, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.set.Store(int64(base))
	t.adjust()
	t.arm()
	return t
}

// Stop restores the configured GOGC; the tuner does nothing after it.
func (t *Tuner) Stop() {
	if t == nil || t.stopped.Swap(true) {
		return
	}
	debug.SetGCPercent(t.base)
	t.set.Store(int64(t.base))
	running.Store(false)
}

// Percent is the GOGC the tuner set last.
func (t *Tuner) Percent() int {
	if t == nil {
		return 0
	}
	return int(t.set.Load())
}

// sentinel is garbage from the moment it is made; its finalizer runs once
// the cycle that found it unreachable has ended, and arms the next one.
// It holds a pointer so it is never combined with other objects by the
// tiny allocator, whose blocks may outlive a cycle.
type sentinel struct{ _ *int }

func (t *Tuner) arm() {
	runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
		if t.stopped.Load() {
			return
		}
		t.adjust()
		t.arm()
	})
}

// adjust sets GOGC for the live heap the last cycle measured.
func (t *Tuner) adjust() {
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	p := Percent(t.base, t.floor, live)
	if old := int(t.set.Load()); p != old && !t.stopped.Load() {
		debug.SetGCPercent(p)
		t.set.Store(int64(p))
	}
}

// heapMinimum is the runtime's smallest heap goal at GOGC=100
// (runtime/mgcpacer.go, defaultHeapMinimum); it scales with GOGC, so a
// raised GOGC raises it too.
const heapMinimum = 4 << 20

// Percent is the GOGC that puts the next heap goal at about live + floor
// bytes, never below base nor above MaxPercent: the goal is the larger of
// live × (1 + GOGC/100) and heapMinimum × GOGC/100, so the smaller of the
// two GOGCs that reach live + floor. It is rounded up to a multiple of
// 10, so small changes of the live heap do not reset GOGC after every
// cycle. With live 0 (no cycle has measured it yet) it is base: a GOGC
// guessed before the first cycle would scale heapMinimum with it.
func Percent(base int, floor, live uint64) int {
	if live == 0 {
		return base
	}
	byLive := float64(floor) * 100 / float64(live)
	byMinimum := float64(live+floor) * 100 / heapMinimum
	want := math.Ceil(min(byLive, byMinimum)/10) * 10
	return int(max(float64(base), min(want, MaxPercent)))
}
