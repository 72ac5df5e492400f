package otlpexport

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
)

// BenchmarkMetricsExport exports a gateway's collection (20 instruments,
// 4 attribute sets each, 5 of them histograms) to a server that discards
// the body, with the official otlpmetrichttp exporter and with this one.
// Run it on one core:
//
//	go test -run '^$' -bench MetricsExport -benchmem -cpu 1 ./internal/otlpexport
func BenchmarkMetricsExport(b *testing.B) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "abgate")))
	if err != nil {
		b.Fatal(err)
	}
	rm := gatewayMetrics(b, res)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	b.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", srv.URL+"/v1/metrics")
	ctx := context.Background()

	run := func(b *testing.B, e sdkmetric.Exporter) {
		defer e.Shutdown(ctx)
		if err := e.Export(ctx, rm); err != nil { // warm the connection
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if err := e.Export(ctx, rm); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("official", func(b *testing.B) {
		e, err := otlpmetrichttp.New(ctx)
		if err != nil {
			b.Fatal(err)
		}
		run(b, e)
	})
	b.Run("otlpexport", func(b *testing.B) {
		e, err := NewMetrics(ctx)
		if err != nil {
			b.Fatal(err)
		}
		run(b, e)
	})
}

// BenchmarkMetricsEncode is the encoding alone.
func BenchmarkMetricsEncode(b *testing.B) {
	rm := gatewayMetrics(b, nil)
	var e metricEncoder
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.encode(rm); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(e.buf)))
}

// gatewayMetrics is one collection of 20 instruments as a gateway records
// them: 8 counters, 4 up-down counters, 5 histograms (the SDK's default
// 15 boundaries) and 3 gauges, each with 4 (experiment, arm, outcome)
// attribute sets; res is the resource (nil: the SDK's default).
func gatewayMetrics(tb testing.TB, res *resource.Resource) *metricdata.ResourceMetrics {
	reader := sdkmetric.NewManualReader()
	opts := []sdkmetric.Option{sdkmetric.WithReader(reader)}
	if res != nil {
		opts = append(opts, sdkmetric.WithResource(res))
	}
	m := sdkmetric.NewMeterProvider(opts...).Meter("github.com/abgate/abgate/gateway")
	var sets []metric.MeasurementOption
	for _, exp := range []string{"checkout-assistant", "support-bot"} {
		for _, arm := range []string{"base", "candidate"} {
			sets = append(sets, metric.WithAttributeSet(attribute.NewSet(
				attribute.String("experiment", exp), attribute.String("arm", arm), attribute.String("outcome", "ok"))))
		}
	}
	ctx := context.Background()
	for i := range 8 {
		c, err := m.Int64Counter(fmt.Sprintf("abgate.counter.%d", i), metric.WithUnit("{request}"), metric.WithDescription("requests"))
		if err != nil {
			tb.Fatal(err)
		}
		for j, s := range sets {
			c.Add(ctx, int64(100*i+j), s)
		}
	}
	for i := range 4 {
		c, err := m.Float64UpDownCounter(fmt.Sprintf("abgate.updown.%d", i))
		if err != nil {
			tb.Fatal(err)
		}
		for j, s := range sets {
			c.Add(ctx, float64(j)-1.5, s)
		}
	}
	for i := range 5 {
		h, err := m.Float64Histogram(fmt.Sprintf("abgate.latency.%d", i), metric.WithUnit("ms"))
		if err != nil {
			tb.Fatal(err)
		}
		for j, s := range sets {
			for k := range 50 {
				h.Record(ctx, float64(k*k+j), s)
			}
		}
	}
	for i := range 3 {
		g, err := m.Int64Gauge(fmt.Sprintf("abgate.gauge.%d", i))
		if err != nil {
			tb.Fatal(err)
		}
		for j, s := range sets {
			g.Record(ctx, int64(i*j), s)
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		tb.Fatal(err)
	}
	return &rm
}
