package storetest

import (
	"context"
	"testing"
	"time"
)

// expectAnnouncement checks a ChangeFeed subscription: it must announce
// want within max, and close once the subscription's context is
// cancelled.
func expectAnnouncement(t *testing.T, ch <-chan string, want string, cancel context.CancelFunc, max time.Duration) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("announced %q, want %q", got, want)
		}
	case <-time.After(max):
		t.Fatalf("no announcement within %s", max)
	}
	cancel()
	deadline := time.After(max)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("feed not closed after its context ended")
		}
	}
}
