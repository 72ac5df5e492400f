package gcfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		base        int
		floor, live uint64
		want        int
	}{
		{100, 16 * mib, 2 * mib, 450},        // goal = heapMinimum × 4.5 = 18 MiB = live + floor
		{100, 16 * mib, 3 * mib, 480},        // 475 rounded up: goal max(17.4, 19.2) MiB
		{100, 16 * mib, 8 * mib, 200},        // goal 8 × 3 = 24 MiB = live + floor
		{100, 16 * mib, 16 * mib, 100},       // at the floor: GOGC as configured
		{100, 16 * mib, 200 * mib, 100},      // many live streams: never below base
		{200, 16 * mib, 12 * mib, 200},       // a configured GOGC above the floor's
		{100, 16 * mib, 0, 100},              // no cycle yet: GOGC as configured
		{100, 64 * mib, 2 * mib, MaxPercent}, // 1,650 capped
	} {
		if got := Percent(c.base, c.floor, c.live); got != c.want {
			t.Errorf("Percent(%d, %d, %d) = %d, want %d", c.base, c.floor, c.live, got, c.want)
		}
	}
}

// TestTunerFollowsTheLiveHeap runs the tuner for real: with a small live
// heap it raises GOGC after a cycle, with a live heap above the floor it
// gives the configured GOGC back, and Stop restores it.
func TestTunerFollowsTheLiveHeap(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	tu := Start(64 << 20)
	if tu == nil {
		t.Fatal("Start returned nil with GOGC=100")
	}
	defer tu.Stop()
	waitFor(t, "GOGC raised for a small live heap", func() bool { return tu.Percent() > 100 })
	if got := debug.SetGCPercent(tu.Percent()); got != tu.Percent() {
		t.Errorf("runtime GOGC %d, tuner says %d", got, tu.Percent())
	}

	keep := make([][]byte, 0, 128)
	for range 128 {
		keep = append(keep, make([]byte, 1<<20)) // 128 MiB live, above the floor
	}
	waitFor(t, "GOGC back to 100 above the floor", func() bool { return tu.Percent() == 100 })
	runtime.KeepAlive(keep)

	tu.Stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("after Stop GOGC = %d, want the configured 100", got)
	}
}

func TestStartOff(t *testing.T) {
	if Start(0) != nil {
		t.Error("a zero floor must not start a tuner")
	}
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	if Start(16<<20) != nil {
		t.Error("GOGC=off must not start a tuner")
	}
	var nilTuner *Tuner
	nilTuner.Stop()
	if nilTuner.Percent() != 0 {
		t.Error("a nil tuner's Percent must be 0")
	}
}

// waitFor runs GC cycles (the tuner acts after each, from a finalizer)
// until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 200 {
		runtime.GC()
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: never happened", what)
}

func TestOneTunerPerProcess(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	a := Start(16 << 20)
	if a == nil {
		t.Fatal("first Start returned nil")
	}
	if b := Start(16 << 20); b != nil {
		b.Stop()
		t.Fatal("a second tuner started while one runs")
	}
	a.Stop()
	c := Start(16 << 20)
	if c == nil {
		t.Fatal("no tuner after Stop")
	}
	c.Stop()
}
