package stats

import (
	"math"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"
)

// TestPSIReference checks PSI against a hand computation and its basic
// properties.
func TestPSIReference(t *testing.T) {
	t.Parallel()
	ref := []float64{100, 200, 300, 400}
	if got := PSI(ref, ref); got != 0 {
		t.Errorf("PSI of identical histograms = %g, want 0", got)
	}
	cur := []float64{400, 300, 200, 100}
	// Hand computation with the same ½-count smoothing.
	want := 0.0
	for i := range ref {
		p, q := (ref[i]+0.5)/1002, (cur[i]+0.5)/1002
		want += (q - p) * math.Log(q/p)
	}
	if got := PSI(ref, cur); !scalar.EqualWithinAbsOrRel(got, want, 1e-12, 1e-12) {
		t.Errorf("PSI = %g, want %g", got, want)
	}
	if a, b := PSI(ref, cur), PSI(cur, ref); !scalar.EqualWithinAbsOrRel(a, b, 1e-12, 1e-12) {
		t.Errorf("PSI is not symmetric: %g vs %g", a, b)
	}
	if !math.IsNaN(PSI([]float64{0, 0}, []float64{1, 2})) {
		t.Error("PSI with an empty side is not NaN")
	}
}

// TestChiSquareHomogeneityReference checks a table worked by hand:
// [[10, 20, 30], [20, 20, 20]] has expected counts 15, 20, 25 in both
// rows, so X² = 2·(25/15 + 0 + 25/25) = 16/3 with 2 degrees of freedom,
// whose survival function is exactly exp(−X²/2).
func TestChiSquareHomogeneityReference(t *testing.T) {
	t.Parallel()
	stat, df, p := ChiSquareHomogeneity([]float64{10, 20, 30, 0}, []float64{20, 20, 20, 0})
	if df != 2 || !scalar.EqualWithinAbsOrRel(stat, 16.0/3, 1e-12, 1e-12) || !scalar.EqualWithinAbsOrRel(p, math.Exp(-8.0/3), 1e-9, 1e-9) {
		t.Errorf("got X²=%v df=%d p=%v", stat, df, p)
	}
	if _, _, p := ChiSquareHomogeneity([]float64{5, 0}, []float64{0, 0}); p != 1 {
		t.Errorf("nothing to compare: p = %v, want 1", p)
	}
}
