package recorder

import "github.com/abgate/abgate/experiments"

// outcomeMetrics lists the metrics an Outcome contributes, in the order of
// the recorder's per-user aggregation array: the registry's request
// metrics (experiments.BuiltinMetrics, SourceRequest), in its order. It
// is a fixed-size array so the aggregation allocates nothing;
// TestOutcomeMetricsAreTheRegistrys keeps it equal to the registry.
var outcomeMetrics = [...]string{
	experiments.MetricRequests,
	experiments.MetricLatencyMS,
	experiments.MetricTTFBMS,
	experiments.MetricMaxGapMS,
	experiments.MetricError,
	experiments.MetricFallback,
	experiments.MetricStreamAborted,
	experiments.MetricPromptTokens,
	experiments.MetricCompletionTokens,
	experiments.MetricCost,
}

const numOutcomeMetrics = len(outcomeMetrics)

// outcomeValues writes o's metric values into v (indexed like
// outcomeMetrics) and reports in has which ones o carries.
func outcomeValues(o *experiments.Outcome, v *[numOutcomeMetrics]float64, has *[numOutcomeMetrics]bool) {
	b := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	const ms = 1e6 // ns per ms
	// Tokens and cost are missing, not zero, when the upstream reported
	// no usage: leaving them out keeps an arm that streams more (and so
	// reports usage less often) from looking cheaper.
	usage := !o.UsageMissing
	*has = [numOutcomeMetrics]bool{true, true, o.TTFB > 0, o.Stream, true, true, o.Stream, usage, usage, usage}
	*v = [numOutcomeMetrics]float64{
		1,
		float64(o.Latency) / ms,
		float64(o.TTFB) / ms,
		float64(o.MaxGap) / ms,
		b(o.Error),
		b(o.Fallback),
		b(o.StreamAborted),
		float64(o.PromptTokens),
		float64(o.CompletionTokens),
		o.Cost,
	}
}
