package experiments_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

const capsYAML = `
upstreams:
  - {name: fast, url: http://127.0.0.1:9, header_timeout: 10s, total_timeout: 30s}
  - {name: slow, url: http://127.0.0.1:9, total_timeout: 2m}
experiments:
  - id: e
    caps: {completion_tokens: 4096, ttfb_ms: 5000}
    variants:
      - {name: base, upstream: fast, model: m0}
      - {name: cand, upstream: slow, model: m1, weight: 10}
    rollout: {}
`

// TestCapsDefaultsAndBounds: declared caps bound the metric in the
// registry and the policy on [0, cap] (issue 11); the time metrics are
// also recorded under the largest total_timeout of the variants'
// upstreams, but that default does not make them bounded in the policy
// (the bounded test could never clear a guardrail at a 10-minute bound).
func TestCapsDefaultsAndBounds(t *testing.T) {
	t.Parallel()
	cfg, err := experiments.Parse([]byte(capsYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &cfg.Experiments[0]
	declared := map[string]float64{"ttfb_ms": 5000, "completion_tokens": 4096}
	for m, c := range declared {
		if got, ok := experiments.MetricCap(e, m); !ok || got != c {
			t.Errorf("cap of %s = %v, %v; want %v", m, got, ok, c)
		}
		if info, _ := experiments.LookupMetric(e, m); info.Max != c || info.Min != 0 {
			t.Errorf("registry bounds of %s = [%v, %v], want [0, %v]", m, info.Min, info.Max, c)
		}
	}
	recorded := map[string]float64{"latency_ms": 120000, "max_gap_ms": 120000, "ttfb_ms": 5000, "completion_tokens": 4096}
	for m, c := range recorded {
		if got, ok := experiments.RecordingCap(e, cfg.Upstreams, m); !ok || got != c {
			t.Errorf("recording cap of %s = %v, %v; want %v", m, got, ok, c)
		}
	}
	for _, m := range []string{"latency_ms", "max_gap_ms"} {
		if _, ok := experiments.MetricCap(e, m); ok {
			t.Errorf("%s: the timeout default became a declared cap", m)
		}
		if info, _ := experiments.LookupMetric(e, m); !math.IsInf(info.Max, 1) {
			t.Errorf("%s: bounded at the timeout default [%v, %v] in the registry", m, info.Min, info.Max)
		}
	}
	if _, ok := experiments.MetricCap(e, experiments.MetricCost); ok {
		t.Error("cost has a cap nobody declared")
	}
	p := e.Policy(0)
	if !p.OneSided || p.NStar != 0 {
		t.Errorf("policy OneSided %v, NStar %v", p.OneSided, p.NStar)
	}
	bounds := map[string]*stats.Bounds{}
	for _, g := range p.Guardrails {
		bounds[g.Name] = g.Bounds
	}
	if b := bounds[experiments.MetricError]; b == nil || *b != (stats.Bounds{Lo: 0, Hi: 1}) {
		t.Errorf("error guardrail bounds %v, want [0,1]", b)
	}
	if b := bounds[experiments.MetricLatencyMS]; b != nil {
		t.Errorf("latency guardrail bounds %v without a declared cap, want none (the asymptotic test)", b)
	}
	if b := p.Primary.Bounds; b == nil || *b != (stats.Bounds{Lo: 0, Hi: 1}) {
		t.Errorf("thumbs primary bounds %v, want [0,1]", b)
	}
	// Without caps (no upstreams known), latency stays unbounded.
	free := experiments.Experiment{ID: "x", Rollout: &experiments.Rollout{}}
	if m := experiments.MetricSpec(&free, experiments.MetricLatencyMS, true); m.Bounds != nil {
		t.Errorf("uncapped latency has bounds %v", m.Bounds)
	}
}

// TestPolicyTuning: n_star wins; otherwise expected_daily_users over the
// step's days at the step's share; the segment divisor counts declared
// values plus "other" per dimension.
func TestPolicyTuning(t *testing.T) {
	t.Parallel()
	e := experiments.Experiment{ID: "x", Variants: []experiments.Variant{{Name: "a"}, {Name: "b"}},
		Segments: []experiments.Segment{{Name: "region", Values: []string{"eu", "us"}}, {Name: "tier", Values: []string{"free"}}},
		Rollout: &experiments.Rollout{ExpectedDailyUsers: 10000, StepDays: 2, MinEvents: 20,
			Steps: []experiments.RampStep{{Percent: 5}, {Percent: 50}}}}
	p := e.Policy(0)
	if want := stats.NStarFor(stats.PlannedUsers(10000, 0.05, 2)); p.NStar != want {
		t.Errorf("step 0 N* %v, want %v", p.NStar, want)
	}
	if want := stats.NStarFor(stats.PlannedUsers(10000, 0.5, 2)); e.Policy(1).NStar != want {
		t.Errorf("step 1 N* %v, want %v", e.Policy(1).NStar, want)
	}
	if p.SegmentValues != 5 || p.MinEvents != 20 {
		t.Errorf("segment values %d, min events %v", p.SegmentValues, p.MinEvents)
	}
	e.Rollout.NStar = 1234
	if e.Policy(0).NStar != 1234 {
		t.Error("rollout.n_star ignored")
	}
}

// TestCapsValidation: errors name the field and the reason.
func TestCapsValidation(t *testing.T) {
	t.Parallel()
	bad := strings.Replace(capsYAML, "caps: {completion_tokens: 4096, ttfb_ms: 5000}", "caps: {error: 1, cost: -1}", 1)
	bad = strings.Replace(bad, "rollout: {}", "rollout: {n_star: -5, min_events: .nan}", 1)
	_, err := experiments.Parse([]byte(bad), nil)
	var ve experiments.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err %v", err)
	}
	for _, f := range []string{"experiments[0].caps.error", "experiments[0].caps.cost", "experiments[0].rollout.n_star", "experiments[0].rollout.min_events"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("no error for %s in %v", f, err)
		}
	}
}
