package otlpexport

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// signal is what differs between the exported signals.
type signal struct {
	name  string // "traces": OTEL_EXPORTER_OTLP_TRACES_* and error messages
	path  string // the OTLP/HTTP path appended to OTEL_EXPORTER_OTLP_ENDPOINT
	items string // what a partial success counts as rejected
}

var traces = signal{name: "traces", path: "/v1/traces", items: "spans"}

// client sends one signal's encoded export requests: the transport,
// compression, retries and configuration every exporter here shares.
type client struct {
	sig         signal
	grpc        bool // OTLP/gRPC: call instead of post
	url         string
	header      http.Header
	gzip        bool
	http        *http.Client
	timeout     time.Duration // the whole export, its retries included
	retry       retryPolicy
	stopped     context.Context // done after close
	shutdown    context.CancelFunc
	maxReqBytes int
	mu          sync.Mutex // guards the buffers below: one export at a time
	zbuf        bytes.Buffer
	zw          *gzip.Writer
	respBuf     []byte
	zr          *gzip.Reader // gRPC: compressed responses
	msgBuf      []byte       // gRPC: a compressed response's message
}

// newClient configures sig's client from the environment (New documents
// the variables).
func newClient(ctx context.Context, sig signal, getenv func(string) string, readFile func(string) ([]byte, error)) (*client, error) {
	cfg, err := configFromEnv(sig, getenv, readFile)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tr := transport.Clone()
	if cfg.grpc {
		tr = grpcTransport.Clone()
	}
	if cfg.tls != nil {
		tr.TLSClientConfig = cfg.tls
	}
	var h http.Header
	if cfg.grpc {
		h = grpcHeader(cfg.headers, cfg.gzip)
	} else {
		h = http.Header{}
		for k, v := range cfg.headers {
			h.Set(k, v)
		}
		h.Set("Content-Type", "application/x-protobuf")
		h.Set("User-Agent", userAgent)
		if cfg.gzip {
			h.Set("Content-Encoding", "gzip")
		}
	}
	stopped, shutdown := context.WithCancel(context.Background())
	c := &client{
		sig:         sig,
		grpc:        cfg.grpc,
		url:         cfg.url,
		header:      h,
		gzip:        cfg.gzip,
		http:        &http.Client{Transport: tr},
		timeout:     cfg.timeout,
		retry:       defaultRetry,
		stopped:     stopped,
		shutdown:    shutdown,
		maxReqBytes: 32 << 20, // the official DefaultMaxRequestSize
	}
	if cfg.gzip {
		c.zw = gzip.NewWriter(&c.zbuf)
	}
	return c, nil
}

// retryPolicy is the official exporter's default (retry.DefaultConfig)
// with backoff's randomization (0.5) and multiplier (1.5).
type retryPolicy struct {
	initial, maxInterval, maxElapsed time.Duration
}

var defaultRetry = retryPolicy{initial: 5 * time.Second, maxInterval: 30 * time.Second, maxElapsed: time.Minute}

const userAgent = "abgate OTLP exporter (Go)"

// maxResponseBody bounds how much of a response is read (the official
// exporter's DefaultMaxResponseSize is 64 MiB; a snippet is enough).
const maxResponseBody = 64 << 10

// transport is the official exporter's (ourTransport).
var transport = &http.Transport{
	Proxy: http.ProxyFromEnvironment,
	DialContext: (&net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
	}).DialContext,
	ForceAttemptHTTP2:     true,
	MaxIdleConns:          100,
	IdleConnTimeout:       90 * time.Second,
	TLSHandshakeTimeout:   10 * time.Second,
	ExpectContinueTimeout: 1 * time.Second,
}

// export sends one encoded request (body is the caller's, reused after
// export returns), retrying as the official exporter does until ctx ends.
func (c *client) export(ctx context.Context, body []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(body) > c.maxReqBytes {
		return fmt.Errorf("%s export: request body too large: exceeded %d bytes", c.sig.name, c.maxReqBytes)
	}
	if c.gzip {
		c.zbuf.Reset()
		c.zw.Reset(&c.zbuf)
		if _, err := c.zw.Write(body); err != nil {
			return fmt.Errorf("%s export: gzip: %w", c.sig.name, err)
		}
		if err := c.zw.Close(); err != nil {
			return fmt.Errorf("%s export: gzip: %w", c.sig.name, err)
		}
		body = c.zbuf.Bytes()
	}
	// OTEL_EXPORTER_OTLP_TIMEOUT bounds the whole export, retries
	// included, as in the official exporter: a collector that is down
	// holds the exporting goroutine for at most that long.
	// Shutdown cancels an export in flight, as the official one does.
	var cancel context.CancelFunc
	if c.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	defer context.AfterFunc(c.stopped, cancel)()
	// The buffer is reused by the next export, but net/http may still
	// read a request body after Do returns (RoundTrip "may close it in a
	// separate goroutine"): readers of this export's body fail once it
	// returns.
	src := &bodySource{b: body}
	defer src.detach()
	if err := c.send(ctx, src); err != nil {
		return fmt.Errorf("%s export: %w", c.sig.name, err)
	}
	return nil
}

// bodySource is one export's request body, shared by its attempts until
// detach.
type bodySource struct {
	mu sync.Mutex
	b  []byte
}

var errBodyDetached = errors.New("otlpexport: request body read after its export returned")

func (s *bodySource) detach() {
	s.mu.Lock()
	s.b = nil
	s.mu.Unlock()
}

// reader is one attempt's view of the body.
func (s *bodySource) reader() io.ReadCloser { return &bodyReader{src: s} }

type bodyReader struct {
	src *bodySource
	off int
}

func (r *bodyReader) Read(p []byte) (int, error) {
	r.src.mu.Lock()
	defer r.src.mu.Unlock()
	if r.src.b == nil {
		return 0, errBodyDetached
	}
	if r.off >= len(r.src.b) {
		return 0, io.EOF
	}
	n := copy(p, r.src.b[r.off:])
	r.off += n
	return n, nil
}

func (r *bodyReader) Close() error { return nil }

// retryable is a failure worth another attempt, after at least throttle
// (the response's Retry-After).
type retryable struct {
	throttle time.Duration
	err      error
}

func (r *retryable) Error() string { return "retry-able request failure: " + r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// send posts body until it is accepted, a failure is final, ctx ends or
// the retry budget is spent: exponential backoff from retry.initial
// (randomized ±50%, ×1.5 per attempt, at most retry.maxInterval), waiting
// at least the server's Retry-After, for at most retry.maxElapsed.
func (c *client) send(ctx context.Context, body *bodySource) error {
	start := time.Now()
	interval := c.retry.initial
	var last error // the last retryable failure
	for {
		var err error
		if c.grpc {
			err = c.call(ctx, body)
		} else {
			err = c.post(ctx, body)
		}
		if err == nil {
			return nil
		}
		var r *retryable
		if !errors.As(err, &r) {
			if last != nil && ctx.Err() != nil {
				// An attempt cut short by the end of the export says only
				// that; the failure before it says why the export failed
				// (a collector down, a certificate refused).
				return fmt.Errorf("%w: %w", context.Cause(ctx), last)
			}
			return err
		}
		last = err
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", context.Cause(ctx), err)
		}
		elapsed := time.Since(start)
		if elapsed > c.retry.maxElapsed {
			return fmt.Errorf("max retry time elapsed: %w", err)
		}
		delta := 0.5 * float64(interval)
		backoff := time.Duration(float64(interval) - delta + rand.Float64()*(2*delta+1))
		if interval >= time.Duration(float64(c.retry.maxInterval)/1.5) {
			interval = c.retry.maxInterval
		} else {
			interval = time.Duration(float64(interval) * 1.5)
		}
		if elapsed+r.throttle > c.retry.maxElapsed {
			return fmt.Errorf("max retry time would elapse: %w", err)
		}
		t := time.NewTimer(max(backoff, r.throttle))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// do sends req. A failure to get an answer (connection refused or
// reset, an HTTP/2 GOAWAY) is worth another attempt unless ctx ended:
// the official OTLP/HTTP exporter retries a url.Error that is Temporary,
// and grpc-go reports these as Unavailable, which its exporter retries.
func (c *client) do(ctx context.Context, req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil && ctx.Err() == nil {
		return nil, &retryable{err: err}
	}
	return resp, err
}

// post makes one attempt.
func (c *client) post(ctx context.Context, body *bodySource) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, body.reader())
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(body.b)) // not detached before send returns
	req.GetBody = func() (io.ReadCloser, error) { return body.reader(), nil }
	req.Header = c.header // read-only: shared by every request
	resp, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, rerr := readAtMost(resp.Body, &c.respBuf, maxResponseBody)
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		if rerr != nil {
			return rerr
		}
		if resp.Header.Get("Content-Type") == "application/x-protobuf" {
			return partialSuccess(c.respBuf[:n], c.sig.items)
		}
		return nil
	}
	snippet := strings.TrimSpace(string(c.respBuf[:min(n, 512)]))
	if snippet == "" {
		snippet = "(empty)"
	}
	bodyErr := fmt.Errorf("body: %s", snippet)
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return &retryable{throttle: retryAfter(resp.Header.Get("Retry-After")), err: fmt.Errorf("%s: %w", resp.Status, bodyErr)}
	}
	return fmt.Errorf("failed to send to %s: %s (%w)", c.url, resp.Status, bodyErr)
}

// readAtMost reads r into *buf (reused), up to limit bytes, and drains at
// most limit more so the connection can be reused.
func readAtMost(r io.Reader, buf *[]byte, limit int) (int, error) {
	b := (*buf)[:0]
	for len(b) < limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):min(cap(b), limit)])
		b = b[:len(b)+n]
		if err == io.EOF {
			*buf = b
			return len(b), nil
		}
		if err != nil {
			*buf = b
			return len(b), err
		}
	}
	*buf = b
	io.Copy(io.Discard, io.LimitReader(r, int64(limit)))
	return len(b), nil
}

// partialSuccess reports an Export*ServiceResponse's partial_success(1)
// {rejected_<items>(1), error_message(2)} when it says anything, as the
// official exporters do.
func partialSuccess(b []byte, items string) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("response: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num != 1 || typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("response: %w", protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		ps, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return fmt.Errorf("response: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var rejected int64
		var msg string
		for len(ps) > 0 {
			num, typ, n := protowire.ConsumeTag(ps)
			if n < 0 {
				return fmt.Errorf("response: %w", protowire.ParseError(n))
			}
			ps = ps[n:]
			switch {
			case num == 1 && typ == protowire.VarintType:
				v, n := protowire.ConsumeVarint(ps)
				if n < 0 {
					return fmt.Errorf("response: %w", protowire.ParseError(n))
				}
				rejected, ps = int64(v), ps[n:]
			case num == 2 && typ == protowire.BytesType:
				v, n := protowire.ConsumeBytes(ps)
				if n < 0 {
					return fmt.Errorf("response: %w", protowire.ParseError(n))
				}
				msg, ps = string(v), ps[n:]
			default:
				n := protowire.ConsumeFieldValue(num, typ, ps)
				if n < 0 {
					return fmt.Errorf("response: %w", protowire.ParseError(n))
				}
				ps = ps[n:]
			}
		}
		if rejected != 0 || msg != "" {
			return fmt.Errorf("OTLP partial success: %s (%d %s rejected)", msg, rejected, items)
		}
	}
	return nil
}

// retryAfter is a Retry-After header's delay: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		if s > int64(1<<63-1)/int64(time.Second) {
			return time.Duration(1<<63 - 1)
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// close makes later exports fail, cancels one in flight and closes idle
// connections. It is idempotent.
func (c *client) close() {
	c.shutdown()
	c.http.CloseIdleConnections()
}

// config is what the environment asks for.
type config struct {
	grpc    bool   // OTLP/gRPC instead of OTLP/HTTP
	url     string // for gRPC, http(s)://host:port/<service>/Export
	headers map[string]string
	timeout time.Duration
	gzip    bool
	tls     *tls.Config
}

const envPrefix = "OTEL_EXPORTER_OTLP_"

// configFromEnv reads the variables New documents, for sig.
func configFromEnv(sig signal, getenv func(string) string, readFile func(string) ([]byte, error)) (config, error) {
	cfg := config{timeout: 10 * time.Second}
	sigPrefix := envPrefix + strings.ToUpper(sig.name) + "_"
	get := func(name string) (string, string) {
		if v := strings.TrimSpace(getenv(sigPrefix + name)); v != "" {
			return sigPrefix + name, v
		}
		if v := strings.TrimSpace(getenv(envPrefix + name)); v != "" {
			return envPrefix + name, v
		}
		return "", ""
	}
	switch name, v := get("PROTOCOL"); v {
	case "", "http/protobuf":
	case "grpc":
		cfg.grpc = true
	default:
		return cfg, fmt.Errorf("%s=%q: want http/protobuf or grpc (http/json is not supported)", name, v)
	}

	var scheme, host, urlPath string
	if cfg.grpc {
		method, err := grpcMethod(sig.name)
		if err != nil {
			return cfg, err
		}
		// The specification's default, http://localhost:4317. The official
		// exporter dials localhost:4317 with TLS when nothing is set (its
		// config defaults to "secure"), which no local collector answers.
		scheme, host, urlPath = "http", "localhost:4317", method
		for _, name := range []string{sigPrefix + "ENDPOINT", envPrefix + "ENDPOINT"} {
			if v := strings.TrimSpace(getenv(name)); v != "" {
				if scheme, host, err = parseGRPCEndpoint(name, v); err != nil {
					return cfg, err
				}
				break
			}
		}
	} else {
		scheme, host, urlPath = "http", "localhost:4318", sig.path
		if v := strings.TrimSpace(getenv(sigPrefix + "ENDPOINT")); v != "" {
			u, err := parseEndpoint(sigPrefix+"ENDPOINT", v)
			if err != nil {
				return cfg, err
			}
			scheme, host, urlPath = schemeOf(u), u.Host, u.Path
			if urlPath == "" {
				urlPath = "/"
			}
		} else if v := strings.TrimSpace(getenv(envPrefix + "ENDPOINT")); v != "" {
			u, err := parseEndpoint(envPrefix+"ENDPOINT", v)
			if err != nil {
				return cfg, err
			}
			scheme, host, urlPath = schemeOf(u), u.Host, path.Join(u.Path, sig.path)
		}
	}
	if name, v := get("INSECURE"); name != "" {
		if strings.EqualFold(v, "true") {
			scheme = "http"
		} else {
			scheme = "https"
		}
	}

	if name, v := get("HEADERS"); name != "" {
		h, err := parseHeaders(v)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", name, err)
		}
		cfg.headers = h
	}
	if name, v := get("TIMEOUT"); name != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms < 0 {
			return cfg, fmt.Errorf("%s=%q: want a duration in milliseconds", name, v)
		}
		cfg.timeout = time.Duration(ms) * time.Millisecond
	}
	if name, v := get("COMPRESSION"); name != "" {
		switch v {
		case "gzip":
			cfg.gzip = true
		case "none":
		default:
			return cfg, fmt.Errorf("%s=%q: want gzip or none", name, v)
		}
	}
	var tc *tls.Config
	if name, v := get("CERTIFICATE"); name != "" {
		pem, err := readFile(v)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return cfg, fmt.Errorf("%s=%s: no PEM certificate in the file", name, v)
		}
		tc = &tls.Config{RootCAs: pool}
	}
	certName, certFile, keyName, keyFile := "", "", "", ""
	for _, pre := range []string{sigPrefix, envPrefix} {
		c, k := strings.TrimSpace(getenv(pre+"CLIENT_CERTIFICATE")), strings.TrimSpace(getenv(pre+"CLIENT_KEY"))
		if (c == "") != (k == "") {
			return cfg, fmt.Errorf("%sCLIENT_CERTIFICATE and %sCLIENT_KEY must be set together", pre, pre)
		}
		if c != "" && certFile == "" {
			certName, certFile, keyName, keyFile = pre+"CLIENT_CERTIFICATE", c, pre+"CLIENT_KEY", k
		}
	}
	if certFile != "" {
		certPEM, err := readFile(certFile)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", certName, err)
		}
		keyPEM, err := readFile(keyFile)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", keyName, err)
		}
		crt, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return cfg, fmt.Errorf("%s, %s: %w", certName, keyName, err)
		}
		if tc == nil {
			tc = &tls.Config{}
		}
		tc.Certificates = []tls.Certificate{crt}
	}
	if tc != nil && scheme == "http" {
		if !cfg.grpc {
			// The official exporter refuses this too (errInsecureEndpointWithTLS).
			return cfg, errors.New("otlpexport: an insecure (http) endpoint cannot use the TLS settings of OTEL_EXPORTER_OTLP_*CERTIFICATE/CLIENT_KEY")
		}
		// The official gRPC exporter lets TLS settings win over an http
		// scheme or INSECURE=true (its credentials take priority over
		// "insecure"): a configuration that works with it keeps working.
		scheme = "https"
	}
	cfg.tls = tc
	cfg.url = (&url.URL{Scheme: scheme, Host: host, Path: urlPath}).String()
	return cfg, nil
}

func parseEndpoint(name, v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", name, v, err)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s=%q: want a URL such as http://collector:4318", name, v)
	}
	return u, nil
}

// schemeOf is the official exporter's withEndpointScheme: http (and unix)
// endpoints are insecure, anything else uses TLS.
func schemeOf(u *url.URL) string {
	switch strings.ToLower(u.Scheme) {
	case "http", "unix":
		return "http"
	}
	return "https"
}

// parseHeaders reads "k=v,k2=v2" as the official envconfig does (keys
// trimmed, values URL-decoded with PathUnescape then trimmed), except that
// a malformed pair is an error instead of a logged skip.
func parseHeaders(v string) (map[string]string, error) {
	h := map[string]string{}
	for pair := range strings.SplitSeq(v, ",") {
		k, val, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("%q: missing '='", pair)
		}
		k = strings.TrimSpace(k)
		if !validHeaderKey(k) {
			return nil, fmt.Errorf("%q: invalid header key", k)
		}
		dec, err := url.PathUnescape(val)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", val, err)
		}
		h[k] = strings.TrimSpace(dec)
	}
	return h, nil
}

// validHeaderKey: a non-empty RFC 7230 token.
func validHeaderKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range []byte(k) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
