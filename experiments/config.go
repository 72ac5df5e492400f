package experiments

import (
	"fmt"
	"io"
	"time"
)

// Config is the whole abgate YAML file. docs/config.md is its reference;
// examples/abgate.yaml is a complete example. Strings may reference
// environment variables as ${NAME}; they are expanded at load time and the
// values never appear in logs or errors (see Secret).
type Config struct {
	Server      Server       `yaml:"server"`
	Redis       Redis        `yaml:"redis"`
	Recording   Recording    `yaml:"recording"`
	Upstreams   []Upstream   `yaml:"upstreams"`
	Experiments []Experiment `yaml:"experiments"`
	Routes      []Route      `yaml:"routes"`
	Controller  Controller   `yaml:"controller"`
	Webhooks    []Webhook    `yaml:"webhooks"`
	Auth        Auth         `yaml:"auth"`
}

// Auth configures the bearer tokens of the admin, report and feedback
// API. Tokens are kept only as SHA-256 hashes in memory and compared in
// constant time. The proxy path needs no token.
type Auth struct {
	// Tokens lists tokens inline; use ${ENV} for the token itself, or
	// give its SHA-256 so the file can be committed.
	Tokens []AuthToken `yaml:"tokens"`
	// TokensFile names a file with one token per line:
	// "<role> <name> <token>" or "<role> <name> sha256:<hex>"; blank lines
	// and lines starting with # are ignored.
	TokensFile string `yaml:"tokens_file"`
	// OpenReads lets anyone read experiments, reports and the OpenAPI
	// document without a token (the demo does this on loopback).
	OpenReads bool `yaml:"open_reads"`
	// OpenFeedback lets applications send feedback without a bearer
	// token; the signed X-Abgate-Token still authenticates each event.
	OpenFeedback bool `yaml:"open_feedback"`
	// SessionTTL is how long a browser stays signed in after exchanging a
	// viewer or admin token for a session cookie at /signin (default 12h).
	SessionTTL Duration `yaml:"session_ttl"`
	// ProtectMetrics makes /metrics need a viewer or admin token (default:
	// open on the admin listener, as Prometheus scrapers expect).
	ProtectMetrics bool `yaml:"protect_metrics"`
}

// AuthToken is one API token: a role and either the token or its hash.
type AuthToken struct {
	Name string `yaml:"name"`
	// Role is admin (change experiments, and everything else), viewer
	// (read experiments and reports) or feedback (the feedback endpoints).
	Role   string `yaml:"role"`
	Token  Secret `yaml:"token"`
	SHA256 string `yaml:"sha256"`
}

// Controller configures the rollout controller that runs in every serve
// replica, one leader at a time.
type Controller struct {
	// Interval between evaluations of every running experiment (default 10s).
	Interval Duration `yaml:"interval"`
	// LeaseTTL is how long a leader's lease lasts without renewal
	// (default 15s): a dead leader is replaced within it.
	LeaseTTL Duration `yaml:"lease_ttl"`
	// Disabled turns the controller off in this replica (it still serves
	// and follows allocation changes).
	Disabled bool `yaml:"disabled"`
}

// Webhook receives every lifecycle transition as a signed JSON POST.
type Webhook struct {
	URL string `yaml:"url"`
	// Secret keys the X-Abgate-Signature header: "sha256=" + hex HMAC-SHA256
	// of the body.
	Secret Secret `yaml:"secret"`
	// MaxAttempts per delivery (default 5), with exponential backoff.
	MaxAttempts int `yaml:"max_attempts"`
}

// Rollout is an experiment's automated ramp: the candidates' share grows
// step by step while guardrails hold, and at the last step the primary
// metric decides.
type Rollout struct {
	// Steps in order; each step's Percent is every candidate's share of
	// covered traffic. Default: 1, 5, 25, 50 (capped at 100/candidates).
	Steps []RampStep `yaml:"steps"`
	// Guardrails must stay non-inferior at every step. Default: error
	// (0.5 percentage points), latency_ms (10% relative).
	Guardrails []Guardrail `yaml:"guardrails"`
	// Alpha is the two-sided error rate of the primary test (default 0.05).
	Alpha float64 `yaml:"alpha"`
	// Method: "confidence-sequence" (default) or "msprt".
	Method string `yaml:"method"`
	// MinUsers per variant, at every step, before any verdict but a
	// sample-ratio halt (default 100);
	// MaxUsers per variant ends it for futility (0 = never).
	MinUsers int `yaml:"min_users"`
	MaxUsers int `yaml:"max_users"`
	// ExpectedDailyUsers is the traffic the experiment's route gets, in
	// users a day (0: unknown). With it the sequential test is tuned to
	// the users each ramp step is planned to see (N* from
	// stats.PlannedUsers over StepDays), and the plan endpoint reports
	// days to a decision.
	ExpectedDailyUsers float64 `yaml:"expected_daily_users"`
	// StepDays is how long a ramp step is planned to run, in days, for
	// the tuning above (default 7).
	StepDays float64 `yaml:"step_days"`
	// NStar overrides the confidence sequence's tuning N* (total users of
	// the pair where it is tightest); Tau the mSPRT's mixing SD.
	NStar float64 `yaml:"n_star"`
	Tau   float64 `yaml:"tau"`
	// MinEvents holds a bounded metric until the pair has this many
	// events (the rarer outcome's count for a rate; default 0: off). The
	// bounded test is valid without it; it keeps reports from showing
	// calls made on a handful of events. Note that a metric with no
	// events at all (an error-free pair) then never clears.
	MinEvents float64 `yaml:"min_events"`
	// Rule replaces the promote rule of the full decision (issue 15):
	// "cost_saving" promotes when the primary (quality) is non-inferior
	// within QualityMargin and CostMetric is significantly lower;
	// "quality_within_budget" when the primary is significantly better
	// and CostMetric is non-inferior within CostMargin. Empty: the primary
	// must be better. Both margins are relative (0.02 = 2%), as both
	// metrics are judged on their relative lift. CostMetric defaults to
	// cost_per_success with a success signal, else cost
	// (Experiment.RuleCostMetric).
	Rule          string  `yaml:"rule"`
	QualityMargin float64 `yaml:"quality_margin"`
	CostMetric    string  `yaml:"cost_metric"`
	CostMargin    float64 `yaml:"cost_margin"`
	// Manual, when true, makes the controller record its recommendation
	// without acting on it.
	Manual bool `yaml:"manual"`
	// AutoStart, when true, has the controller's leader start the
	// experiment while it is a draft (after a deploy, within one
	// controller interval), so no "experiments start" command is needed.
	// It never restarts a stopped, rolled-back or promoted experiment.
	AutoStart bool `yaml:"auto_start"`
	// CarryOver, when true, lets a guardrail's evidence from the periods
	// the controller closed by advancing count at the next steps: the
	// exact (bounded) e-values of those periods multiply with the
	// current one's (stats.Guardrail.PriorLogE). A later step then loses
	// its own protection against harm that grows with the share or time.
	// The product is an e-value for independent periods: with Cohort
	// "new" each period is analysed on users no earlier period counted,
	// so that holds by construction; with "all" returning users weaken it
	// (docs/statistics.md §2.12). Default off.
	CarryOver bool `yaml:"carry_over"`
	// Cohort is the users each period (ramp step) is analysed on:
	// "new" (default), the users first exposed in it (in the period's
	// salt phase), so who comes back from an earlier step, itself an
	// outcome of the arm, cannot bias the comparison or trip the SRM
	// check; "all", every user active in it. "new" needs the stores'
	// first-exposure record, which the recorder then asks for
	// (NewCovariates). docs/statistics.md §2.12.
	Cohort string `yaml:"cohort"`
}

// RampStep is one step of a rollout.
type RampStep struct {
	// Percent is each candidate's share of covered traffic (0.01..100/candidates).
	Percent float64 `yaml:"percent"`
	// MinDuration and MinUsers (per variant) must both pass before the
	// step can advance (defaults 0).
	MinDuration Duration `yaml:"min_duration"`
	MinUsers    int      `yaml:"min_users"`
}

// Guardrail is a metric the candidate must not make worse by more than
// Margin: a fraction when Relative (0.1 = 10% worse), else metric units
// (0.005 = half a percentage point of a rate).
type Guardrail struct {
	Metric   string  `yaml:"metric"`
	Margin   float64 `yaml:"margin"`
	Relative bool    `yaml:"relative"`
}

// Server configures the listeners and request handling.
type Server struct {
	// Listen is the proxy address (default 127.0.0.1:8080).
	Listen string `yaml:"listen"`
	// AdminListen, if set, serves the admin, report and feedback API on
	// its own address; empty serves them on Listen.
	AdminListen string `yaml:"admin_listen"`
	// MaxBodyBytes caps a proxied request body (default 10 MiB); larger
	// bodies get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// UnitHeader is the request header holding the unit id (default
	// X-User-ID); UnitBodyField is the top-level JSON body field tried
	// next (default "user").
	UnitHeader    string `yaml:"unit_header"`
	UnitBodyField string `yaml:"unit_body_field"`
	// TokenSecret keys the HMAC of X-Abgate-Token and the keyed hash of
	// unit ids. Required for serve; at least 32 bytes.
	TokenSecret Secret `yaml:"token_secret"`
	// TokenTTL is how long a feedback token stays valid (default 7 days).
	TokenTTL Duration `yaml:"token_ttl"`
	// ShutdownTimeout bounds graceful shutdown (default 30s).
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// DrainDelay is how long /readyz answers 503 after shutdown begins,
	// before the listeners stop accepting, so load balancers take the
	// replica out first (default 0: Kubernetes' preStop hook does it).
	DrainDelay Duration `yaml:"drain_delay"`
	// ReadyRequiresStore makes /readyz answer 503 while the store is
	// unreachable (default false: the replica keeps serving and outcomes
	// buffer in the recorder, so a Redis outage is not an outage).
	ReadyRequiresStore bool `yaml:"ready_requires_store"`

	// Request limits of the proxy (issue "Decision integrity": 100
	// connections trickling bodies must not hold a gigabyte).
	//
	// BodyReadTimeout bounds reading a proxied request's body, from the
	// end of its headers (default 30s); a slower body gets 408.
	BodyReadTimeout Duration `yaml:"body_read_timeout"`
	// MaxInflightBodyBytes caps the memory all request bodies being read
	// or proxied may hold together (default 256 MiB; at least
	// max_body_bytes). A request that would pass it gets 503.
	MaxInflightBodyBytes int64 `yaml:"max_inflight_body_bytes"`
	// MaxInflightRequests caps the proxied requests in progress, streams
	// included (default 8192); past it requests get 503 with Retry-After.
	MaxInflightRequests int `yaml:"max_inflight_requests"`
}

// Redis selects the store. No addresses means the embedded in-memory
// store (single replica, nothing survives a restart).
type Redis struct {
	// Addrs: one address for a single server, several for a cluster
	// (go-redis UniversalClient decides).
	Addrs    []string `yaml:"addrs"`
	Username string   `yaml:"username"`
	Password Secret   `yaml:"password"`
	DB       int      `yaml:"db"`
	// KeyPrefix prefixes every key (default "abgate").
	KeyPrefix string `yaml:"key_prefix"`
	// EphemeralOK lets serve start on a Redis that persists nothing
	// (no AOF, no RDB snapshots). Without it serve refuses to start on
	// one: a restart would lose every lifecycle state and statistic
	// (docs/recording.md, "Persistence").
	EphemeralOK bool `yaml:"ephemeral_ok"`
}

// Recording tunes the outcome recorder.
type Recording struct {
	// QueueSize bounds the in-process event queue (default 65536).
	QueueSize int `yaml:"queue_size"`
	// FlushInterval is the longest an event waits (default 100ms).
	FlushInterval Duration `yaml:"flush_interval"`
	// BatchSize flushes early once this many events wait (default 4096).
	BatchSize int `yaml:"batch_size"`
	// Retention is how long an experiment's data lives after it ends
	// (default 90 days).
	Retention Duration `yaml:"retention"`
}

// Upstream is an OpenAI-compatible model endpoint.
type Upstream struct {
	Name string `yaml:"name"`
	// URL is the base URL; the request path (/v1/chat/completions …) is
	// appended to its path, so "https://api.openai.com" and
	// "http://vllm:8000" both work.
	URL string `yaml:"url"`
	// APIKey is sent as "Authorization: Bearer <key>" unless AuthHeader
	// names another header (e.g. "api-key" for Azure), in which case the
	// raw key is sent there. The client's own Authorization never reaches
	// an upstream.
	APIKey     Secret            `yaml:"api_key"`
	AuthHeader string            `yaml:"auth_header"`
	Headers    map[string]string `yaml:"headers"`
	// Timeouts: ConnectTimeout for the TCP+TLS dial (default 5s),
	// HeaderTimeout until response headers (default 60s), TotalTimeout
	// for the whole exchange including the streamed body (default 10m).
	ConnectTimeout Duration `yaml:"connect_timeout"`
	HeaderTimeout  Duration `yaml:"header_timeout"`
	TotalTimeout   Duration `yaml:"total_timeout"`
	// MaxIdleConns is the idle connection pool to this upstream (default
	// 512; Go's default of 2 halves throughput).
	MaxIdleConns int `yaml:"max_idle_conns"`
	// H2C speaks HTTP/2 without TLS (prior knowledge) to an http://
	// upstream that serves it: one connection carries many streams, where
	// HTTP/1.1 needs a connection, its buffers and two goroutines per
	// live stream. https:// upstreams negotiate HTTP/2 by themselves.
	H2C bool `yaml:"h2c"`
	// Privacy says what this upstream learns of the unit id.
	Privacy UpstreamPrivacy `yaml:"privacy"`
}

// Unit id policies of UpstreamPrivacy.
const (
	// PrivacyForward sends the unit id as the client sent it.
	PrivacyForward = "forward"
	// PrivacyHash sends a keyed HMAC of the id instead (32 hex digits):
	// stable for one upstream and token secret, so the upstream can still
	// tell users apart (abuse monitoring, per-user limits), but neither
	// reversible nor linkable across upstreams.
	PrivacyHash = "hash"
	// PrivacyDrop removes it.
	PrivacyDrop = "drop"
)

// UpstreamPrivacy says what an upstream learns of the unit id; upstreams
// are often third-party APIs. Each field is PrivacyForward, PrivacyHash
// or PrivacyDrop.
type UpstreamPrivacy struct {
	// UnitHeader applies to the server.unit_header request header
	// (default drop: a header is abgate's own convention, no model API
	// reads it).
	UnitHeader string `yaml:"unit_header"`
	// UnitField applies to every top-level server.unit_body_field member
	// of the body, OpenAI's "user" by default (default hash: the field
	// exists so the provider can attribute abuse to an end user, and
	// OpenAI asks for a hashed id there).
	UnitField string `yaml:"unit_field"`
}

// Experiment compares a base model with one or more fine-tuned
// candidates.
type Experiment struct {
	ID string `yaml:"id"`
	// Description is for people reading reports.
	Description string `yaml:"description"`
	// Salt defaults to ID. HashVersion defaults to HashVersion1.
	Salt        string `yaml:"salt"`
	HashVersion int    `yaml:"hash_version"`
	// Phase starts at 1; a change that would reshuffle units (see
	// Reshuffles) must raise it, and data of different phases is kept
	// apart.
	Phase int `yaml:"phase"`
	// Variants: the first is the base, the others are candidates.
	Variants []Variant `yaml:"variants"`
	// Coverage and Holdout are percentages of units (0..100, step 0.01).
	// Coverage defaults to 100.
	Coverage *float64 `yaml:"coverage"`
	Holdout  float64  `yaml:"holdout"`
	// Fallback retries a failed candidate request on the base when the
	// candidate failed before sending a byte (connection error or 5xx).
	// The request still counts for the candidate (intent-to-treat).
	Fallback bool `yaml:"fallback"`
	// Metrics declares custom feedback metrics.
	Metrics []Metric `yaml:"metrics"`
	// Primary names the metric that decides promotion (default
	// "thumbs"); used by the rollout controller and reports.
	Primary string `yaml:"primary"`
	// Rollout, when set, lets the controller ramp, promote and roll back
	// this experiment. Without it the configured weights are fixed.
	Rollout *Rollout `yaml:"rollout"`
	// Segments declares dimensions (region, language, tier…) along which
	// the statistics are also kept, so a candidate that wins on average
	// but harms one segment is caught (docs/segments.md).
	Segments []Segment `yaml:"segments"`
	// FeedbackText opts in to storing free-text feedback (comment,
	// correction_text) for export; without it such text is discarded.
	FeedbackText bool `yaml:"feedback_text"`
	// CUPED adjusts the metrics by a covariate fixed before each user's
	// first exposure in the phase: what the gateway saw of the user on
	// this experiment's routes before (their pre-exposure history, kept
	// for CUPEDHistoryTTL; the source each metric uses is in the metric
	// registry, MetricInfo.Covariate). Valid in every ramp step. The
	// stores keep the covariate sums, and MetricSpec sets
	// stats.Metric.CUPED (docs/statistics.md §9.1).
	CUPED bool `yaml:"cuped"`
	// CUPEDHistoryTTL is how long a user's pre-exposure history is kept
	// after the gateway last saw them (default 28 days; needs cuped).
	CUPEDHistoryTTL Duration `yaml:"cuped_history_ttl"`
	// FeedbackTextRetention is how long stored text is kept (default
	// 30 days).
	FeedbackTextRetention Duration `yaml:"feedback_text_retention"`
	// Caps bound per-request values of the unbounded request metrics
	// (latency_ms, ttfb_ms, max_gap_ms, prompt_tokens, completion_tokens,
	// cost): the recorder clamps each request's value at its cap, and the
	// policy analyses the metric on [0, cap] with the bounded test
	// (caps.go). Without a declared cap the time metrics are still
	// clamped at the upstreams' total_timeout (RecordingCap), but keep
	// the asymptotic test.
	Caps map[string]float64 `yaml:"caps"`
	// Judge, when set, configures an LLM judge comparing the candidates'
	// answers with the base's (judge.go); Shadow, the judged stage before
	// ramp step 1.
	Judge  *Judge  `yaml:"judge"`
	Shadow *Shadow `yaml:"shadow"`
	// Report sets the reports' currency and planning effect, Success the
	// signal of the cost-per-success metric (money.go, issue 15).
	Report  *ReportConfig `yaml:"report"`
	Success *Success      `yaml:"success"`
}

// Variant is one arm of an experiment.
type Variant struct {
	Name     string `yaml:"name"`
	Upstream string `yaml:"upstream"`
	// Model is the real model name sent upstream in place of the alias.
	Model string `yaml:"model"`
	// Weight is a candidate's share of covered traffic in percent
	// (0..100/candidates, step 0.01). The base takes the rest; its own
	// weight must be left empty.
	Weight float64 `yaml:"weight"`
	// Allowlist forces these unit ids onto this variant (QA). They are
	// excluded from analysis.
	Allowlist []string `yaml:"allowlist"`
	// Prices per 1,000 tokens, in any currency, for the cost metric.
	PromptPrice     float64 `yaml:"prompt_price_per_1k"`
	CompletionPrice float64 `yaml:"completion_price_per_1k"`
	// CachedPromptPrice prices the prompt tokens the upstream served from
	// its prompt cache (Outcome.CachedTokens); the rest are priced at
	// PromptPrice. Nil: PromptPrice (no discount).
	CachedPromptPrice *float64 `yaml:"cached_prompt_price_per_1k"`
}

// MetricKind is the type of a custom feedback metric.
type MetricKind string

const (
	MetricBinary     MetricKind = "binary"     // 0 or 1
	MetricCount      MetricKind = "count"      // non-negative integer
	MetricContinuous MetricKind = "continuous" // any real within bounds
)

// Metric declares a custom feedback metric.
type Metric struct {
	Name string     `yaml:"name"`
	Kind MetricKind `yaml:"kind"`
	// Min and Max bound accepted values (required for continuous).
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
	// HigherIsBetter declares the direction of "better" (default true).
	HigherIsBetter *bool `yaml:"higher_is_better"`
	// MaxPerResponse caps how many feedback events of a count metric
	// count for one response (default 1; at most MaxEventCap). Other
	// kinds take one value per response: the first one wins.
	MaxPerResponse int `yaml:"max_per_response"`
}

// Route maps the model alias an application asks for to an experiment.
type Route struct {
	Alias      string `yaml:"alias"`
	Experiment string `yaml:"experiment"`
}

// Duration is a time.Duration that reads "250ms", "5s", "7d" in YAML.
type Duration time.Duration

// Secret is a string that never prints: String, GoString, and the
// formatters all give "[redacted]", so a secret in a config can't leak
// through a log line or an error. Reveal returns the value.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return s.String() }

// Format covers every verb: without it, fmt prints a Secret nested in a
// struct in full for verbs String does not cover (%d gives
// "%!d(experiments.Secret=<value>)").
func (s Secret) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }
