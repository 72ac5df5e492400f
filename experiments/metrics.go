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
