package otlpexport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // the server accepts and answers gzip
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// grpcCollector is a real grpc-go OTLP receiver (trace and metrics
// services) on a loopback listener that keeps what it got and answers
// scripted statuses.
type grpcCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	addr string
	mu   sync.Mutex
	// traces and metrics are the requests, md their metadata, deadline
	// the time left to each call (0: none), compression each request's
	// grpc-encoding.
	traces      []*coltracepb.ExportTraceServiceRequest
	metrics     []*colmetricpb.ExportMetricsServiceRequest
	md          []metadata.MD
	deadline    []time.Duration
	compression []string
	// answer, when set, is call n's (0-based) status; nil is OK.
	answer func(ctx context.Context, n int) error
	// rejected, when set, answers with a partial success.
	rejected int64
}

func newGRPCCollector(t testing.TB, opts ...grpc.ServerOption) *grpcCollector {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &grpcCollector{addr: lis.Addr().String()}
	s := grpc.NewServer(append(opts, grpc.StatsHandler(compressionRecorder{c}))...)
	coltracepb.RegisterTraceServiceServer(s, c)
	colmetricpb.RegisterMetricsServiceServer(s, metricsService{c: c})
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return c
}

// record keeps a call's metadata and deadline and returns its number and
// the scripted answer.
func (c *grpcCollector) record(ctx context.Context) (int, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var left time.Duration
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	c.mu.Lock()
	n := len(c.md)
	c.md = append(c.md, md.Copy())
	c.deadline = append(c.deadline, left)
	answer := c.answer
	c.mu.Unlock()
	if answer != nil {
		return n, answer(ctx, n)
	}
	return n, nil
}

func (c *grpcCollector) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	c.traces = append(c.traces, req)
	c.mu.Unlock()
	if _, err := c.record(ctx); err != nil {
		return nil, err
	}
	resp := &coltracepb.ExportTraceServiceResponse{}
	if c.rejected != 0 {
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: c.rejected, ErrorMessage: "too old"}
	}
	return resp, nil
}

type metricsService struct {
	colmetricpb.UnimplementedMetricsServiceServer
	c *grpcCollector
}

func (s metricsService) Export(ctx context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	s.c.mu.Lock()
	s.c.metrics = append(s.c.metrics, req)
	s.c.mu.Unlock()
	if _, err := s.c.record(ctx); err != nil {
		return nil, err
	}
	resp := &colmetricpb.ExportMetricsServiceResponse{}
	if s.c.rejected != 0 {
		resp.PartialSuccess = &colmetricpb.ExportMetricsPartialSuccess{RejectedDataPoints: s.c.rejected, ErrorMessage: "unknown unit"}
	}
	return resp, nil
}

// compressionRecorder keeps each request's grpc-encoding (reserved: not
// in the metadata).
type compressionRecorder struct{ c *grpcCollector }

func (compressionRecorder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}
func (compressionRecorder) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (compressionRecorder) HandleConn(context.Context, stats.ConnStats) {}
func (r compressionRecorder) HandleRPC(_ context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		r.c.mu.Lock()
		r.c.compression = append(r.c.compression, h.Compression)
		r.c.mu.Unlock()
	}
}

func (c *grpcCollector) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.md)
}

// grpcExporterAt is an OTLP/gRPC exporter configured from the
// environment, sending to endpoint, retrying by r.
func grpcExporterAt(t *testing.T, endpoint string, r retryPolicy) *Exporter {
	t.Helper()
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
	e, err := New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	e.c.retry = r
	return e
}

var fastRetry = retryPolicy{initial: time.Millisecond, maxInterval: 2 * time.Millisecond, maxElapsed: time.Minute}

// TestGRPCEquivalence: the official otlptracegrpc exporter and this one,
// configured by the same variables, make the same call: proto.Equal
// requests and the same metadata.
func TestGRPCEquivalence(t *testing.T) {
	clearEnv(t)
	spans := testSpans(t)
	ctx := context.Background()
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=se%20cret, X-Tenant = abgate ,trace-bin=raw")

	official := newGRPCCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"+official.addr)
	oe, err := otlptracegrpc.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer oe.Shutdown(ctx)
	if err := oe.ExportSpans(ctx, spans); err != nil {
		t.Fatalf("official export: %v", err)
	}

	ours := newGRPCCollector(t)
	e := grpcExporterAt(t, "http://"+ours.addr, defaultRetry)
	// Twice: the second export reuses the buffers.
	for range 2 {
		if err := e.ExportSpans(ctx, spans); err != nil {
			t.Fatalf("export: %v", err)
		}
	}
	if len(official.traces) != 1 || len(ours.traces) != 2 {
		t.Fatalf("requests: official %d, ours %d", len(official.traces), len(ours.traces))
	}
	want := official.traces[0]
	// The official exporter orders resources by map iteration; ours by
	// first appearance.
	if len(want.ResourceSpans) == 2 && want.ResourceSpans[0].GetResource().GetAttributes()[0].GetValue().GetStringValue() == "other" {
		want.ResourceSpans[0], want.ResourceSpans[1] = want.ResourceSpans[1], want.ResourceSpans[0]
	}
	if n := len(want.ResourceSpans); n != 2 {
		t.Fatalf("%d resources, want 2", n)
	}
	for i, got := range ours.traces {
		if !proto.Equal(got, want) {
			t.Errorf("export %d differs from the official exporter's:\n%s", i, cmpDiff(want, got))
		}
	}

	// The metadata: everything but the user agent (grpc-go appends its
	// own version to the exporter's).
	omd, ymd := official.md[0], ours.md[0]
	t.Logf("official metadata %v", omd)
	t.Logf("our metadata %v", ymd)
	for _, md := range []metadata.MD{omd, ymd} {
		delete(md, "user-agent")
		// :authority is the address either way.
		if a := md.Get(":authority"); len(a) != 1 || !strings.HasPrefix(a[0], "127.0.0.1:") {
			t.Errorf(":authority %v", a)
		}
		delete(md, ":authority")
	}
	if !mdEqual(omd, ymd) {
		t.Errorf("metadata differs:\nofficial %v\n    ours %v", omd, ymd)
	}
	if v := ymd.Get("api-key"); len(v) != 1 || v[0] != "se cret" {
		t.Errorf("api-key %v", v)
	}
	if v := ymd.Get("trace-bin"); len(v) != 1 || v[0] != "raw" {
		t.Errorf("trace-bin %v", v)
	}
	if ours.deadline[0] <= 0 || ours.deadline[0] > 10*time.Second {
		t.Errorf("deadline at the server %v, want the 10 s export timeout", ours.deadline[0])
	}
}

func mdEqual(a, b metadata.MD) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// writeCert writes a self-signed certificate for 127.0.0.1 and localhost
// to a temporary file and returns its path and the server's certificate.
func writeCert(t *testing.T) (string, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "otlpexport test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	crt, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, crt
}

func TestGRPCTLS(t *testing.T) {
	clearEnv(t)
	caFile, crt := writeCert(t)
	c := newGRPCCollector(t, grpc.Creds(credentials.NewServerTLSFromCert(&crt)))
	t.Setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", caFile)
	e := grpcExporterAt(t, "https://"+c.addr, fastRetry)
	if err := e.ExportSpans(context.Background(), oneSpan(t)); err != nil {
		t.Fatalf("export over TLS: %v", err)
	}
	if n := len(c.traces); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	if n := c.traces[0].ResourceSpans[0].ScopeSpans[0].Spans[0].Name; n != "one" {
		t.Errorf("span %q", n)
	}
	// Without the CA the handshake fails: the certificate is checked
	// (and a bad certificate is worth a retry, until the retry budget is
	// spent). The budget, not a 200 ms export timeout as before: under
	// make test's load the first handshake alone could outlast that, and
	// the export then failed with only "context deadline exceeded".
	t.Setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", "")
	e = grpcExporterAt(t, "https://"+c.addr, retryPolicy{initial: time.Millisecond, maxInterval: 2 * time.Millisecond, maxElapsed: 100 * time.Millisecond})
	if err := e.ExportSpans(context.Background(), oneSpan(t)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("export to an unknown certificate: %v", err)
	}
}

// TestGRPCGzip: a compressed request (grpc-encoding gzip) that grpc-go
// decodes, and its compressed response (grpc-go answers in the request's
// encoding), twice so the reader and buffers are reused; the second
// response carries a partial success.
func TestGRPCGzip(t *testing.T) {
	clearEnv(t)
	c := newGRPCCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
	e := grpcExporterAt(t, "http://"+c.addr, fastRetry)
	spans := testSpans(t)
	if err := e.ExportSpans(context.Background(), spans); err != nil {
		t.Fatalf("export: %v", err)
	}
	c.rejected = 2
	err := e.ExportSpans(context.Background(), spans)
	if err == nil || !strings.Contains(err.Error(), "too old") || !strings.Contains(err.Error(), "2 spans") {
		t.Fatalf("err = %v, want the compressed partial success", err)
	}
	if !slices.Equal(c.compression, []string{"gzip", "gzip"}) {
		t.Errorf("grpc-encoding %q, want gzip twice", c.compression)
	}
	if len(c.traces) != 2 || !proto.Equal(c.traces[0], c.traces[1]) || len(c.traces[0].ResourceSpans) != 2 {
		t.Errorf("requests not decoded alike")
	}
}

func TestGRPCUnavailableThenOK(t *testing.T) {
	clearEnv(t)
	c := newGRPCCollector(t)
	c.answer = func(_ context.Context, n int) error {
		if n == 0 {
			return status.Error(codes.Unavailable, "starting")
		}
		return nil
	}
	e := grpcExporterAt(t, "http://"+c.addr, fastRetry)
	if err := e.ExportSpans(context.Background(), oneSpan(t)); err != nil {
		t.Fatalf("export after Unavailable: %v", err)
	}
	if len(c.traces) != 2 || !proto.Equal(c.traces[0], c.traces[1]) {
		t.Fatalf("%d requests, want the same one twice", len(c.traces))
	}
}

// TestGRPCFinalStatuses: codes the official exporter does not retry,
// whether the server answers trailers-only (an error before any header)
// or headers then trailers; grpc-message is percent-decoded.
func TestGRPCFinalStatuses(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		name        string
		code        codes.Code
		headerFirst bool
	}{
		{"InvalidArgument trailers-only", codes.InvalidArgument, false},
		{"InvalidArgument after headers", codes.InvalidArgument, true},
		{"Unauthenticated", codes.Unauthenticated, false},
		{"ResourceExhausted without RetryInfo", codes.ResourceExhausted, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newGRPCCollector(t)
			c.answer = func(ctx context.Context, n int) error {
				if tc.headerFirst {
					if err := grpc.SendHeader(ctx, metadata.Pairs("x-first", "1")); err != nil {
						return err
					}
				}
				return status.Error(tc.code, "100% bad: ünïcode\nline")
			}
			e := grpcExporterAt(t, "http://"+c.addr, defaultRetry)
			err := e.ExportSpans(context.Background(), oneSpan(t))
			want := "rpc error: code = " + tc.code.String() + " desc = 100% bad: ünïcode\nline"
			if err == nil || !strings.HasSuffix(err.Error(), want) {
				t.Fatalf("err = %v, want …%s", err, want)
			}
			var r *retryable
			if errors.As(err, &r) {
				t.Errorf("err is retryable")
			}
			if n := c.calls(); n != 1 {
				t.Errorf("%d calls, want 1 (no retry)", n)
			}
		})
	}
}

// TestGRPCRetryInfo: ResourceExhausted with RetryInfo is retried after
// its delay; a delay beyond the retry budget ends the export at once.
func TestGRPCRetryInfo(t *testing.T) {
	clearEnv(t)
	exhausted := func(delay time.Duration) error {
		st, err := status.New(codes.ResourceExhausted, "over quota").WithDetails(
			&errdetails.ErrorInfo{Reason: "QUOTA"}, &errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
		if err != nil {
			panic(err)
		}
		return st.Err()
	}
	c := newGRPCCollector(t)
	var first time.Time
	var waited time.Duration
	c.answer = func(_ context.Context, n int) error {
		if n == 0 {
			first = time.Now()
			return exhausted(150 * time.Millisecond)
		}
		waited = time.Since(first)
		return nil
	}
	e := grpcExporterAt(t, "http://"+c.addr, fastRetry)
	if err := e.ExportSpans(context.Background(), oneSpan(t)); err != nil {
		t.Fatalf("export: %v", err)
	}
	if n := c.calls(); n != 2 {
		t.Fatalf("%d calls, want 2", n)
	}
	if waited < 150*time.Millisecond {
		t.Errorf("retried after %v, want RetryInfo's 150ms", waited)
	}

	c = newGRPCCollector(t)
	c.answer = func(context.Context, int) error { return exhausted(2 * time.Minute) }
	e = grpcExporterAt(t, "http://"+c.addr, fastRetry)
	err := e.ExportSpans(context.Background(), oneSpan(t))
	if err == nil || !strings.Contains(err.Error(), "would elapse") || !strings.Contains(err.Error(), "over quota") {
		t.Fatalf("err = %v, want the retry budget refused", err)
	}
	if n := c.calls(); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}

// TestGRPCServerDown: connection refused is retried until the export's
// timeout.
func TestGRPCServerDown(t *testing.T) {
	clearEnv(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "300")
	e := grpcExporterAt(t, "http://"+addr, retryPolicy{initial: 5 * time.Millisecond, maxInterval: 5 * time.Millisecond, maxElapsed: time.Hour})
	start := time.Now()
	err = e.ExportSpans(context.Background(), oneSpan(t))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %v, want the deadline after connection refused", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %v, want about the 300ms timeout", d)
	}
}

func TestGRPCPartialSuccess(t *testing.T) {
	clearEnv(t)
	c := newGRPCCollector(t)
	c.rejected = 3
	e := grpcExporterAt(t, "http://"+c.addr, defaultRetry)
	err := e.ExportSpans(context.Background(), oneSpan(t))
	if err == nil || !strings.Contains(err.Error(), "too old") || !strings.Contains(err.Error(), "3 spans") {
		t.Fatalf("err = %v, want the partial success", err)
	}
	if n := c.calls(); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

// TestGRPCMetrics sends a metrics request through a client of a metrics
// signal to the metrics service.
func TestGRPCMetrics(t *testing.T) {
	clearEnv(t)
	c := newGRPCCollector(t)
	sig := signal{name: "metrics", path: "/v1/metrics", items: "data points"}
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_PROTOCOL":         "grpc",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://" + c.addr,
		"OTEL_EXPORTER_OTLP_METRICS_HEADERS":  "tenant=m",
		// The traces' settings are not the metrics'.
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1",
	}
	cl, err := newClient(context.Background(), sig, func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.close()
	want := &colmetricpb.ExportMetricsServiceRequest{ResourceMetrics: []*metricpb.ResourceMetrics{{
		ScopeMetrics: []*metricpb.ScopeMetrics{{Metrics: []*metricpb.Metric{{
			Name: "abgate.requests",
			Data: &metricpb.Metric_Sum{Sum: &metricpb.Sum{
				IsMonotonic:            true,
				AggregationTemporality: metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE,
				DataPoints:             []*metricpb.NumberDataPoint{{Value: &metricpb.NumberDataPoint_AsInt{AsInt: 42}}},
			}},
		}}}},
	}}}
	body, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.export(context.Background(), body); err != nil {
		t.Fatalf("export: %v", err)
	}
	c.rejected = 1
	if err := cl.export(context.Background(), body); err == nil || !strings.Contains(err.Error(), "1 data points") || !strings.Contains(err.Error(), "metrics export") {
		t.Fatalf("err = %v, want the partial success of data points", err)
	}
	if len(c.metrics) != 2 || !proto.Equal(c.metrics[0], want) || len(c.traces) != 0 {
		t.Fatalf("metrics requests %d (traces %d), want 2 equal to the sent one", len(c.metrics), len(c.traces))
	}
	if v := c.md[0].Get("tenant"); len(v) != 1 || v[0] != "m" {
		t.Errorf("tenant %v", v)
	}
}

// BenchmarkExportGRPC is BenchmarkExport over OTLP/gRPC: abgate's batch
// to a grpc-go server that discards it, with the official otlptracegrpc
// exporter and with this one. Run it on one core:
//
//	go test -run '^$' -bench ExportGRPC -benchmem -cpu 1 ./internal/otlpexport
func BenchmarkExportGRPC(b *testing.B) {
	const batch = 64
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "abgate")))
	if err != nil {
		b.Fatal(err)
	}
	spans := gatewaySpans(batch, res)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(s, discardTraces{})
	go s.Serve(lis)
	defer s.Stop()
	b.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"+lis.Addr().String())
	b.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
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
		e, err := otlptracegrpc.New(ctx)
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

type discardTraces struct {
	coltracepb.UnimplementedTraceServiceServer
}

func (discardTraces) Export(context.Context, *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	return &coltracepb.ExportTraceServiceResponse{}, nil
}
