package experiments

import (
	"math"
	"slices"

	"github.com/abgate/abgate/stats"
)

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

	// MetricCostPerSuccess is spend per successful outcome (issue 15): per
	// user x = the user's spend, y = their successes (the experiment's
	// Success signal), analysed as a ratio Σx/Σy with the delta method.
	// The recorder derives it from outcomes (cost) and feedback
	// (successes) of experiments that declare a success signal.
	MetricCostPerSuccess = "cost_per_success"
	// MetricCacheHitRatio is the share of prompt tokens the upstream
	// served from its prompt cache (issue 15): per user x = cached prompt
	// tokens (Outcome.CachedTokens), y = prompt tokens, analysed as the
	// ratio Σx/Σy. Higher is better (cached tokens are cheaper and
	// faster); usable as an optional guardrail. The recorder derives it
	// from outcomes with known usage and a prompt.
	MetricCacheHitRatio = "cache_hit_ratio"
	// MetricJudgeScore is the LLM judge's preference for a candidate's
	// answer over the base's to the same prompt: 1 win, ½ tie, 0 loss (the
	// mean of the two verdicts when both orders were asked). Recorded on
	// the candidate's variant by the shadow replay, never by the feedback
	// API; per user it is stats.JudgeInput.Preference.
	MetricJudgeScore = "judge_score"
	// MetricJudgeFirst is, for a comparison asked in both orders, the
	// share of the verdicts that preferred the first-shown answer (0, ¼,
	// ½, ¾, 1): stats.JudgeInput.FirstShown, the judge's position bias.
	MetricJudgeFirst = "judge_first"
	// MetricJudgeServed is the LLM judge's preference for the answer a
	// user was served over the other model's answer to the same prompt
	// (1 win, ½ tie, 0 loss), recorded by the live judge on the serving
	// arm, base included: for a candidate-served response it equals
	// judge_score, for a base-served one it is 1 − the candidate's
	// score. It is each arm's judge score of its own answers, the f of
	// prediction-powered inference against the human signal
	// (Experiment.JudgePairs, docs/statistics.md, "Judge vs humans").
	MetricJudgeServed = "judge_served"

	// CounterUnanalysed counts Outcomes with Analysed=false per variant.
	// It is an operations counter, not a statistic: no per-user state.
	CounterUnanalysed = "requests_unanalysed"
)

// MetricSource says where a metric's observations come from.
type MetricSource string

const (
	// SourceRequest: the gateway measures it on every proxied request
	// (one value per Outcome; see the recorder).
	SourceRequest MetricSource = "request"
	// SourceFeedback: the application sends it to the feedback API.
	SourceFeedback MetricSource = "feedback"
	// SourceDerived: the recorder combines request and feedback data
	// (cost per success); neither the gateway nor the API takes it
	// directly.
	SourceDerived MetricSource = "derived"
	// SourceJudge: the shadow replay records the LLM judge's verdicts as
	// feedback; the feedback API refuses it from applications.
	SourceJudge MetricSource = "judge"
)

// Direction says which way a metric is better.
type Direction string

const (
	HigherIsBetter Direction = "higher"
	LowerIsBetter  Direction = "lower"
	// NoDirection: neither way is better (requests per user). Such a
	// metric can be shown but not judged: it can't be the primary metric
	// or a guardrail.
	NoDirection Direction = ""
)

// statsDirection is d for stats.Decide, which has no "neither": a
// metric without a direction is never judged (validation), and stats'
// own default, higher, stands in should an unvalidated one be.
func (d Direction) statsDirection() stats.Direction {
	if d == LowerIsBetter {
		return stats.LowerIsBetter
	}
	return stats.HigherIsBetter
}

// Units of MetricInfo.Unit: how the reports format a metric's values.
const (
	UnitNone    = ""       // a plain number
	UnitRate    = "rate"   // a 0/1 metric's mean: shown as a percentage, lifts in points
	UnitMS      = "ms"     // milliseconds
	UnitSeconds = "s"      // seconds
	UnitTokens  = "tokens" // tokens
	UnitCost    = "cost"   // the variants' price currency
	UnitScore   = "score"  // a rating
)

// MetricInfo is everything abgate knows about a metric: the one place the
// recorder, validation, the feedback API, the policy and the reports read
// it from.
type MetricInfo struct {
	Name   string
	Source MetricSource
	// Kind is what one observation is: binary (0 or 1), count (a whole
	// number) or continuous.
	Kind MetricKind
	// Estimator is how the analysis reads the per-user statistics:
	// stats.Ratio (per observation, Σx/Σy, for every metric but one) or
	// stats.Mean (per user: requests per user).
	Estimator stats.Kind
	Better    Direction
	// Min and Max bound one observation (±Inf: unbounded). The feedback
	// API refuses feedback outside them. A capped request metric
	// (Experiment.Caps) has Max = its cap.
	Min, Max float64
	// UpDown: the feedback API also takes "up" (1) and "down" (0).
	UpDown bool
	// Unit is one of the Unit constants.
	Unit string
	// Label names the metric in a table ("mean latency (ms)"), Noun in a
	// sentence ("mean latency").
	Label, Noun string
	// Covariate is where CUPED's covariate for the metric comes from
	// (Experiment.CUPED): the one place that choice is made.
	Covariate CovariateSource
}

// CovariateSource says what a metric's CUPED covariate z is for a user
// (docs/statistics.md §9.1). Every source is fixed before the user's
// first exposure in the phase, so it holds nothing the experiment caused.
type CovariateSource uint8

const (
	// CovariateNone: the metric gets no covariate (z = 0).
	CovariateNone CovariateSource = iota
	// CovariateHistoryTotal: the user's pre-exposure total x of the same
	// metric (a Mean metric: their requests before exposure).
	CovariateHistoryTotal
	// CovariateHistoryRatio: the user's pre-exposure ratio x/y of the
	// same metric (a Ratio metric: their own error rate, mean latency,
	// thumbs-up rate before exposure), on the metric's scale and so inside
	// its bounds. A user with no pre-exposure observation of it gets
	// MissingCovariate.
	CovariateHistoryRatio
)

// CovariateZ is z for a user whose pre-exposure totals of the metric are
// (x, y) (both 0 when the gateway saw nothing of them).
func (m MetricInfo) CovariateZ(x, y float64) float64 {
	switch m.Covariate {
	case CovariateHistoryTotal:
		return x
	case CovariateHistoryRatio:
		if y > 0 {
			return min(max(x/y, m.Min), m.Max)
		}
		return m.MissingCovariate()
	}
	return 0
}

// MissingCovariate is the z of a user without pre-exposure observations
// of a CovariateHistoryRatio metric: 0, moved into the metric's bounds
// (a 1-5 rating gets 1), so z stays inside them for the bounded test. Any
// constant keeps the adjusted effect unbiased, because whether a user has
// history is fixed before exposure and so independent of their arm; a
// constant far from the users' typical value only lowers the variance
// removed (the slope fits both groups at once).
func (m MetricInfo) MissingCovariate() float64 {
	if m.Covariate != CovariateHistoryRatio {
		return 0
	}
	return min(max(0, m.Min), m.Max)
}

var inf = math.Inf(1)

// builtinMetrics declares every built-in metric, in the documented order:
// the request metrics in the order of the recorder's aggregation, then the
// feedback metrics, then the derived ones, then the judge's.
var builtinMetrics = [...]MetricInfo{
	{Name: MetricRequests, Source: SourceRequest, Kind: MetricCount, Estimator: stats.Mean, Better: NoDirection,
		Min: 0, Max: inf, Unit: UnitNone, Label: "requests per user", Noun: "requests per user",
		Covariate: CovariateHistoryTotal},
	{Name: MetricLatencyMS, Source: SourceRequest, Kind: MetricContinuous, Estimator: stats.Ratio, Better: LowerIsBetter,
		Min: 0, Max: inf, Unit: UnitMS, Label: "mean latency (ms)", Noun: "mean latency", Covariate: CovariateHistoryRatio},
	{Name: MetricTTFBMS, Source: SourceRequest, Kind: MetricContinuous, Estimator: stats.Ratio, Better: LowerIsBetter,
		Min: 0, Max: inf, Unit: UnitMS, Label: "time to first byte (ms)", Noun: "time to first byte", Covariate: CovariateHistoryRatio},
	{Name: MetricMaxGapMS, Source: SourceRequest, Kind: MetricContinuous, Estimator: stats.Ratio, Better: LowerIsBetter,
		Min: 0, Max: inf, Unit: UnitMS, Label: "longest stream pause (ms)", Noun: "longest stream pause", Covariate: CovariateHistoryRatio},
	{Name: MetricError, Source: SourceRequest, Kind: MetricBinary, Estimator: stats.Ratio, Better: LowerIsBetter,
		Min: 0, Max: 1, Unit: UnitRate, Label: "error rate", Noun: "error rate", Covariate: CovariateHistoryRatio},
	{Name: MetricFallback, Source: SourceRequest, Kind: MetricBinary, Estimator: stats.Ratio, Better: LowerIsBetter,
		Min: 0, Max: 1, Unit: UnitRate, Label: "fallback rate", Noun: "fallback rate", Covariate: CovariateHistoryRatio},
	{Name: MetricStreamAborted, Source: SourceRequest, Kind: MetricBinary, Estimator: stats.Ratio, Better: LowerIsBetter,
		Min: 0, Max: 1, Unit: UnitRate, Label: "aborted-stream rate", Noun: "aborted-stream rate", Covariate: CovariateHistoryRatio},
	// Tokens are lower-is-better: more tokens cost more and take longer.
	// (The reports once showed them without a direction while the
	// controller judged them lower-is-better.)
	{Name: MetricPromptTokens, Source: SourceRequest, Kind: MetricCount, Estimator: stats.Ratio, Better: LowerIsBetter,
		Min: 0, Max: inf, Unit: UnitTokens, Label: "prompt tokens per request", Noun: "prompt tokens per request", Covariate: CovariateHistoryRatio},
	{Name: MetricCompletionTokens, Source: SourceRequest, Kind: MetricCount, Estimator: stats.Ratio, Better: LowerIsBetter,
		Min: 0, Max: inf, Unit: UnitTokens, Label: "completion tokens per request", Noun: "completion tokens per request", Covariate: CovariateHistoryRatio},
	{Name: MetricCost, Source: SourceRequest, Kind: MetricContinuous, Estimator: stats.Ratio, Better: LowerIsBetter,
		Min: 0, Max: inf, Unit: UnitCost, Label: "cost per request", Noun: "cost per request", Covariate: CovariateHistoryRatio},

	{Name: MetricThumbs, Source: SourceFeedback, Kind: MetricBinary, Estimator: stats.Ratio, Better: HigherIsBetter,
		Min: 0, Max: 1, UpDown: true, Unit: UnitRate, Label: "thumbs-up rate", Noun: "thumbs-up rate", Covariate: CovariateHistoryRatio},
	{Name: MetricRating, Source: SourceFeedback, Kind: MetricCount, Estimator: stats.Ratio, Better: HigherIsBetter,
		Min: 1, Max: 5, Unit: UnitScore, Label: "mean rating (1-5)", Noun: "mean rating", Covariate: CovariateHistoryRatio},
	{Name: MetricCorrection, Source: SourceFeedback, Kind: MetricBinary, Estimator: stats.Ratio, Better: LowerIsBetter,
		Min: 0, Max: 1, Unit: UnitRate, Label: "correction rate", Noun: "correction rate", Covariate: CovariateHistoryRatio},
	{Name: MetricReformulated, Source: SourceFeedback, Kind: MetricBinary, Estimator: stats.Ratio, Better: LowerIsBetter,
		Min: 0, Max: 1, Unit: UnitRate, Label: "reformulation rate", Noun: "reformulation rate", Covariate: CovariateHistoryRatio},
	{Name: MetricTaskCompleted, Source: SourceFeedback, Kind: MetricBinary, Estimator: stats.Ratio, Better: HigherIsBetter,
		Min: 0, Max: 1, Unit: UnitRate, Label: "task completion rate", Noun: "task completion rate", Covariate: CovariateHistoryRatio},
	{Name: MetricCompletionSeconds, Source: SourceFeedback, Kind: MetricContinuous, Estimator: stats.Ratio, Better: LowerIsBetter,
		Min: 0, Max: 7 * 24 * 3600, Unit: UnitSeconds, Label: "time to complete a task (s)", Noun: "time to complete a task", Covariate: CovariateHistoryRatio},

	{Name: MetricCostPerSuccess, Source: SourceDerived, Kind: MetricContinuous, Estimator: stats.Ratio, Better: LowerIsBetter,
		Min: 0, Max: inf, Unit: UnitCost, Label: "cost per success", Noun: "cost per successful outcome", Covariate: CovariateHistoryRatio},
	{Name: MetricCacheHitRatio, Source: SourceDerived, Kind: MetricContinuous, Estimator: stats.Ratio, Better: HigherIsBetter,
		Min: 0, Max: 1, Unit: UnitRate, Label: "prompt cache hit ratio", Noun: "prompt cache hit ratio", Covariate: CovariateHistoryRatio},
	{Name: MetricJudgeScore, Source: SourceJudge, Kind: MetricContinuous, Estimator: stats.Ratio, Better: HigherIsBetter,
		Min: 0, Max: 1, Unit: UnitRate, Label: "judge win rate (ties half)", Noun: "judge win rate"},
	{Name: MetricJudgeFirst, Source: SourceJudge, Kind: MetricContinuous, Estimator: stats.Ratio, Better: NoDirection,
		Min: 0, Max: 1, Unit: UnitRate, Label: "judge first-position preference", Noun: "judge first-position preference"},
	{Name: MetricJudgeServed, Source: SourceJudge, Kind: MetricContinuous, Estimator: stats.Ratio, Better: HigherIsBetter,
		Min: 0, Max: 1, Unit: UnitRate, Label: "judge score of the served answer", Noun: "judge score of the served answer"},
}

// BuiltinMetrics returns every built-in metric in the documented order:
// the request metrics (as the recorder aggregates them), then the
// feedback metrics. Custom metrics can't reuse these names.
func BuiltinMetrics() []MetricInfo { return slices.Clone(builtinMetrics[:]) }

// IsBuiltinMetric reports whether name is a built-in metric.
func IsBuiltinMetric(name string) bool {
	_, ok := builtinMetric(name)
	return ok
}

func builtinMetric(name string) (MetricInfo, bool) {
	for _, m := range builtinMetrics {
		if m.Name == name {
			return m, true
		}
	}
	return MetricInfo{}, false
}

// LookupMetric returns what is known about metric name in experiment e
// (nil: built-ins only): a built-in, one declared in e's metrics section,
// or, for a segment's internal name (SegmentMetric), the metric it
// segments, so the result's Name is then the metric's, not name.
func LookupMetric(e *Experiment, name string) (MetricInfo, bool) {
	if base, _, _, ok := ParseSegmentMetric(name); ok {
		if IsSegmentMetric(base) {
			return MetricInfo{}, false
		}
		name = base
	}
	if m, ok := builtinMetric(name); ok {
		if c, ok := MetricCap(e, name); ok {
			m.Max = c // the recorder clamps each value at the cap (caps.go)
		}
		return m, true
	}
	if e == nil {
		return MetricInfo{}, false
	}
	for i := range e.Metrics {
		if e.Metrics[i].Name == name {
			return customMetric(&e.Metrics[i]), true
		}
	}
	return MetricInfo{}, false
}

// customMetric is the MetricInfo of a metric declared in the config:
// feedback, per observation, bounded by its kind and its min and max,
// higher-is-better unless it says otherwise.
func customMetric(m *Metric) MetricInfo {
	in := MetricInfo{Name: m.Name, Source: SourceFeedback, Kind: m.Kind, Estimator: stats.Ratio, Better: HigherIsBetter,
		Min: -inf, Max: inf, Unit: UnitNone, Label: m.Name, Noun: m.Name, Covariate: CovariateHistoryRatio}
	switch m.Kind {
	case MetricBinary:
		in.Min, in.Max = 0, 1
		in.Unit, in.Label, in.Noun = UnitRate, m.Name+" rate", m.Name+" rate"
	case MetricCount:
		in.Min = 0
	}
	if m.Min != nil {
		in.Min = math.Max(in.Min, *m.Min)
	}
	if m.Max != nil {
		in.Max = math.Min(in.Max, *m.Max)
	}
	if m.HigherIsBetter != nil && !*m.HigherIsBetter {
		in.Better = LowerIsBetter
	}
	return in
}
