package storetest

import (
	"testing"

	"github.com/abgate/abgate/experiments"
)

// TestExpected pins the reference model with a hand-computed example.
func TestExpected(t *testing.T) {
	a, b := Unit(1), Unit(2)
	got := Expected([]Obs{
		{Unit: a, Metric: "m", X: 1, Y: 1},
		{Unit: a, Metric: "m", X: 2, Y: 1},
		{Unit: b, Metric: "m", X: 5, Y: 1},
		{Unit: b, Metric: "m", X: 7, Y: 1, EventID: "e"},
		{Unit: b, Metric: "m", X: 7, Y: 1, EventID: "e"}, // duplicate
	})
	// a: x=3 y=2; b: x=12 y=2
	want := experiments.Summary{N: 2, SumX: 15, SumX2: 9 + 144, SumY: 4, SumY2: 8, SumXY: 6 + 24,
		SumR: 1.5 + 6, SumR2: 1.5*1.5 + 36}
	if s := got[experiments.VariantMetric{Metric: "m"}]; s != want {
		t.Errorf("got %+v, want %+v", s, want)
	}
}

// TestSummaryDeltaTelescopes: applying a user's observations one by one
// through SummaryDelta gives the summary of the user's totals.
func TestSummaryDeltaTelescopes(t *testing.T) {
	var s experiments.Summary
	x, y := 0.0, 0.0
	for i, v := range []float64{3, 1, 4, 1, 5, 9, 2, 6} {
		s = s.Add(experiments.SummaryDelta(i == 0, x, y, x+v, y+1, 0))
		x, y = x+v, y+1
	}
	want := experiments.Summary{N: 1, SumX: x, SumX2: x * x, SumY: y, SumY2: y * y, SumXY: x * y,
		SumR: x / y, SumR2: (x / y) * (x / y)}
	if _, ok := SummaryNear(s, want, 0); !ok {
		t.Errorf("got %+v, want %+v", s, want)
	}
}
