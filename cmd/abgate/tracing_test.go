package main

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// TestTelemetryFromEnv: the standard variables pick the exporters, and
// nothing is exported unless they ask.
func TestTelemetryFromEnv(t *testing.T) {
	defer otel.SetTracerProvider(tracenoop.NewTracerProvider())
	defer otel.SetMeterProvider(metricnoop.NewMeterProvider())
	for _, tc := range []struct {
		name    string
		env     map[string]string
		traces  bool
		metrics bool
		err     string
	}{
		{name: "nothing set", env: map[string]string{}},
		{name: "console", env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"}, traces: true, metrics: true},
		{name: "endpoint implies otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, traces: true, metrics: true},
		{name: "explicitly off", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}},
		{name: "http/json refused", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, err: "not supported"},
		{name: "grpc", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, traces: true, metrics: true},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: "otlp, console and none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
				t.Setenv(k, tc.env[k])
			}
			tr, err := setupTracing(context.Background())
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tr.shutdown(context.Background())
			if tr.enabled != tc.traces || tr.exported != tc.metrics {
				t.Errorf("traces %v metrics %v, want %v %v", tr.enabled, tr.exported, tc.traces, tc.metrics)
			}
			if tr.meters == nil || tr.metrics == nil {
				t.Error("no meter provider or /metrics handler: Prometheus must always be served")
			}
		})
	}
}
