package otlpexport

// OTLP/gRPC without google.golang.org/grpc. An export is a unary gRPC
// call, and a unary call is one HTTP/2 POST: a length-prefixed message
// out, a length-prefixed message and trailers back (the wire format is
// https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md). net/http
// speaks HTTP/2 over TLS and, with Transport.Protocols, unencrypted HTTP/2
// with prior knowledge, so the call is written on it. Linking grpc-go
// instead costs 1.35 MiB of idle RSS in its init functions alone (5% of
// the gateway). The status handling below follows grpc-go v1.84
// (internal/transport/http2_client.go) and the retry decision the official
// otlptracegrpc exporter's retryable.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// grpcMethod is the path of sig's Export method in opentelemetry-proto's
// collector services.
func grpcMethod(sig string) (string, error) {
	switch sig {
	case "traces":
		return "/opentelemetry.proto.collector.trace.v1.TraceService/Export", nil
	case "metrics":
		return "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", nil
	case "logs":
		return "/opentelemetry.proto.collector.logs.v1.LogsService/Export", nil
	}
	return "", fmt.Errorf("otlpexport: no OTLP/gRPC service for signal %q", sig)
}

// parseGRPCEndpoint reads an OTLP/gRPC endpoint variable as the official
// exporter does (withEndpointScheme, withEndpointForGRPC): an http or
// https URL gives host:port, its path ignored; http means no TLS, https
// TLS. A value without a scheme ("collector:4317") is the host and port
// as written, with TLS. A missing port is 443, grpc-go's default. Other
// schemes (unix, dns:///…, the resolvers of grpc-go) are an error.
func parseGRPCEndpoint(name, v string) (scheme, host string, err error) {
	bad := func() (string, string, error) {
		return "", "", fmt.Errorf("%s=%q: want an endpoint such as http://collector:4317 (no TLS) or https://collector:4317", name, v)
	}
	if i := strings.Index(v, "://"); i >= 0 {
		u, err := url.Parse(v)
		if err != nil {
			return "", "", fmt.Errorf("%s=%q: %w", name, v, err)
		}
		switch strings.ToLower(u.Scheme) {
		case "http":
			scheme = "http"
		case "https":
			scheme = "https"
		default:
			return bad()
		}
		host = u.Host
	} else {
		scheme = "https"
		host, _, _ = strings.Cut(strings.TrimPrefix(v, "//"), "/")
	}
	if host == "" {
		return bad()
	}
	if _, port, err := net.SplitHostPort(host); err != nil {
		h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if strings.ContainsAny(h, "[]") {
			return bad()
		}
		host = net.JoinHostPort(h, "443")
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return bad()
	}
	if u, err := url.Parse(scheme + "://" + host); err != nil || u.Host != host {
		return bad()
	}
	return scheme, host, nil
}

// grpcTransport carries OTLP/gRPC: HTTP/2 only, over TLS or unencrypted
// with prior knowledge (gRPC servers do not upgrade from HTTP/1.1).
//
// There are no keepalive pings: grpc-go servers (the collector's) enforce
// a minimum of 5 minutes between pings on a connection without streams
// and answer more frequent ones with GOAWAY "too_many_pings"; an idle
// connection is closed after IdleConnTimeout instead, and a dead peer
// fails a write after WriteByteTimeout or the export after its timeout.
// HTTP(S)_PROXY is not used (grpc-go tunnels through HTTPS_PROXY with
// CONNECT; net/http would forward unencrypted HTTP/2 as HTTP/1.1).
var grpcTransport = func() *http.Transport {
	p := new(http.Protocols)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Transport{
		DialContext: (&net.Dialer{
			Timeout:   20 * time.Second, // grpc-go's minimum connect timeout
			KeepAlive: 30 * time.Second, // TCP keepalive
		}).DialContext,
		Protocols:           p,
		MaxIdleConns:        100,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		// No Accept-Encoding: the gRPC message carries its own compression.
		DisableCompression: true,
		HTTP2:              &http.HTTP2Config{WriteByteTimeout: 30 * time.Second},
	}
}()

// grpcHeader is the header of every call but grpc-timeout: the
// configured headers become metadata as grpc-go sends them (lower-case
// keys, binary "-bin" values base64-encoded, reserved names dropped).
func grpcHeader(md map[string]string, gzip bool) http.Header {
	h := http.Header{}
	for k, v := range md {
		k = strings.ToLower(k)
		if reservedGRPCHeader(k) {
			continue
		}
		if strings.HasSuffix(k, "-bin") {
			v = base64.RawStdEncoding.EncodeToString([]byte(v))
		}
		h.Add(k, v)
	}
	h.Set("Content-Type", "application/grpc")
	h.Set("Te", "trailers")
	h.Set("User-Agent", userAgent)
	if gzip {
		h.Set("Grpc-Encoding", "gzip")
	}
	// As the official exporter (it registers grpc-go's gzip codec): a
	// server may answer in gzip, which call decodes.
	h.Set("Grpc-Accept-Encoding", "gzip")
	return h
}

// reservedGRPCHeader is grpc-go's isReservedHeader: names metadata
// cannot set.
func reservedGRPCHeader(k string) bool {
	switch k {
	case "content-type", "user-agent", "grpc-message-type", "grpc-encoding", "grpc-message", "grpc-status", "grpc-timeout", "te":
		return true
	}
	return strings.HasPrefix(k, ":")
}

// maxGRPCResponse is grpc-go's default limit on a received message
// (MaxCallRecvMsgSize).
const maxGRPCResponse = 4 << 20

// call makes one OTLP/gRPC attempt: POST the length-prefixed message,
// read the length-prefixed response and the status in the trailers.
func (c *client) call(ctx context.Context, body *bodySource) error {
	var prefix [5]byte
	if c.gzip {
		prefix[0] = 1 // the message is compressed (grpc-encoding)
	}
	binary.BigEndian.PutUint32(prefix[1:], uint32(len(body.b))) // not detached before send returns
	newBody := func() io.ReadCloser {
		return struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(prefix[:]), body.reader()), io.NopCloser(nil)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, newBody())
	if err != nil {
		return err
	}
	// No ContentLength: grpc-go sends none, and a gRPC server would
	// hand it to the service as metadata.
	req.GetBody = func() (io.ReadCloser, error) { return newBody(), nil }
	// A fresh header per attempt (grpc-timeout changes): the transport may
	// still encode the previous one after a canceled Do returns.
	req.Header = c.header.Clone()
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			<-ctx.Done() // at once: the deadline has passed
			return ctx.Err()
		}
		req.Header["Grpc-Timeout"] = []string{grpcTimeout(d)}
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	if !grpcContentType(resp.Header.Get("Content-Type")) {
		// Not a gRPC response (a proxy's error page, an HTTP/2 server that
		// is not gRPC): grpc-go maps the HTTP status to a code.
		n, _ := readAtMost(resp.Body, &c.respBuf, maxResponseBody)
		snippet := strings.TrimSpace(string(c.respBuf[:min(n, 512)]))
		if snippet == "" {
			snippet = "(empty)"
		}
		return grpcRetry(&statusError{
			code: httpStatusCode(resp.StatusCode),
			msg: fmt.Sprintf("unexpected HTTP status code received from server: %d (%s); content-type %q; body: %s",
				resp.StatusCode, http.StatusText(resp.StatusCode), resp.Header.Get("Content-Type"), snippet),
		}, false, 0)
	}
	if resp.Header.Get("Grpc-Status") != "" {
		// Trailers-only: the status is in the only HEADERS frame (and an
		// OK without a message is an error, as in grpc-go).
		if err := grpcStatus(resp.Header); err != nil {
			return err
		}
		_, err := c.grpcMessage(nil, "")
		return err
	}
	n, err := readAtMost(resp.Body, &c.respBuf, maxGRPCResponse+6)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return &retryable{err: err} // the stream was reset
	}
	if n > maxGRPCResponse+5 {
		return &statusError{code: codeResourceExhausted, msg: fmt.Sprintf("received a response larger than %d bytes", maxGRPCResponse)}
	}
	if len(resp.Trailer) == 0 {
		return &statusError{code: codeInternal, msg: "server closed the stream without sending trailers"}
	}
	if err := grpcStatus(resp.Trailer); err != nil {
		return err
	}
	msg, err := c.grpcMessage(c.respBuf[:n], resp.Header.Get("Grpc-Encoding"))
	if err != nil {
		return err
	}
	return partialSuccess(msg, c.sig.items)
}

// grpcMessage is the one message of a unary response, decompressed.
func (c *client) grpcMessage(b []byte, encoding string) ([]byte, error) {
	if len(b) == 0 {
		return nil, &statusError{code: codeInternal, msg: "cardinality violation: received no response message from a unary call"}
	}
	if len(b) < 5 {
		return nil, &statusError{code: codeInternal, msg: "truncated response message prefix"}
	}
	size := binary.BigEndian.Uint32(b[1:5])
	switch m := b[5:]; {
	case uint64(len(m)) < uint64(size):
		return nil, &statusError{code: codeInternal, msg: "truncated response message"}
	case uint64(len(m)) > uint64(size):
		return nil, &statusError{code: codeInternal, msg: "cardinality violation: received more than one response message from a unary call"}
	}
	switch b[0] {
	case 0:
		return b[5:], nil
	case 1:
		if encoding != "gzip" {
			return nil, &statusError{code: codeInternal, msg: fmt.Sprintf("compressed response message with grpc-encoding %q", encoding)}
		}
		// grpc-go servers answer a gzip request with a gzip response: the
		// reader and its output are reused.
		var err error
		if c.zr == nil {
			c.zr, err = gzip.NewReader(bytes.NewReader(b[5:]))
		} else {
			err = c.zr.Reset(bytes.NewReader(b[5:]))
		}
		if err != nil {
			return nil, &statusError{code: codeInternal, msg: "response message: " + err.Error()}
		}
		n, err := readAtMost(c.zr, &c.msgBuf, maxGRPCResponse+1)
		if err != nil {
			return nil, &statusError{code: codeInternal, msg: "response message: " + err.Error()}
		}
		if n > maxGRPCResponse {
			return nil, &statusError{code: codeResourceExhausted, msg: fmt.Sprintf("received a response larger than %d bytes", maxGRPCResponse)}
		}
		return c.msgBuf[:n], nil
	}
	return nil, &statusError{code: codeInternal, msg: fmt.Sprintf("response message compressed flag %d", b[0])}
}

// grpcContentType: application/grpc, application/grpc+proto,
// application/grpc;… (grpc-go's grpcutil.ContentSubtype).
func grpcContentType(v string) bool {
	rest, ok := strings.CutPrefix(v, "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

// httpStatusCode is grpc-go's HTTPStatusConvTab for a response that is
// not gRPC.
func httpStatusCode(s int) uint32 {
	switch s {
	case http.StatusBadRequest:
		return codeInternal
	case http.StatusUnauthorized:
		return codeUnauthenticated
	case http.StatusForbidden:
		return codePermissionDenied
	case http.StatusNotFound:
		return codeUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return codeUnavailable
	}
	return codeUnknown
}

// grpcStatus is the call's outcome from its trailers (or a trailers-only
// response's headers): nil for OK.
func grpcStatus(h http.Header) error {
	v := h.Get("Grpc-Status")
	if v == "" {
		return &statusError{code: codeUnknown, msg: "trailers without grpc-status"}
	}
	code, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return &statusError{code: codeUnknown, msg: fmt.Sprintf("malformed grpc-status %q", v)}
	}
	if code == codeOK {
		return nil
	}
	st := &statusError{code: uint32(code), msg: decodeGRPCMessage(h.Get("Grpc-Message"))}
	var hasRetryInfo bool
	var delay time.Duration
	if d := h.Values("Grpc-Status-Details-Bin"); len(d) == 1 {
		// As grpc-go: details that do not decode are ignored, details of
		// another code make the status Internal.
		if b, err := decodeBinHeader(d[0]); err == nil {
			if dcode, ri, rd, ok := statusDetails(b); ok {
				if uint64(dcode) != code {
					return &statusError{code: codeInternal, msg: fmt.Sprintf("grpc-status-details-bin mismatch: grpc-status=%d, grpc-message=%q, details code %d", code, st.msg, dcode)}
				}
				hasRetryInfo, delay = ri, rd
			}
		}
	}
	return grpcRetry(st, hasRetryInfo, delay)
}

// grpcRetry is the official exporter's retryable: these codes are worth
// another attempt, after RetryInfo's delay when the status carries one;
// ResourceExhausted only when it carries one (the server says when
// capacity will be back).
func grpcRetry(st *statusError, hasRetryInfo bool, delay time.Duration) error {
	switch st.code {
	case codeCanceled, codeDeadlineExceeded, codeAborted, codeOutOfRange, codeUnavailable, codeDataLoss:
		return &retryable{throttle: delay, err: st}
	case codeResourceExhausted:
		if hasRetryInfo {
			return &retryable{throttle: delay, err: st}
		}
	}
	return st
}

// gRPC status codes (google.golang.org/grpc/codes).
const (
	codeOK = iota
	codeCanceled
	codeUnknown
	codeInvalidArgument
	codeDeadlineExceeded
	codeNotFound
	codeAlreadyExists
	codePermissionDenied
	codeResourceExhausted
	codeFailedPrecondition
	codeAborted
	codeOutOfRange
	codeUnimplemented
	codeInternal
	codeUnavailable
	codeDataLoss
	codeUnauthenticated
)

var codeNames = [...]string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
	"Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}

// statusError is a call's status other than OK.
type statusError struct {
	code uint32
	msg  string
}

// Error reads as grpc-go's status errors do.
func (e *statusError) Error() string {
	name := "Code(" + strconv.FormatUint(uint64(e.code), 10) + ")"
	if e.code < uint32(len(codeNames)) {
		name = codeNames[e.code]
	}
	return "rpc error: code = " + name + " desc = " + e.msg
}

// decodeGRPCMessage undoes grpc-message's percent-encoding as grpc-go
// does: a malformed escape is kept as is.
func decodeGRPCMessage(m string) string {
	if !strings.Contains(m, "%") {
		return m
	}
	var b strings.Builder
	for i := 0; i < len(m); i++ {
		if m[i] == '%' && i+2 < len(m) {
			if v, err := strconv.ParseUint(m[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(m[i])
	}
	return b.String()
}

// decodeBinHeader is grpc-go's: base64, padded or not.
func decodeBinHeader(v string) ([]byte, error) {
	if len(v)%4 == 0 {
		return base64.StdEncoding.DecodeString(v)
	}
	return base64.RawStdEncoding.DecodeString(v)
}

var errMalformed = errors.New("malformed protobuf")

// statusDetails reads a google.rpc.Status {code(1), message(2),
// details(3) repeated google.protobuf.Any {type_url(1), value(2)}}: its
// code, and the delay of a google.rpc.RetryInfo {retry_delay(1)
// google.protobuf.Duration {seconds(1), nanos(2)}} among its details.
// ok is false when b does not decode.
func statusDetails(b []byte) (code int32, hasRetryInfo bool, delay time.Duration, ok bool) {
	err := fields(b, func(num protowire.Number, v uint64, bs []byte) error {
		switch num {
		case 1:
			code = int32(v)
		case 3:
			var typeURL string
			var value []byte
			if err := fields(bs, func(num protowire.Number, _ uint64, bs []byte) error {
				switch num {
				case 1:
					typeURL = string(bs)
				case 2:
					value = bs
				}
				return nil
			}); err != nil {
				return err
			}
			if typeURL[strings.LastIndexByte(typeURL, '/')+1:] != "google.rpc.RetryInfo" || hasRetryInfo {
				return nil
			}
			hasRetryInfo = true
			return fields(value, func(num protowire.Number, _ uint64, bs []byte) error {
				if num != 1 {
					return nil
				}
				var sec, nanos int64
				if err := fields(bs, func(num protowire.Number, v uint64, _ []byte) error {
					switch num {
					case 1:
						sec = int64(v)
					case 2:
						nanos = int64(int32(v))
					}
					return nil
				}); err != nil {
					return err
				}
				delay = protoDuration(sec, nanos)
				return nil
			})
		}
		return nil
	})
	return code, hasRetryInfo, delay, err == nil
}

// protoDuration is durationpb's AsDuration: saturated at the bounds of
// time.Duration.
func protoDuration(sec, nanos int64) time.Duration {
	const maxSec = int64(1<<63-1) / int64(time.Second)
	switch {
	case sec > maxSec:
		return time.Duration(1<<63 - 1)
	case sec < -maxSec:
		return time.Duration(-1 << 63)
	}
	d := time.Duration(sec) * time.Second
	s := d + time.Duration(nanos)
	switch {
	case nanos > 0 && s < d:
		return time.Duration(1<<63 - 1)
	case nanos < 0 && s > d:
		return time.Duration(-1 << 63)
	}
	return s
}

// fields calls fn with each varint field's value and each
// length-delimited field's bytes of the message b (other wire types are
// skipped).
func fields(b []byte, fn func(num protowire.Number, v uint64, bs []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		var v uint64
		var bs []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			bs, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		if typ == protowire.VarintType || typ == protowire.BytesType {
			if err := fn(num, v, bs); err != nil {
				return err
			}
		}
	}
	return nil
}

// grpcTimeout is grpc-go's encoding of a grpc-timeout (EncodeDuration):
// at most 8 digits, rounded up, in the finest unit that fits.
func grpcTimeout(d time.Duration) string {
	const maxValue = 1e8 - 1
	div := func(d, unit time.Duration) int64 {
		if d%unit > 0 {
			return int64(d/unit + 1)
		}
		return int64(d / unit)
	}
	for _, u := range []struct {
		unit time.Duration
		s    string
	}{{time.Nanosecond, "n"}, {time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}} {
		if v := div(d, u.unit); v <= maxValue {
			return strconv.FormatInt(v, 10) + u.s
		}
	}
	return strconv.FormatInt(div(d, time.Hour), 10) + "H"
}
