package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

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
			defer func() {
				// Nothing listens at the endpoints: the last export would
				// retry for OTEL_EXPORTER_OTLP_TIMEOUT (10 s).
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				tr.shutdown(ctx)
			}()
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

// TestTelemetryExports: with only an endpoint and a protocol set, a span
// and a metric reach the collector, over OTLP/HTTP and over OTLP/gRPC
// (served here by grpc-go; the binary itself does not link it).
func TestTelemetryExports(t *testing.T) {
	defer otel.SetTracerProvider(tracenoop.NewTracerProvider())
	defer otel.SetMeterProvider(metricnoop.NewMeterProvider())
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			col := &testCollector{}
			endpoint := col.serveHTTP(t)
			if protocol == "grpc" {
				endpoint = col.serveGRPC(t)
			}
			t.Setenv("OTEL_TRACES_EXPORTER", "")
			t.Setenv("OTEL_METRICS_EXPORTER", "")
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
			tr, err := setupTracing(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_, sp := otel.Tracer("test").Start(context.Background(), "abgate.proxy")
			sp.End()
			c, err := otel.Meter("test").Int64Counter("abgate.test.requests")
			if err != nil {
				t.Fatal(err)
			}
			c.Add(context.Background(), 3)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tr.shutdown(ctx); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			col.mu.Lock()
			defer col.mu.Unlock()
			if len(col.spans) != 1 || col.spans[0] != "abgate.proxy" {
				t.Errorf("spans received: %q", col.spans)
			}
			if col.counter != 3 {
				t.Errorf("abgate.test.requests received as %d, want 3", col.counter)
			}
		})
	}
}

// testCollector keeps the span names and the test counter's last value.
type testCollector struct {
	mu      sync.Mutex
	spans   []string
	counter int64
	coltracepb.UnimplementedTraceServiceServer
	colmetricpb.UnimplementedMetricsServiceServer
}

func (c *testCollector) traces(req *coltracepb.ExportTraceServiceRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.spans = append(c.spans, s.Name)
			}
		}
	}
}

func (c *testCollector) metrics(req *colmetricpb.ExportMetricsServiceRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name == "abgate.test.requests" {
					for _, dp := range m.GetSum().GetDataPoints() {
						c.counter = dp.GetAsInt()
					}
				}
			}
		}
	}
}

func (c *testCollector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.traces(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// metricsService adapts the collector to MetricsServiceServer, whose
// method has the same name as TraceServiceServer's.
type metricsService struct{ *testCollector }

func (m metricsService) Export(_ context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	m.metrics(req)
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

func (c *testCollector) serveHTTP(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/v1/traces":
			var req coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(b, &req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			c.traces(&req)
		case "/v1/metrics":
			var req colmetricpb.ExportMetricsServiceRequest
			if err := proto.Unmarshal(b, &req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			c.metrics(&req)
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (c *testCollector) serveGRPC(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, c)
	colmetricpb.RegisterMetricsServiceServer(srv, metricsService{c})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return "http://" + lis.Addr().String()
}
