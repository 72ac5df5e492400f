package telemetry_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/telemetry"
)

// TestPrometheusEquivalence: abgate's /metrics writes, byte for byte, what
// the OpenTelemetry Prometheus exporter (as abgate configured it before:
// its own registry, no scope labels) serves in the text format, read off
// the same MeterProvider: abgate's own instruments, and instruments of
// every kind and shape the exporter translates (units, dotted and
// colliding attribute names, escaping, two scopes sharing a name, a
// resource of our own).
func TestPrometheusEquivalence(t *testing.T) {
	t.Parallel()
	reader, handler, err := telemetry.Prometheus()
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	official, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "abgate"), attribute.String("deployment.environment", `prod "eu"`),
		attribute.Int("k8s.pod.count", 3))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithReader(official), sdkmetric.WithResource(res))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })

	in := register(t, mp)
	for i := range 50 {
		in.outcomes.Observe(experiments.Outcome{Experiment: "exp", Variant: i % 2, Latency: time.Duration(i) * 37 * time.Millisecond,
			TTFB: time.Duration(i) * 3 * time.Millisecond, PromptTokens: 10 * i, CompletionTokens: i, Cost: 0.0001 * float64(i),
			Error: i%7 == 0, Fallback: i%11 == 0})
	}
	in.notifier.Notify(experiments.Transition{Experiment: "exp", Action: experiments.ActionAdvance}, experiments.State{})
	in.alert(context.Background(), "prompt_tokens")

	ctx := context.Background()
	m := mp.Meter("scope.one")
	ud, _ := m.Int64UpDownCounter("queue.depth", metric.WithUnit("{item}"), metric.WithDescription("Items\nwaiting \\ queued."))
	ud.Add(ctx, 5, metric.WithAttributes(attribute.String("queue", "a")))
	ud.Add(ctx, -2, metric.WithAttributes(attribute.String("queue", "b\"\\\n")))
	size, _ := m.Int64Histogram("body.size", metric.WithUnit("By"), metric.WithExplicitBucketBoundaries(100, 1000, 1e4))
	size.Record(ctx, 50)
	size.Record(ctx, 5000, metric.WithAttributes(attribute.Bool("big", true)))
	ms, _ := m.Float64Counter("elapsed", metric.WithUnit("ms"))
	ms.Add(ctx, 1.5e-7, metric.WithAttributes(attribute.String("a.b", "x"), attribute.String("a_b", "y"), attribute.String("9lives", "z")))
	ratio, _ := m.Float64Gauge("hit-ratio", metric.WithUnit("1"))
	ratio.Record(ctx, 0.25, metric.WithAttributes(attribute.StringSlice("tags", []string{"p", "q"})))
	ratio.Record(ctx, -1, metric.WithAttributes(attribute.Float64("weight", 1.5)))
	rate, _ := m.Float64Gauge("throughput", metric.WithUnit("1/s"))
	rate.Record(ctx, 1234567.0)
	// The same instrument name in a second scope: one family.
	c2, _ := mp.Meter("scope.two").Int64Counter("queue.depth.total", metric.WithDescription("second scope"))
	c2.Add(ctx, 1)
	c1, _ := m.Int64Counter("queue.depth.total", metric.WithDescription("second scope"))
	c1.Add(ctx, 2, metric.WithAttributes(attribute.String("from", "one")))

	ours := get(t, handler)
	theirs := get(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if ours != theirs {
		t.Fatalf("expositions differ:\n%s", lineDiff(ours, theirs))
	}
	// The translations the equivalence rests on, spelled out.
	for _, want := range []string{
		`target_info{`,
		`gen_ai_client_operation_duration_seconds_bucket{`,
		`body_size_bytes_bucket{big="true",le="+Inf"} 1`,       // By -> bytes, le last
		`queue_depth{queue="b\"\\\n"} -2`,                      // escaping; non-monotonic: gauge
		`elapsed_milliseconds_total{a_b="x;y",key_9lives="z"}`, // collisions joined, digit prefixed
		`hit_ratio{tags="[\"p\",\"q\"]"} 0.25`,
		`throughput_per_second 1.234567e+06`,
	} {
		if !strings.Contains(ours, want) {
			t.Errorf("exposition lacks %q:\n%s", want, ours)
		}
	}
}

func get(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("status %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// lineDiff lists the lines only one side has.
func lineDiff(ours, theirs string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	o, th := in(ours), in(theirs)
	var b strings.Builder
	for _, l := range strings.Split(ours, "\n") {
		if !th[l] {
			b.WriteString("ours only:   " + l + "\n")
		}
	}
	for _, l := range strings.Split(theirs, "\n") {
		if !o[l] {
			b.WriteString("theirs only: " + l + "\n")
		}
	}
	if b.Len() == 0 {
		return "same lines, different order:\nours:\n" + ours + "\ntheirs:\n" + theirs
	}
	return b.String()
}

// TestPrometheusUnavailable: a scrape that reads nothing (here, a reader
// no MeterProvider has registered) is a 500 in OpenAI's error shape.
func TestPrometheusUnavailable(t *testing.T) {
	t.Parallel()
	_, handler, err := telemetry.Prometheus()
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var body struct {
		Error struct{ Type, Code, Message string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusInternalServerError ||
		body.Error.Type != "server_error" || body.Error.Code != "metrics_unavailable" || body.Error.Message == "" {
		t.Fatalf("status %d, body %s (%v)", rec.Code, rec.Body.String(), err)
	}
}
