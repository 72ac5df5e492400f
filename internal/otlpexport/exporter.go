// Package otlpexport is abgate's span and metric exporter for OTLP, over
// HTTP with protobuf bodies or over gRPC. It encodes an export straight
// into a reused byte buffer with protowire, instead of the official
// exporters' path: their transform builds a tree of generated proto
// structs per export and proto.Marshal walks it by reflection.
//
// Spans (Exporter, New): on a gateway pinned to one core (GOMAXPROCS=1)
// the official otlptracehttp path cost about 7 µs per span (454 µs and
// 1,675 allocations per export of 64 spans of 6 attributes: 30%
// proto.Marshal, 24% tracetransform, 12% GC), about 5% of the gateway's
// CPU per request, and each export held the only P for ~400 µs while
// arriving requests waited (visible in the p99). BenchmarkExport measures
// both.
//
// Metrics (MetricExporter, NewMetrics): the official exporters import the
// generated OTLP collector packages, whose service stubs import
// google.golang.org/grpc, and grpc's init functions cost 1.35 MiB of idle
// RSS (5% of the process). MetricExporter exports a gateway's collection
// in a third of the time with a fifteenth of the allocations
// (BenchmarkMetricsExport).
//
// OTLP/gRPC (OTEL_EXPORTER_OTLP_PROTOCOL=grpc) is a unary gRPC call, which
// is one HTTP/2 POST: grpc.go makes it with net/http instead of linking
// grpc-go. TestGRPCEquivalence holds it to the official otlptracegrpc
// exporter against a grpc-go server; TestDeps and TestNoGRPCInNonTestCode
// keep grpc-go, genproto and the generated collector packages out of the
// package's dependencies.
//
// Each request is the same message the official exporter sends (the
// equivalence tests decode both and require proto.Equal), configured from
// the same OTEL_EXPORTER_OTLP_* variables, retried the same way.
//
// It imports nothing of abgate's own.
package otlpexport

import (
	"context"
	"errors"
	"os"
	"sync"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Exporter sends spans to an OTLP/HTTP endpoint as protobuf, or to an
// OTLP/gRPC one. It implements sdktrace.SpanExporter.
type Exporter struct {
	c   *client
	mu  sync.Mutex // guards enc: one export at a time
	enc encoder
}

var _ sdktrace.SpanExporter = (*Exporter)(nil)

// New returns an exporter configured from the environment as the official
// otlptracehttp and otlptracegrpc exporters read it (per-signal variables
// win over the generic ones):
//
//	OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL           http/protobuf (default) or grpc (else an error)
//	OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  used as is ("/" if it has no path)
//	OTEL_EXPORTER_OTLP_ENDPOINT         base URL, "/v1/traces" appended
//	                                    (default http://localhost:4318/v1/traces)
//	OTEL_EXPORTER_OTLP_[TRACES_]INSECURE           true: http, false: https
//	OTEL_EXPORTER_OTLP_[TRACES_]HEADERS            k=v,k2=v2 (values URL-decoded)
//	OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT            ms per export, retries included (default 10000)
//	OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION        gzip or none
//	OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE        CA bundle (PEM file)
//	OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE and _CLIENT_KEY (PEM files)
//
// With grpc the endpoints give only the collector's address: an http or
// https URL's host and port (http: no TLS, https: TLS; a path is
// ignored), or host:port without a scheme (TLS, as the official
// exporter); a missing port is 443, grpc-go's default; the default is
// http://localhost:4317. The headers are sent as gRPC metadata (keys
// lower-cased), gzip compresses the message (grpc-encoding), the timeout
// also goes to the server as grpc-timeout, and TLS settings win over an
// http scheme or INSECURE=true, as in otlptracegrpc. unix and grpc-go's
// other resolver schemes (dns:///…) are not supported, nor is
// HTTPS_PROXY.
//
// Where the official exporter logs a bad value and ignores it, New
// returns an error naming the variable. With no endpoint set at all the
// official exporters send to https://localhost:4318 or, for gRPC, to
// localhost:4317 with TLS (their config defaults to "secure"); this one
// to http://localhost:4318 or http://localhost:4317, the specification's
// defaults. abgate builds an exporter without an endpoint only when
// OTEL_TRACES_EXPORTER=otlp is set alone.
func New(ctx context.Context) (*Exporter, error) {
	c, err := newClient(ctx, traces, os.Getenv, os.ReadFile)
	if err != nil {
		return nil, err
	}
	return &Exporter{c: c}, nil
}

// errShutdown is returned by exports after Shutdown.
var errShutdown = errors.New("otlpexport: exporter is shut down")

// ExportSpans encodes spans as one ExportTraceServiceRequest and sends it,
// retrying as the official exporter does until ctx ends.
func (e *Exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.c.stopped.Err() != nil {
		return errShutdown
	}
	if len(spans) == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	body := e.enc.encode(spans)
	if len(body) == 0 {
		return nil
	}
	return e.c.export(ctx, body)
}

// Shutdown makes later exports fail and cancels one in flight. It is
// idempotent.
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.c.close()
	return ctx.Err()
}
