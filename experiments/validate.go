package experiments

import (
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/abgate/abgate/stats"
)

// FieldError is one problem with one config field. Field is the YAML
// path ("experiments[0].variants[1].weight"); Reason says what is wrong
// without repeating the value, so secrets and environment values can't
// leak through it.
type FieldError struct {
	Field  string
	Reason string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

// ValidationError lists every problem found in a config, in document
// order. It matches ErrInvalidConfig with errors.Is.
type ValidationError []FieldError

// Error gives one problem per line.
func (v ValidationError) Error() string {
	var b strings.Builder
	for i, fe := range v {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (v ValidationError) Is(target error) bool { return target == ErrInvalidConfig }

// covers reports whether v already has an error for field or one of its
// parents, so a field that failed to decode isn't also reported as, say,
// missing.
func (v ValidationError) covers(field string) bool {
	for _, fe := range v {
		if fe.Field == field || strings.HasPrefix(field, fe.Field+".") || strings.HasPrefix(field, fe.Field+"[") {
			return true
		}
	}
	return false
}

// Defaults (see docs/config.md).
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultMaxBodyBytes    = 10 << 20
	DefaultUnitHeader      = "X-User-ID"
	DefaultUnitBodyField   = "user"
	DefaultTokenTTL        = Duration(7 * 24 * time.Hour)
	DefaultSessionTTL      = Duration(12 * time.Hour)
	DefaultShutdownTimeout = Duration(30 * time.Second)
	DefaultKeyPrefix       = "abgate"
	DefaultQueueSize       = 65536
	DefaultFlushInterval   = Duration(100 * time.Millisecond)
	DefaultBatchSize       = 4096
	DefaultRetention       = Duration(90 * 24 * time.Hour)
	// DefaultFeedbackTextRetention keeps opted-in free-text feedback 30 days.
	DefaultFeedbackTextRetention = Duration(30 * 24 * time.Hour)
	// DefaultCUPEDHistoryTTL keeps a user's pre-exposure history 28
	// days after their last request: four weekly cycles.
	DefaultCUPEDHistoryTTL = Duration(28 * 24 * time.Hour)
	// MinCUPEDHistoryTTL and MaxCUPEDHistoryTTL bound cuped_history_ttl:
	// below an hour the history would rarely outlive a user's session
	// gap, above a year it is memory kept for users long gone.
	MinCUPEDHistoryTTL     = Duration(time.Hour)
	MaxCUPEDHistoryTTL     = Duration(366 * 24 * time.Hour)
	DefaultConnectTimeout  = Duration(5 * time.Second)
	DefaultHeaderTimeout   = Duration(60 * time.Second)
	DefaultTotalTimeout    = Duration(10 * time.Minute)
	DefaultMaxIdleConns    = 512
	DefaultPrimaryMetric   = MetricThumbs
	DefaultRolloutAlpha    = 0.05
	DefaultRolloutMinUsers = 100
	// MinTokenSecretBytes is the shortest server.token_secret serve accepts.
	MinTokenSecretBytes = 32
	// MaxVariants bounds an experiment's variants (the token carries the
	// variant index in one byte).
	MaxVariants = 255
)

// Defaults of the request limits and unit id privacy (issue "Decision
// integrity"; see docs/config.md).
const (
	DefaultBodyReadTimeout      = Duration(30 * time.Second)
	DefaultMaxInflightBodyBytes = 256 << 20
	DefaultMaxInflightRequests  = 8192
	DefaultPrivacyUnitHeader    = PrivacyDrop
	DefaultPrivacyUnitField     = PrivacyHash
)

// SetDefaults fills every unset field with its default. It is the only
// place defaults live; Parse calls it, and it is idempotent.
func (c *Config) SetDefaults() {
	s := &c.Server
	cfgDefault(&s.Listen, DefaultListen)
	cfgDefault(&s.MaxBodyBytes, DefaultMaxBodyBytes)
	cfgDefault(&s.UnitHeader, DefaultUnitHeader)
	cfgDefault(&s.UnitBodyField, DefaultUnitBodyField)
	cfgDefault(&s.TokenTTL, DefaultTokenTTL)
	cfgDefault(&s.ShutdownTimeout, DefaultShutdownTimeout)
	cfgDefault(&s.BodyReadTimeout, DefaultBodyReadTimeout)
	cfgDefault(&s.MaxInflightBodyBytes, max(DefaultMaxInflightBodyBytes, s.MaxBodyBytes))
	cfgDefault(&s.MaxInflightRequests, DefaultMaxInflightRequests)

	cfgDefault(&c.Redis.KeyPrefix, DefaultKeyPrefix)
	cfgDefault(&c.Auth.SessionTTL, DefaultSessionTTL)

	r := &c.Recording
	cfgDefault(&r.QueueSize, DefaultQueueSize)
	cfgDefault(&r.FlushInterval, DefaultFlushInterval)
	cfgDefault(&r.BatchSize, DefaultBatchSize)
	cfgDefault(&r.Retention, DefaultRetention)

	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		cfgDefault(&u.ConnectTimeout, DefaultConnectTimeout)
		cfgDefault(&u.HeaderTimeout, DefaultHeaderTimeout)
		cfgDefault(&u.TotalTimeout, DefaultTotalTimeout)
		cfgDefault(&u.MaxIdleConns, DefaultMaxIdleConns)
		cfgDefault(&u.Privacy.UnitHeader, DefaultPrivacyUnitHeader)
		cfgDefault(&u.Privacy.UnitField, DefaultPrivacyUnitField)
	}
	cfgDefault(&c.Controller.Interval, Duration(DefaultControllerInterval))
	cfgDefault(&c.Controller.LeaseTTL, Duration(DefaultLeaseTTL))
	for i := range c.Webhooks {
		cfgDefault(&c.Webhooks[i].MaxAttempts, DefaultWebhookAttempts)
	}
	for i := range c.Experiments {
		e := &c.Experiments[i]
		cfgDefault(&e.Salt, e.ID)
		cfgDefault(&e.HashVersion, HashVersion1)
		cfgDefault(&e.Phase, 1)
		if e.Coverage == nil {
			full := 100.0
			e.Coverage = &full
		}
		cfgDefault(&e.Primary, DefaultPrimaryMetric)
		if e.FeedbackText {
			cfgDefault(&e.FeedbackTextRetention, DefaultFeedbackTextRetention)
		}
		if e.CUPED {
			cfgDefault(&e.CUPEDHistoryTTL, DefaultCUPEDHistoryTTL)
		}
		if r := e.Rollout; r != nil {
			if len(r.Steps) == 0 {
				r.Steps = RolloutSteps(e) // the defaults, capped at 100/candidates
			}
			if len(r.Guardrails) == 0 {
				r.Guardrails = append([]Guardrail(nil), DefaultGuardrails...)
			}
			cfgDefault(&r.Alpha, DefaultRolloutAlpha)
			cfgDefault(&r.Method, string(stats.ConfidenceSequenceMethod))
			cfgDefault(&r.MinUsers, DefaultRolloutMinUsers)
		}
		setJudgeDefaults(e)
		for j := range e.Metrics {
			if e.Metrics[j].HigherIsBetter == nil {
				yes := true
				e.Metrics[j].HigherIsBetter = &yes
			}
		}
	}
}

func cfgDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// Validate checks the config as Parse does (it assumes SetDefaults ran:
// unset fields are reported as missing). It returns a ValidationError
// listing every problem, or nil. It does not require a token secret; see
// ValidateForServe.
func (c *Config) Validate() error {
	if errs := c.validate(false); len(errs) > 0 {
		return errs
	}
	return nil
}

// ValidateForServe is Validate plus what serving needs: a token_secret of
// at least MinTokenSecretBytes bytes. (The demo generates its own secret,
// so Parse and Validate don't require one.)
func (c *Config) ValidateForServe() error {
	if errs := c.validate(true); len(errs) > 0 {
		return errs
	}
	return nil
}

type cfgValidator struct{ errs ValidationError }

func (v *cfgValidator) add(field, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (c *Config) validate(serve bool) ValidationError {
	v := &cfgValidator{}
	v.server(&c.Server, serve)
	v.redis(&c.Redis)
	v.recording(&c.Recording)

	upstreams := make(map[string]int, len(c.Upstreams))
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		p := fmt.Sprintf("upstreams[%d]", i)
		v.upstream(u, p)
		if cfgValidID(u.Name) {
			if j, dup := upstreams[u.Name]; dup {
				v.add(p+".name", "duplicate of upstreams[%d].name", j)
			} else {
				upstreams[u.Name] = i
			}
		}
	}

	experiments := make(map[string]int, len(c.Experiments))
	for i := range c.Experiments {
		e := &c.Experiments[i]
		p := fmt.Sprintf("experiments[%d]", i)
		v.experiment(e, p, upstreams)
		v.judge(e, p, c.Upstreams)
		if cfgValidID(e.ID) {
			if j, dup := experiments[e.ID]; dup {
				v.add(p+".id", "duplicate of experiments[%d].id", j)
			} else {
				experiments[e.ID] = i
			}
		}
	}

	if n := len(c.SegmentBodyFields()); n > MaxSegmentBodyFields {
		v.add("experiments", "segments use %d distinct body_field names; at most %d", n, MaxSegmentBodyFields)
	}

	v.errs = append(v.errs, validateController(c.Controller, "controller")...)
	v.errs = append(v.errs, validateWebhooks(c.Webhooks, "webhooks")...)
	v.auth(&c.Auth)

	aliases := make(map[string]int, len(c.Routes))
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		switch {
		case r.Alias == "":
			v.add(p+".alias", "required")
		case !cfgValidAlias(r.Alias):
			v.add(p+".alias", "must be 1-128 characters of A-Z a-z 0-9 . _ : / @ -")
		default:
			if j, dup := aliases[r.Alias]; dup {
				v.add(p+".alias", "duplicate of routes[%d].alias", j)
			} else {
				aliases[r.Alias] = i
			}
		}
		switch _, ok := experiments[r.Experiment]; {
		case r.Experiment == "":
			v.add(p+".experiment", "required")
		case !ok:
			v.add(p+".experiment", "no experiment has this id")
		}
	}
	return v.errs
}

func (v *cfgValidator) server(s *Server, serve bool) {
	v.listen("server.listen", s.Listen, true)
	if s.AdminListen != "" {
		v.listen("server.admin_listen", s.AdminListen, false)
		if s.AdminListen == s.Listen {
			v.add("server.admin_listen", "must differ from server.listen (leave it empty to share the listener)")
		}
	}
	if s.MaxBodyBytes <= 0 {
		v.add("server.max_body_bytes", "must be positive")
	}
	switch {
	case s.UnitHeader == "":
		v.add("server.unit_header", "required")
	case !cfgValidHeaderName(s.UnitHeader):
		v.add("server.unit_header", "must be a valid HTTP header name")
	}
	if s.UnitBodyField == "" {
		v.add("server.unit_body_field", "required")
	}
	if serve && len(s.TokenSecret) < MinTokenSecretBytes {
		if s.TokenSecret == "" {
			v.add("server.token_secret", "required to serve (at least %d bytes, e.g. `openssl rand -base64 48`)", MinTokenSecretBytes)
		} else {
			v.add("server.token_secret", "must be at least %d bytes", MinTokenSecretBytes)
		}
	}
	v.positive("server.token_ttl", s.TokenTTL)
	if s.DrainDelay < 0 {
		v.add("server.drain_delay", "must not be negative")
	}
	v.positive("server.shutdown_timeout", s.ShutdownTimeout)
	// Request limits (issue "Decision integrity").
	v.positive("server.body_read_timeout", s.BodyReadTimeout)
	switch {
	case s.MaxInflightBodyBytes <= 0:
		v.add("server.max_inflight_body_bytes", "must be positive")
	case s.MaxBodyBytes > 0 && s.MaxInflightBodyBytes < s.MaxBodyBytes:
		v.add("server.max_inflight_body_bytes", "must be at least server.max_body_bytes, or no body of the largest size could be read")
	}
	if s.MaxInflightRequests <= 0 {
		v.add("server.max_inflight_requests", "must be positive")
	}
}

// privacy checks one unit id policy (issue "Decision integrity").
func (v *cfgValidator) privacy(field, policy string) {
	switch policy {
	case PrivacyForward, PrivacyHash, PrivacyDrop:
	case "":
		v.add(field, "required")
	default:
		v.add(field, "must be forward, hash or drop")
	}
}

func (v *cfgValidator) listen(field, addr string, required bool) {
	if addr == "" {
		if required {
			v.add(field, "required")
		}
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || !cfgValidPort(port, true) {
		v.add(field, "must be host:port or :port")
	}
}

func (v *cfgValidator) redis(r *Redis) {
	for i, a := range r.Addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || !cfgValidPort(port, false) {
			v.add(fmt.Sprintf("redis.addrs[%d]", i), "must be host:port")
		}
	}
	switch {
	case r.DB < 0:
		v.add("redis.db", "must not be negative")
	case r.DB != 0 && len(r.Addrs) > 1:
		v.add("redis.db", "must be 0 with several addrs (Redis Cluster has only database 0)")
	}
	switch {
	case r.KeyPrefix == "":
		v.add("redis.key_prefix", "required")
	case len(r.KeyPrefix) > 64 || strings.ContainsAny(r.KeyPrefix, "{} \t\r\n"):
		v.add("redis.key_prefix", "must be at most 64 bytes without braces or whitespace (braces would break the cluster hash tags)")
	}
	if r.Password != "" && len(r.Addrs) == 0 {
		v.add("redis.password", "set but redis.addrs is empty (the in-memory store would be used)")
	}
}

func (v *cfgValidator) recording(r *Recording) {
	if r.QueueSize <= 0 {
		v.add("recording.queue_size", "must be positive")
	}
	switch {
	case r.BatchSize <= 0:
		v.add("recording.batch_size", "must be positive")
	case r.QueueSize > 0 && r.BatchSize > r.QueueSize:
		v.add("recording.batch_size", "must not exceed recording.queue_size")
	}
	v.positive("recording.flush_interval", r.FlushInterval)
	v.positive("recording.retention", r.Retention)
}

func (v *cfgValidator) positive(field string, d Duration) {
	if d <= 0 {
		v.add(field, "must be positive")
	}
}

func (v *cfgValidator) upstream(u *Upstream, p string) {
	v.id(p+".name", u.Name)
	v.upstreamURL(p+".url", u.URL)
	if u.AuthHeader != "" && !cfgValidHeaderName(u.AuthHeader) {
		v.add(p+".auth_header", "must be a valid HTTP header name")
	}
	if strings.ContainsAny(u.APIKey.Reveal(), "\r\n\x00") {
		v.add(p+".api_key", "must not contain line breaks or NUL") // never the value
	}
	auth := u.AuthHeader
	if auth == "" {
		auth = "Authorization"
	}
	for _, name := range slices.Sorted(maps.Keys(u.Headers)) {
		f := p + ".headers." + name
		switch {
		case !cfgValidHeaderName(name):
			v.add(f, "not a valid HTTP header name")
		case strings.ContainsAny(u.Headers[name], "\r\n\x00"):
			v.add(f, "must not contain line breaks or NUL")
		case u.APIKey != "" && strings.EqualFold(name, auth):
			v.add(f, "conflicts with api_key, which sets %s", auth)
		}
	}
	v.positive(p+".connect_timeout", u.ConnectTimeout)
	v.positive(p+".header_timeout", u.HeaderTimeout)
	v.positive(p+".total_timeout", u.TotalTimeout)
	if u.HeaderTimeout > u.TotalTimeout && u.TotalTimeout > 0 {
		v.add(p+".header_timeout", "must not exceed total_timeout")
	}
	if u.MaxIdleConns <= 0 {
		v.add(p+".max_idle_conns", "must be positive")
	}
	v.privacy(p+".privacy.unit_header", u.Privacy.UnitHeader)
	v.privacy(p+".privacy.unit_field", u.Privacy.UnitField)
}

// upstreamURL never echoes the URL: it may carry credentials or come from
// the environment.
func (v *cfgValidator) upstreamURL(field, raw string) {
	if raw == "" {
		v.add(field, "required")
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.add(field, "not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		v.add(field, "must be an absolute http:// or https:// URL")
	case u.Host == "" || u.Hostname() == "":
		v.add(field, "must have a host")
	case u.User != nil:
		v.add(field, "must not contain credentials (use api_key)")
	case u.RawQuery != "" || u.ForceQuery:
		v.add(field, "must not have a query")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		v.add(field, "must not have a fragment")
	case u.Port() != "" && !cfgValidPort(u.Port(), false):
		v.add(field, "has an invalid port")
	}
}

func (v *cfgValidator) experiment(e *Experiment, p string, upstreams map[string]int) {
	v.id(p+".id", e.ID)
	if e.Salt != "" && !cfgValidID(e.Salt) {
		// "#" and "/" are excluded by the id alphabet on purpose: PhaseSalt
		// appends "#<phase>" and Bucket appends "/coverage", so a salt
		// containing them could collide with another phase or decision.
		v.add(p+".salt", "must be 1-64 characters of A-Z a-z 0-9 . _ : -")
	}
	if e.HashVersion != HashVersion1 {
		v.add(p+".hash_version", "must be %d", HashVersion1)
	}
	if e.Phase < 1 {
		v.add(p+".phase", "must be at least 1")
	}
	if e.Coverage != nil {
		v.percent(p+".coverage", *e.Coverage)
	}
	v.percent(p+".holdout", e.Holdout)

	switch n := len(e.Variants); {
	case n < 2:
		v.add(p+".variants", "needs a base and at least one candidate")
	case n > MaxVariants:
		v.add(p+".variants", "at most %d", MaxVariants)
	}
	names := make(map[string]int, len(e.Variants))
	allow := make(map[string]string)
	cands := len(e.Variants) - 1
	for i := range e.Variants {
		vr := &e.Variants[i]
		vp := fmt.Sprintf("%s.variants[%d]", p, i)
		v.id(vp+".name", vr.Name)
		if cfgValidID(vr.Name) {
			if j, dup := names[vr.Name]; dup {
				v.add(vp+".name", "duplicate of %s.variants[%d].name", p, j)
			} else {
				names[vr.Name] = i
			}
		}
		switch _, ok := upstreams[vr.Upstream]; {
		case vr.Upstream == "":
			v.add(vp+".upstream", "required")
		case !ok:
			v.add(vp+".upstream", "no upstream has this name")
		}
		switch {
		case vr.Model == "":
			v.add(vp+".model", "required")
		case len(vr.Model) > 256 || !cfgPrintable(vr.Model):
			v.add(vp+".model", "must be at most 256 printable characters")
		}
		if i == 0 {
			if vr.Weight != 0 {
				v.add(vp+".weight", "the base (first variant) takes the rest of the traffic; leave its weight empty")
			}
		} else if cands > 0 && cands <= MaxVariants {
			hi := float64(MaxShare(cands)) / 100
			if !(vr.Weight >= 0 && vr.Weight <= hi) || !cfgTwoDecimals(vr.Weight) {
				v.add(vp+".weight", "must be between 0 and %s (100/%d candidates) in steps of 0.01",
					strconv.FormatFloat(hi, 'f', -1, 64), cands)
			}
		}
		for k, unit := range vr.Allowlist {
			ap := fmt.Sprintf("%s.allowlist[%d]", vp, k)
			if unit == "" {
				v.add(ap, "must not be empty")
				continue
			}
			if prev, dup := allow[unit]; dup {
				v.add(ap, "unit already listed at %s", prev)
				continue
			}
			allow[unit] = ap
		}
		v.price(vp+".prompt_price_per_1k", vr.PromptPrice)
		v.price(vp+".completion_price_per_1k", vr.CompletionPrice)
		if vr.CachedPromptPrice != nil {
			v.price(vp+".cached_prompt_price_per_1k", *vr.CachedPromptPrice)
		}
	}

	metrics := make(map[string]int, len(e.Metrics))
	for i := range e.Metrics {
		m := &e.Metrics[i]
		mp := fmt.Sprintf("%s.metrics[%d]", p, i)
		v.id(mp+".name", m.Name)
		if cfgValidID(m.Name) {
			if IsBuiltinMetric(m.Name) || m.Name == CounterUnanalysed {
				v.add(mp+".name", "is a built-in metric")
			} else if j, dup := metrics[m.Name]; dup {
				v.add(mp+".name", "duplicate of %s.metrics[%d].name", p, j)
			} else {
				metrics[m.Name] = i
			}
		}
		v.metric(m, mp)
		v.maxPerResponse(m, mp)
	}
	primaryOK := true
	if e.Primary == "" {
		v.add(p+".primary", "required")
		primaryOK = false
	} else if !isMetric(e, e.Primary) {
		v.add(p+".primary", "not a built-in metric nor one declared in metrics")
		primaryOK = false
	} else if !judgeable(e, e.Primary) {
		v.add(p+".primary", "%s", reasonNoDirection)
		primaryOK = false
	}
	v.segments(e, p)
	v.errs = append(v.errs, validateMoney(e, p)...)
	v.errs = append(v.errs, validateCaps(e, p)...)
	for _, fe := range validateRollout(e, p) {
		if fe.Field == p+".primary" && !primaryOK {
			continue // reported above
		}
		v.errs = append(v.errs, fe)
	}
}

func (v *cfgValidator) auth(a *Auth) {
	if a.SessionTTL < 0 {
		v.add("auth.session_ttl", "must not be negative")
	}
	names := make(map[string]int, len(a.Tokens))
	for i, t := range a.Tokens {
		p := fmt.Sprintf("auth.tokens[%d]", i)
		v.id(p+".name", t.Name)
		if cfgValidID(t.Name) {
			if j, dup := names[t.Name]; dup {
				v.add(p+".name", "duplicate of auth.tokens[%d].name", j)
			} else {
				names[t.Name] = i
			}
		}
		switch t.Role {
		case "admin", "viewer", "feedback":
		case "":
			v.add(p+".role", "required (admin, viewer or feedback)")
		default:
			v.add(p+".role", "must be admin, viewer or feedback")
		}
		switch {
		case t.Token != "" && t.SHA256 != "":
			v.add(p, "give either token or sha256, not both")
		case t.Token != "":
			if len(t.Token) < 16 {
				v.add(p+".token", "must be at least 16 bytes")
			}
		case t.SHA256 != "":
			h := strings.TrimPrefix(t.SHA256, "sha256:")
			if len(h) != 64 || strings.Trim(strings.ToLower(h), "0123456789abcdef") != "" {
				v.add(p+".sha256", "must be 64 hex digits")
			}
		default:
			v.add(p, "needs token or sha256")
		}
	}
}

func (v *cfgValidator) metric(m *Metric, mp string) {
	for _, b := range []struct {
		f string
		p *float64
	}{{".min", m.Min}, {".max", m.Max}} {
		if b.p != nil && (math.IsNaN(*b.p) || math.IsInf(*b.p, 0)) {
			v.add(mp+b.f, "must be a finite number")
			return
		}
	}
	switch m.Kind {
	case "":
		v.add(mp+".kind", "required (binary, count or continuous)")
	case MetricBinary:
		if m.Min != nil || m.Max != nil {
			v.add(mp+".kind", "binary metrics are 0 or 1; min and max must be unset")
		}
	case MetricCount:
		if m.Min != nil && *m.Min < 0 {
			v.add(mp+".min", "counts are non-negative; must be at least 0")
		}
		if m.Min != nil && m.Max != nil && !(*m.Min < *m.Max) {
			v.add(mp+".max", "must be greater than min")
		}
	case MetricContinuous:
		switch {
		case m.Min == nil || m.Max == nil:
			v.add(mp, "continuous metrics need min and max")
		case !(*m.Min < *m.Max):
			v.add(mp+".max", "must be greater than min")
		}
	default:
		v.add(mp+".kind", "must be binary, count or continuous")
	}
}

// maxPerResponse checks a count metric's per-response feedback cap.
func (v *cfgValidator) maxPerResponse(m *Metric, mp string) {
	switch {
	case m.MaxPerResponse != 0 && m.Kind != MetricCount:
		v.add(mp+".max_per_response", "only count metrics take several values per response")
	case m.MaxPerResponse < 0 || m.MaxPerResponse > MaxEventCap:
		v.add(mp+".max_per_response", "must be between 1 and %d (0: the default, 1)", MaxEventCap)
	}
}

func (v *cfgValidator) percent(field string, p float64) {
	if !(p >= 0 && p <= 100) || !cfgTwoDecimals(p) {
		v.add(field, "must be a percentage between 0 and 100 in steps of 0.01")
	}
}

func (v *cfgValidator) price(field string, p float64) {
	if !(p >= 0) || math.IsInf(p, 0) {
		v.add(field, "must be a non-negative number")
	}
}

func (v *cfgValidator) id(field, s string) {
	switch {
	case s == "":
		v.add(field, "required")
	case !cfgValidID(s):
		v.add(field, "must be 1-64 characters of A-Z a-z 0-9 . _ : -")
	}
}

// cfgValidID: [A-Za-z0-9._:-]{1,64}. Ids end up in Redis keys, metric
// attributes and tokens, so they stay short and free of separators.
func cfgValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !cfgIDByte(s[i]) {
			return false
		}
	}
	return true
}

func cfgIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '-'
}

// cfgValidAlias also allows "/" and "@", common in model names
// ("meta-llama/Llama-3.1-8B", "model@v2").
func cfgValidAlias(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !cfgIDByte(c) && c != '/' && c != '@' {
			return false
		}
	}
	return true
}

// cfgValidHeaderName: an RFC 9110 token.
func cfgValidHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

func cfgValidPort(port string, allowZero bool) bool {
	n, err := strconv.Atoi(port)
	if err != nil || n > 65535 || n < 0 || (n == 0 && !allowZero) {
		return false
	}
	return port != "" && port[0] != '+' && port[0] != '-'
}

func cfgPrintable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// cfgTwoDecimals: p is a multiple of 0.01 (within float error).
func cfgTwoDecimals(p float64) bool {
	if math.IsNaN(p) || math.IsInf(p, 0) {
		return false
	}
	x := p * 100
	return math.Abs(x-math.Round(x)) < 1e-6
}

// Experiment returns the experiment with this id, or nil.
func (c *Config) Experiment(id string) *Experiment {
	for i := range c.Experiments {
		if c.Experiments[i].ID == id {
			return &c.Experiments[i]
		}
	}
	return nil
}

// Upstream returns the upstream with this name, or nil.
func (c *Config) Upstream(name string) *Upstream {
	for i := range c.Upstreams {
		if c.Upstreams[i].Name == name {
			return &c.Upstreams[i]
		}
	}
	return nil
}

// RouteFor returns the experiment a model alias routes to. These lookups
// scan the config; the request path should use maps built once into its
// snapshot.
func (c *Config) RouteFor(alias string) (*Experiment, bool) {
	for _, r := range c.Routes {
		if r.Alias == alias {
			e := c.Experiment(r.Experiment)
			return e, e != nil
		}
	}
	return nil, false
}

// VariantIndex returns the index of the variant with this name, or -1.
func (e *Experiment) VariantIndex(name string) int {
	for i := range e.Variants {
		if e.Variants[i].Name == name {
			return i
		}
	}
	return -1
}

// CUPEDHistoryTTLOrDefault is CUPEDHistoryTTL, or the default when unset
// (a config that skipped SetDefaults).
func (e *Experiment) CUPEDHistoryTTLOrDefault() time.Duration {
	if e.CUPEDHistoryTTL > 0 {
		return time.Duration(e.CUPEDHistoryTTL)
	}
	return time.Duration(DefaultCUPEDHistoryTTL)
}
