package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/recorder"
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

// TestRedisSpans: with tracing on, Redis commands get redisotel's spans,
// but the recorder's pipelines of script calls do not (their statement
// would be the whole encoded batch); the recorder's own span stands for
// each batch instead.
func TestRedisSpans(t *testing.T) {
	srv := storetest.StartRedis(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	otel.SetTracerProvider(tp)
	defer otel.SetTracerProvider(tracenoop.NewTracerProvider())
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := openStores(context.Background(), experiments.Redis{Addrs: []string{srv.Addr}, EphemeralOK: true}, true, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	rec := recorder.New(st.outcomes, experiments.Recording{BatchSize: 10, FlushInterval: experiments.Duration(time.Millisecond)},
		recorder.WithLogger(quiet), recorder.WithTracerProvider(tp))
	for i := 0; i < 25; i++ {
		rec.Observe(experiments.Outcome{Experiment: "e", Phase: 1, Variant: i % 2, Unit: storetest.Unit(i), Analysed: true, Latency: time.Millisecond})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, s := range spans.Ended() {
		names[s.Name()]++
		for _, kv := range s.Attributes() {
			if v := kv.Value.String(); strings.HasPrefix(strings.ToLower(v), "evalsha") && len(v) > 200 {
				t.Errorf("span %q carries a script call's arguments as %s (%d bytes)", s.Name(), kv.Key, len(v))
			}
		}
	}
	if names["abgate.recorder.apply"] == 0 {
		t.Errorf("no abgate.recorder.apply span; spans: %v", names)
	}
	if names["ping"] == 0 {
		t.Errorf("Redis commands are no longer traced (no ping span); spans: %v", names)
	}
	if n := names["redis.pipeline evalsha"] + names["redis.pipeline eval"]; n != 0 {
		t.Errorf("%d script pipelines traced by redisotel; spans: %v", n, names)
	}
}

// TestTelemetryShutdownBounded: a collector that never answers does not
// hold shutdown past its budget; the spans still queued are reported as
// not flushed.
func TestTelemetryShutdownBounded(t *testing.T) {
	defer otel.SetTracerProvider(tracenoop.NewTracerProvider())
	defer otel.SetMeterProvider(metricnoop.NewMeterProvider())
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer srv.Close()
	defer close(hang) // before srv.Close, which waits for the handler
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", srv.URL+"/v1/traces")
	tr, err := setupTracing(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, sp := otel.Tracer("test").Start(context.Background(), "queued")
	sp.End()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := tr.shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown = %v, want its deadline", err)
	}
}
