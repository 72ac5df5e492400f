package experiments_test

import (
	"math"
	"testing"

	"github.com/abgate/abgate/experiments"
)

func TestDriftBin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    float64
		want int
	}{{0, 0}, {0.99, 0}, {1, 1}, {1.41, 1}, {1.42, 2}, {2, 3}, {4, 5}, {1000, 20}, {1e12, experiments.DriftBins - 1}, {math.NaN(), 0}} {
		if got := experiments.DriftBin(tc.v); got != tc.want {
			t.Errorf("DriftBin(%v) = %d, want %d", tc.v, got, tc.want)
		}
		if lo, hi := experiments.DriftBinRange(tc.want); !math.IsNaN(tc.v) && !(tc.v >= lo && tc.v < hi) {
			t.Errorf("%v not in the range [%v, %v) of its bin %d", tc.v, lo, hi, tc.want)
		}
	}
}
