package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/abgate/abgate/internal/otlpexport"
	"github.com/abgate/abgate/telemetry"
)

// tracing holds the process's telemetry pipelines, if any.
type tracing struct {
	enabled  bool // traces are exported
	provider *sdktrace.TracerProvider
	meters   *sdkmetric.MeterProvider
	// metrics serves the meters for Prometheus (/metrics); always set.
	metrics http.Handler
	// exported: metrics are also pushed (OTLP or console).
	exported bool
}

// setupTracing installs the W3C trace-context propagator always (so a
// trace the client started reaches the upstream even when abgate exports
// nothing), and trace and metric pipelines only when the standard OTEL_*
// variables ask for them. With none set, spans and instruments are
// no-ops and cost nothing.
//
//	OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER: otlp, console or none
//	(traces default to otlp when an OTLP endpoint is set)
//	OTEL_EXPORTER_OTLP_ENDPOINT and the rest: read by internal/otlpexport,
//	abgate's OTLP exporter for traces and metrics, as the official
//	exporters read them
//
//	OTEL_EXPORTER_OTLP_PROTOCOL (or the per-signal one): http/protobuf
//	(default, port 4318) or grpc (port 4317)
//
// Metrics are always readable at /metrics (Prometheus pulls them; nothing
// is computed until a scrape). The exporters are chosen here rather than
// by contrib's autoexport, which also links the log exporters and
// Prometheus's process-global registry.
func setupTracing(ctx context.Context) (*tracing, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t := &tracing{}
	res, err := serviceResource()
	if err != nil {
		return nil, err
	}
	switch exp := exporterFor("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); exp {
	case "none":
	case "otlp", "console":
		var se sdktrace.SpanExporter
		if exp == "console" {
			se, err = stdouttrace.New()
		} else {
			// abgate's own exporter, over HTTP or gRPC: the official
			// ones cost ~7 µs of the one core per span and link grpc-go
			// (1.35 MiB of idle RSS); internal/otlpexport says more.
			se, err = otlpexport.New(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("trace exporter (OTEL_TRACES_EXPORTER=%s): %w", exp, err)
		}
		t.provider = sdktrace.NewTracerProvider(sdktrace.WithBatcher(se, batchOptions()...), sdktrace.WithResource(res))
		otel.SetTracerProvider(t.provider)
		t.enabled = true
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: abgate supports otlp, console and none", exp)
	}
	prom, handler, err := telemetry.Prometheus()
	if err != nil {
		return nil, fmt.Errorf("prometheus exposition: %w", err)
	}
	t.metrics = handler
	readers := []sdkmetric.Option{sdkmetric.WithReader(prom), sdkmetric.WithResource(res)}
	switch exp := exporterFor("OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"); exp {
	case "none":
	case "otlp", "console":
		var me sdkmetric.Exporter
		if exp == "console" {
			me, err = stdoutmetric.New()
		} else {
			me, err = otlpexport.NewMetrics(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("metric exporter (OTEL_METRICS_EXPORTER=%s): %w", exp, err)
		}
		readers = append(readers, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(me)))
		t.exported = true
	default:
		return nil, fmt.Errorf("OTEL_METRICS_EXPORTER=%q: abgate supports otlp, console and none", exp)
	}
	t.meters = sdkmetric.NewMeterProvider(readers...)
	otel.SetMeterProvider(t.meters)
	return t, nil
}

// exporterFor reads an OTEL_*_EXPORTER variable: its value, or otlp when
// an OTLP endpoint is configured, or none.
func exporterFor(variable, signalEndpoint string) string {
	if e := strings.TrimSpace(os.Getenv(variable)); e != "" {
		return e
	}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv(signalEndpoint) != "" {
		return "otlp"
	}
	return "none"
}

// serviceResource names the service "abgate" unless OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES say otherwise.
func serviceResource() (*resource.Resource, error) {
	if os.Getenv("OTEL_SERVICE_NAME") != "" || strings.Contains(os.Getenv("OTEL_RESOURCE_ATTRIBUTES"), "service.name=") {
		return resource.Default(), nil
	}
	return resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "abgate")))
}

func (t *tracing) shutdown(ctx context.Context) error {
	var errs []error
	if t.provider != nil {
		errs = append(errs, t.provider.Shutdown(ctx))
	}
	if t.meters != nil {
		errs = append(errs, t.meters.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// exportBatch is the most spans one export carries unless
// OTEL_BSP_MAX_EXPORT_BATCH_SIZE says otherwise (the SDK's default is
// 512). The batch processor encodes and sends a batch on one goroutine
// without yielding; at 2,000 requests/s that was 2.6 ms of CPU at a time
// (up to 6.6 ms), during which a gateway on one core served nothing
// (runtime/trace of the load harness's tail scenario, issue "Live
// streams at scale"). 64 spans took about 445 µs with the official
// exporter; internal/otlpexport sends them in about 105 µs. 16 were tried: a
// quarter of the run, but four times the exports, and in the load
// harness (4 rounds each, 15:3x UTC) the tail at 2,000 requests/s did
// not move (added p99 +1.1 ms against +1.3 ms, within the rounds'
// spread) while the CPU per request at full load rose by about 9%.
const exportBatch = 64

// batchOptions are abgate's defaults for the span batch processor;
// the OTEL_BSP_* variables still win.
func batchOptions() []sdktrace.BatchSpanProcessorOption {
	if _, set := os.LookupEnv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"); set {
		return nil
	}
	return []sdktrace.BatchSpanProcessorOption{sdktrace.WithMaxExportBatchSize(exportBatch)}
}
