package otlpexport

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// collector is an httptest OTLP/HTTP receiver that keeps what it got.
type collector struct {
	srv *httptest.Server
	mu  sync.Mutex
	// bodies are the decompressed request bodies, headers their headers.
	bodies  [][]byte
	headers []http.Header
	paths   []string
	// answer, when set, answers request n (0-based) instead of 200.
	answer func(n int, w http.ResponseWriter) bool
}

func newCollector(t testing.TB) *collector {
	c := &collector{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rd = zr
		}
		b, err := io.ReadAll(rd)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		n := len(c.bodies)
		c.bodies = append(c.bodies, b)
		c.headers = append(c.headers, r.Header.Clone())
		c.paths = append(c.paths, r.Method+" "+r.URL.Path)
		answer := c.answer
		c.mu.Unlock()
		if answer != nil && answer(n, w) {
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) requests() ([][]byte, []http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.bodies), slices.Clone(c.headers)
}

func decode(t *testing.T, b []byte) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatalf("decode request: %v", err)
	}
	return &req
}

// clearEnv unsets every variable the exporters read.
func clearEnv(t *testing.T) {
	for _, n := range []string{"ENDPOINT", "HEADERS", "TIMEOUT", "COMPRESSION", "CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY", "INSECURE", "PROTOCOL"} {
		t.Setenv(envPrefix+n, "")
		t.Setenv(envPrefix+"TRACES_"+n, "")
	}
}

// testSpans records spans from a real SDK provider covering every
// attribute type, events, links, status, remote and local parents, trace
// state, all span kinds, two scopes and dropped counts, plus stubs of a
// second resource.
func testSpans(t *testing.T) []sdktrace.ReadOnlySpan {
	rec := tracetest.NewSpanRecorder()
	res := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0",
		attribute.String("service.name", "abgate"), attribute.Int("replica", 2))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(rec),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{
			AttributeValueLengthLimit:   -1,
			AttributeCountLimit:         16,
			EventCountLimit:             2,
			LinkCountLimit:              2,
			AttributePerEventCountLimit: 2,
			AttributePerLinkCountLimit:  1,
		}),
	)
	gw := tp.Tracer("abgate/gateway", trace.WithInstrumentationVersion("1.2.3"),
		trace.WithSchemaURL("https://opentelemetry.io/schemas/1.24.0"),
		trace.WithInstrumentationAttributes(attribute.String("scope.attr", "x")))
	rc := tp.Tracer("abgate/recorder")

	ts, err := trace.ParseTraceState("vendor=abc,other=1")
	if err != nil {
		t.Fatal(err)
	}
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
		TraceState: ts,
		Remote:     true,
	})
	linked := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xaa, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:  trace.SpanID{0xbb, 2, 3, 4, 5, 6, 7, 8},
		Remote:  true,
	})
	localLink := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0xcc, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{0xdd, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	start := time.Unix(1_700_000_000, 123456789)

	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)
	ctx, server := gw.Start(ctx, "POST /v1/chat/completions",
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(start),
		trace.WithLinks(
			trace.Link{SpanContext: linked}, // over LinkCountLimit: the oldest is dropped
			trace.Link{SpanContext: localLink},
			trace.Link{SpanContext: linked, Attributes: []attribute.KeyValue{attribute.String("l1", "a"), attribute.Int("l2", 2)}},
		),
		trace.WithAttributes(
			attribute.String("abgate.experiment", "exp-1"),
			attribute.String("empty", ""),
			attribute.Bool("t", true),
			attribute.Bool("f", false),
			attribute.Int64("i", -42),
			attribute.Int64("zero", 0),
			attribute.Float64("pi", 3.25),
			attribute.Float64("fzero", 0),
			attribute.BoolSlice("bools", []bool{true, false}),
			attribute.Int64Slice("ints", []int64{1, -2, 300000}),
			attribute.Float64Slice("floats", []float64{0.5, -1}),
			attribute.StringSlice("strings", []string{"a", "", "c"}),
			attribute.StringSlice("nostrings", []string{}),
			attribute.ByteSlice("bytes", []byte{0, 1, 2}),
			attribute.Slice("mixed", attribute.StringValue("s"), attribute.IntValue(1)),
			attribute.Map("map", attribute.String("k", "v"), attribute.Bool("b", true)),
		))
	// Over AttributeCountLimit (16): dropped.
	server.SetAttributes(attribute.String("dropped.1", "x"), attribute.String("dropped.2", "y"))
	// Over EventCountLimit: the oldest is dropped.
	server.AddEvent("first (dropped)", trace.WithTimestamp(start.Add(time.Millisecond)))
	server.AddEvent("second", trace.WithTimestamp(start.Add(2*time.Millisecond)))
	server.AddEvent("third", trace.WithTimestamp(start.Add(3*time.Millisecond)),
		trace.WithAttributes(attribute.String("e1", "v"), attribute.Int("e2", 2), attribute.Bool("e3", true)))
	server.SetStatus(codes.Error, "upstream said no")

	for i, k := range []trace.SpanKind{trace.SpanKindInternal, trace.SpanKindClient, trace.SpanKindProducer, trace.SpanKindConsumer, trace.SpanKindUnspecified} {
		_, child := gw.Start(ctx, "child", trace.WithSpanKind(k), trace.WithTimestamp(start.Add(time.Duration(i)*time.Microsecond)))
		child.SetAttributes(attribute.Int("n", i))
		if i == 1 {
			child.SetStatus(codes.Ok, "")
		}
		child.End(trace.WithTimestamp(start.Add(time.Duration(i+1) * time.Millisecond)))
	}
	_, apply := rc.Start(ctx, "abgate.recorder.apply", trace.WithTimestamp(start))
	apply.End(trace.WithTimestamp(start.Add(time.Second)))
	server.End(trace.WithTimestamp(start.Add(2 * time.Second)))
	// A root span with a long name and many attributes (nested lengths
	// over 127 bytes).
	_, root := rc.Start(context.Background(), strings.Repeat("long name ", 30), trace.WithNewRoot())
	root.SetAttributes(attribute.String("big", strings.Repeat("x", 20000)))
	root.End()

	spans := rec.Ended()
	if len(spans) != 8 {
		t.Fatalf("recorded %d spans, want 8", len(spans))
	}
	// Spans of another resource, interleaved.
	other := resource.NewSchemaless(attribute.String("service.name", "other"))
	stubs := tracetest.SpanStubs{
		{Name: "other-1", SpanContext: localLink, Resource: other, InstrumentationScope: instrumentation.Scope{Name: "x"},
			StartTime: start, EndTime: start.Add(time.Second)},
		{Name: "other-2", SpanContext: localLink, Resource: other, StartTime: start, EndTime: start.Add(time.Second)},
	}.Snapshots()
	out := slices.Clone(spans[:3])
	out = append(out, stubs[0])
	out = append(out, spans[3:]...)
	out = append(out, stubs[1])
	return out
}

func TestEquivalence(t *testing.T) {
	clearEnv(t)
	spans := testSpans(t)
	ctx := context.Background()

	official := newCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", official.srv.URL+"/v1/traces")
	oe, err := otlptracehttp.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer oe.Shutdown(ctx)
	if err := oe.ExportSpans(ctx, spans); err != nil {
		t.Fatalf("official export: %v", err)
	}

	ours := newCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ours.srv.URL+"/v1/traces")
	e, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(ctx)
	// Twice: the second export reuses the buffers.
	for range 2 {
		if err := e.ExportSpans(ctx, spans); err != nil {
			t.Fatalf("export: %v", err)
		}
	}

	ob, _ := official.requests()
	yb, yh := ours.requests()
	if len(ob) != 1 || len(yb) != 2 {
		t.Fatalf("requests: official %d, ours %d", len(ob), len(yb))
	}
	want := decode(t, ob[0])
	// The official exporter orders resources by map iteration; ours by
	// first appearance. Put the official one's in that order.
	if len(want.ResourceSpans) == 2 && want.ResourceSpans[0].GetResource().GetAttributes()[0].GetValue().GetStringValue() == "other" {
		want.ResourceSpans[0], want.ResourceSpans[1] = want.ResourceSpans[1], want.ResourceSpans[0]
	}
	for i, b := range yb {
		got := decode(t, b)
		if !proto.Equal(got, want) {
			t.Errorf("export %d differs from the official exporter's:\n%s", i, cmpDiff(want, got))
		}
	}
	if got := yh[0].Get("Content-Type"); got != "application/x-protobuf" {
		t.Errorf("Content-Type %q", got)
	}
	// The message covers what it should (guards against both exporters
	// leaving something out).
	if n := len(want.ResourceSpans); n != 2 {
		t.Fatalf("%d resources, want 2", n)
	}
	if n := len(want.ResourceSpans[0].ScopeSpans); n != 2 {
		t.Fatalf("%d scopes, want 2", n)
	}
	srv := want.ResourceSpans[0].ScopeSpans[0].Spans[5]
	if srv.Name != "POST /v1/chat/completions" || srv.DroppedAttributesCount != 2 || srv.DroppedEventsCount != 1 ||
		srv.DroppedLinksCount != 1 || len(srv.Events) != 2 || srv.Events[1].DroppedAttributesCount != 1 ||
		srv.Links[1].DroppedAttributesCount != 1 || srv.TraceState == "" || srv.Flags != 0x301 {
		t.Errorf("server span not as built: %v", srv)
	}
}

// cmpDiff names the first part of got that is not the official one's.
func cmpDiff(want, got *coltracepb.ExportTraceServiceRequest) string {
	if len(want.ResourceSpans) != len(got.ResourceSpans) {
		return fmt.Sprintf("%d resources, want %d", len(got.ResourceSpans), len(want.ResourceSpans))
	}
	for i, wr := range want.ResourceSpans {
		gr := got.ResourceSpans[i]
		if !proto.Equal(wr.Resource, gr.Resource) || wr.SchemaUrl != gr.SchemaUrl {
			return fmt.Sprintf("resource %d:\n got %v\nwant %v", i, prototext.Format(gr.Resource), prototext.Format(wr.Resource))
		}
		if len(wr.ScopeSpans) != len(gr.ScopeSpans) {
			return fmt.Sprintf("resource %d: %d scopes, want %d", i, len(gr.ScopeSpans), len(wr.ScopeSpans))
		}
		for j, ws := range wr.ScopeSpans {
			gs := gr.ScopeSpans[j]
			if !proto.Equal(ws.Scope, gs.Scope) || ws.SchemaUrl != gs.SchemaUrl || len(ws.Spans) != len(gs.Spans) {
				return fmt.Sprintf("resource %d scope %d:\n got %v %q %d spans\nwant %v %q %d spans", i, j,
					prototext.Format(gs.Scope), gs.SchemaUrl, len(gs.Spans), prototext.Format(ws.Scope), ws.SchemaUrl, len(ws.Spans))
			}
			for k, w := range ws.Spans {
				if g := gs.Spans[k]; !proto.Equal(w, g) {
					return fmt.Sprintf("resource %d scope %d span %d:\n got %v\nwant %v", i, j, k, prototext.Format(g), prototext.Format(w))
				}
			}
		}
	}
	return "(no difference found)"
}

// oneSpan is a single recorded span.
func oneSpan(t *testing.T) []sdktrace.ReadOnlySpan {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, s := tp.Tracer("t").Start(context.Background(), "one", trace.WithAttributes(attribute.String("k", "v")))
	s.End()
	return rec.Ended()
}

func TestGzipAndHeaders(t *testing.T) {
	clearEnv(t)
	c := newCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", c.srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=se%20cret, X-Tenant = abgate ")
	e, err := New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	spans := oneSpan(t)
	for range 2 {
		if err := e.ExportSpans(context.Background(), spans); err != nil {
			t.Fatal(err)
		}
	}
	checkGzipAndHeaders(t, c, "/v1/traces", func(b []byte) string {
		return decode(t, b).ResourceSpans[0].ScopeSpans[0].Spans[0].Name
	})
}

// checkGzipAndHeaders: the collector got two gzipped requests on path
// (the generic endpoint is a base, the signal's path appended), with the
// headers the Gzip tests set, each carrying one item named "one".
func checkGzipAndHeaders(t *testing.T, c *collector, path string, name func([]byte) string) {
	t.Helper()
	bodies, headers := c.requests()
	if len(bodies) != 2 {
		t.Fatalf("%d requests, want 2", len(bodies))
	}
	if p := c.paths[0]; p != "POST "+path {
		t.Errorf("request %q, want POST %s", p, path)
	}
	for i, b := range bodies {
		h := headers[i]
		if h.Get("Content-Encoding") != "gzip" {
			t.Errorf("request %d: Content-Encoding %q, want gzip", i, h.Get("Content-Encoding"))
		}
		if h.Get("Api-Key") != "se cret" || h.Get("X-Tenant") != "abgate" {
			t.Errorf("request %d: headers %v", i, h)
		}
		if n := name(b); n != "one" {
			t.Errorf("request %d: item %q, want one", i, n)
		}
	}
}

func TestRetryAfterThenSuccess(t *testing.T) {
	clearEnv(t)
	c := newCollector(t)
	c.answer = func(n int, w http.ResponseWriter) bool {
		if n == 0 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	e := exporterAt(t, c.srv.URL+"/v1/traces", retryPolicy{initial: time.Millisecond, maxInterval: 2 * time.Millisecond, maxElapsed: time.Minute})
	if err := e.ExportSpans(context.Background(), oneSpan(t)); err != nil {
		t.Fatalf("export after a 503: %v", err)
	}
	bodies, _ := c.requests()
	if len(bodies) != 2 || !bytes.Equal(bodies[0], bodies[1]) {
		t.Fatalf("%d requests, want the same body twice", len(bodies))
	}
}

// A Retry-After beyond the retry budget ends the export at once: the
// header is read and honoured (waiting for it would outlast the budget).
func TestRetryAfterBeyondBudget(t *testing.T) {
	clearEnv(t)
	c := newCollector(t)
	c.answer = func(n int, w http.ResponseWriter) bool {
		w.Header().Set("Retry-After", "120")
		http.Error(w, "come back later", http.StatusTooManyRequests)
		return true
	}
	e := exporterAt(t, c.srv.URL+"/v1/traces", retryPolicy{initial: time.Millisecond, maxInterval: time.Millisecond, maxElapsed: time.Minute})
	err := e.ExportSpans(context.Background(), oneSpan(t))
	if err == nil || !strings.Contains(err.Error(), "would elapse") || !strings.Contains(err.Error(), "come back later") {
		t.Fatalf("err = %v, want the retry budget refused", err)
	}
	if bodies, _ := c.requests(); len(bodies) != 1 {
		t.Fatalf("%d requests, want 1", len(bodies))
	}
}

func TestRetryAfterHeader(t *testing.T) {
	if d := retryAfter("3"); d != 3*time.Second {
		t.Errorf("retryAfter(3) = %v", d)
	}
	if d := retryAfter("soon"); d != 0 {
		t.Errorf("retryAfter(soon) = %v", d)
	}
	if d := retryAfter(time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)); d != 0 {
		t.Errorf("retryAfter(past date) = %v", d)
	}
}

func TestRetryGivesUpWithContext(t *testing.T) {
	clearEnv(t)
	c := newCollector(t)
	ctx, cancel := context.WithCancel(context.Background())
	c.answer = func(n int, w http.ResponseWriter) bool {
		if n == 2 {
			cancel()
		}
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return true
	}
	e := exporterAt(t, c.srv.URL, retryPolicy{initial: time.Millisecond, maxInterval: time.Millisecond, maxElapsed: time.Minute})
	err := e.ExportSpans(ctx, oneSpan(t))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context canceled", err)
	}
	if bodies, _ := c.requests(); len(bodies) != 3 {
		t.Fatalf("%d requests, want 3 (retried until canceled)", len(bodies))
	}
	// The signal endpoint is used as is: no path means "/".
	if e.c.url != c.srv.URL+"/" {
		t.Errorf("url %q", e.c.url)
	}
}

// TestTimeoutBoundsRetries: OTEL_EXPORTER_OTLP_TRACES_TIMEOUT bounds the
// whole export, its retries included (a collector answering 503 forever
// holds the span processor for that long, not for the retry budget).
func TestTimeoutBoundsRetries(t *testing.T) {
	clearEnv(t)
	c := newCollector(t)
	c.answer = func(n int, w http.ResponseWriter) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	}
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "300")
	e := exporterAt(t, c.srv.URL, retryPolicy{initial: 5 * time.Millisecond, maxInterval: 5 * time.Millisecond, maxElapsed: time.Hour})
	err := e.ExportSpans(context.Background(), oneSpan(t))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the export's deadline", err)
	}
	if bodies, _ := c.requests(); len(bodies) < 2 {
		t.Fatalf("%d requests, want retries within the timeout", len(bodies))
	}
}

func TestBadRequestFailsAtOnce(t *testing.T) {
	clearEnv(t)
	c := newCollector(t)
	c.answer = func(n int, w http.ResponseWriter) bool {
		http.Error(w, "malformed span", http.StatusBadRequest)
		return true
	}
	e := exporterAt(t, c.srv.URL+"/v1/traces", defaultRetry)
	err := e.ExportSpans(context.Background(), oneSpan(t))
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "malformed span") {
		t.Fatalf("err = %v, want the status and the body", err)
	}
	if bodies, _ := c.requests(); len(bodies) != 1 {
		t.Fatalf("%d requests, want 1 (no retry)", len(bodies))
	}
}

func TestPartialSuccess(t *testing.T) {
	clearEnv(t)
	c := newCollector(t)
	c.answer = func(n int, w http.ResponseWriter) bool {
		b, err := proto.Marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 3, ErrorMessage: "too old"}})
		if err != nil {
			panic(err)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
		return true
	}
	e := exporterAt(t, c.srv.URL+"/v1/traces", defaultRetry)
	err := e.ExportSpans(context.Background(), oneSpan(t))
	if err == nil || !strings.Contains(err.Error(), "too old") || !strings.Contains(err.Error(), "3 spans") {
		t.Fatalf("err = %v, want the partial success", err)
	}
}

func TestShutdown(t *testing.T) {
	clearEnv(t)
	c := newCollector(t)
	e := exporterAt(t, c.srv.URL+"/v1/traces", defaultRetry)
	spans := oneSpan(t)
	if err := e.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := e.Shutdown(context.Background()); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	}
	if err := e.ExportSpans(context.Background(), spans); !errors.Is(err, errShutdown) {
		t.Fatalf("export after shutdown: %v", err)
	}
	if bodies, _ := c.requests(); len(bodies) != 1 {
		t.Fatalf("%d requests, want 1", len(bodies))
	}
}

func TestShutdownCancelsRetries(t *testing.T) {
	clearEnv(t)
	c := newCollector(t)
	e := (*Exporter)(nil)
	c.answer = func(n int, w http.ResponseWriter) bool {
		if n == 1 {
			go e.Shutdown(context.Background())
		}
		http.Error(w, "down", http.StatusBadGateway)
		return true
	}
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", c.srv.URL+"/v1/traces")
	var err error
	e, err = New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.c.retry = retryPolicy{initial: time.Millisecond, maxInterval: time.Millisecond, maxElapsed: time.Hour}
	if err := e.ExportSpans(context.Background(), oneSpan(t)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled by Shutdown", err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	files := map[string]string{}
	readFile := func(n string) ([]byte, error) {
		if s, ok := files[n]; ok {
			return []byte(s), nil
		}
		return nil, errors.New("no such file")
	}
	for _, tc := range []struct {
		env     map[string]string
		url     string
		timeout time.Duration
		gzip    bool
		err     string
	}{
		{url: "http://localhost:4318/v1/traces", timeout: 10 * time.Second},
		{env: map[string]string{"ENDPOINT": "http://collector:4318"}, url: "http://collector:4318/v1/traces", timeout: 10 * time.Second},
		{env: map[string]string{"ENDPOINT": "https://collector:4318/prefix/"}, url: "https://collector:4318/prefix/v1/traces", timeout: 10 * time.Second},
		{env: map[string]string{"ENDPOINT": "http://a:1", "TRACES_ENDPOINT": "http://b:2/custom"}, url: "http://b:2/custom", timeout: 10 * time.Second},
		{env: map[string]string{"TRACES_ENDPOINT": "http://b:2"}, url: "http://b:2/", timeout: 10 * time.Second},
		{env: map[string]string{"ENDPOINT": "https://a:1", "INSECURE": "true"}, url: "http://a:1/v1/traces", timeout: 10 * time.Second},
		{env: map[string]string{"TIMEOUT": "2500", "TRACES_TIMEOUT": "500", "COMPRESSION": "gzip"}, url: "http://localhost:4318/v1/traces", timeout: 500 * time.Millisecond, gzip: true},
		{env: map[string]string{"COMPRESSION": "gzip", "TRACES_COMPRESSION": "none"}, url: "http://localhost:4318/v1/traces", timeout: 10 * time.Second},
		{env: map[string]string{"TIMEOUT": "10s"}, err: "OTEL_EXPORTER_OTLP_TIMEOUT"},
		{env: map[string]string{"TRACES_COMPRESSION": "zstd"}, err: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"},
		{env: map[string]string{"HEADERS": "novalue"}, err: "OTEL_EXPORTER_OTLP_HEADERS"},
		{env: map[string]string{"TRACES_ENDPOINT": "::nope"}, err: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{env: map[string]string{"ENDPOINT": "https://a:1", "CERTIFICATE": "/missing.pem"}, err: "OTEL_EXPORTER_OTLP_CERTIFICATE"},
		{env: map[string]string{"ENDPOINT": "https://a:1", "TRACES_CLIENT_CERTIFICATE": "/c.pem"}, err: "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"},
	} {
		getenv := func(n string) string {
			for k, v := range tc.env {
				if envPrefix+k == n {
					return v
				}
			}
			return ""
		}
		cfg, err := configFromEnv(traces, getenv, readFile)
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
		if cfg.url != tc.url || cfg.timeout != tc.timeout || cfg.gzip != tc.gzip {
			t.Errorf("%v: url %q timeout %v gzip %v, want %q %v %v", tc.env, cfg.url, cfg.timeout, cfg.gzip, tc.url, tc.timeout, tc.gzip)
		}
	}
}

// A request body read after its export returned (net/http may still be
// writing it) fails instead of reading the next export's bytes.
func TestBodyDetached(t *testing.T) {
	src := &bodySource{b: []byte("abc")}
	r := src.reader()
	p := make([]byte, 2)
	if n, err := r.Read(p); n != 2 || err != nil || string(p) != "ab" {
		t.Fatalf("read %q %v", p[:n], err)
	}
	again := src.reader()
	if b, err := io.ReadAll(again); err != nil || string(b) != "abc" {
		t.Fatalf("a new attempt reads %q %v, want abc", b, err)
	}
	src.detach()
	if n, err := r.Read(p); n != 0 || !errors.Is(err, errBodyDetached) {
		t.Fatalf("after detach: %d %v", n, err)
	}
}

// exporterAt is an exporter configured from the environment, sending to
// endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), retrying by r.
func exporterAt(t *testing.T, endpoint string, r retryPolicy) *Exporter {
	t.Helper()
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
	e, err := New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.c.retry = r
	return e
}
