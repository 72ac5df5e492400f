package otlpexport

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

var metrics = signal{name: "metrics", path: "/v1/metrics", items: "data points"}

// MetricExporter sends metrics to an OTLP/HTTP endpoint as protobuf, the
// request the official otlpmetrichttp exporter sends, without linking
// google.golang.org/grpc (otlpmetrichttp imports the generated collector
// package, whose service stubs import it: 1.35 MiB of idle RSS). It
// implements sdkmetric.Exporter.
type MetricExporter struct {
	c           *client
	temporality sdkmetric.TemporalitySelector
	aggregation sdkmetric.AggregationSelector
	mu          sync.Mutex // guards enc: one export at a time
	enc         metricEncoder
}

var _ sdkmetric.Exporter = (*MetricExporter)(nil)

// NewMetrics returns a metric exporter configured from the environment as
// the official otlpmetrichttp exporter reads it: the variables New
// documents, with METRICS_ in place of TRACES_ (the generic endpoint gets
// "/v1/metrics" appended), and
//
//	OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE
//	    cumulative (default), delta or lowmemory
//	OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION
//	    explicit_bucket_histogram (default) or
//	    base2_exponential_bucket_histogram
//
// Where the official exporter logs a bad value and ignores it, NewMetrics
// returns an error naming the variable.
func NewMetrics(ctx context.Context) (*MetricExporter, error) {
	ts, as, err := metricSelectors(os.Getenv)
	if err != nil {
		return nil, err
	}
	c, err := newClient(ctx, metrics, os.Getenv, os.ReadFile)
	if err != nil {
		return nil, err
	}
	return &MetricExporter{c: c, temporality: ts, aggregation: as}, nil
}

// metricSelectors reads the temporality and histogram preferences as the
// official oconf does (trimmed, any case), mapping them to the same SDK
// selectors.
func metricSelectors(getenv func(string) string) (sdkmetric.TemporalitySelector, sdkmetric.AggregationSelector, error) {
	ts := sdkmetric.CumulativeTemporalitySelector
	const tname = envPrefix + "METRICS_TEMPORALITY_PREFERENCE"
	if v := strings.TrimSpace(getenv(tname)); v != "" {
		switch strings.ToLower(v) {
		case "cumulative":
		case "delta":
			ts = sdkmetric.DeltaTemporalitySelector
		case "lowmemory":
			ts = sdkmetric.LowMemoryTemporalitySelector
		default:
			return nil, nil, fmt.Errorf("%s=%q: want cumulative, delta or lowmemory", tname, v)
		}
	}
	as := sdkmetric.DefaultAggregationSelector
	const aname = envPrefix + "METRICS_DEFAULT_HISTOGRAM_AGGREGATION"
	if v := strings.TrimSpace(getenv(aname)); v != "" {
		switch strings.ToLower(v) {
		case "explicit_bucket_histogram":
		case "base2_exponential_bucket_histogram":
			as = base2HistogramSelector
		default:
			return nil, nil, fmt.Errorf("%s=%q: want explicit_bucket_histogram or base2_exponential_bucket_histogram", aname, v)
		}
	}
	return ts, as, nil
}

// base2HistogramSelector is the official exporter's selector for
// base2_exponential_bucket_histogram: the specification's defaults
// (160 buckets, scale 20, min and max kept) for histograms.
func base2HistogramSelector(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	if k == sdkmetric.InstrumentKindHistogram {
		return sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}
	}
	return sdkmetric.DefaultAggregationSelector(k)
}

// Temporality returns the temporality OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE
// asks for k.
func (e *MetricExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return e.temporality(k)
}

// Aggregation returns the aggregation for k: the SDK's default, or an
// exponential histogram for histograms when
// OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION asks for it.
func (e *MetricExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return e.aggregation(k)
}

// Export encodes rm as one ExportMetricsServiceRequest and posts it,
// retrying as the official exporter does until ctx ends. As the official
// one, it sends what it can encode: a metric of an unknown aggregation or
// temporality is left out and reported in the error.
func (e *MetricExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	if e.c.stopped.Err() != nil {
		return errShutdown
	}
	if rm == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	body, encErr := e.enc.encode(rm)
	if err := e.c.export(ctx, body); err != nil {
		if encErr != nil {
			return fmt.Errorf("incomplete metrics (%w): %w", encErr, err)
		}
		return err
	}
	return encErr
}

// ForceFlush returns ctx.Err(): the exporter holds nothing to flush.
func (e *MetricExporter) ForceFlush(ctx context.Context) error {
	return ctx.Err()
}

// Shutdown makes later exports fail and cancels one in flight. It is
// idempotent.
func (e *MetricExporter) Shutdown(ctx context.Context) error {
	e.c.close()
	return ctx.Err()
}
