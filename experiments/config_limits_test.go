package experiments_test

import (
	"errors"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// TestLimitsAndPrivacyDefaults: the request limits and unit id policies
// of issue "Decision integrity" default as docs/config.md says.
func TestLimitsAndPrivacyDefaults(t *testing.T) {
	t.Parallel()
	c := mustParse(t, minimalYAML, noEnv)
	s := c.Server
	if s.BodyReadTimeout != experiments.Duration(30*time.Second) || s.MaxInflightBodyBytes != 256<<20 || s.MaxInflightRequests != 8192 {
		t.Errorf("server limits %v %v %v", s.BodyReadTimeout, s.MaxInflightBodyBytes, s.MaxInflightRequests)
	}
	p := c.Upstreams[0].Privacy
	if p.UnitHeader != experiments.PrivacyDrop || p.UnitField != experiments.PrivacyHash {
		t.Errorf("privacy %+v", p)
	}
	big := mustParse(t, "server: {max_body_bytes: 536870912}\n"+minimalYAML, noEnv)
	if big.Server.MaxInflightBodyBytes != 512<<20 {
		t.Errorf("in-flight budget %d below max_body_bytes", big.Server.MaxInflightBodyBytes)
	}
}

func TestLimitsAndPrivacyValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yaml, field string }{
		{"server: {max_body_bytes: 2048, max_inflight_body_bytes: 1024}\n", "server.max_inflight_body_bytes"},
		{"server: {max_inflight_requests: -1}\n", "server.max_inflight_requests"},
		{"server: {body_read_timeout: -1s}\n", "server.body_read_timeout"},
	} {
		_, err := experiments.Parse([]byte(tc.yaml+minimalYAML), noEnv)
		var ve experiments.ValidationError
		if !errors.As(err, &ve) || !hasField(ve, tc.field) {
			t.Errorf("%q: %v, want an error for %s", tc.yaml, err, tc.field)
		}
	}
	for _, field := range []string{"unit_header", "unit_field"} {
		src := `
upstreams:
  - name: up
    url: http://127.0.0.1:8000
    privacy: {` + field + `: encrypt}
experiments:
  - id: exp
    variants:
      - {name: base, upstream: up, model: m0}
routes:
  - {alias: chat, experiment: exp}
`
		_, err := experiments.Parse([]byte(src), noEnv)
		var ve experiments.ValidationError
		if !errors.As(err, &ve) || !hasField(ve, "upstreams[0].privacy."+field) {
			t.Errorf("privacy.%s: encrypt: %v", field, err)
		}
	}
}

func hasField(ve experiments.ValidationError, field string) bool {
	for _, fe := range ve {
		if fe.Field == field {
			return true
		}
	}
	return false
}
