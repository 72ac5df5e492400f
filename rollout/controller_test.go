package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/rollout"
)

var quiet = slog.New(slog.DiscardHandler)

// ctlFixture is one experiment with steps 10% (min 10 minutes) and 50%,
// on in-memory stores, in simulated time.
type ctlFixture struct {
	e     experiments.Experiment
	cfg   *experiments.Config
	clock *storetest.Clock
	stats *memstore.Store
	lcs   *memstore.Lifecycle
	lc    *rollout.Lifecycle
	ctl   *rollout.Controller
	batch int
}

func newCtlFixture(t *testing.T, opts ...rollout.Option) *ctlFixture {
	t.Helper()
	f := &ctlFixture{clock: storetest.NewClock()}
	f.e = storetest.RolloutExperiment("ctl", 1)
	f.e.Rollout.Steps = []experiments.RampStep{{Percent: 10, MinDuration: experiments.Duration(10 * time.Minute)}, {Percent: 50}}
	f.e.Rollout.Guardrails = []experiments.Guardrail{{Metric: experiments.MetricError, Margin: 0.02}}
	f.e.Rollout.MinUsers = 100
	f.cfg = &experiments.Config{Experiments: []experiments.Experiment{f.e}}
	f.stats = memstore.New()
	f.lcs = memstore.NewLifecycle(memstore.WithLifecycleClock(f.clock.Now))
	f.lc = rollout.NewLifecycle(f.lcs, f.cfg, rollout.WithClock(f.clock.Now))
	opts = append([]rollout.Option{rollout.WithClock(f.clock.Now),
		rollout.WithHolderID("t"), rollout.WithLogger(quiet)}, opts...)
	f.ctl = rollout.NewController(f.lc, f.stats, f.lcs, experiments.Controller{}, opts...)
	return f
}

// feed writes users for the current period in the current split's
// proportions: every arm has a 2% error rate and the same thumbs, so the
// guardrail is non-inferior and nothing is better.
func (f *ctlFixture) feed(t *testing.T, total int) {
	t.Helper()
	ctx := context.Background()
	st, _ := f.lc.State(ctx, "ctl")
	a := f.e.AllocationFor(st)
	cand := total * int(a.Shares[0]) / experiments.Buckets
	f.batch++
	b := &experiments.Batch{ID: fmt.Sprint("b", f.batch), Experiment: "ctl", Phase: st.Period}
	for v, n := range []int{total - cand, cand} {
		for u := range n {
			var k experiments.UnitKey
			copy(k[:], fmt.Sprintf("%d-%d-%d", f.batch, v, u))
			add := func(m string, x float64) {
				b.Deltas = append(b.Deltas, experiments.Delta{Variant: v, Unit: k, Metric: m, DX: x, DY: 1})
			}
			add(experiments.MetricRequests, 1)
			add(experiments.MetricError, float64(boolInt(u%50 == 0)))
			add(experiments.MetricThumbs, float64(u%2))
		}
	}
	if _, err := f.stats.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (f *ctlFixture) state(t *testing.T) experiments.State {
	t.Helper()
	s, err := f.lc.State(context.Background(), "ctl")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestControllerWaitsForMinDuration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newCtlFixture(t)
	if _, err := f.lc.Start(ctx, "ctl", "api:t", ""); err != nil {
		t.Fatal(err)
	}
	f.feed(t, 20000)
	f.clock.Add(time.Minute)
	f.ctl.Tick(ctx)
	if s := f.state(t); s.Step != 0 {
		t.Fatalf("advanced after 1 minute of a 10-minute step: %+v", s)
	}
	rec, err := f.lc.LatestDecision(ctx, "ctl")
	if err != nil || rec.Decision.Verdict != "advance" || rec.Applied || !strings.Contains(rec.Note, "min_duration") {
		t.Fatalf("recommendation = %+v, %v; want a pending advance explained by min_duration", rec, err)
	}
	f.clock.Add(10 * time.Minute)
	f.ctl.Tick(ctx)
	s := f.state(t)
	if s.Step != 1 || s.Status != experiments.StatusRunning {
		t.Fatalf("state after the minimum = %+v, want step 1", s)
	}
	// The new step starts a new period with no data: the controller waits.
	f.clock.Add(time.Minute)
	f.ctl.Tick(ctx)
	if s2 := f.state(t); s2.Version != s.Version {
		t.Fatalf("acted on an empty period: %+v", s2)
	}
	if rec, _ := f.lc.LatestDecision(ctx, "ctl"); rec.Period != s.Period || !strings.Contains(rec.Note, "users") {
		t.Errorf("recommendation on the new period = %+v", rec)
	}
}

func TestControllerLeavesPausedAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newCtlFixture(t)
	if _, err := f.lc.Start(ctx, "ctl", "api:t", ""); err != nil {
		t.Fatal(err)
	}
	f.feed(t, 20000)
	if _, err := f.lc.Pause(ctx, "ctl", "api:t", "hands off"); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Hour)
	f.ctl.Tick(ctx)
	if s := f.state(t); s.Status != experiments.StatusPaused || s.Version != 2 {
		t.Fatalf("controller touched a paused experiment: %+v", s)
	}
	if _, err := f.lc.Resume(ctx, "ctl", "api:t", ""); err != nil {
		t.Fatal(err)
	}
	f.ctl.Tick(ctx)
	if s := f.state(t); s.Step != 1 {
		t.Fatalf("resumed experiment did not advance: %+v", s)
	}
}

func TestControllerFencedAfterLosingLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newCtlFixture(t)
	if _, err := f.lc.Start(ctx, "ctl", "api:t", ""); err != nil {
		t.Fatal(err)
	}
	f.feed(t, 20000)
	f.ctl.Tick(ctx) // becomes leader
	old := f.ctl.Fence()
	if old == 0 {
		t.Fatal("single controller did not lead")
	}
	// Its lease lapses while it is stalled; another replica takes it.
	f.clock.Add(time.Hour)
	if _, ok, _ := f.lcs.Acquire(ctx, "other", time.Hour); !ok {
		t.Fatal("other replica could not take the expired lease")
	}
	before, err := f.lc.LatestDecision(ctx, "ctl")
	if err != nil {
		t.Fatal(err)
	}
	err = f.ctl.Evaluate(ctx, "ctl", old)
	if !errors.Is(err, experiments.ErrFenced) {
		t.Fatalf("stale leader's evaluation: %v, want ErrFenced", err)
	}
	// Its recommendation is fenced off too.
	if after, err := f.lc.LatestDecision(ctx, "ctl"); err != nil || !after.At.Equal(before.At) {
		t.Fatalf("stale leader overwrote the recommendation: %+v (was %+v), %v", after, before, err)
	}
	if s := f.state(t); s.Step != 0 || s.Version != 1 {
		t.Fatalf("fenced write changed the state: %+v", s)
	}
	// On its next tick it notices it lost the lease and does nothing.
	f.ctl.Tick(ctx)
	if f.ctl.Fence() != 0 || f.state(t).Version != 1 {
		t.Fatalf("controller kept acting without the lease: fence %d", f.ctl.Fence())
	}
}

func TestControllerAutoStartAndReshuffle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newCtlFixture(t, rollout.WithAutoStart(true))
	f.ctl.Tick(ctx)
	s := f.state(t)
	if s.Status != experiments.StatusRunning || s.UpdatedBy != experiments.ControllerActor {
		t.Fatalf("auto-start: %+v", s)
	}
	// The operator raises the config phase: the controller reshuffles.
	f.e.Phase = 3
	f.lc.Update(&experiments.Config{Experiments: []experiments.Experiment{f.e}})
	f.ctl.Tick(ctx)
	s2 := f.state(t)
	if s2.SaltPhase != 3 || s2.Period <= s.Period || s2.Step != s.Step {
		t.Fatalf("after a phase bump: %+v (was %+v)", s2, s)
	}
	h, _ := f.lc.History(ctx, "ctl", 0)
	if len(h) != 2 || h[1].Action != experiments.ActionReshuffle {
		t.Fatalf("history = %+v", h)
	}
	if a := f.e.AllocationFor(s2); a.Salt != experiments.PhaseSalt("ctl", 3) {
		t.Errorf("salt %q after reshuffle", a.Salt)
	}
}

// failingStats fails every read.
type failingStats struct{}

func (failingStats) Summaries(context.Context, string, int) (experiments.Snapshot, error) {
	return experiments.Snapshot{}, errors.New("redis: connection refused")
}

func TestControllerStatsErrorChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newCtlFixture(t)
	if _, err := f.lc.Start(ctx, "ctl", "api:t", ""); err != nil {
		t.Fatal(err)
	}
	ctl := rollout.NewController(f.lc, failingStats{}, f.lcs, experiments.Controller{}, rollout.WithLogger(quiet))
	if err := ctl.Evaluate(ctx, "ctl", 0); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Evaluate = %v, want the store error", err)
	}
	if s := f.state(t); s.Version != 1 {
		t.Fatalf("state changed: %+v", s)
	}
}

// racingStore lets an operator's command land between the controller's
// read and its commit.
type racingStore struct {
	*memstore.Lifecycle
	before func()
}

func (r *racingStore) Commit(ctx context.Context, prev int64, next experiments.State, t experiments.Transition) error {
	if t.Actor == experiments.ControllerActor && r.before != nil {
		f := r.before
		r.before = nil
		f()
	}
	return r.Lifecycle.Commit(ctx, prev, next, t)
}

func TestAPICommandWinsOverController(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newCtlFixture(t)
	race := &racingStore{Lifecycle: f.lcs}
	lc := rollout.NewLifecycle(race, f.cfg, rollout.WithClock(f.clock.Now))
	ctl := rollout.NewController(lc, f.stats, f.lcs, experiments.Controller{},
		rollout.WithClock(f.clock.Now), rollout.WithLogger(quiet))
	if _, err := lc.Start(ctx, "ctl", "api:t", ""); err != nil {
		t.Fatal(err)
	}
	f.feed(t, 20000)
	f.clock.Add(time.Hour)
	race.before = func() {
		if _, err := f.lc.Pause(ctx, "ctl", "api:ops", "incident"); err != nil {
			t.Error(err)
		}
	}
	ctl.Tick(ctx)
	s := f.state(t)
	h, _ := f.lc.History(ctx, "ctl", 0)
	if s.Status != experiments.StatusPaused || s.Step != 0 || len(h) != 2 || h[1].Actor != "api:ops" {
		t.Fatalf("state %+v, history %+v: the operator's pause must win", s, h)
	}
	rec, _ := f.lc.LatestDecision(ctx, "ctl")
	if rec.Action != experiments.ActionAdvance || rec.Applied {
		t.Errorf("recommendation %+v, want an unapplied advance", rec)
	}
	// Next tick: paused, so the controller leaves it alone.
	ctl.Tick(ctx)
	if s2 := f.state(t); s2.Version != s.Version {
		t.Errorf("controller acted on a paused experiment: %+v", s2)
	}
}

// TestAutoStartLosesToOperator: an operator who starts and stops a draft
// experiment between the controller's read and its commit wins; the
// controller's auto-start (fenced, on the draft's version 0) must not be
// retried onto the stopped experiment.
func TestAutoStartLosesToOperator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newCtlFixture(t)
	race := &racingStore{Lifecycle: f.lcs}
	lc := rollout.NewLifecycle(race, f.cfg, rollout.WithClock(f.clock.Now))
	ctl := rollout.NewController(lc, f.stats, f.lcs, experiments.Controller{}, rollout.WithAutoStart(true),
		rollout.WithClock(f.clock.Now), rollout.WithHolderID("t"), rollout.WithLogger(quiet))
	race.before = func() {
		if _, err := f.lc.Start(ctx, "ctl", "api:ops", ""); err != nil {
			t.Error(err)
		}
		if _, err := f.lc.Stop(ctx, "ctl", "api:ops", "not yet"); err != nil {
			t.Error(err)
		}
	}
	ctl.Tick(ctx)
	s := f.state(t)
	h, _ := f.lc.History(ctx, "ctl", 0)
	if s.Status != experiments.StatusStopped || len(h) != 2 {
		t.Fatalf("state %+v, history %+v: the operator's stop must stand", s, h)
	}
}

// TestControllerAutoStartPerExperiment: rollout.auto_start starts that
// experiment's draft without the process-wide option, and never restarts
// an experiment an operator stopped.
func TestControllerAutoStartPerExperiment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newCtlFixture(t)
	f.ctl.Tick(ctx)
	if s := f.state(t); s.Status != experiments.StatusDraft {
		t.Fatalf("started without auto_start: %+v", s)
	}
	f.e.Rollout.AutoStart = true
	f.lc.Update(&experiments.Config{Experiments: []experiments.Experiment{f.e}})
	f.ctl.Tick(ctx)
	s := f.state(t)
	if s.Status != experiments.StatusRunning || s.UpdatedBy != experiments.ControllerActor {
		t.Fatalf("auto_start: %+v", s)
	}
	if h, _ := f.lc.History(ctx, "ctl", 0); len(h) != 1 || !strings.Contains(h[0].Reason, "rollout.auto_start") {
		t.Errorf("history = %+v", h)
	}
	if _, err := f.lc.Stop(ctx, "ctl", "api:ann", "enough"); err != nil {
		t.Fatal(err)
	}
	f.ctl.Tick(ctx)
	if s := f.state(t); s.Status != experiments.StatusStopped {
		t.Errorf("auto_start restarted a stopped experiment: %+v", s)
	}
}

// TestControllerUpdate: a reload that disables the controller hands the
// lease over at once, and one that enables it again makes it lead.
func TestControllerUpdate(t *testing.T) {
	t.Parallel()
	lcs := memstore.NewLifecycle()
	cfg := &experiments.Config{Experiments: []experiments.Experiment{storetest.RolloutExperiment("upd", 1)}}
	lc := rollout.NewLifecycle(lcs, cfg)
	ctl := rollout.NewController(lc, memstore.New(), lcs, experiments.Controller{
		Interval: experiments.Duration(5 * time.Millisecond), LeaseTTL: experiments.Duration(60 * time.Millisecond)},
		rollout.WithHolderID("a"), rollout.WithLogger(quiet))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	eventually := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s", what)
			}
		}
	}
	eventually("leads", func() bool { return ctl.Fence() > 0 })
	ctl.Update(experiments.Controller{Disabled: true})
	eventually("gives the lease up when disabled", func() bool { return ctl.Fence() == 0 })
	// Another replica can take the lease at once, without waiting for it
	// to expire.
	fb, ok, err := lcs.Acquire(ctx, "b", time.Minute)
	if err != nil || !ok {
		t.Fatalf("the lease was not free after disabling: %v %v", ok, err)
	}
	time.Sleep(30 * time.Millisecond) // several intervals: a disabled controller must not try
	if ctl.Fence() != 0 {
		t.Fatal("led while disabled")
	}
	if err := lcs.Release(ctx, "b", fb); err != nil {
		t.Fatal(err)
	}
	ctl.Update(experiments.Controller{Interval: experiments.Duration(5 * time.Millisecond), LeaseTTL: experiments.Duration(60 * time.Millisecond)})
	eventually("leads again when enabled", func() bool { return ctl.Fence() > fb })
}
