package main

import (
	"testing"

	"github.com/abgate/abgate/internal/deptest"
)

// TestBinaryDeps keeps what costs the gateway memory for nothing out of
// the binary. OTLP over gRPC is made by internal/otlpexport with net/http;
// the Prometheus exposition by telemetry.
func TestBinaryDeps(t *testing.T) {
	t.Parallel()
	deptest.Check(t, ".", map[string]string{
		"google.golang.org/grpc/...":                    "grpc-go's init functions cost 1.35 MiB of idle RSS (docs/deploy.md, \"Memory\")",
		"golang.org/x/net/trace":                        "linked only through grpc-go; its init registers debug pages",
		"go.opentelemetry.io/proto/otlp/collector/...":  "the generated collector packages import grpc-go",
		"go.opentelemetry.io/otel/exporters/otlp/...":   "the official OTLP exporters link grpc-go or the collector packages; internal/otlpexport stands for them",
		"github.com/prometheus/client_golang/...":       "its registry, procfs and client_model cost 2 MiB of idle RSS; telemetry writes the /metrics text itself",
		"github.com/prometheus/procfs/...":              "linked only through client_golang",
		"go.opentelemetry.io/otel/exporters/prometheus": "served through client_golang; telemetry.Prometheus stands for it",
	})
}
