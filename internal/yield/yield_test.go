package yield

import (
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// served runs a busy background loop of d on one P, calling step in each
// iteration, after a request's bytes have reached a waiting server
// goroutine's socket, and reports whether the server goroutine read
// them before the loop ended.
func served(t *testing.T, d time.Duration, step func()) bool {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var read atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1)
		if _, err := conn.Read(buf); err == nil {
			read.Store(true)
		}
	}()
	// Blocking here lets the server goroutine run and park in its Read.
	time.Sleep(20 * time.Millisecond)
	if _, err := client.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	// The byte is in the server's socket; only a network poll makes the
	// server goroutine runnable. Busy-loop well under sysmon's 10 ms.
	start := time.Now()
	for time.Since(start) < d {
		for range 1000 {
			spin++
		}
		step()
	}
	during := read.Load()
	<-done
	return during
}

var spin int

// TestSlicerLetsTheNetworkIn: on one P, a loop that ticks a Slicer lets
// a goroutine whose socket became readable run before the loop ends.
func TestSlicerLetsTheNetworkIn(t *testing.T) {
	var s Slicer
	if !served(t, 3*time.Millisecond, s.Tick) {
		t.Fatal("the server goroutine did not run during a 3 ms loop that ticked a Slicer")
	}
}

// TestGoschedDoesNot is the reason for the package: runtime.Gosched alone
// does not poll the network on one P. If a Go release changes that, this
// test fails, and Pause can become a plain runtime.Gosched.
func TestGoschedDoesNot(t *testing.T) {
	if served(t, 3*time.Millisecond, runtime.Gosched) {
		t.Fatal("runtime.Gosched let a goroutine waiting on the network run on one P; Pause may not need its sleep any more")
	}
}
