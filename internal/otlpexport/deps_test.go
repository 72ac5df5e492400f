package otlpexport

import (
	"testing"

	"github.com/abgate/abgate/internal/deptest"
)

// TestDeps keeps grpc out of the exporters (OTLP/gRPC is made with
// net/http, grpc.go): its init functions cost
// 1.35 MiB of idle RSS, and the generated OTLP collector packages (which
// the official exporters import) import it.
func TestDeps(t *testing.T) {
	t.Parallel()
	deptest.Check(t, ".", map[string]string{
		"google.golang.org/grpc/...":                   "grpc's init functions cost 1.35 MiB of idle RSS",
		"google.golang.org/genproto/...":               "google.rpc.Status and RetryInfo are decoded with protowire (grpc.go)",
		"go.opentelemetry.io/proto/otlp/collector/...": "the generated collector packages import grpc; encode with protowire",
		"go.opentelemetry.io/otel/exporters/...":       "the official exporters link grpc or the collector packages",
		"testing":                                      "do not use the testing package in production code",
	})
}
