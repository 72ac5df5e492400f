package gateway

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"time"

	"github.com/abgate/abgate/experiments"
)

// snapshot is everything a request reads. It is immutable once stored:
// Update and SetAllocation build a new one and swap the pointer.
type snapshot struct {
	maxBody    int64
	limits     limits
	unitHeader string // canonical form, indexes http.Header directly
	unitField  string
	// segFields are the segment body fields of every experiment, picked
	// out of the body by the scan that finds the model.
	segFields []string

	routes      map[string]*experiment // by alias
	experiments map[string]*experiment // by id
	// allocs is indexed by experiment.idx, so SetAllocation can copy
	// the snapshot and replace one entry without rebuilding the rest.
	allocs    []*experiments.Allocation
	upstreams map[string]*upstream
	models    modelList // GET /v1/models (models.go)
	created   int64     // when the first configuration was loaded: the models' "created"
}

type experiment struct {
	idx        int
	id         string
	phase      int
	fallback   bool
	variants   []variant
	configured *experiments.Allocation
	hdr        []string // X-Abgate-Experiment value, shared (cap 1)
	segs       []segDim
}

// segDim is one segment dimension of an experiment: where its value comes
// from and the declared values.
type segDim struct {
	header string // canonical; "" when the value is a body field
	field  int    // index into snapshot.segFields when header is ""
	seg    *experiments.Segment
}

type variant struct {
	idx             int
	name            string
	model           []byte // the real model name as a JSON string, quotes included
	up              *upstream
	promptPrice     float64
	cachedPrice     float64 // cached prompt tokens: the variant's cached price, else promptPrice
	completionPrice float64
	hdr             []string // X-Abgate-Variant value, shared (cap 1)
}

type transportKey struct {
	url             string
	connect, header time.Duration
	maxIdle         int
	h2c             bool
}

type upstream struct {
	name       string
	url        *url.URL
	key        transportKey
	transport  *http.Transport
	proxy      *httputil.ReverseProxy
	authHeader string   // canonical
	authValue  []string // shared value slice (cap 1)
	headers    []header
	total      time.Duration
	// What the upstream learns of the unit id (privacy.go).
	unitHeader, unitField privacy
	unitMAC               *unitHasher // nil unless a policy is hash
}

type header struct {
	key   string
	value []string
}

// orDuration is d, or def when d is unset: zero config values take the
// same defaults the config loader would fill in (experiments.Default*),
// so a Config built in code works too.
func orDuration(d, def experiments.Duration) time.Duration {
	if d <= 0 {
		return time.Duration(def)
	}
	return time.Duration(d)
}

func (h *Handler) build(cfg *experiments.Config, old *snapshot) (*snapshot, error) {
	s := &snapshot{
		maxBody:     cfg.Server.MaxBodyBytes,
		unitHeader:  textproto.CanonicalMIMEHeaderKey(cfg.Server.UnitHeader),
		unitField:   cfg.Server.UnitBodyField,
		routes:      make(map[string]*experiment, len(cfg.Routes)),
		experiments: make(map[string]*experiment, len(cfg.Experiments)),
		upstreams:   make(map[string]*upstream, len(cfg.Upstreams)),
	}
	if s.maxBody <= 0 {
		s.maxBody = experiments.DefaultMaxBodyBytes
	}
	if s.unitHeader == "" {
		s.unitHeader = experiments.DefaultUnitHeader
	}
	if s.unitField == "" {
		s.unitField = experiments.DefaultUnitBodyField
	}
	s.limits = newLimits(&cfg.Server, s.maxBody)
	unitSecret := h.unitSecret(cfg)
	for i := range cfg.Upstreams {
		u := &cfg.Upstreams[i]
		if u.Name == "" {
			return nil, fmt.Errorf("upstream %d has no name", i)
		}
		if s.upstreams[u.Name] != nil {
			return nil, fmt.Errorf("duplicate upstream %q", u.Name)
		}
		up, err := h.newUpstream(u, old)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", u.Name, err)
		}
		if err := up.setPrivacy(u, unitSecret); err != nil {
			return nil, fmt.Errorf("upstream %q: %w", u.Name, err)
		}
		s.upstreams[u.Name] = up
	}
	s.segFields = cfg.SegmentBodyFields()
	if len(s.segFields) > experiments.MaxSegmentBodyFields {
		return nil, fmt.Errorf("segments use %d distinct body fields; at most %d", len(s.segFields), experiments.MaxSegmentBodyFields)
	}
	for i := range cfg.Experiments {
		c := &cfg.Experiments[i]
		if c.ID == "" {
			return nil, fmt.Errorf("experiment %d has no id", i)
		}
		if s.experiments[c.ID] != nil {
			return nil, fmt.Errorf("duplicate experiment %q", c.ID)
		}
		if len(c.Variants) == 0 {
			return nil, fmt.Errorf("experiment %q has no variants", c.ID)
		}
		if len(c.Variants) > 255 {
			return nil, fmt.Errorf("experiment %q has more than 255 variants", c.ID)
		}
		e := &experiment{
			idx:      len(s.allocs),
			id:       c.ID,
			phase:    c.PhaseOrOne(),
			fallback: c.Fallback,
			hdr:      []string{c.ID},
		}
		for j, v := range c.Variants {
			up := s.upstreams[v.Upstream]
			if up == nil {
				return nil, fmt.Errorf("experiment %q variant %q: unknown upstream %q", c.ID, v.Name, v.Upstream)
			}
			if v.Model == "" {
				return nil, fmt.Errorf("experiment %q variant %q: no model", c.ID, v.Name)
			}
			model, _ := json.Marshal(v.Model) // a string always marshals
			e.variants = append(e.variants, variant{
				idx:             j,
				name:            v.Name,
				model:           model,
				up:              up,
				promptPrice:     v.PromptPrice,
				cachedPrice:     *cmp.Or(v.CachedPromptPrice, &v.PromptPrice),
				completionPrice: v.CompletionPrice,
				hdr:             []string{v.Name},
			})
		}
		if len(c.Segments) > experiments.MaxSegmentDimensions {
			return nil, fmt.Errorf("experiment %q has more than %d segment dimensions", c.ID, experiments.MaxSegmentDimensions)
		}
		for k := range c.Segments {
			sg := c.Segments[k] // a copy: the snapshot must not change with cfg
			sg.Values = append([]string(nil), sg.Values...)
			d := segDim{seg: &sg}
			if sg.Header != "" {
				d.header = textproto.CanonicalMIMEHeaderKey(sg.Header)
			} else {
				for j, f := range s.segFields {
					if f == sg.BodyField {
						d.field = j
					}
				}
			}
			e.segs = append(e.segs, d)
		}
		e.configured = c.Allocation()
		if c.Rollout != nil {
			// A rollout experiment serves what its lifecycle says; until the
			// watcher delivers that, it serves as a draft does (the base to
			// everyone), never its configured weights: no user reaches a
			// candidate before the rollout is started.
			e.configured = c.AllocationFor(experiments.Draft(c))
		}
		if err := checkAllocation(e, e.configured); err != nil {
			return nil, fmt.Errorf("experiment %q: %w", c.ID, err)
		}
		s.experiments[c.ID] = e
		s.allocs = append(s.allocs, e.configured)
	}
	for _, r := range cfg.Routes {
		e := s.experiments[r.Experiment]
		if e == nil {
			return nil, fmt.Errorf("route %q: unknown experiment %q", r.Alias, r.Experiment)
		}
		if r.Alias == "" {
			return nil, fmt.Errorf("route to %q has no alias", r.Experiment)
		}
		if s.routes[r.Alias] != nil {
			return nil, fmt.Errorf("duplicate route alias %q", r.Alias)
		}
		s.routes[r.Alias] = e
	}
	aliases := make([]string, 0, len(s.routes))
	for a := range s.routes {
		aliases = append(aliases, a)
	}
	created := h.now().Unix()
	if old != nil && len(old.models.all) > 0 {
		created = old.created // a reload does not make old aliases new
	}
	s.created = created
	s.models = newModelList(aliases, created)
	return s, nil
}

// segments maps the request's segment values to indexes. It does not
// allocate: header values are compared as stored, body values alias the
// body.
func (e *experiment) segments(h http.Header, f *bodyFields) experiments.SegmentValues {
	var sv experiments.SegmentValues
	sv.N = uint8(len(e.segs))
	for i := range e.segs {
		d := &e.segs[i]
		if d.header != "" {
			if vs := h[d.header]; len(vs) > 0 {
				sv.V[i] = d.seg.IndexString(vs[0])
			}
		} else {
			sv.V[i] = d.seg.Index(f.extra[d.field])
		}
	}
	return sv
}

func (h *Handler) newUpstream(u *experiments.Upstream, old *snapshot) (*upstream, error) {
	target, err := url.Parse(u.URL)
	if err != nil {
		return nil, errors.New("invalid url") // the parse error may echo the URL's userinfo
	}
	if (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, errors.New("url must be http(s)://host[:port][/path]")
	}
	if target.User != nil {
		return nil, errors.New("url must not carry credentials; use api_key")
	}
	if u.H2C && target.Scheme != "http" {
		return nil, errors.New("h2c is for http:// upstreams; https:// negotiates HTTP/2 itself")
	}
	up := &upstream{
		name: u.Name,
		url:  target,
		key: transportKey{
			url:     u.URL,
			connect: orDuration(u.ConnectTimeout, experiments.DefaultConnectTimeout),
			header:  orDuration(u.HeaderTimeout, experiments.DefaultHeaderTimeout),
			maxIdle: u.MaxIdleConns,
			h2c:     u.H2C,
		},
		total: orDuration(u.TotalTimeout, experiments.DefaultTotalTimeout),
	}
	if up.key.maxIdle <= 0 {
		up.key.maxIdle = experiments.DefaultMaxIdleConns
	}
	if key := u.APIKey.Reveal(); key != "" {
		if u.AuthHeader == "" {
			up.authHeader, up.authValue = "Authorization", []string{"Bearer " + key}
		} else {
			up.authHeader, up.authValue = textproto.CanonicalMIMEHeaderKey(u.AuthHeader), []string{key}
		}
	}
	for k, v := range u.Headers {
		up.headers = append(up.headers, header{textproto.CanonicalMIMEHeaderKey(k), []string{v}})
	}
	if old != nil {
		if o := old.upstreams[u.Name]; o != nil && o.key == up.key {
			up.transport = o.transport
		}
	}
	if up.transport == nil {
		up.transport = newTransport(up.key)
	}
	up.proxy = &httputil.ReverseProxy{
		Rewrite:   h.rewrite,
		Transport: up.transport,
		// FlushInterval stays 0: ReverseProxy already flushes every write
		// of a text/event-stream or unknown-length response, so SSE tokens
		// reach the client as they arrive; -1 would also arm a flush timer
		// and add a write(2) to every plain JSON answer.
		BufferPool:     copyBuffers,
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.errorHandler,
		ErrorLog:       h.errLog,
	}
	return up, nil
}

// newTransport is one upstream's connection pool. Compression is off and
// the client's Accept-Encoding is dropped (see rewrite), so bodies arrive
// as identity: the meter can read usage and SSE events, and no gzip
// layer buffers stream chunks. HTTP/2 is used wherever the upstream
// offers it by ALPN (ForceAttemptHTTP2, since DialContext is custom),
// and over clear text when the upstream is configured h2c: a live
// stream then costs a stream on a shared connection, not a connection
// with its own buffers and read and write goroutines.
func newTransport(k transportKey) *http.Transport {
	d := &net.Dialer{Timeout: k.connect, KeepAlive: 30 * time.Second}
	var protos *http.Protocols
	if k.h2c {
		protos = new(http.Protocols)
		protos.SetUnencryptedHTTP2(true)
	}
	return &http.Transport{
		Protocols:             protos,
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   k.connect,
		ResponseHeaderTimeout: k.header,
		MaxIdleConns:          k.maxIdle,
		MaxIdleConnsPerHost:   k.maxIdle,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
		ReadBufferSize:        upstreamReadBuf,
		WriteBufferSize:       upstreamWriteBuf,
	}
}

// upstreamReadBuf and upstreamWriteBuf size an HTTP/1.1 upstream
// connection's bufio reader and writer: 1 KiB and 512 bytes, not the
// Transport's default 4 KiB each. Over HTTP/1.1 every live stream holds a
// connection of its own, and both buffers live as long as it does, so at
// the default they were 8 KiB of every stream's memory (2,000 streams:
// 58.7 -> 52.9 KiB a stream above idle with 1 KiB each, 50.2 -> 49.8 with
// the 512-byte writer; issue "Live streams at scale"). What it costs:
//   - reads: an SSE event (150-400 bytes) fits in one read(2); a large
//     JSON body takes one read(2) per KiB (ReverseProxy's copy buffer,
//     copyBufSize, is smaller and reads out of this one), where 4 KiB
//     took one per 4 KiB; response headers longer than 1 KiB take one
//     more read(2).
//   - writes: the writer is used once per request and then idles for the
//     rest of the stream. A request line, headers and body of up to 512
//     bytes go out in one write(2); larger requests take one more write(2)
//     per 512 bytes of headers, and a body that does not fit goes to the
//     connection after the buffer's first write, through a copy buffer
//     net allocates for it (the rest of the body, at most 32 KiB, then
//     garbage). With 4 KiB that happened only for bodies above about
//     3.5 KiB. BenchmarkServeHTTP (1 KiB body): 134 -> 136 allocations,
//     18.1 -> 18.7 KB a request.
//
// HTTP/2 connections (h2c, or ALPN) are shared by many streams and keep
// their own buffers.
const (
	upstreamReadBuf  = 1 << 10
	upstreamWriteBuf = 512
)

// cost prices a request's usage at the variant's prices per 1,000
// tokens: cached prompt tokens (at most the prompt's) at the cached
// price, the rest of the prompt at the prompt price (issue 15).
func (v *variant) cost(prompt, cached, completion int) float64 {
	cached = min(max(cached, 0), prompt)
	return (float64(prompt-cached)*v.promptPrice + float64(cached)*v.cachedPrice + float64(completion)*v.completionPrice) / 1000
}
