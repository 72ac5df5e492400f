package otlpexport

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// BenchmarkExport exports abgate's batch (64 spans of a proxied request's
// 6 attributes) to a server that discards the body, with the official
// otlptracehttp exporter and with this one. Run it on one core:
//
//	go test -run '^$' -bench Export -benchmem -cpu 1 ./internal/otlpexport
func BenchmarkExport(b *testing.B) {
	const batch = 64
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "abgate")))
	if err != nil {
		b.Fatal(err)
	}
	spans := gatewaySpans(batch, res)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	b.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", srv.URL+"/v1/traces")
	ctx := context.Background()

	run := func(b *testing.B, e sdktrace.SpanExporter) {
		defer e.Shutdown(ctx)
		if err := e.ExportSpans(ctx, spans); err != nil { // warm the connection
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if err := e.ExportSpans(ctx, spans); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/span")
	}
	b.Run("official", func(b *testing.B) {
		e, err := otlptracehttp.New(ctx)
		if err != nil {
			b.Fatal(err)
		}
		run(b, e)
	})
	b.Run("otlpexport", func(b *testing.B) {
		e, err := New(ctx)
		if err != nil {
			b.Fatal(err)
		}
		run(b, e)
	})
}

// BenchmarkEncode is the encoding alone.
func BenchmarkEncode(b *testing.B) {
	spans := gatewaySpans(64, nil)
	var e encoder
	b.ReportAllocs()
	for b.Loop() {
		e.encode(spans)
	}
}

// gatewaySpans are n spans as the gateway ends them: a proxied request's
// 6 attributes (a tenth of them fallbacks), res their resource (nil: the
// SDK's default).
func gatewaySpans(n int, res *resource.Resource) []sdktrace.ReadOnlySpan {
	rec := tracetest.NewSpanRecorder()
	opts := []sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(rec)}
	if res != nil {
		opts = append(opts, sdktrace.WithResource(res))
	}
	tr := sdktrace.NewTracerProvider(opts...).Tracer("github.com/abgate/abgate/gateway")
	for i := range n {
		_, s := tr.Start(context.Background(), "POST /v1/chat/completions", trace.WithSpanKind(trace.SpanKindServer))
		s.SetAttributes(
			attribute.String("abgate.experiment", "checkout-assistant"),
			attribute.String("abgate.variant", "candidate"),
			attribute.String("abgate.upstream", "http://model-b.internal:8000"),
			attribute.String("abgate.served_variant", "candidate"),
			attribute.Int("http.response.status_code", 200),
			attribute.Bool("abgate.fallback", i%10 == 0),
		)
		s.End()
	}
	return rec.Ended()
}
