package main

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// tracing holds the process's trace pipeline, if any.
type tracing struct {
	enabled  bool
	provider *sdktrace.TracerProvider
}

// setupTracing installs the W3C trace-context propagator always (so a
// trace the client started reaches the upstream even when abgate exports
// nothing) and a tracer provider only when the standard OTEL_* variables
// ask for an exporter. With none set, spans are no-ops and cost nothing.
// The exporter itself is chosen by autoexport, which reads
// OTEL_TRACES_EXPORTER (otlp, console, none) and the OTLP variables.
func setupTracing(ctx context.Context) (*tracing, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if !wantsTraces() {
		return &tracing{}, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("trace exporter (OTEL_TRACES_EXPORTER): %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	otel.SetTracerProvider(tp)
	return &tracing{enabled: true, provider: tp}, nil
}

// wantsTraces reports whether the environment configures an exporter:
// OTEL_TRACES_EXPORTER other than "none", or an OTLP endpoint.
func wantsTraces() bool {
	if e := os.Getenv("OTEL_TRACES_EXPORTER"); e != "" {
		return e != "none"
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

func (t *tracing) shutdown(ctx context.Context) {
	if t.provider != nil {
		t.provider.Shutdown(ctx)
	}
}
