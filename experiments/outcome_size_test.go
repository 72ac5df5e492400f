package experiments

import (
	"testing"
	"unsafe"
)

// TestOutcomeSize keeps UsageMissing in what was padding: Observe copies
// an Outcome into the recorder's queue, so its size is per-request cost.
func TestOutcomeSize(t *testing.T) {
	if got := unsafe.Sizeof(Outcome{}); got != 144 {
		t.Errorf("Outcome is %d bytes, want 144", got)
	}
}
