package experiments_test

import (
	"errors"
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

// TestCapsDefaultsAndBounds: the time metrics default to the largest
// total_timeout of the variants' upstreams, declared caps win, and the
// registry and the policy then bound the metric on [0, cap] (issue 11).
func TestCapsDefaultsAndBounds(t *testing.T) {
	t.Parallel()
	cfg, err := experiments.Parse([]byte(capsYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &cfg.Experiments[0]
	want := map[string]float64{"latency_ms": 120000, "max_gap_ms": 120000, "ttfb_ms": 5000, "completion_tokens": 4096}
	for m, c := range want {
		if got, ok := experiments.MetricCap(e, m); !ok || got != c {
			t.Errorf("cap of %s = %v, %v; want %v", m, got, ok, c)
		}
		if info, _ := experiments.LookupMetric(e, m); info.Max != c || info.Min != 0 {
			t.Errorf("registry bounds of %s = [%v, %v], want [0, %v]", m, info.Min, info.Max, c)
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
	if b := bounds[experiments.MetricLatencyMS]; b == nil || *b != (stats.Bounds{Lo: 0, Hi: 120000}) {
		t.Errorf("latency guardrail bounds %v, want [0,120000]", b)
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
