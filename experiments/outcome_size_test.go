package experiments

import (
	"testing"
	"unsafe"
)

// TestOutcomeSize keeps UsageMissing and Segments in what was padding:
// Observe copies an Outcome into the recorder's queue, so its size is
// per-request cost. CachedTokens (issue 15) added 8 bytes: no padding was
// left wide enough for a count, and narrowing the token counts to int32
// would have changed a type many packages and tests read.
func TestOutcomeSize(t *testing.T) {
	if got := unsafe.Sizeof(Outcome{}); got != 152 {
		t.Errorf("Outcome is %d bytes, want 152", got)
	}
}
