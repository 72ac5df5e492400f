// Package telemetry gives operators abgate's numbers in the shape their
// tools expect: OpenTelemetry instruments, named after the GenAI semantic
// conventions where one exists, exposed for Prometheus at /metrics and
// exported over OTLP when the OTEL_* variables ask for it.
//
// Outcomes wraps the gateway's recorder: every proxied request's Outcome
// is counted by experiment and variant (requests, errors, fallbacks,
// duration, time to first token, tokens, cost) before it goes on to the
// recorder. Labels hold only bounded values: experiment ids, variant
// names and models from the config, never a user id.
//
// It imports experiments (the Outcome and the config) and OpenTelemetry,
// and nothing of abgate's services: cmd wires their gauges in through
// callbacks (see Gauges). It also imports internal/oaierr, so a scrape
// that fails is answered in OpenAI's error shape like every other path.
package telemetry

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/abgate/abgate/experiments"
)

// Attribute keys. GenAI semantic-convention keys where one fits, abgate's
// own under "abgate.".
const (
	AttrExperiment = "abgate.experiment"
	AttrVariant    = "abgate.variant"
	AttrModel      = "gen_ai.request.model"
	AttrTokenType  = "gen_ai.token.type"
	AttrErrorType  = "error.type"
	AttrAction     = "abgate.action"
	AttrFeature    = "abgate.drift.feature"
)

// Instrument names.
const (
	MetricDuration    = "gen_ai.client.operation.duration"  // s, histogram
	MetricTTFT        = "gen_ai.server.time_to_first_token" // s, histogram
	MetricTokenUsage  = "gen_ai.client.token.usage"         // {token}, histogram
	MetricRequests    = "abgate.requests"                   // counter
	MetricErrors      = "abgate.errors"                     // counter
	MetricFallbacks   = "abgate.fallbacks"                  // counter
	MetricCost        = "abgate.cost"                       // counter, in the variants' price unit
	MetricLeader      = "abgate.controller.leader"          // gauge, 1 on the leading replica
	MetricTransitions = "abgate.controller.transitions"     // counter, by action
	MetricDriftAlerts = "abgate.drift.alerts"               // counter
)

// Observer is what the gateway sends outcomes to (gateway.Recorder).
type Observer interface {
	Observe(experiments.Outcome)
}

// Outcomes counts every Outcome, then hands it to the next Observer.
type Outcomes struct {
	next     Observer
	variants func() *experiments.Config

	duration, ttft, tokens         metric.Float64Histogram
	requests, errors, fallbacks    metric.Int64Counter
	cost                           metric.Float64Counter
	sets                           sync.Map // armKey → *armSets
	inputTokens, outputTokens, err attribute.KeyValue
}

type armKey struct {
	cfg        *experiments.Config
	experiment string
	variant    int
}

// armSets are an arm's precomputed attribute options, as slices so that
// passing them (opts...) allocates nothing on the request path.
type armSets struct {
	add                        []metric.AddOption
	arm, input, output, failed []metric.RecordOption
}

// Duration buckets (seconds): the GenAI convention's advice, which spans
// a cached reply (10 ms) to a long generation (80 s).
var durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}

// Token-count buckets: the GenAI convention's advice.
var tokenBuckets = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}

// NewOutcomes returns the counting Observer in front of next. config
// returns the live config, to name each Outcome's variant and model.
func NewOutcomes(next Observer, mp metric.MeterProvider, config func() *experiments.Config) (*Outcomes, error) {
	m := mp.Meter("github.com/abgate/abgate/telemetry")
	o := &Outcomes{next: next, variants: config,
		inputTokens:  attribute.String(AttrTokenType, "input"),
		outputTokens: attribute.String(AttrTokenType, "output"),
		err:          attribute.String(AttrErrorType, "upstream"),
	}
	var errs [7]error
	o.duration, errs[0] = m.Float64Histogram(MetricDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of proxied model requests, arrival to last byte."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	o.ttft, errs[1] = m.Float64Histogram(MetricTTFT, metric.WithUnit("s"),
		metric.WithDescription("Time to the first byte of the response body (the first chunk of a stream)."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	o.tokens, errs[2] = m.Float64Histogram(MetricTokenUsage, metric.WithUnit("{token}"),
		metric.WithDescription("Tokens per request, by type (input, output); requests whose usage is unknown are not counted."),
		metric.WithExplicitBucketBoundaries(tokenBuckets...))
	o.requests, errs[3] = m.Int64Counter(MetricRequests, metric.WithUnit("{request}"),
		metric.WithDescription("Proxied model requests."))
	o.errors, errs[4] = m.Int64Counter(MetricErrors, metric.WithUnit("{request}"),
		metric.WithDescription("Requests that ended in an upstream 5xx, timeout or connection error."))
	o.fallbacks, errs[5] = m.Int64Counter(MetricFallbacks, metric.WithUnit("{request}"),
		metric.WithDescription("Candidate requests the base served after the candidate failed."))
	o.cost, errs[6] = m.Float64Counter(MetricCost, metric.WithUnit("{currency}"),
		metric.WithDescription("Spend from the variants' prices."))
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Observe records o's measurements, then passes it on.
func (t *Outcomes) Observe(o experiments.Outcome) {
	s := t.arm(o.Experiment, o.Variant)
	ctx := context.Background()
	t.requests.Add(ctx, 1, s.add...)
	if o.Error {
		t.errors.Add(ctx, 1, s.add...)
		t.duration.Record(ctx, o.Latency.Seconds(), s.failed...)
	} else {
		t.duration.Record(ctx, o.Latency.Seconds(), s.arm...)
	}
	if o.Fallback {
		t.fallbacks.Add(ctx, 1, s.add...)
	}
	if o.TTFB > 0 {
		t.ttft.Record(ctx, o.TTFB.Seconds(), s.arm...)
	}
	if !o.UsageMissing {
		t.tokens.Record(ctx, float64(o.PromptTokens), s.input...)
		t.tokens.Record(ctx, float64(o.CompletionTokens), s.output...)
	}
	if o.Cost > 0 {
		t.cost.Add(ctx, o.Cost, s.add...)
	}
	if t.next != nil {
		t.next.Observe(o)
	}
}

// arm returns the attribute sets of (experiment, variant) under the live
// config; a reload makes new ones (names may change), and the old
// entries are few and small.
func (t *Outcomes) arm(exp string, v int) *armSets {
	cfg := t.variants()
	k := armKey{cfg, exp, v}
	if s, ok := t.sets.Load(k); ok {
		return s.(*armSets)
	}
	name, model := "unknown", "unknown"
	if e := cfg.Experiment(exp); e != nil && v >= 0 && v < len(e.Variants) {
		name, model = e.Variants[v].Name, e.Variants[v].Model
	}
	base := []attribute.KeyValue{
		attribute.String(AttrExperiment, exp), attribute.String(AttrVariant, name), attribute.String(AttrModel, model),
	}
	with := func(kv ...attribute.KeyValue) []metric.RecordOption {
		return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(append(append([]attribute.KeyValue(nil), base...), kv...)...))}
	}
	s := &armSets{
		add:    []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(base...))},
		arm:    with(),
		input:  with(t.inputTokens),
		output: with(t.outputTokens),
		failed: with(t.err),
	}
	actual, _ := t.sets.LoadOrStore(k, s)
	return actual.(*armSets)
}
