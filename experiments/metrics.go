package experiments

// Built-in metric names. The gateway derives the request metrics from each
// Outcome; the feedback metrics arrive through the feedback API. Custom
// feedback metrics declared in an experiment's config use their own names.
const (
	// MetricRequests counts requests: one per analysed Outcome. Its N is
	// the number of exposed users per variant (the sample-ratio check).
	MetricRequests = "requests"
	// MetricLatencyMS is arrival to last byte, in milliseconds.
	MetricLatencyMS = "latency_ms"
	// MetricTTFBMS is arrival to first body byte, in milliseconds; only
	// recorded for responses that sent a byte (TTFB > 0).
	MetricTTFBMS = "ttfb_ms"
	// MetricMaxGapMS is a stream's largest gap between chunks (streams only).
	MetricMaxGapMS = "max_gap_ms"
	// MetricError is 1 for a 5xx, timeout or connection error, else 0.
	MetricError = "error"
	// MetricFallback is 1 when the base served a failed candidate's request.
	MetricFallback = "fallback"
	// MetricStreamAborted is 1 when a stream ended early (streams only).
	MetricStreamAborted = "stream_aborted"
	// MetricPromptTokens and MetricCompletionTokens are token counts.
	MetricPromptTokens     = "prompt_tokens"
	MetricCompletionTokens = "completion_tokens"
	// MetricCost is the request's price from the variant's prices.
	MetricCost = "cost"

	// MetricThumbs is 1 for thumbs up, 0 for down.
	MetricThumbs = "thumbs"
	// MetricRating is a 1-5 rating.
	MetricRating = "rating"
	// MetricCorrection is 1 when the user corrected the answer.
	MetricCorrection = "correction"
	// MetricReformulated is 1 when the user asked again in other words.
	MetricReformulated = "reformulated"
	// MetricTaskCompleted is 1 when the user's task was completed.
	MetricTaskCompleted = "task_completed"
	// MetricCompletionSeconds is the time the task took (>= 0).
	MetricCompletionSeconds = "completion_seconds"

	// CounterUnanalysed counts Outcomes with Analysed=false per variant.
	// It is an operations counter, not a statistic: no per-user state.
	CounterUnanalysed = "requests_unanalysed"
)

// outcomeMetrics lists the metrics an Outcome contributes, in the order of
// the recorder's per-user aggregation array.
var outcomeMetrics = [...]string{
	MetricRequests,
	MetricLatencyMS,
	MetricTTFBMS,
	MetricMaxGapMS,
	MetricError,
	MetricFallback,
	MetricStreamAborted,
	MetricPromptTokens,
	MetricCompletionTokens,
	MetricCost,
}

const numOutcomeMetrics = len(outcomeMetrics)

// outcomeValues writes o's metric values into v (indexed like
// outcomeMetrics) and reports in has which ones o carries.
func outcomeValues(o *Outcome, v *[numOutcomeMetrics]float64, has *[numOutcomeMetrics]bool) {
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
