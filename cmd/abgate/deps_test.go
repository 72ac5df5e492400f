package main

import (
	"testing"

	"github.com/abgate/abgate/internal/deptest"
)

// TestBinaryDeps keeps what costs the gateway memory for nothing out of
// the binary. OTLP over gRPC is made by internal/otlpexport with net/http.
func TestBinaryDeps(t *testing.T) {
	t.Parallel()
	deptest.Check(t, ".", map[string]string{
		"google.golang.org/grpc/...":                   "grpc-go's init functions cost 1.35 MiB of idle RSS (docs/deploy.md, \"Memory\")",
		"golang.org/x/net/trace":                       "linked only through grpc-go; its init registers debug pages",
		"go.opentelemetry.io/proto/otlp/collector/...": "the generated collector packages import grpc-go",
		"go.opentelemetry.io/otel/exporters/otlp/...":  "the official OTLP exporters link grpc-go or the collector packages; internal/otlpexport stands for them",
	})
}
