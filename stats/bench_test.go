package stats

import (
	"fmt"
	"testing"
)

// BenchmarkDecide10Metrics: a full decision for a control and one
// candidate with a primary metric and nine guardrails (mean and ratio).
func BenchmarkDecide10Metrics(b *testing.B) {
	for _, m := range []Method{ConfidenceSequenceMethod, MSPRTMethod, GroupSequentialMethod} {
		b.Run(string(m), func(b *testing.B) {
			in := Input{Users: []float64{20000, 20000}, Metrics: map[string][]Summary{}}
			p := Policy{Primary: convMetric, MaxUsers: 50000, Method: m,
				Design: NewDesign(0.05, OBrienFleming, []float64{0.2, 0.4, 0.6, 0.8, 1})}
			in.Metrics["conversion"] = []Summary{binary(20000, 2000), binary(20000, 2100)}
			for i := range 9 {
				name := fmt.Sprintf("g%d", i)
				kind := Mean
				if i%2 == 1 {
					kind = Ratio
				}
				in.Metrics[name] = []Summary{
					{N: 20000, SumX: 2e6, SumX2: 2.2e8, SumY: 1e5, SumY2: 6e5, SumXY: 1.1e7},
					{N: 20000, SumX: 2.01e6, SumX2: 2.22e8, SumY: 1e5, SumY2: 6e5, SumXY: 1.11e7},
				}
				p.Guardrails = append(p.Guardrails, Guardrail{Metric: Metric{Name: name, Kind: kind, Better: LowerIsBetter, Relative: true}, Margin: 0.05})
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = Decide(in, p)
			}
		})
	}
}

// BenchmarkDecideBounded: the same decision with every guardrail bounded
// (the nonasymptotic test, with its displayed bounds) and one-sided calls.
func BenchmarkDecideBounded(b *testing.B) {
	in := Input{Users: []float64{20000, 20000}, Metrics: map[string][]Summary{}}
	p := Policy{Primary: convMetric, MaxUsers: 50000, OneSided: true}
	in.Metrics["conversion"] = []Summary{binary(20000, 2000), binary(20000, 2100)}
	for i := range 9 {
		name := fmt.Sprintf("g%d", i)
		in.Metrics[name] = []Summary{
			{N: 20000, SumX: 2e6, SumX2: 2.2e8, SumY: 1e5, SumY2: 6e5, SumXY: 1.1e7, SumR: 2e5, SumR2: 2.2e6},
			{N: 20000, SumX: 2.01e6, SumX2: 2.22e8, SumY: 1e5, SumY2: 6e5, SumXY: 1.11e7, SumR: 2.01e5, SumR2: 2.22e6},
		}
		p.Guardrails = append(p.Guardrails, Guardrail{Metric: Metric{Name: name, Kind: Ratio, Better: LowerIsBetter, Relative: true, Bounds: &Bounds{0, 1000}}, Margin: 0.05})
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = Decide(in, p)
	}
}
