package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// Fixtures shared by the tests of experiments and of the services built on
// it (rollout, recorder, drift): one copy instead of one per package.

// Clock is a settable clock for simulated time, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock at a fixed instant.
func NewClock() *Clock {
	return &Clock{now: time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// RolloutExperiment returns an experiment with a base and the given number
// of candidates on one upstream, thumbs as primary, and a rollout with the
// given step percentages (none: the default steps).
func RolloutExperiment(id string, candidates int, steps ...float64) experiments.Experiment {
	e := experiments.Experiment{ID: id, Primary: experiments.MetricThumbs, Rollout: &experiments.Rollout{}}
	e.Variants = append(e.Variants, experiments.Variant{Name: "base", Upstream: "up", Model: "m0"})
	for i := 1; i <= candidates; i++ {
		e.Variants = append(e.Variants, experiments.Variant{Name: "cand" + string(rune('0'+i)), Upstream: "up", Model: "m"})
	}
	for _, p := range steps {
		e.Rollout.Steps = append(e.Rollout.Steps, experiments.RampStep{Percent: p})
	}
	return e
}

// DefinitionsFileYAML is a file config with one experiment and one route,
// the base that stored definitions are merged into.
const DefinitionsFileYAML = `
upstreams:
  - name: up
    url: http://127.0.0.1:9
experiments:
  - id: file-exp
    variants:
      - {name: base, upstream: up, model: m0}
      - {name: cand, upstream: up, model: m1, weight: 10}
routes:
  - {alias: file-alias, experiment: file-exp}
`

// DefinitionsFile parses DefinitionsFileYAML.
func DefinitionsFile(t testing.TB) *experiments.Config {
	t.Helper()
	cfg, err := experiments.Parse([]byte(DefinitionsFileYAML), nil)
	if err != nil {
		t.Fatalf("parse file config: %v", err)
	}
	return cfg
}

// Definition returns a two-variant definition with the given routes.
func Definition(id string, routes ...string) experiments.Definition {
	return experiments.Definition{
		Experiment: experiments.Experiment{ID: id, Variants: []experiments.Variant{
			{Name: "base", Upstream: "up", Model: "m0"},
			{Name: "cand", Upstream: "up", Model: "m1", Weight: 20},
		}, Rollout: &experiments.Rollout{}},
		Routes: routes,
	}
}

// Stored wraps d as stored at version v.
func Stored(d experiments.Definition, v int64, created time.Time) experiments.StoredExperiment {
	return experiments.StoredExperiment{Definition: d, Version: v, CreatedAt: created, UpdatedAt: created, UpdatedBy: "api:t"}
}
