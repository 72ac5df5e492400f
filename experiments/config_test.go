package experiments_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/abgate/abgate/experiments"
)

// minimalYAML is the smallest valid config: one upstream, one A/B
// experiment, one route.
const minimalYAML = `
upstreams:
  - name: up
    url: http://127.0.0.1:8000
experiments:
  - id: exp
    variants:
      - {name: base, upstream: up, model: m0}
      - {name: cand, upstream: up, model: m1, weight: 50}
routes:
  - {alias: chat, experiment: exp}
`

func noEnv(string) (string, bool) { return "", false }

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func mustParse(t testing.TB, src string, env func(string) (string, bool)) *experiments.Config {
	t.Helper()
	c, err := experiments.Parse([]byte(src), env)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	c := mustParse(t, minimalYAML, noEnv)
	d := func(s string) experiments.Duration {
		v, err := experiments.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"server.listen", c.Server.Listen, "127.0.0.1:8080"},
		{"server.admin_listen", c.Server.AdminListen, ""},
		{"server.max_body_bytes", c.Server.MaxBodyBytes, int64(10 << 20)},
		{"server.unit_header", c.Server.UnitHeader, "X-User-ID"},
		{"server.unit_body_field", c.Server.UnitBodyField, "user"},
		{"server.token_ttl", c.Server.TokenTTL, d("7d")},
		{"server.shutdown_timeout", c.Server.ShutdownTimeout, d("30s")},
		{"redis.key_prefix", c.Redis.KeyPrefix, "abgate"},
		{"recording.queue_size", c.Recording.QueueSize, 65536},
		{"recording.flush_interval", c.Recording.FlushInterval, d("100ms")},
		{"recording.batch_size", c.Recording.BatchSize, 4096},
		{"recording.retention", c.Recording.Retention, d("90d")},
		{"upstreams[0].connect_timeout", c.Upstreams[0].ConnectTimeout, d("5s")},
		{"upstreams[0].header_timeout", c.Upstreams[0].HeaderTimeout, d("60s")},
		{"upstreams[0].total_timeout", c.Upstreams[0].TotalTimeout, d("10m")},
		{"upstreams[0].max_idle_conns", c.Upstreams[0].MaxIdleConns, 512},
		{"experiments[0].salt", c.Experiments[0].Salt, "exp"},
		{"experiments[0].phase", c.Experiments[0].Phase, 1},
		{"experiments[0].hash_version", c.Experiments[0].HashVersion, experiments.HashVersion1},
		{"experiments[0].coverage", *c.Experiments[0].Coverage, 100.0},
		{"experiments[0].primary", c.Experiments[0].Primary, "thumbs"},
	}
	for _, tc := range checks {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	// Defaults are applied in one place and idempotently.
	before := *c
	c.SetDefaults()
	if !reflect.DeepEqual(before, *c) {
		t.Error("SetDefaults is not idempotent")
	}
}

func TestRolloutAndControllerDefaults(t *testing.T) {
	t.Parallel()
	src := strings.Replace(minimalYAML, "routes:", `      - {name: cand2, upstream: up, model: m2, weight: 1}
      - {name: cand3, upstream: up, model: m3}
    rollout: {}
  - id: fixed
    rollout: ~
    variants:
      - {name: base, upstream: up, model: m0}
      - {name: cand, upstream: up, model: m1}
webhooks:
  - {url: "https://hooks.example.com/x", secret: s}
routes:`, 1)
	src = strings.Replace(src, "weight: 50", "weight: 5", 1)
	c := mustParse(t, src, noEnv)
	r := c.Experiments[0].Rollout
	if r == nil {
		t.Fatal("rollout: {} gave no rollout")
	}
	var pcts []float64
	for _, s := range r.Steps {
		pcts = append(pcts, s.Percent)
	}
	if want := []float64{1, 5, 25, 33.33}; !reflect.DeepEqual(pcts, want) {
		t.Errorf("default steps for 3 candidates = %v, want %v", pcts, want)
	}
	if !reflect.DeepEqual(r.Guardrails, experiments.DefaultGuardrails) || r.Alpha != 0.05 || r.Method != "confidence-sequence" || r.MinUsers != 100 {
		t.Errorf("rollout defaults = %+v", *r)
	}
	if c.Experiments[1].Rollout != nil {
		t.Error("rollout: ~ should leave no rollout")
	}
	if time.Duration(c.Controller.Interval) != 10*time.Second || time.Duration(c.Controller.LeaseTTL) != 15*time.Second {
		t.Errorf("controller defaults = %+v", c.Controller)
	}
	if c.Webhooks[0].MaxAttempts != 5 {
		t.Errorf("webhook max_attempts = %d, want 5", c.Webhooks[0].MaxAttempts)
	}
	// RolloutSteps agrees with the filled-in defaults.
	if got := experiments.RolloutSteps(&c.Experiments[0]); !reflect.DeepEqual(got, r.Steps) {
		t.Errorf("RolloutSteps = %v, config has %v", got, r.Steps)
	}
}

func TestMetricDefaults(t *testing.T) {
	t.Parallel()
	c := mustParse(t, strings.Replace(minimalYAML, "routes:", `    metrics:
      - {name: resolved, kind: binary}
      - {name: edits, kind: count, higher_is_better: false}
routes:`, 1), noEnv)
	m := c.Experiments[0].Metrics
	if m[0].HigherIsBetter == nil || !*m[0].HigherIsBetter {
		t.Error("higher_is_better should default to true")
	}
	if m[1].HigherIsBetter == nil || *m[1].HigherIsBetter {
		t.Error("explicit higher_is_better: false was lost")
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		str  string // String(); "" means in
	}{
		{"7d", 7 * 24 * time.Hour, ""},
		{"36h", 36 * time.Hour, "36h0m0s"},
		{"250ms", 250 * time.Millisecond, ""},
		{"1d12h", 36 * time.Hour, "36h0m0s"},
		{"1.5d", 36 * time.Hour, "36h0m0s"},
		{"1h30m", 90 * time.Minute, "1h30m0s"},
		{"48h", 48 * time.Hour, "2d"},
		{"0", 0, "0s"},
		{"-2d", -48 * time.Hour, "-2d"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := experiments.ParseDuration(tc.in)
			if err != nil {
				t.Fatalf("ParseDuration(%q): %v", tc.in, err)
			}
			if time.Duration(got) != tc.want {
				t.Fatalf("ParseDuration(%q) = %v, want %v", tc.in, time.Duration(got), tc.want)
			}
			want := tc.str
			if want == "" {
				want = tc.in
			}
			if got.String() != want {
				t.Errorf("String() = %q, want %q", got.String(), want)
			}
			// YAML round trip.
			out, err := yaml.Marshal(struct{ D experiments.Duration }{got})
			if err != nil {
				t.Fatal(err)
			}
			var back struct{ D experiments.Duration }
			if err := yaml.Unmarshal(out, &back); err != nil || back.D != got {
				t.Errorf("YAML round trip of %v: got %v, %v (yaml %q)", got, back.D, err, out)
			}
			// JSON uses the text form.
			js, _ := json.Marshal(got)
			var jb experiments.Duration
			if err := json.Unmarshal(js, &jb); err != nil || jb != got {
				t.Errorf("JSON round trip of %v: got %v, %v", got, jb, err)
			}
		})
	}
	for _, bad := range []string{"", "d", "7", "100", "7dd", "1d-2h", "abc", "1e3d", "9999999999d", "7 days", "--1s", "d7"} {
		if _, err := experiments.ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) succeeded, want error", bad)
		}
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Parallel()
	env := envMap(map[string]string{
		"KEY":    "sk-secret-value",
		"HOST":   "vllm.internal",
		"INJECT": "x\nexperiments: []\nfoo: {bar: 1}",
		"NESTED": "${KEY}",
		"EMPTY":  "",
	})
	src := `
upstreams:
  - name: up
    url: http://${HOST}:8000
    api_key: ${KEY}
    headers:
      X-Literal: "$${KEY} and $KEY and $$ and $"
      X-Nested: ${NESTED}
      X-Empty: "a${EMPTY}b"
      X-Default-Unset: "${UNSET_VAR:-fallback:8080}"
      X-Default-Empty: "${EMPTY:-used}"
      X-Default-Set: "${HOST:-ignored}"
` + strings.Replace(minimalYAML[strings.Index(minimalYAML, "experiments:"):],
		"  - id: exp\n", "  - id: exp\n    description: ${INJECT}\n", 1)
	c := mustParse(t, src, env)
	u := c.Upstreams[0]
	if u.URL != "http://vllm.internal:8000" {
		t.Errorf("url = %q", u.URL)
	}
	if u.APIKey.Reveal() != "sk-secret-value" {
		t.Errorf("api_key not expanded")
	}
	want := map[string]string{
		"X-Literal": "${KEY} and $KEY and $$ and $",
		// Expansion is not recursive.
		"X-Nested": "${KEY}",
		"X-Empty":  "ab",
		// ${NAME:-default}: unset or empty take the default.
		"X-Default-Unset": "fallback:8080",
		"X-Default-Empty": "used",
		"X-Default-Set":   "vllm.internal",
	}
	if !reflect.DeepEqual(u.Headers, want) {
		t.Errorf("headers = %q, want %q", u.Headers, want)
	}
	// A value is one string: it can't add keys or documents.
	if got := c.Experiments[0].Description; got != "x\nexperiments: []\nfoo: {bar: 1}" {
		t.Errorf("description = %q", got)
	}
	if len(c.Experiments) != 1 {
		t.Errorf("injection changed structure: %d experiments", len(c.Experiments))
	}
}

func TestEnvErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
		field string
		want  string
	}{
		{"unset", "${OPENAI_API_KEY}", "upstreams[0].api_key", "environment variable OPENAI_API_KEY is not set"},
		{"two unset", "${A}-${B}", "upstreams[0].api_key", "environment variables A, B are not set"},
		{"unterminated", "sk-${abc", "upstreams[0].api_key", "unterminated"},
		{"bad name", "${not valid}", "upstreams[0].api_key", "invalid"},
		{"empty name", "${}", "upstreams[0].api_key", "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := strings.Replace(minimalYAML, "url: http://127.0.0.1:8000",
				"url: http://127.0.0.1:8000\n    api_key: \""+tc.value+"\"", 1)
			_, err := experiments.Parse([]byte(src), envMap(map[string]string{"SECRET": "hunter2"}))
			var ve experiments.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is not a ValidationError", err)
			}
			if !errors.Is(err, experiments.ErrInvalidConfig) {
				t.Error("not ErrInvalidConfig")
			}
			if len(ve) != 1 || ve[0].Field != tc.field || !strings.Contains(ve[0].Reason, tc.want) {
				t.Errorf("got %q, want one error %s: …%s…", err, tc.field, tc.want)
			}
			if tc.name == "bad name" && strings.Contains(err.Error(), "not valid") {
				t.Error("error quotes text from a secret field")
			}
		})
	}
}

// TestSecretsNeverPrinted loads a config with secrets from the
// environment and checks that no way of printing, marshalling, logging or
// failing reveals them.
func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	const (
		apiKey   = "sk-live-THISMUSTNOTLEAK-1234567890"
		redisPw  = "redis-THISMUSTNOTLEAK-pw"
		tokenSec = "token-THISMUSTNOTLEAK-0123456789abcdef"
	)
	env := envMap(map[string]string{"KEY": apiKey, "RPW": redisPw, "TOK": tokenSec,
		"WH": "whsec-THISMUSTNOTLEAK", "ADM": "admin-THISMUSTNOTLEAK-token"})
	src := `
server: {token_secret: "${TOK}"}
redis: {addrs: ["127.0.0.1:6379"], password: "${RPW}"}
webhooks: [{url: "https://hooks.example.com/x", secret: "${WH}"}]
auth: {tokens: [{name: ops, role: admin, token: "${ADM}"}]}
` + strings.Replace(minimalYAML, "url: http://127.0.0.1:8000", "url: http://127.0.0.1:8000\n    api_key: ${KEY}", 1)
	c := mustParse(t, src, env)
	if c.Upstreams[0].APIKey.Reveal() != apiKey || c.Redis.Password.Reveal() != redisPw || c.Server.TokenSecret.Reveal() != tokenSec {
		t.Fatal("secrets not loaded")
	}

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs = append(outputs, fmt.Sprintf(verb, c), fmt.Sprintf(verb, *c))
	}
	y, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "cfg", c)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "cfg", c)
	outputs = append(outputs, string(y), string(js), logs.String())

	// Errors: a config that fails validation elsewhere.
	bad := strings.Replace(src, "weight: 50", "weight: 150", 1)
	_, err = experiments.Parse([]byte(bad), env)
	if err == nil {
		t.Fatal("want a validation error")
	}
	outputs = append(outputs, err.Error())
	// Serve validation with a short secret.
	_, err = experiments.Parse([]byte(src), env)
	if err != nil {
		t.Fatal(err)
	}
	short := mustParse(t, src, envMap(map[string]string{"KEY": apiKey, "RPW": redisPw, "TOK": "THISMUSTNOTLEAK",
		"WH": "whsec-THISMUSTNOTLEAK", "ADM": "admin-THISMUSTNOTLEAK-token"}))
	if err := short.ValidateForServe(); err == nil {
		t.Fatal("a 15-byte token secret passed ValidateForServe")
	} else {
		outputs = append(outputs, err.Error())
	}

	for i, out := range outputs {
		if strings.Contains(out, "THISMUSTNOTLEAK") {
			t.Errorf("output %d leaks a secret:\n%s", i, out)
		}
	}
	if !strings.Contains(string(y), "[redacted]") {
		t.Errorf("marshalled config should show [redacted]:\n%s", y)
	}
}

func TestUnknownAndTypeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []experiments.FieldError // Reason is a substring
	}{
		{
			name: "typo at top level",
			src:  "upstream: []\n",
			want: []experiments.FieldError{{"upstream", `unknown field (did you mean "upstreams"?)`}},
		},
		{
			name: "typo deep",
			src:  strings.Replace(minimalYAML, "weight: 50", "wieght: 50", 1),
			want: []experiments.FieldError{{"experiments[0].variants[1].wieght", `unknown field (did you mean "weight"?)`}},
		},
		{
			name: "wrong types",
			src: `
server: {max_body_bytes: lots, token_ttl: 7}
redis: {addrs: 127.0.0.1:6379}
upstreams: {name: x}
`,
			want: []experiments.FieldError{
				{"server.max_body_bytes", "must be an integer"},
				{"server.token_ttl", "must be a duration"},
				{"redis.addrs", "must be a list"},
				{"upstreams", "must be a list"},
			},
		},
		{
			name: "duplicate key",
			src:  "server:\n  listen: :1\n  listen: :2\n",
			want: []experiments.FieldError{{"server.listen", "duplicate key"}},
		},
		{
			name: "not a mapping",
			src:  "- 1\n- 2\n",
			want: []experiments.FieldError{{"config", "must be a mapping"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := experiments.Parse([]byte(tc.src), noEnv)
			var ve experiments.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want ValidationError", err)
			}
			for _, w := range tc.want {
				if !hasFieldError(ve, w) {
					t.Errorf("missing %s: %s in\n%v", w.Field, w.Reason, err)
				}
			}
		})
	}
}

func TestSyntaxErrors(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "a: [", "a: 1\n---\nb: 2\n", "\t- x"} {
		_, err := experiments.Parse([]byte(src), noEnv)
		if !errors.Is(err, experiments.ErrInvalidConfig) {
			t.Errorf("Parse(%q) = %v, want ErrInvalidConfig", src, err)
		}
	}
}

func TestAliasBomb(t *testing.T) {
	t.Parallel()
	// "Billion laughs": each level doubles the work.
	var b strings.Builder
	b.WriteString("a0: &a0 {name: x, url: 'http://h'}\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d]\n", i, i, i-1, i-1)
	}
	b.WriteString("upstreams: *a39\n")
	start := time.Now()
	_, err := experiments.Parse([]byte(b.String()), noEnv)
	if err == nil {
		t.Fatal("alias bomb parsed")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("alias bomb took %v", d)
	}
}

func TestMergeKeys(t *testing.T) {
	t.Parallel()
	src := `
upstreams:
  - &defaults {name: a, url: "http://a:1", header_timeout: 5s}
  - <<: *defaults
    name: b
experiments:
  - id: exp
    variants:
      - {name: base, upstream: a, model: m0}
      - {name: cand, upstream: b, model: m1, weight: 50}
`
	c := mustParse(t, src, noEnv)
	if got := c.Upstreams[1]; got.Name != "b" || got.URL != "http://a:1" || time.Duration(got.HeaderTimeout) != 5*time.Second {
		t.Errorf("merged upstream = %+v", got)
	}
}

func hasFieldError(ve experiments.ValidationError, want experiments.FieldError) bool {
	for _, fe := range ve {
		if fe.Field == want.Field && strings.Contains(fe.Reason, want.Reason) {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }

// TestValidate mutates a valid config one way per case and checks the
// field-level errors. Each case lists every error it expects, and no
// other error may appear.
func TestValidate(t *testing.T) {
	t.Parallel()
	base := func(t *testing.T) *experiments.Config {
		c := mustParse(t, minimalYAML, noEnv)
		c.Upstreams = append(c.Upstreams, experiments.Upstream{Name: "up2", URL: "https://api.example.com/v1"})
		c.Experiments[0].Variants = append(c.Experiments[0].Variants,
			experiments.Variant{Name: "cand2", Upstream: "up2", Model: "m2", Weight: 10})
		c.Experiments[0].Variants[1].Weight = 33.33
		c.SetDefaults()
		return c
	}
	type fe = experiments.FieldError
	tests := []struct {
		name   string
		mutate func(c *experiments.Config)
		want   []fe
	}{
		{"valid", func(c *experiments.Config) {}, nil},
		{"cuped history ttl without cuped", func(c *experiments.Config) {
			c.Experiments[0].CUPEDHistoryTTL = experiments.Duration(24 * time.Hour)
		}, []fe{{"experiments[0].cuped_history_ttl", "needs cuped: true"}}},
		{"cuped history ttl too short", func(c *experiments.Config) {
			c.Experiments[0].CUPED = true
			c.Experiments[0].CUPEDHistoryTTL = experiments.Duration(time.Minute)
		}, []fe{{"experiments[0].cuped_history_ttl", "must be between 1h0m0s and 8784h0m0s"}}},
		{"weight above 100/candidates", func(c *experiments.Config) { c.Experiments[0].Variants[1].Weight = 50.01 },
			[]fe{{"experiments[0].variants[1].weight", "must be between 0 and 50 (100/2 candidates)"}}},
		{"weight above 100/3", func(c *experiments.Config) {
			c.Experiments[0].Variants = append(c.Experiments[0].Variants,
				experiments.Variant{Name: "cand3", Upstream: "up", Model: "m3", Weight: 33.34})
		}, []fe{{"experiments[0].variants[3].weight", "must be between 0 and 33.33 (100/3 candidates)"}}},
		{"weight with 3 decimals", func(c *experiments.Config) { c.Experiments[0].Variants[2].Weight = 1.005 },
			[]fe{{"experiments[0].variants[2].weight", "steps of 0.01"}}},
		{"negative weight", func(c *experiments.Config) { c.Experiments[0].Variants[2].Weight = -1 },
			[]fe{{"experiments[0].variants[2].weight", "between 0 and"}}},
		{"base with weight", func(c *experiments.Config) { c.Experiments[0].Variants[0].Weight = 10 },
			[]fe{{"experiments[0].variants[0].weight", "leave its weight empty"}}},
		{"one variant", func(c *experiments.Config) { c.Experiments[0].Variants = c.Experiments[0].Variants[:1] },
			[]fe{{"experiments[0].variants", "at least one candidate"}}},
		{"unknown upstream", func(c *experiments.Config) { c.Experiments[0].Variants[1].Upstream = "nope" },
			[]fe{{"experiments[0].variants[1].upstream", "no upstream"}}},
		{"missing model and name", func(c *experiments.Config) {
			c.Experiments[0].Variants[1].Model = ""
			c.Experiments[0].Variants[1].Name = ""
		}, []fe{{"experiments[0].variants[1].name", "required"}, {"experiments[0].variants[1].model", "required"}}},
		{"duplicate variant", func(c *experiments.Config) { c.Experiments[0].Variants[2].Name = "cand" },
			[]fe{{"experiments[0].variants[2].name", "duplicate of experiments[0].variants[1].name"}}},
		{"bad id", func(c *experiments.Config) { c.Experiments[0].ID = "has space"; c.Routes = nil },
			[]fe{{"experiments[0].id", "must be 1-64 characters"}}},
		{"long id", func(c *experiments.Config) { c.Experiments[0].ID = strings.Repeat("x", 65); c.Routes = nil },
			[]fe{{"experiments[0].id", "must be 1-64 characters"}}},
		{"duplicate experiment", func(c *experiments.Config) { c.Experiments = append(c.Experiments, c.Experiments[0]) },
			[]fe{{"experiments[1].id", "duplicate of experiments[0].id"}}},
		{"salt with phase separator", func(c *experiments.Config) { c.Experiments[0].Salt = "exp#2" },
			[]fe{{"experiments[0].salt", "must be"}}},
		{"hash version", func(c *experiments.Config) { c.Experiments[0].HashVersion = 2 },
			[]fe{{"experiments[0].hash_version", "must be 1"}}},
		{"phase", func(c *experiments.Config) { c.Experiments[0].Phase = -1 },
			[]fe{{"experiments[0].phase", "at least 1"}}},
		{"coverage and holdout", func(c *experiments.Config) {
			c.Experiments[0].Coverage = ptr(100.5)
			c.Experiments[0].Holdout = -0.01
		}, []fe{{"experiments[0].coverage", "between 0 and 100"}, {"experiments[0].holdout", "between 0 and 100"}}},
		{"allowlist twice", func(c *experiments.Config) {
			c.Experiments[0].Variants[1].Allowlist = []string{"qa"}
			c.Experiments[0].Variants[2].Allowlist = []string{"qa", ""}
		}, []fe{
			{"experiments[0].variants[2].allowlist[0]", "already listed at experiments[0].variants[1].allowlist[0]"},
			{"experiments[0].variants[2].allowlist[1]", "must not be empty"},
		}},
		{"prices", func(c *experiments.Config) { c.Experiments[0].Variants[0].PromptPrice = -1 },
			[]fe{{"experiments[0].variants[0].prompt_price_per_1k", "non-negative"}}},
		{"metrics", func(c *experiments.Config) {
			c.Experiments[0].Metrics = []experiments.Metric{
				{Name: "latency_ms", Kind: experiments.MetricCount},
				{Name: "score", Kind: experiments.MetricContinuous, Min: ptr(1.0), Max: ptr(1.0)},
				{Name: "score", Kind: "gauge"},
				{Name: "open", Kind: experiments.MetricContinuous},
				{Name: "flag", Kind: experiments.MetricBinary, Max: ptr(2.0)},
			}
		}, []fe{
			{"experiments[0].metrics[0].name", "built-in"},
			{"experiments[0].metrics[1].max", "greater than min"},
			{"experiments[0].metrics[2].name", "duplicate of experiments[0].metrics[1].name"},
			{"experiments[0].metrics[2].kind", "must be binary, count or continuous"},
			{"experiments[0].metrics[3]", "need min and max"},
			{"experiments[0].metrics[4].kind", "min and max must be unset"},
		}},
		{"primary undeclared", func(c *experiments.Config) { c.Experiments[0].Primary = "resolved" },
			[]fe{{"experiments[0].primary", "not a built-in metric"}}},
		{"primary declared", func(c *experiments.Config) {
			c.Experiments[0].Primary = "resolved"
			c.Experiments[0].Metrics = []experiments.Metric{{Name: "resolved", Kind: experiments.MetricBinary}}
		}, nil},
		{"primary built-in", func(c *experiments.Config) { c.Experiments[0].Primary = "latency_ms" }, nil},
		{"routes", func(c *experiments.Config) {
			c.Routes = append(c.Routes,
				experiments.Route{Alias: "chat", Experiment: "exp"},
				experiments.Route{Alias: "meta-llama/Llama-3.1-8B@v2", Experiment: "missing"},
				experiments.Route{Alias: "a b", Experiment: ""})
		}, []fe{
			{"routes[1].alias", "duplicate of routes[0].alias"},
			{"routes[2].experiment", "no experiment has this id"},
			{"routes[3].alias", "must be 1-128"},
			{"routes[3].experiment", "required"},
		}},
		{"upstream urls", func(c *experiments.Config) {
			urls := []string{"", "ftp://h", "/relative", "http://h?x=1", "http://h#frag", "https://user:pw@h", "http://:80", "http://h:99999", "http://h/v1/"}
			c.Upstreams = nil
			for i, u := range urls {
				c.Upstreams = append(c.Upstreams, experiments.Upstream{Name: fmt.Sprint("u", i), URL: u})
			}
			c.Upstreams[len(urls)-1].Name = "up"
			c.Upstreams = append(c.Upstreams, experiments.Upstream{Name: "up2", URL: "http://[::1]:8000"})
			c.SetDefaults()
		}, []fe{
			{"upstreams[0].url", "required"},
			{"upstreams[1].url", "http:// or https://"},
			{"upstreams[2].url", "http:// or https://"},
			{"upstreams[3].url", "query"},
			{"upstreams[4].url", "fragment"},
			{"upstreams[5].url", "credentials"},
			{"upstreams[6].url", "host"},
			{"upstreams[7].url", "port"},
		}},
		{"upstream fields", func(c *experiments.Config) {
			u := &c.Upstreams[0]
			u.APIKey = "k"
			u.Headers = map[string]string{"Authorization": "x", "Bad Header": "x", "X-Ok": "a\r\nb"}
			u.AuthHeader = "bad header"
			u.HeaderTimeout = u.TotalTimeout + 1
			u.MaxIdleConns = -1
			u.ConnectTimeout = -1
			c.Upstreams[1].Name = "up"
		}, []fe{
			{"upstreams[0].auth_header", "header name"},
			{"upstreams[0].headers.Bad Header", "header name"},
			{"upstreams[0].headers.X-Ok", "line breaks"},
			{"upstreams[0].connect_timeout", "positive"},
			{"upstreams[0].header_timeout", "must not exceed total_timeout"},
			{"upstreams[0].max_idle_conns", "positive"},
			{"upstreams[1].name", "duplicate of upstreams[0].name"},
			{"experiments[0].variants[2].upstream", "no upstream"},
		}},
		{"auth header conflict", func(c *experiments.Config) {
			c.Upstreams[0].APIKey = "k"
			c.Upstreams[0].Headers = map[string]string{"authorization": "x"}
		}, []fe{{"upstreams[0].headers.authorization", "conflicts with api_key"}}},
		{"server", func(c *experiments.Config) {
			c.Server.Listen = "localhost"
			c.Server.AdminListen = "localhost"
			c.Server.MaxBodyBytes = -1
			c.Server.UnitHeader = "X User"
			c.Server.TokenTTL = -1
			c.Server.ShutdownTimeout = -1
		}, []fe{
			{"server.listen", "host:port"},
			{"server.admin_listen", "host:port"},
			{"server.admin_listen", "must differ"},
			{"server.max_body_bytes", "positive"},
			{"server.unit_header", "header name"},
			{"server.token_ttl", "positive"},
			{"server.shutdown_timeout", "positive"},
		}},
		{"redis", func(c *experiments.Config) {
			c.Redis.Addrs = []string{"127.0.0.1:6379", "redis", ":6379", "h:0"}
			c.Redis.DB = 2
			c.Redis.KeyPrefix = "ab{gate}"
		}, []fe{
			{"redis.addrs[1]", "host:port"},
			{"redis.addrs[2]", "host:port"},
			{"redis.addrs[3]", "host:port"},
			{"redis.db", "must be 0 with several addrs"},
			{"redis.key_prefix", "braces"},
		}},
		{"auth", func(c *experiments.Config) {
			c.Auth.Tokens = []experiments.AuthToken{
				{Name: "", Role: "root", Token: "short"},
				{Name: "a", Role: "viewer", SHA256: "xyz"},
				{Name: "a", Role: "admin"},
				{Name: "b", Role: "feedback", Token: "0123456789abcdef", SHA256: strings.Repeat("ab", 32)},
				{Name: "c", Role: "viewer", SHA256: "sha256:" + strings.Repeat("AB", 32)},
			}
		}, []fe{
			{"auth.tokens[0].name", "required"},
			{"auth.tokens[0].role", "must be admin, viewer or feedback"},
			{"auth.tokens[0].token", "at least 16 bytes"},
			{"auth.tokens[1].sha256", "64 hex digits"},
			{"auth.tokens[2].name", "duplicate of auth.tokens[1].name"},
			{"auth.tokens[2]", "needs token or sha256"},
			{"auth.tokens[3]", "not both"},
		}},
		{"rollout", func(c *experiments.Config) {
			c.Experiments[0].Rollout = &experiments.Rollout{
				Steps:      []experiments.RampStep{{Percent: 10}, {Percent: 5}, {Percent: 50.5}},
				Guardrails: []experiments.Guardrail{{Metric: "nope", Margin: -1}},
				Alpha:      2, Method: "bayes", Cohort: "returning",
			}
		}, []fe{
			{"experiments[0].rollout.steps[1].percent", "larger than the previous"},
			{"experiments[0].rollout.steps[2].percent", "must be in 0.01..50"},
			{"experiments[0].rollout.guardrails[0].metric", "not a built-in or declared metric"},
			{"experiments[0].rollout.guardrails[0].margin", ">= 0"},
			{"experiments[0].rollout.alpha", "(0, 1)"},
			{"experiments[0].rollout.method", "must be"},
			{"experiments[0].rollout.cohort", `must be "new"`},
		}},
		{"webhooks", func(c *experiments.Config) {
			c.Webhooks = []experiments.Webhook{{URL: "ftp://hooks"}, {URL: "https://hooks.example.com/x", Secret: "s", MaxAttempts: 21}}
		}, []fe{
			{"webhooks[0].url", "absolute http(s) URL"},
			{"webhooks[0].secret", "required"},
			{"webhooks[1].max_attempts", "0..20"},
		}},
		{"recording", func(c *experiments.Config) {
			c.Recording.QueueSize = 10
			c.Recording.BatchSize = 11
			c.Recording.FlushInterval = -1
			c.Recording.Retention = -1
		}, []fe{
			{"recording.batch_size", "must not exceed recording.queue_size"},
			{"recording.flush_interval", "positive"},
			{"recording.retention", "positive"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := base(t)
			tc.mutate(c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ve experiments.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want ValidationError", err)
			}
			if !errors.Is(err, experiments.ErrInvalidConfig) {
				t.Error("ValidationError does not match ErrInvalidConfig")
			}
			for _, w := range tc.want {
				if !hasFieldError(ve, w) {
					t.Errorf("missing %s: …%s…", w.Field, w.Reason)
				}
			}
			if len(ve) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(ve), len(tc.want), err)
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(ve) {
				t.Errorf("Error() has %d lines for %d problems", got, len(ve))
			}
		})
	}
}

func TestValidationErrorFormat(t *testing.T) {
	t.Parallel()
	src := strings.Replace(minimalYAML, "weight: 50", "weight: 150", 1)
	src = strings.Replace(src, "model: m0", "model: ''", 1)
	_, err := experiments.Parse([]byte(src), noEnv)
	want := "experiments[0].variants[0].model: required\n" +
		"experiments[0].variants[1].weight: must be between 0 and 100 (100/1 candidates) in steps of 0.01"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestValidateForServe(t *testing.T) {
	t.Parallel()
	c := mustParse(t, minimalYAML, noEnv) // no secret: fine for Parse and the demo
	err := c.ValidateForServe()
	var ve experiments.ValidationError
	if !errors.As(err, &ve) || len(ve) != 1 || ve[0].Field != "server.token_secret" {
		t.Fatalf("ValidateForServe without a secret = %v", err)
	}
	c.Server.TokenSecret = experiments.Secret(strings.Repeat("s", 31))
	if c.ValidateForServe() == nil {
		t.Error("31-byte secret accepted")
	}
	c.Server.TokenSecret = experiments.Secret(strings.Repeat("s", 32))
	if err := c.ValidateForServe(); err != nil {
		t.Errorf("32-byte secret: %v", err)
	}
}

func TestLookups(t *testing.T) {
	t.Parallel()
	c := mustParse(t, minimalYAML, noEnv)
	if e := c.Experiment("exp"); e == nil || e.ID != "exp" {
		t.Errorf("Experiment(exp) = %v", e)
	}
	if c.Experiment("nope") != nil {
		t.Error("Experiment(nope) != nil")
	}
	if e, ok := c.RouteFor("chat"); !ok || e != &c.Experiments[0] {
		t.Errorf("RouteFor(chat) = %v, %v", e, ok)
	}
	if _, ok := c.RouteFor("gpt-4"); ok {
		t.Error("RouteFor(gpt-4) found")
	}
	if u := c.Upstream("up"); u == nil || u.Name != "up" {
		t.Errorf("Upstream(up) = %v", u)
	}
	e := c.Experiment("exp")
	if e.VariantIndex("cand") != 1 || e.VariantIndex("x") != -1 {
		t.Error("VariantIndex")
	}
	if _, ok := experiments.LookupMetric(e, "thumbs"); !ok {
		t.Error(`LookupMetric(e, "thumbs") not found`)
	}
	if _, ok := experiments.LookupMetric(e, "resolved"); ok {
		t.Error(`LookupMetric(e, "resolved") found`)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "abgate.yaml")
	if err := os.WriteFile(p, []byte(minimalYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := experiments.Load(p); err != nil {
		t.Fatalf("Load: %v", err)
	}
	_, err := experiments.Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("nope: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = experiments.Load(bad)
	if !errors.Is(err, experiments.ErrInvalidConfig) || !strings.Contains(err.Error(), bad) {
		t.Errorf("Load(bad) = %v", err)
	}
}

// TestExample loads examples/abgate.yaml the way serve does.
func TestExample(t *testing.T) {
	// Not parallel: t.Setenv.
	t.Setenv("OPENAI_API_KEY", "sk-test-example")
	t.Setenv("ABGATE_TOKEN_SECRET", strings.Repeat("x", 48))
	t.Setenv("ABGATE_WEBHOOK_SECRET", "whsec-example")
	t.Setenv("ABGATE_ADMIN_TOKEN", "admin-token-0123456789")
	t.Setenv("ABGATE_VIEWER_TOKEN", "viewer-token-0123456789")
	t.Setenv("ABGATE_FEEDBACK_TOKEN", "feedback-token-0123456789")
	c, err := experiments.Load("../examples/abgate.yaml")
	if err != nil {
		t.Fatalf("Load example: %v", err)
	}
	if err := c.ValidateForServe(); err != nil {
		t.Fatalf("ValidateForServe: %v", err)
	}
	e, ok := c.RouteFor("support-assistant")
	if !ok || len(e.Variants) != 3 || !e.Fallback || len(e.Metrics) == 0 {
		t.Fatalf("example experiment = %+v", e)
	}
	if c.Upstream("openai").APIKey.Reveal() != "sk-test-example" {
		t.Error("OPENAI_API_KEY not expanded")
	}
	a := e.Allocation()
	if a.Shares[0] != 500 || a.Shares[1] != 500 || a.Allowlist["qa-carol"] != 2 {
		t.Errorf("allocation = %+v", a)
	}
}

// roundTripSecret stands in for every secret in a round trip: marshalling
// writes "[redacted]", which checkRoundTrip turns back into a reference
// to this value (validation may need a secret of some length).
const roundTripSecret = "round-trip-secret-0123456789abcdef"

// setSecrets sets every non-empty secret in c to val.
func setSecrets(c *experiments.Config, val string) {
	r := func(s *experiments.Secret) {
		if *s != "" {
			*s = experiments.Secret(val)
		}
	}
	r(&c.Server.TokenSecret)
	r(&c.Redis.Password)
	for i := range c.Upstreams {
		r(&c.Upstreams[i].APIKey)
	}
	for i := range c.Webhooks {
		r(&c.Webhooks[i].Secret)
	}
	for i := range c.Auth.Tokens {
		r(&c.Auth.Tokens[i].Token)
	}
}

// unredact replaces "[redacted]" scalars with ${ABGATE_RT_SECRET}.
func unredact(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Value == "[redacted]" {
		n.Value, n.Style = "${ABGATE_RT_SECRET}", 0
	}
	for _, c := range n.Content {
		unredact(c)
	}
}

func checkRoundTrip(t *testing.T, c *experiments.Config) {
	t.Helper()
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(out, &n); err != nil {
		t.Fatalf("Marshal wrote invalid YAML: %v\n%s", err, out)
	}
	unredact(&n)
	out, err = yaml.Marshal(&n)
	if err != nil {
		t.Fatal(err)
	}
	back, err := experiments.Parse(out, envMap(map[string]string{"ABGATE_RT_SECRET": roundTripSecret}))
	if err != nil {
		t.Fatalf("Parse(Marshal(c)): %v\n%s", err, out)
	}
	want := deepCopyConfig(t, c)
	setSecrets(want, roundTripSecret)
	if !reflect.DeepEqual(want, back) {
		t.Fatalf("round trip differs:\nwant %+v\ngot  %+v\nyaml:\n%s", *want, *back, out)
	}
}

// deepCopyConfig copies through gob-free reflection: marshal-independent,
// so the round trip is compared with an untouched original.
func deepCopyConfig(t *testing.T, c *experiments.Config) *experiments.Config {
	t.Helper()
	v := deepCopy(reflect.ValueOf(c).Elem())
	out := v.Addr().Interface().(*experiments.Config)
	return out
}

func deepCopy(v reflect.Value) reflect.Value {
	out := reflect.New(v.Type()).Elem()
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			p := reflect.New(v.Type().Elem())
			p.Elem().Set(deepCopy(v.Elem()))
			out.Set(p)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			out.Field(i).Set(deepCopy(v.Field(i)))
		}
	case reflect.Slice:
		if !v.IsNil() {
			s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			for i := range v.Len() {
				s.Index(i).Set(deepCopy(v.Index(i)))
			}
			out.Set(s)
		}
	case reflect.Map:
		if !v.IsNil() {
			m := reflect.MakeMapWithSize(v.Type(), v.Len())
			for _, k := range v.MapKeys() {
				m.SetMapIndex(k, deepCopy(v.MapIndex(k)))
			}
			out.Set(m)
		}
	default:
		out.Set(v)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-test-example")
	t.Setenv("ABGATE_TOKEN_SECRET", strings.Repeat("x", 48))
	t.Setenv("ABGATE_WEBHOOK_SECRET", "whsec-example")
	t.Setenv("ABGATE_ADMIN_TOKEN", "admin-token-0123456789")
	t.Setenv("ABGATE_VIEWER_TOKEN", "viewer-token-0123456789")
	t.Setenv("ABGATE_FEEDBACK_TOKEN", "feedback-token-0123456789")
	c, err := experiments.Load("../examples/abgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checkRoundTrip(t, c)
	// "${" in a value survives as a literal.
	c.Experiments[0].Description = "costs $${5} or ${HOME}\nsecond line"
	checkRoundTrip(t, c)
}

func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../examples/abgate.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"", "{}", "[]", "null", minimalYAML, string(example),
		"server: {token_ttl: 7d}", "a: &a [*a]", "upstreams: [{<<: {name: x}}]",
		strings.Replace(minimalYAML, "m1", `"${X}"`, 1),
		strings.Replace(minimalYAML, "m1", `"$${X}"`, 1),
		strings.Replace(minimalYAML, "weight: 50", "weight: .nan", 1),
	} {
		f.Add([]byte(s))
	}
	env := envMap(map[string]string{"X": "value: {a: 1}", "OPENAI_API_KEY": "k", "ABGATE_TOKEN_SECRET": "s",
		"ABGATE_WEBHOOK_SECRET": "w", "ABGATE_ADMIN_TOKEN": "admin-token-0123456789",
		"ABGATE_VIEWER_TOKEN": "viewer-token-0123456789", "ABGATE_FEEDBACK_TOKEN": "feedback-token-0123456789"})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			t.Skip()
		}
		// Go's fuzzer has no per-input timeout; a hang (an alias or merge
		// bomb the budget misses) becomes a crasher with its input.
		watchdog := time.AfterFunc(5*time.Second, func() { panic(fmt.Sprintf("Parse hangs on %q", data)) })
		c, err := experiments.Parse(data, env)
		watchdog.Stop()
		if err != nil {
			if !errors.Is(err, experiments.ErrInvalidConfig) {
				t.Fatalf("error %v is not ErrInvalidConfig", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config Validate rejects: %v", err)
		}
		checkRoundTrip(t, c)
	})
}

func TestMergeBomb(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("m0: &m0 {name: x}\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, "m%d: &m%d {<<: [*m%d, *m%d]}\n", i, i, i-1, i-1)
	}
	b.WriteString("upstreams: [{<<: *m39}]\n")
	done := make(chan error, 1)
	go func() { _, err := experiments.Parse([]byte(b.String()), noEnv); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("merge bomb parsed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("merge bomb hangs")
	}
}
