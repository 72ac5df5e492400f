package otlpexport

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// h2cServer is an unencrypted HTTP/2 (prior knowledge) server whose
// handler answers each call: the wire as a gRPC client sees it, for
// answers grpc-go servers do not give.
type h2cServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
	body [][]byte
}

func newH2CServer(t *testing.T, answer func(n int, w http.ResponseWriter)) *h2cServer {
	s := &h2cServer{}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.reqs)
		s.reqs = append(s.reqs, r)
		s.body = append(s.body, b)
		s.mu.Unlock()
		answer(n, w)
	}))
	s.srv.Config.Protocols = new(http.Protocols)
	s.srv.Config.Protocols.SetUnencryptedHTTP2(true)
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *h2cServer) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// grpcOK answers a call with an empty response message and status OK.
func grpcOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/grpc")
	w.Header().Set("Trailer", "Grpc-Status")
	w.Write([]byte{0, 0, 0, 0, 0})
	w.Header().Set("Grpc-Status", "0")
}

// TestGRPCWire: the request as the gRPC protocol has it (grpc-go's own
// framing is exercised by the grpc-go server tests).
func TestGRPCWire(t *testing.T) {
	clearEnv(t)
	s := newH2CServer(t, func(n int, w http.ResponseWriter) { grpcOK(w) })
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Api-Key=k,te=nope,grpc-timeout=1S")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500")
	e := grpcExporterAt(t, s.srv.URL, defaultRetry)
	if err := e.ExportSpans(context.Background(), oneSpan(t)); err != nil {
		t.Fatal(err)
	}
	r, b := s.reqs[0], s.body[0]
	if r.ProtoMajor != 2 || r.Method != "POST" || r.URL.Path != "/opentelemetry.proto.collector.trace.v1.TraceService/Export" {
		t.Errorf("request %s %s %s", r.Proto, r.Method, r.URL.Path)
	}
	for k, want := range map[string]string{"Content-Type": "application/grpc", "Te": "trailers", "Api-Key": "k", "Grpc-Accept-Encoding": "gzip", "Grpc-Encoding": "", "Accept-Encoding": ""} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if r.ContentLength != -1 {
		t.Errorf("Content-Length %d sent, want none (grpc-go sends none)", r.ContentLength)
	}
	// grpc-timeout: the export's timeout, left when the call was made.
	m := regexp.MustCompile(`^([0-9]{1,8})u$`).FindStringSubmatch(r.Header.Get("Grpc-Timeout"))
	if m == nil || len(r.Header.Values("Grpc-Timeout")) != 1 {
		t.Fatalf("grpc-timeout %q, want about 2500000u", r.Header.Values("Grpc-Timeout"))
	}
	if us := m[1]; len(us) != 7 || us > "2500000" || us < "2000000" {
		t.Errorf("grpc-timeout %su, want at most 2.5 s", us)
	}
	// The body: uncompressed flag, length, message.
	if len(b) < 5 || b[0] != 0 || int(binary.BigEndian.Uint32(b[1:5])) != len(b)-5 {
		t.Fatalf("body prefix % x for %d bytes", b[:min(5, len(b))], len(b))
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b[5:], &req); err != nil || req.ResourceSpans[0].ScopeSpans[0].Spans[0].Name != "one" {
		t.Errorf("message: %v %v", err, &req)
	}
}

// TestGRPCResponses: answers a grpc-go server does not give (an HTTP
// error from a proxy, malformed calls) and how each ends.
func TestGRPCResponses(t *testing.T) {
	clearEnv(t)
	// details is a google.rpc.Status with a RetryInfo, unpadded base64
	// as grpc-go sends it (padded, for delay 2 ms).
	details := func(code int32, delay time.Duration) string {
		ri, err := anypb.New(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
		if err != nil {
			panic(err)
		}
		b, err := proto.Marshal(&spb.Status{Code: code, Message: "d", Details: []*anypb.Any{ri}})
		if err != nil {
			panic(err)
		}
		if delay == 2*time.Millisecond {
			return base64.StdEncoding.EncodeToString(b)
		}
		return base64.RawStdEncoding.EncodeToString(b)
	}
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
		calls  int    // when the second call is answered OK
		err    string // the export's error
	}{
		{name: "proxy 503 is Unavailable", calls: 2, answer: func(w http.ResponseWriter) {
			http.Error(w, "no upstream", http.StatusServiceUnavailable)
		}},
		{name: "proxy 429 is Unavailable", calls: 2, answer: func(w http.ResponseWriter) {
			http.Error(w, "slow down", http.StatusTooManyRequests)
		}},
		{name: "404 is Unimplemented", calls: 1, err: "code = Unimplemented desc = unexpected HTTP status code received from server: 404 (Not Found)", answer: func(w http.ResponseWriter) {
			http.Error(w, "nothing here", http.StatusNotFound)
		}},
		{name: "200 not gRPC is Unknown", calls: 1, err: "code = Unknown", answer: func(w http.ResponseWriter) {
			w.Write([]byte("hello"))
		}},
		{name: "trailers-only Unavailable with RetryInfo", calls: 2, answer: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/grpc+proto")
			w.Header().Set("Grpc-Status", "14")
			w.Header().Set("Grpc-Status-Details-Bin", details(14, time.Millisecond))
			w.WriteHeader(http.StatusOK)
		}},
		{name: "trailers-only ResourceExhausted with RetryInfo", calls: 2, answer: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "8")
			w.Header().Set("Grpc-Status-Details-Bin", details(8, 2*time.Millisecond))
			w.WriteHeader(http.StatusOK)
		}},
		{name: "details of another code are Internal", calls: 1, err: "code = Internal desc = grpc-status-details-bin mismatch", answer: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status, Grpc-Status-Details-Bin")
			w.WriteHeader(http.StatusOK)
			w.Header().Set("Grpc-Status", "14")
			w.Header().Set("Grpc-Status-Details-Bin", details(8, time.Millisecond))
		}},
		{name: "grpc-message percent-decoded", calls: 1, err: "code = InvalidArgument desc = 50% off%zz %4", answer: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
			w.WriteHeader(http.StatusOK)
			w.Header().Set("Grpc-Status", "3")
			w.Header().Set("Grpc-Message", "50%25 off%zz %4")
		}},
		{name: "OK without a message", calls: 1, err: "code = Internal desc = cardinality violation: received no response message", answer: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "0")
			w.WriteHeader(http.StatusOK)
		}},
		{name: "two messages", calls: 1, err: "cardinality violation: received more than one", answer: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status")
			w.Write([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
			w.Header().Set("Grpc-Status", "0")
		}},
		{name: "no trailers", calls: 1, err: "code = Internal desc = server closed the stream without sending trailers", answer: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/grpc")
			w.Write([]byte{0, 0, 0, 0, 0})
		}},
		{name: "malformed grpc-status", calls: 1, err: "code = Unknown desc = malformed grpc-status", answer: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "fourteen")
			w.WriteHeader(http.StatusOK)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newH2CServer(t, func(n int, w http.ResponseWriter) {
				if n == 0 {
					tc.answer(w)
					return
				}
				grpcOK(w)
			})
			e := grpcExporterAt(t, s.srv.URL, fastRetry)
			err := e.ExportSpans(context.Background(), oneSpan(t))
			if tc.err == "" && err != nil {
				t.Fatalf("export: %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			var r *retryable
			if err != nil && errors.As(err, &r) {
				t.Errorf("a final error is retryable: %v", err)
			}
			if n := s.calls(); n != tc.calls {
				t.Errorf("%d calls, want %d", n, tc.calls)
			}
		})
	}
}

func TestGRPCTimeoutEncoding(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Nanosecond:              "1n",
		99999999 * time.Nanosecond:   "99999999n",
		100 * time.Millisecond:       "100000u",
		100000001 * time.Nanosecond:  "100001u",
		10 * time.Second:             "10000000u",
		time.Hour:                    "3600000m",
		200 * 24 * time.Hour:         "17280000S",
		200 * 365 * 24 * time.Hour:   "1752000H",
		1<<63 - 1:                    "2562048H",
		100000000 * time.Millisecond: "100000S",
	} {
		if got := grpcTimeout(d); got != want {
			t.Errorf("grpcTimeout(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestGRPCConfigFromEnv(t *testing.T) {
	readFile := func(n string) ([]byte, error) {
		if n == "/ca.pem" {
			return []byte(testCAPEM), nil
		}
		return nil, errors.New("no such file")
	}
	const method = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
	for _, tc := range []struct {
		env map[string]string
		url string // empty: an HTTP config
		tls bool
		err string
	}{
		{env: map[string]string{}, url: ""},
		{env: map[string]string{"PROTOCOL": "http/protobuf"}, url: ""},
		{env: map[string]string{"PROTOCOL": "grpc", "TRACES_PROTOCOL": "http/protobuf"}, url: ""},
		{env: map[string]string{"PROTOCOL": "grpc"}, url: "http://localhost:4317" + method},
		{env: map[string]string{"TRACES_PROTOCOL": "grpc"}, url: "http://localhost:4317" + method},
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "http://collector:4317/ignored/path"}, url: "http://collector:4317" + method},
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "https://collector:4317"}, url: "https://collector:4317" + method},
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "HTTPS://collector"}, url: "https://collector:443" + method},
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "http://a:1", "TRACES_ENDPOINT": "http://b:2/v1/traces"}, url: "http://b:2" + method},
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "collector:4317"}, url: "https://collector:4317" + method},
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "collector:4317", "INSECURE": "true"}, url: "http://collector:4317" + method},
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "http://[::1]:4317"}, url: "http://[::1]:4317" + method},
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "[::1]"}, url: "https://[::1]:443" + method},
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "//collector:4317/x"}, url: "https://collector:4317" + method},
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "https://a:1", "TRACES_INSECURE": "true"}, url: "http://a:1" + method},
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "http://a:1", "INSECURE": "false"}, url: "https://a:1" + method},
		// TLS settings win over an http scheme, as in the official exporter.
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "http://a:1", "CERTIFICATE": "/ca.pem"}, url: "https://a:1" + method, tls: true},
		{env: map[string]string{"PROTOCOL": "http/json"}, err: "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{env: map[string]string{"TRACES_PROTOCOL": "gRPC"}, err: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "unix:///run/otel.sock"}, err: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{env: map[string]string{"PROTOCOL": "grpc", "TRACES_ENDPOINT": "dns:///collector:4317"}, err: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{env: map[string]string{"PROTOCOL": "grpc", "TRACES_ENDPOINT": "http://"}, err: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "collector:port"}, err: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{env: map[string]string{"PROTOCOL": "grpc", "ENDPOINT": "collector:4317 x"}, err: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{env: map[string]string{"PROTOCOL": "grpc", "TIMEOUT": "1s"}, err: "OTEL_EXPORTER_OTLP_TIMEOUT"},
		{env: map[string]string{"PROTOCOL": "grpc", "TRACES_COMPRESSION": "snappy"}, err: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"},
		{env: map[string]string{"PROTOCOL": "grpc", "HEADERS": "a"}, err: "OTEL_EXPORTER_OTLP_HEADERS"},
		{env: map[string]string{"PROTOCOL": "grpc", "CERTIFICATE": "/missing.pem"}, err: "OTEL_EXPORTER_OTLP_CERTIFICATE"},
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
			if tc.err == "OTEL_EXPORTER_OTLP_PROTOCOL" && !strings.Contains(err.Error(), "want http/protobuf or grpc") {
				t.Errorf("%v: err = %v, want it to say what to set", tc.env, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
			continue
		}
		if tc.url == "" {
			if cfg.grpc || !strings.HasSuffix(cfg.url, "/v1/traces") {
				t.Errorf("%v: grpc %v url %q, want OTLP/HTTP", tc.env, cfg.grpc, cfg.url)
			}
			continue
		}
		if !cfg.grpc || cfg.url != tc.url || (cfg.tls != nil) != tc.tls {
			t.Errorf("%v: grpc %v url %q tls %v, want %q tls %v", tc.env, cfg.grpc, cfg.url, cfg.tls != nil, tc.url, tc.tls)
		}
	}
	if m, err := grpcMethod("metrics"); err != nil || m != "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export" {
		t.Errorf("grpcMethod(metrics) = %q, %v", m, err)
	}
	if _, err := configFromEnv(signal{name: "profiles"}, func(n string) string {
		if n == envPrefix+"PROTOCOL" {
			return "grpc"
		}
		return ""
	}, readFile); err == nil {
		t.Errorf("a signal without a gRPC service: no error")
	}
}

// testCAPEM is a self-signed certificate (any will do: the table only
// builds the pool).
const testCAPEM = `-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIQIRi6zePL6mKjOipn+dNuaTAKBggqhkjOPQQDAjASMRAw
DgYDVQQKEwdBY21lIENvMB4XDTE3MTAyMDE5NDMwNloXDTE4MTAyMDE5NDMwNlow
EjEQMA4GA1UEChMHQWNtZSBDbzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABD0d
7VNhbWvZLWPuj/RtHFjvtJBEwOkhbN/BnnE8rnZR8+sbwnc/KhCk3FhnpHZnQz7B
5aETbbIgmuvewdjvSBSjYzBhMA4GA1UdDwEB/wQEAwICpDATBgNVHSUEDDAKBggr
BgEFBQcDATAPBgNVHRMBAf8EBTADAQH/MCkGA1UdEQQiMCCCDmxvY2FsaG9zdDo1
NDUzgg4xMjcuMC4wLjE6NTQ1MzAKBggqhkjOPQQDAgNIADBFAiEA2zpJEPQyz6/l
Wf86aX6PepsntZv2GYlA5UpabfT2EZICICpJ5h/iI+i341gBmLiAFQOyTDT+/wQc
6MF9+Yw1Yy0t
-----END CERTIFICATE-----`
