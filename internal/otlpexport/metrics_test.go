package otlpexport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
)

// clearMetricsEnv unsets every variable the exporters read, the metric
// ones included.
func clearMetricsEnv(t *testing.T) {
	clearEnv(t)
	for _, n := range []string{"ENDPOINT", "HEADERS", "TIMEOUT", "COMPRESSION", "CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY", "INSECURE", "PROTOCOL",
		"TEMPORALITY_PREFERENCE", "DEFAULT_HISTOGRAM_AGGREGATION"} {
		t.Setenv(envPrefix+"METRICS_"+n, "")
	}
}

func decodeMetrics(t *testing.T, b []byte) *colmetricpb.ExportMetricsServiceRequest {
	t.Helper()
	var req colmetricpb.ExportMetricsServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatalf("decode request: %v", err)
	}
	return &req
}

// allKinds are the SDK's instrument kinds.
var allKinds = []sdkmetric.InstrumentKind{
	sdkmetric.InstrumentKindCounter,
	sdkmetric.InstrumentKindUpDownCounter,
	sdkmetric.InstrumentKindHistogram,
	sdkmetric.InstrumentKindObservableCounter,
	sdkmetric.InstrumentKindObservableUpDownCounter,
	sdkmetric.InstrumentKindObservableGauge,
	sdkmetric.InstrumentKindGauge,
}

// recordedMetrics collects, from a real MeterProvider, every synchronous
// and observable instrument (int64 and float64), explicit and exponential
// histograms, exemplars with trace and span ids and filtered attributes,
// two scopes (one with a version, attributes and schema URL) and a
// resource with a schema URL.
func recordedMetrics(t *testing.T) *metricdata.ResourceMetrics {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	res := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0",
		attribute.String("service.name", "abgate"), attribute.Int("replica", 2))
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(reader),
		sdkmetric.WithResource(res),
		sdkmetric.WithExemplarFilter(exemplar.AlwaysOnFilter),
		sdkmetric.WithView(
			// Exponential buckets, with exemplars of filtered attributes.
			sdkmetric.NewView(sdkmetric.Instrument{Name: "latency.exp"}, sdkmetric.Stream{
				Aggregation:     sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 20, MaxScale: 5},
				AttributeFilter: attribute.NewAllowKeysFilter("arm"),
			}),
			sdkmetric.NewView(sdkmetric.Instrument{Name: "tokens.exp"}, sdkmetric.Stream{
				Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 8, MaxScale: 3, NoMinMax: true},
			}),
			sdkmetric.NewView(sdkmetric.Instrument{Name: "latency.nominmax"}, sdkmetric.Stream{
				Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: []float64{1, 10}, NoMinMax: true},
			}),
			sdkmetric.NewView(sdkmetric.Instrument{Name: "requests"}, sdkmetric.Stream{
				AttributeFilter: attribute.NewAllowKeysFilter("arm", "status"),
			}),
		),
	)
	gw := mp.Meter("abgate/gateway", metric.WithInstrumentationVersion("1.2.3"),
		metric.WithSchemaURL("https://opentelemetry.io/schemas/1.24.0"),
		metric.WithInstrumentationAttributes(attribute.String("scope.attr", "x")))
	rc := mp.Meter("abgate/recorder")

	sampled := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	traced := trace.ContextWithSpanContext(context.Background(), sampled)
	ctx := context.Background()
	arms := []attribute.Set{
		attribute.NewSet(attribute.String("arm", "base"), attribute.String("experiment", "exp-1")),
		attribute.NewSet(attribute.String("arm", "candidate"), attribute.String("experiment", "exp-1"), attribute.Bool("fallback", true)),
		attribute.NewSet(),
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	requests, err := gw.Int64Counter("requests", metric.WithDescription("proxied requests"), metric.WithUnit("{request}"))
	must(err)
	cost, err := gw.Float64Counter("cost", metric.WithUnit("USD"))
	must(err)
	inflight, err := gw.Int64UpDownCounter("inflight")
	must(err)
	balance, err := gw.Float64UpDownCounter("balance")
	must(err)
	latency, err := gw.Float64Histogram("latency", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.01, 0.1, 1, 10))
	must(err)
	tokens, err := gw.Int64Histogram("tokens")
	must(err)
	latencyExp, err := gw.Float64Histogram("latency.exp")
	must(err)
	tokensExp, err := gw.Int64Histogram("tokens.exp")
	must(err)
	noMinMax, err := gw.Float64Histogram("latency.nominmax")
	must(err)
	queue, err := rc.Int64Gauge("queue")
	must(err)
	ratio, err := rc.Float64Gauge("ratio")
	must(err)
	for i, arm := range arms {
		set := metric.WithAttributeSet(arm)
		withStatus := metric.WithAttributes(append(arm.ToSlice(), attribute.Int("status", 200), attribute.String("user", "u-1"))...)
		requests.Add(traced, int64(10*i+1), withStatus)
		requests.Add(ctx, 0, set)
		cost.Add(traced, 0.25*float64(i), set)
		inflight.Add(ctx, int64(2-3*i), set)
		balance.Add(ctx, -1.5*float64(i), set)
		for j := range 5 {
			latency.Record(traced, 0.005*math.Pow(10, float64(j)), set)
			tokens.Record(ctx, int64(100*j), set)
			latencyExp.Record(traced, -0.5+0.3*float64(j), withStatus)
			tokensExp.Record(ctx, int64(j*j), set)
			noMinMax.Record(ctx, float64(j), set)
		}
		queue.Record(ctx, int64(i*7), set)
		ratio.Record(traced, 1/float64(i+1), set)
	}
	_, err = gw.Int64ObservableCounter("uptime", metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
		o.Observe(12345)
		return nil
	}))
	must(err)
	_, err = gw.Float64ObservableCounter("cpu", metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
		o.Observe(1.5, metric.WithAttributeSet(arms[0]))
		return nil
	}))
	must(err)
	_, err = rc.Int64ObservableUpDownCounter("pending", metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
		o.Observe(-4)
		return nil
	}))
	must(err)
	_, err = rc.Float64ObservableUpDownCounter("drift", metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
		o.Observe(0)
		return nil
	}))
	must(err)
	_, err = rc.Int64ObservableGauge("goroutines", metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
		o.Observe(42, metric.WithAttributeSet(arms[1]))
		return nil
	}))
	must(err)
	_, err = rc.Float64ObservableGauge("heap", metric.WithDescription(strings.Repeat("a long description ", 10)), metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
		o.Observe(math.Inf(1))
		o.Observe(math.Copysign(0, -1), metric.WithAttributeSet(arms[0]))
		return nil
	}))
	must(err)

	var rm metricdata.ResourceMetrics
	must(reader.Collect(ctx, &rm))
	return &rm
}

// handBuiltScope is what the SDK does not make: a summary, delta sums,
// empty data point sets, undefined min and max, negative exponential
// buckets, zero and negative values, exemplars with and without ids.
func handBuiltScope() metricdata.ScopeMetrics {
	start := time.Unix(1_700_000_000, 123456789)
	now := start.Add(time.Minute)
	attrs := attribute.NewSet(attribute.String("arm", "base"), attribute.Int64Slice("ints", []int64{1, -2}))
	exInt := []metricdata.Exemplar[int64]{
		{FilteredAttributes: []attribute.KeyValue{attribute.String("user", "u-1")}, Time: now, Value: -7,
			SpanID: []byte{1, 2, 3, 4, 5, 6, 7, 8}, TraceID: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
		{Time: now, Value: 0},
	}
	exFloat := []metricdata.Exemplar[float64]{{Time: now, Value: 0.5, SpanID: []byte{8, 7, 6, 5, 4, 3, 2, 1}}, {Value: 0}}
	return metricdata.ScopeMetrics{
		Scope: instrumentation.Scope{Name: "hand/built", Version: "v0", SchemaURL: "https://example.com/schema",
			Attributes: attribute.NewSet(attribute.Bool("b", true))},
		Metrics: []metricdata.Metrics{
			{Name: "empty.gauge", Data: metricdata.Gauge[int64]{}},
			{Name: "empty.sum", Data: metricdata.Sum[float64]{Temporality: metricdata.DeltaTemporality}},
			{Name: "empty.hist", Data: metricdata.Histogram[int64]{Temporality: metricdata.CumulativeTemporality}},
			{Name: "empty.exp", Data: metricdata.ExponentialHistogram[float64]{Temporality: metricdata.DeltaTemporality}},
			{Name: "empty.summary", Data: metricdata.Summary{}},
			{Name: "zero.values", Data: metricdata.Gauge[float64]{DataPoints: []metricdata.DataPoint[float64]{{}, {Value: math.Copysign(0, -1)}}}},
			{Name: "delta.sum", Unit: "1", Data: metricdata.Sum[int64]{
				Temporality: metricdata.DeltaTemporality, IsMonotonic: true,
				DataPoints: []metricdata.DataPoint[int64]{{Attributes: attrs, StartTime: start, Time: now, Value: math.MinInt64, Exemplars: exInt}},
			}},
			{Name: "float.sum", Data: metricdata.Sum[float64]{
				Temporality: metricdata.CumulativeTemporality,
				DataPoints:  []metricdata.DataPoint[float64]{{Time: now, Value: math.NaN(), Exemplars: exFloat}},
			}},
			{Name: "hist.nominmax", Data: metricdata.Histogram[int64]{
				Temporality: metricdata.DeltaTemporality,
				DataPoints: []metricdata.HistogramDataPoint[int64]{
					{Attributes: attrs, StartTime: start, Time: now, Count: 3, Bounds: []float64{0, 5}, BucketCounts: []uint64{1, 0, 2}, Sum: 0, Exemplars: exInt},
					{Count: 1, Bounds: []float64{-1}, BucketCounts: []uint64{0, 1}, Min: metricdata.NewExtrema[int64](-3), Sum: -3}, // Max undefined
				},
			}},
			{Name: "exp.negative", Data: metricdata.ExponentialHistogram[int64]{
				Temporality: metricdata.CumulativeTemporality,
				DataPoints: []metricdata.ExponentialHistogramDataPoint[int64]{
					{
						Attributes: attrs, StartTime: start, Time: now, Count: 9, Sum: -40, Scale: -2, ZeroCount: 2, ZeroThreshold: 1e-9,
						Min: metricdata.NewExtrema[int64](-30), Max: metricdata.NewExtrema[int64](4),
						PositiveBucket: metricdata.ExponentialBucket{Offset: -3, Counts: []uint64{1, 0, 300}},
						NegativeBucket: metricdata.ExponentialBucket{Offset: 5, Counts: []uint64{4}},
						Exemplars:      exInt,
					},
					{Scale: 20, PositiveBucket: metricdata.ExponentialBucket{Counts: []uint64{0}}},
				},
			}},
			{Name: "summary", Description: "quantiles", Data: metricdata.Summary{DataPoints: []metricdata.SummaryDataPoint{
				{Attributes: attrs, StartTime: start, Time: now, Count: 10, Sum: 55.5, QuantileValues: []metricdata.QuantileValue{
					{Quantile: 0, Value: 0.1}, {Quantile: 0.5, Value: 0}, {Quantile: 1, Value: 9}}},
				{Count: 0, Sum: 0},
			}}},
		},
	}
}

// exportBoth sends rm through the official otlpmetrichttp exporter and
// through ours, each to its own collector, and returns the bodies, the
// errors and our collector.
func exportBoth(t *testing.T, rm *metricdata.ResourceMetrics) (official, ours []byte, oerr, yerr error) {
	t.Helper()
	ctx := context.Background()
	oc := newCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", oc.srv.URL+"/v1/metrics")
	oe, err := otlpmetrichttp.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer oe.Shutdown(ctx)
	oerr = oe.Export(ctx, rm)

	yc := newCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", yc.srv.URL+"/v1/metrics")
	e, err := NewMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(ctx)
	// Twice: the second export reuses the buffer.
	for range 2 {
		yerr = e.Export(ctx, rm)
	}
	ob, _ := oc.requests()
	yb, yh := yc.requests()
	if len(ob) != 1 || len(yb) != 2 {
		t.Fatalf("requests: official %d, ours %d", len(ob), len(yb))
	}
	if !bytes.Equal(yb[0], yb[1]) {
		t.Errorf("the second export's body differs from the first's")
	}
	if got := yh[0].Get("Content-Type"); got != "application/x-protobuf" {
		t.Errorf("Content-Type %q", got)
	}
	if p := yc.paths[0]; p != "POST /v1/metrics" {
		t.Errorf("request %q", p)
	}
	return ob[0], yb[0], oerr, yerr
}

func TestMetricsEquivalence(t *testing.T) {
	clearMetricsEnv(t)
	rm := recordedMetrics(t)
	rm.ScopeMetrics = append(rm.ScopeMetrics, handBuiltScope())
	ob, yb, oerr, yerr := exportBoth(t, rm)
	if oerr != nil || yerr != nil {
		t.Fatalf("export: official %v, ours %v", oerr, yerr)
	}
	want, got := decodeMetrics(t, ob), decodeMetrics(t, yb)
	if !proto.Equal(got, want) {
		t.Fatalf("our request differs from the official exporter's:\n%s", metricsDiff(want, got))
	}

	// The message covers what it should (guards against both exporters
	// leaving something out).
	rms := want.ResourceMetrics
	if len(rms) != 1 || len(rms[0].ScopeMetrics) != 3 || rms[0].SchemaUrl == "" {
		t.Fatalf("want 1 resource of 3 scopes, got %v", prototext.Format(want))
	}
	kinds := map[string]int{}
	var exemplars, minmax, ids int
	for _, sm := range rms[0].ScopeMetrics {
		for _, m := range sm.Metrics {
			switch {
			case m.GetGauge() != nil:
				kinds["gauge"]++
				for _, dp := range m.GetGauge().DataPoints {
					exemplars += len(dp.Exemplars)
				}
			case m.GetSum() != nil:
				kinds["sum"]++
				for _, dp := range m.GetSum().DataPoints {
					exemplars += len(dp.Exemplars)
					for _, ex := range dp.Exemplars {
						if len(ex.TraceId) == 16 && len(ex.FilteredAttributes) > 0 {
							ids++
						}
					}
				}
			case m.GetHistogram() != nil:
				kinds["histogram"]++
				for _, dp := range m.GetHistogram().DataPoints {
					if dp.Min != nil {
						minmax++
					}
				}
			case m.GetExponentialHistogram() != nil:
				kinds["exponential"]++
				for _, dp := range m.GetExponentialHistogram().DataPoints {
					exemplars += len(dp.Exemplars)
				}
			case m.GetSummary() != nil:
				kinds["summary"]++
			}
		}
	}
	if kinds["gauge"] < 4 || kinds["sum"] < 8 || kinds["histogram"] < 3 || kinds["exponential"] < 2 || kinds["summary"] < 1 ||
		exemplars < 10 || minmax < 2 || ids < 2 {
		t.Errorf("coverage: %v, %d exemplars (%d with ids and filtered attributes), %d histogram points with min", kinds, exemplars, ids, minmax)
	}
}

// An unknown aggregation (a pointer to a known one, or a type the
// transform does not know) and an unknown temporality: the metric is left
// out, the rest sent, and the export reports the error, as the official
// exporter does.
func TestMetricsUnknownAggregation(t *testing.T) {
	clearMetricsEnv(t)
	type custom struct{ metricdata.Gauge[int64] }
	good := metricdata.Metrics{Name: "good", Data: metricdata.Gauge[int64]{DataPoints: []metricdata.DataPoint[int64]{{Value: 1}}}}
	rm := &metricdata.ResourceMetrics{
		Resource: resource.NewSchemaless(attribute.String("service.name", "abgate")),
		ScopeMetrics: []metricdata.ScopeMetrics{
			{Scope: instrumentation.Scope{Name: "a"}, Metrics: []metricdata.Metrics{
				good,
				{Name: "pointer", Data: &metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality}},
				{Name: "custom", Data: custom{}},
				{Name: "no.temporality", Data: metricdata.Histogram[float64]{}},
			}},
			{Scope: instrumentation.Scope{Name: "only-bad"}, Metrics: []metricdata.Metrics{
				{Name: "no.temporality", Data: metricdata.ExponentialHistogram[int64]{Temporality: 7}},
			}},
			{Metrics: []metricdata.Metrics{good}},
		},
	}
	ob, yb, oerr, yerr := exportBoth(t, rm)
	if oerr == nil || yerr == nil {
		t.Fatalf("errors: official %v, ours %v; want both", oerr, yerr)
	}
	for _, s := range []string{"unknown aggregation", "*metricdata.Sum[int64]", "custom", "unknown temporality", `"no.temporality"`} {
		if !strings.Contains(yerr.Error(), s) {
			t.Errorf("error %q does not mention %s", yerr, s)
		}
	}
	want, got := decodeMetrics(t, ob), decodeMetrics(t, yb)
	if !proto.Equal(got, want) {
		t.Fatalf("our request differs from the official exporter's:\n%s", metricsDiff(want, got))
	}
	if n := len(want.ResourceMetrics[0].ScopeMetrics[0].Metrics); n != 1 {
		t.Errorf("%d metrics in the first scope, want 1", n)
	}
}

// An empty export (no resource, no scope) is sent, as the official
// exporter sends it.
func TestMetricsEmpty(t *testing.T) {
	clearMetricsEnv(t)
	ob, yb, oerr, yerr := exportBoth(t, &metricdata.ResourceMetrics{})
	if oerr != nil || yerr != nil {
		t.Fatalf("export: official %v, ours %v", oerr, yerr)
	}
	if want, got := decodeMetrics(t, ob), decodeMetrics(t, yb); !proto.Equal(got, want) {
		t.Fatalf("our request differs from the official exporter's:\n%s", metricsDiff(want, got))
	}
}

// metricsDiff names the first part of got that is not the official one's.
func metricsDiff(want, got *colmetricpb.ExportMetricsServiceRequest) string {
	if len(want.ResourceMetrics) != len(got.ResourceMetrics) {
		return fmt.Sprintf("%d resources, want %d", len(got.ResourceMetrics), len(want.ResourceMetrics))
	}
	for i, wr := range want.ResourceMetrics {
		gr := got.ResourceMetrics[i]
		if !proto.Equal(wr.Resource, gr.Resource) || wr.SchemaUrl != gr.SchemaUrl {
			return fmt.Sprintf("resource %d:\n got %v %q\nwant %v %q", i, prototext.Format(gr.Resource), gr.SchemaUrl, prototext.Format(wr.Resource), wr.SchemaUrl)
		}
		if len(wr.ScopeMetrics) != len(gr.ScopeMetrics) {
			return fmt.Sprintf("resource %d: %d scopes, want %d", i, len(gr.ScopeMetrics), len(wr.ScopeMetrics))
		}
		for j, ws := range wr.ScopeMetrics {
			gs := gr.ScopeMetrics[j]
			if !proto.Equal(ws.Scope, gs.Scope) || ws.SchemaUrl != gs.SchemaUrl || len(ws.Metrics) != len(gs.Metrics) {
				return fmt.Sprintf("resource %d scope %d:\n got %v %q %d metrics\nwant %v %q %d metrics", i, j,
					prototext.Format(gs.Scope), gs.SchemaUrl, len(gs.Metrics), prototext.Format(ws.Scope), ws.SchemaUrl, len(ws.Metrics))
			}
			for k, w := range ws.Metrics {
				if g := gs.Metrics[k]; !proto.Equal(w, g) {
					return fmt.Sprintf("resource %d scope %d metric %d:\n got %v\nwant %v", i, j, k, prototext.Format(g), prototext.Format(w))
				}
			}
		}
	}
	return "(no difference found)"
}

// TestMetricsSelectors: every temporality and histogram preference gives
// the official exporter's temporality and aggregation for every
// instrument kind; a value the official exporter ignores is an error
// naming the variable.
func TestMetricsSelectors(t *testing.T) {
	const (
		tvar = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
		avar = "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION"
	)
	for _, tc := range []struct {
		temporality, aggregation string
	}{
		{},
		{temporality: "cumulative", aggregation: "explicit_bucket_histogram"},
		{temporality: "delta"},
		{temporality: " Delta "},
		{temporality: "lowmemory", aggregation: "base2_exponential_bucket_histogram"},
		{temporality: "LOWMEMORY", aggregation: " Base2_Exponential_Bucket_Histogram"},
		{aggregation: "base2_exponential_bucket_histogram"},
	} {
		clearMetricsEnv(t)
		t.Setenv(tvar, tc.temporality)
		t.Setenv(avar, tc.aggregation)
		oe, err := otlpmetrichttp.New(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		e, err := NewMetrics(context.Background())
		if err != nil {
			t.Fatalf("%q %q: %v", tc.temporality, tc.aggregation, err)
		}
		for _, k := range allKinds {
			if got, want := e.Temporality(k), oe.Temporality(k); got != want {
				t.Errorf("%q: temporality of %v = %v, want %v", tc.temporality, k, got, want)
			}
			if got, want := e.Aggregation(k), oe.Aggregation(k); !reflect.DeepEqual(got, want) {
				t.Errorf("%q: aggregation of %v = %#v, want %#v", tc.aggregation, k, got, want)
			}
		}
	}
	// Spot checks, so that both agreeing on a mistake shows.
	clearMetricsEnv(t)
	t.Setenv(tvar, "lowmemory")
	t.Setenv(avar, "base2_exponential_bucket_histogram")
	e, err := NewMetrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if e.Temporality(sdkmetric.InstrumentKindCounter) != metricdata.DeltaTemporality ||
		e.Temporality(sdkmetric.InstrumentKindUpDownCounter) != metricdata.CumulativeTemporality ||
		e.Temporality(sdkmetric.InstrumentKindObservableCounter) != metricdata.CumulativeTemporality {
		t.Errorf("lowmemory: delta for synchronous counters and histograms only")
	}
	if _, ok := e.Aggregation(sdkmetric.InstrumentKindHistogram).(sdkmetric.AggregationBase2ExponentialHistogram); !ok {
		t.Errorf("base2: histogram aggregation %T", e.Aggregation(sdkmetric.InstrumentKindHistogram))
	}

	for _, tc := range []struct{ name, value string }{
		{tvar, "deltas"},
		{avar, "exponential"},
	} {
		clearMetricsEnv(t)
		t.Setenv(tc.name, tc.value)
		if _, err := NewMetrics(context.Background()); err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s=%s: err = %v, want one naming the variable", tc.name, tc.value, err)
		}
	}
}

// oneMetric is one counter's data.
func oneMetric() *metricdata.ResourceMetrics {
	return &metricdata.ResourceMetrics{
		Resource: resource.NewSchemaless(attribute.String("service.name", "abgate")),
		ScopeMetrics: []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: "t"}, Metrics: []metricdata.Metrics{{
			Name: "one",
			Data: metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true,
				DataPoints: []metricdata.DataPoint[int64]{{Attributes: attribute.NewSet(attribute.String("k", "v")), Value: 3}}},
		}}}},
	}
}

// metricExporterAt is an exporter configured from the environment,
// sending to endpoint (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT), retrying by r.
func metricExporterAt(t *testing.T, endpoint string, r retryPolicy) *MetricExporter {
	t.Helper()
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint)
	e, err := NewMetrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.c.retry = r
	return e
}

func TestMetricsGzipAndHeaders(t *testing.T) {
	clearMetricsEnv(t)
	c := newCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", c.srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=generic")
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "api-key=se%20cret, X-Tenant = abgate ")
	e, err := NewMetrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	for range 2 {
		if err := e.Export(context.Background(), oneMetric()); err != nil {
			t.Fatal(err)
		}
	}
	checkGzipAndHeaders(t, c, "/v1/metrics", func(b []byte) string {
		return decodeMetrics(t, b).ResourceMetrics[0].ScopeMetrics[0].Metrics[0].Name
	})
}

func TestMetricsRetryThenSuccess(t *testing.T) {
	clearMetricsEnv(t)
	c := newCollector(t)
	c.answer = func(n int, w http.ResponseWriter) bool {
		if n == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	e := metricExporterAt(t, c.srv.URL+"/v1/metrics", retryPolicy{initial: time.Millisecond, maxInterval: 2 * time.Millisecond, maxElapsed: time.Minute})
	if err := e.Export(context.Background(), oneMetric()); err != nil {
		t.Fatalf("export after a 503: %v", err)
	}
	bodies, _ := c.requests()
	if len(bodies) != 2 || !bytes.Equal(bodies[0], bodies[1]) {
		t.Fatalf("%d requests, want the same body twice", len(bodies))
	}
}

func TestMetricsPartialSuccess(t *testing.T) {
	clearMetricsEnv(t)
	c := newCollector(t)
	c.answer = func(n int, w http.ResponseWriter) bool {
		b, err := proto.Marshal(&colmetricpb.ExportMetricsServiceResponse{PartialSuccess: &colmetricpb.ExportMetricsPartialSuccess{RejectedDataPoints: 5, ErrorMessage: "too many series"}})
		if err != nil {
			panic(err)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
		return true
	}
	e := metricExporterAt(t, c.srv.URL+"/v1/metrics", defaultRetry)
	err := e.Export(context.Background(), oneMetric())
	if err == nil || !strings.Contains(err.Error(), "too many series") || !strings.Contains(err.Error(), "5 data points") ||
		!strings.Contains(err.Error(), "metrics export") {
		t.Fatalf("err = %v, want the partial success", err)
	}
}

func TestMetricsShutdown(t *testing.T) {
	clearMetricsEnv(t)
	c := newCollector(t)
	e := metricExporterAt(t, c.srv.URL+"/v1/metrics", defaultRetry)
	ctx := context.Background()
	if err := e.Export(ctx, oneMetric()); err != nil {
		t.Fatal(err)
	}
	if err := e.ForceFlush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := e.ForceFlush(canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("flush with a canceled context: %v", err)
	}
	for range 2 {
		if err := e.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	}
	if err := e.Export(ctx, oneMetric()); !errors.Is(err, errShutdown) {
		t.Fatalf("export after shutdown: %v", err)
	}
	if bodies, _ := c.requests(); len(bodies) != 1 {
		t.Fatalf("%d requests, want 1", len(bodies))
	}
}

func TestMetricsConfigFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env map[string]string
		url string
		err string
	}{
		{url: "http://localhost:4318/v1/metrics"},
		{env: map[string]string{"ENDPOINT": "http://collector:4318"}, url: "http://collector:4318/v1/metrics"},
		{env: map[string]string{"ENDPOINT": "https://collector:4318/prefix/"}, url: "https://collector:4318/prefix/v1/metrics"},
		{env: map[string]string{"ENDPOINT": "http://a:1", "METRICS_ENDPOINT": "http://b:2/custom"}, url: "http://b:2/custom"},
		{env: map[string]string{"METRICS_ENDPOINT": "http://b:2"}, url: "http://b:2/"},
		{env: map[string]string{"TRACES_ENDPOINT": "http://b:2/v1/traces"}, url: "http://localhost:4318/v1/metrics"},
		{env: map[string]string{"METRICS_ENDPOINT": "::nope"}, err: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"},
		{env: map[string]string{"METRICS_TIMEOUT": "soon"}, err: "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"},
	} {
		getenv := func(n string) string { return tc.env[strings.TrimPrefix(n, envPrefix)] }
		cfg, err := configFromEnv(metrics, getenv, func(string) ([]byte, error) { return nil, errors.New("no files") })
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: err = %v, want one naming %s", tc.env, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
			continue
		}
		if cfg.url != tc.url {
			t.Errorf("%v: url %q, want %q", tc.env, cfg.url, tc.url)
		}
	}
}
