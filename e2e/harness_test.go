// Package e2e holds abgate's end-to-end tests: synthetic users, simulated
// models, the rollout controller and (where a test says so) a real
// redis-server and the full gateway. It has no non-test code.
//
// The simulated-time scenarios run the controller with an injected clock:
// each tick, a batch of new users visits, their outcomes and feedback go
// into the statistics store, the clock moves one minute and the
// controller evaluates once.
package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/rollout"
)

var quiet = slog.New(slog.DiscardHandler)

// clock is a settable clock for simulated time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// arm is how a simulated model behaves for users: the chance a feedback
// is a thumbs-up, the chance a request fails, the mean latency.
type arm struct {
	Thumbs    float64
	ErrRate   float64
	LatencyMS float64
}

// population sends synthetic users to an experiment and records what
// the gateway and the feedback API would record, straight into a Store.
type population struct {
	exp   *experiments.Experiment
	arms  []arm
	rng   *rand.Rand
	store experiments.Store
	now   func() time.Time
	seed  uint64
	// drop is the share of candidate users whose events get lost (a
	// broken split).
	drop float64

	users   int
	batches int
	// served counts users per variant and period (analysed or not).
	served map[int][]int
}

func newPopulation(e *experiments.Experiment, arms []arm, store experiments.Store, now func() time.Time, seed uint64) *population {
	return &population{exp: e, arms: arms, rng: rand.New(rand.NewPCG(seed, 0x9e3779b9)), store: store, now: now, seed: seed, served: map[int][]int{}}
}

// visit sends n new users under allocation a.
func (p *population) visit(ctx context.Context, a *experiments.Allocation, n int) error {
	hour := experiments.HourOf(p.now())
	b := &experiments.Batch{Experiment: p.exp.ID, Phase: a.Period}
	p.batches++
	b.ID = fmt.Sprintf("sim-%d-%d", p.seed, p.batches)
	if p.served[a.Period] == nil {
		p.served[a.Period] = make([]int, len(p.exp.Variants))
	}
	for range n {
		p.users++
		id := fmt.Sprintf("user-%d-%d", p.seed, p.users)
		as := experiments.Assign(a, id)
		p.served[a.Period][as.Variant]++
		if !as.Analysed() {
			continue
		}
		if as.Variant > 0 && p.drop > 0 && p.rng.Float64() < p.drop {
			continue
		}
		var unit experiments.UnitKey
		binary.LittleEndian.PutUint64(unit[:8], uint64(p.users))
		binary.LittleEndian.PutUint64(unit[8:], p.seed)
		m := p.arms[as.Variant]
		d := func(metric string, x float64) {
			b.Deltas = append(b.Deltas, experiments.Delta{Variant: as.Variant, Unit: unit, Metric: metric, Hour: hour, DX: x, DY: 1})
		}
		for range 1 + p.rng.IntN(3) {
			failed := p.rng.Float64() < m.ErrRate
			d(experiments.MetricRequests, 1)
			d(experiments.MetricError, b2f(failed))
			d(experiments.MetricLatencyMS, max(1, m.LatencyMS*(1+0.3*p.rng.NormFloat64())))
			if !failed && p.rng.Float64() < 0.6 {
				d(experiments.MetricThumbs, b2f(p.rng.Float64() < m.Thumbs))
			}
		}
	}
	if len(b.Deltas) == 0 {
		return nil
	}
	_, err := p.store.Apply(ctx, b)
	return err
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// scenario is one simulated rollout.
type scenario struct {
	arms         []arm
	rollout      experiments.Rollout
	usersPerTick int
	maxTicks     int
	seed         uint64
	drop         float64
	notifier     rollout.Notifier
}

type outcome struct {
	state   experiments.State
	history []experiments.Transition
	rec     experiments.Recommendation
	pop     *population
	ticks   int
}

// defaultRollout: three steps with a 5-minute minimum each, guardrails on
// errors (2 points absolute) and latency (10% relative).
func defaultRollout() experiments.Rollout {
	return experiments.Rollout{
		Steps: []experiments.RampStep{
			{Percent: 5, MinDuration: experiments.Duration(5 * time.Minute)},
			{Percent: 20, MinDuration: experiments.Duration(5 * time.Minute)},
			{Percent: 50},
		},
		Guardrails: []experiments.Guardrail{
			{Metric: experiments.MetricError, Margin: 0.02},
			{Metric: experiments.MetricLatencyMS, Margin: 0.10, Relative: true},
		},
		Alpha:    0.05,
		MinUsers: 200,
		MaxUsers: 20000,
	}
}

func scenarioExperiment(id string, r experiments.Rollout) experiments.Experiment {
	return experiments.Experiment{
		ID: id, Primary: experiments.MetricThumbs, Rollout: &r,
		Variants: []experiments.Variant{
			{Name: "base", Upstream: "base", Model: "m-base"},
			{Name: "tuned", Upstream: "tuned", Model: "m-tuned"},
		},
	}
}

// run plays the scenario in simulated time on in-memory stores until the
// experiment leaves "running" or maxTicks pass.
func (sc scenario) run(t testing.TB) outcome {
	t.Helper()
	ctx := context.Background()
	clk := newClock()
	e := scenarioExperiment(fmt.Sprintf("sim-%d", sc.seed), sc.rollout)
	cfg := &experiments.Config{Experiments: []experiments.Experiment{e}}
	stats := memstore.New(memstore.WithClock(clk.Now))
	lcs := memstore.NewLifecycle(memstore.WithLifecycleClock(clk.Now))
	opts := []rollout.Option{rollout.WithClock(clk.Now)}
	if sc.notifier != nil {
		opts = append(opts, rollout.WithNotifier(sc.notifier))
	}
	lc := rollout.NewLifecycle(lcs, cfg, opts...)
	ctl := rollout.NewController(lc, stats, lcs,
		experiments.Controller{Interval: experiments.Duration(time.Minute), LeaseTTL: experiments.Duration(10 * time.Minute)},
		rollout.WithClock(clk.Now), rollout.WithHolderID("sim"), rollout.WithLogger(quiet))
	pop := newPopulation(&e, sc.arms, stats, clk.Now, sc.seed)
	pop.drop = sc.drop
	if _, err := lc.Start(ctx, e.ID, "api:test", "scenario start"); err != nil {
		t.Fatal(err)
	}
	var out outcome
	for out.ticks = 1; out.ticks <= sc.maxTicks; out.ticks++ {
		a, err := lc.Allocation(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := pop.visit(ctx, a, sc.usersPerTick); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Minute)
		ctl.Tick(ctx)
		st, _ := lc.State(ctx, e.ID)
		if st.Status != experiments.StatusRunning {
			// One more round of users under the final allocation.
			a, _ := lc.Allocation(ctx, e.ID)
			_ = pop.visit(ctx, a, sc.usersPerTick)
			break
		}
	}
	out.state, _ = lc.State(ctx, e.ID)
	out.history, _ = lc.History(ctx, e.ID, 0)
	out.rec, _ = lc.LatestDecision(ctx, e.ID)
	out.pop = pop
	return out
}

func (o outcome) String() string {
	s := fmt.Sprintf("final %s at step %d", o.state.Status, o.state.Step)
	if o.ticks > 0 {
		s += fmt.Sprintf(" after %d simulated minutes", o.ticks)
	}
	s += "; history:"
	for _, tr := range o.history {
		s += fmt.Sprintf("\n  #%d %s %s->%s step %d->%d period %d by %s (fence %d): %s", tr.Seq, tr.Action, tr.From, tr.To, tr.FromStep, tr.ToStep, tr.Period, tr.Actor, tr.Fence, tr.Reason)
	}
	if o.rec.Decision != nil {
		s += fmt.Sprintf("\n  latest recommendation: %s %q (%s)", o.rec.Decision.Verdict, o.rec.Action, o.rec.Note)
	}
	return s
}
