package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// SummaryReader is what the controller reads statistics from (Store
// implements it).
type SummaryReader interface {
	Summaries(ctx context.Context, experiment string, phase int) (experiments.Snapshot, error)
}

// Controller is the rollout controller. Every serve replica runs one; the
// one holding the lease is the leader and, every Interval, evaluates
// each running experiment that has a rollout: it reads the current
// period's statistics, asks stats.Decide, and advances, promotes, rolls
// back or stops the experiment through the Lifecycle service (fenced by
// its lease, conditional on the state version it evaluated, so an API
// command in between always wins). docs/rollout.md describes the
// algorithm.
type Controller struct {
	lc        *Lifecycle
	stats     SummaryReader
	lease     experiments.Leaser
	now       func() time.Time
	holder    string
	autoStart bool
	log       *slog.Logger
	changed   chan struct{} // Update wakes Run to apply new settings
	floor     func() int64

	mu       sync.Mutex
	fence    int64 // 0: not the leader
	highest  int64 // the largest fence this controller ever held
	interval time.Duration
	ttl      time.Duration
	disabled bool
}

// NewController returns a controller for lc's experiments. cfg's zero
// fields take the defaults (Interval 10s, LeaseTTL 15s).
func NewController(lc *Lifecycle, st SummaryReader, lease experiments.Leaser, cfg experiments.Controller, opts ...Option) *Controller {
	o := newOptions(opts)
	c := &Controller{
		lc: lc, stats: st, lease: lease, now: o.now, log: o.log, holder: o.holder, autoStart: o.autoStart,
		changed: make(chan struct{}, 1), floor: o.fenceFloor,
	}
	c.set(cfg)
	if c.holder == "" {
		host, _ := os.Hostname()
		var b [6]byte
		_, _ = rand.Read(b[:])
		c.holder = host + "-" + hex.EncodeToString(b[:])
	}
	return c
}

// set takes cfg's settings; zero fields take the defaults. Callers hold
// c.mu or own c.
func (c *Controller) set(cfg experiments.Controller) {
	c.interval, c.ttl, c.disabled = time.Duration(cfg.Interval), time.Duration(cfg.LeaseTTL), cfg.Disabled
	if c.interval <= 0 {
		c.interval = experiments.DefaultControllerInterval
	}
	if c.ttl <= 0 {
		c.ttl = experiments.DefaultLeaseTTL
	}
}

// Update applies a reloaded config's controller section: Run resets its
// timers to the new interval and lease TTL, and a controller that is now
// disabled gives its lease up so another replica leads.
func (c *Controller) Update(cfg experiments.Controller) {
	c.mu.Lock()
	c.set(cfg)
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// settings returns the current interval, lease TTL and disabled switch.
func (c *Controller) settings() (interval, ttl time.Duration, disabled bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.interval, c.ttl, c.disabled
}

// Holder is this controller's lease holder id.
func (c *Controller) Holder() string { return c.holder }

// Fence is the fence of the lease this controller holds, 0 if it is not
// the leader (as of its last renewal).
func (c *Controller) Fence() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fence
}

// Run keeps the lease (renewing every LeaseTTL/3) and, while leader,
// evaluates every Interval, until ctx ends. It does not release the lease
// on return: call Release for a graceful hand-over (a crashed leader's
// lease simply expires).
func (c *Controller) Run(ctx context.Context) {
	interval, ttl, disabled := c.settings()
	leaseT := time.NewTicker(max(ttl/3, 10*time.Millisecond))
	defer leaseT.Stop()
	evalT := time.NewTicker(interval)
	defer evalT.Stop()
	if !disabled {
		c.keepLease(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.changed:
			interval, ttl, disabled = c.settings()
			leaseT.Reset(max(ttl/3, 10*time.Millisecond))
			evalT.Reset(interval)
			if disabled {
				// Hand the lead over now rather than after the lease TTL.
				if err := c.Release(ctx); err != nil && ctx.Err() == nil {
					c.log.Warn("rollout controller: release lease on disable", "holder", c.holder, "err", err)
				}
			}
		case <-leaseT.C:
			if !disabled {
				c.keepLease(ctx)
			}
		case <-evalT.C:
			if f := c.Fence(); f > 0 && !disabled {
				c.evaluateAll(ctx, f)
			}
		}
	}
}

// Tick renews or acquires the lease and, if leader, evaluates every
// experiment once. Run calls the same steps on its timers; tests in
// simulated time call Tick directly.
func (c *Controller) Tick(ctx context.Context) {
	if _, _, disabled := c.settings(); disabled {
		return
	}
	if f := c.keepLease(ctx); f > 0 {
		c.evaluateAll(ctx, f)
	}
}

// Release gives the lease up (graceful shutdown), so another replica
// takes over at once instead of after LeaseTTL.
func (c *Controller) Release(ctx context.Context) error {
	c.mu.Lock()
	f := c.fence
	c.fence = 0
	c.mu.Unlock()
	if f == 0 {
		return nil
	}
	return c.lease.Release(ctx, c.holder, f)
}

func (c *Controller) keepLease(ctx context.Context) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fence > 0 {
		ok, err := c.lease.Renew(ctx, c.holder, c.fence, c.ttl)
		if err == nil && ok {
			return c.fence
		}
		if err != nil {
			c.log.Warn("rollout controller: renew lease", "holder", c.holder, "err", err)
		} else {
			c.log.Info("rollout controller: lost the lease", "holder", c.holder, "fence", c.fence)
		}
		c.fence = 0
	}
	c.seedFence(ctx)
	f, ok, err := c.lease.Acquire(ctx, c.holder, c.ttl)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("rollout controller: acquire lease", "holder", c.holder, "err", err)
		}
		return 0
	}
	if ok {
		c.log.Info("rollout controller: leading", "holder", c.holder, "fence", f)
		c.fence = f
		c.highest = max(c.highest, f)
	}
	return c.fence
}

// seedFence raises the store's fence counter to the highest fence this
// replica has seen, when the lease store can (experiments.StateRestorer).
// Call with c.mu held.
func (c *Controller) seedFence(ctx context.Context) {
	r, ok := c.lease.(experiments.StateRestorer)
	if !ok {
		return
	}
	f := c.highest
	if c.floor != nil {
		f = max(f, c.floor())
	}
	if f > 0 {
		if err := r.SeedFence(ctx, f); err != nil && ctx.Err() == nil {
			c.log.Warn("rollout controller: seed fence counter", "floor", f, "err", err)
		}
	}
}

func (c *Controller) evaluateAll(ctx context.Context, fence int64) {
	exps := c.lc.rolloutExperiments()
	slices.SortFunc(exps, func(a, b *experiments.Experiment) int { return strings.Compare(a.ID, b.ID) })
	for _, e := range exps {
		if ctx.Err() != nil {
			return
		}
		if err := c.Evaluate(ctx, e.ID, fence); err != nil && ctx.Err() == nil {
			c.log.Warn("rollout controller: evaluate", "experiment", e.ID, "err", err)
		}
	}
}

// Evaluate evaluates one experiment once with the given lease fence and
// applies the verdict (unless the rollout is Manual). It returns the
// error of reading statistics or committing; losing a race to an API
// command (ErrConflict) is not an error.
func (c *Controller) Evaluate(ctx context.Context, id string, fence int64) (err error) {
	defer func() {
		if r := recover(); r != nil { // a bad policy must not kill the controller
			err = fmt.Errorf("evaluate %q: panic: %v", id, r)
		}
	}()
	e, err := c.lc.Experiment(id)
	if err != nil || e.Rollout == nil {
		return err
	}
	s, err := c.lc.state(ctx, e)
	if err != nil {
		return err
	}
	now := c.now().UTC()
	// Conditional: even an auto-start acts only on the draft it read
	// (version 0), never on a state an operator wrote meanwhile.
	cmd := experiments.Command{Experiment: id, Actor: experiments.ControllerActor, Fence: fence, IfVersion: s.Version, Conditional: true}
	switch {
	case s.Status == experiments.StatusDraft && (c.autoStart || e.Rollout.AutoStart):
		cmd.Action, cmd.Reason = experiments.ActionStart, "auto-start: the experiment has a rollout"
		if !c.autoStart {
			cmd.Reason = "auto-start: rollout.auto_start is set"
		}
		_, err = c.apply(ctx, cmd)
		return err
	case (s.Status == experiments.StatusRunning || s.Status == experiments.StatusPaused) && e.PhaseOrOne() > s.SaltPhase:
		cmd.Action = experiments.ActionReshuffle
		cmd.Reason = fmt.Sprintf("config phase raised to %d: reshuffle with a new salt and data period", e.PhaseOrOne())
		_, err = c.apply(ctx, cmd)
		return err
	case s.Status == experiments.StatusShadow:
		return c.evaluateShadow(ctx, e, s, cmd, now)
	case s.Status != experiments.StatusRunning:
		return nil
	}

	steps := experiments.RolloutSteps(e)
	step := e.StepIndex(s.Step)
	// The step's test-th test runs at its share of α (restarts), the
	// bounded tests are centred by the period the controller closed last,
	// and with carry_over the guardrails start from the earlier periods'
	// evidence: all from the history (experiments.PriorOf), as reports do.
	hist, err := c.lc.History(ctx, id, 0)
	if err != nil {
		return fmt.Errorf("read history of %q: %w", id, err)
	}
	pol := e.PolicyAt(step, s.TestIndex(), experiments.PriorOf(hist))
	snap, err := c.stats.Summaries(ctx, id, s.Period)
	if err != nil {
		return fmt.Errorf("read statistics of %q period %d: %w", id, s.Period, err)
	}
	in := experiments.RolloutInput(e, snap, e.AllocationFor(s), pol)
	d := stats.Decide(in, pol)

	rec := experiments.Recommendation{Experiment: id, At: now, Step: step, Period: s.Period, Decision: &d, Fence: fence}
	rec.Action, rec.Note = plan(steps[step], s, d, in, now)
	if rec.Action == "" && rec.Note == "" {
		rec.Note = reasonMessages(d)
	}
	// RolloutInput analysed the experiment's cohort (rollout.cohort);
	// when "new" had to fall back to every active user, say so with the
	// recommendation rather than deciding on another population silently.
	if coh, _ := experiments.AnalysisCohort(e, snap); coh.Unavailable {
		rec.Note = strings.TrimSpace(cohortFallbackNote + " " + rec.Note)
	}
	if rec.Action != "" && !e.Rollout.Manual {
		cmd.Action = rec.Action
		if d.Winner != nil {
			cmd.Winner = *d.Winner
		}
		cmd.Reason = reasonText(steps, step, d)
		cmd.Codes = reasonCodes(d)
		cmd.Decision = &d
		if rec.Action == experiments.ActionAdvance {
			// The closed period's centres (and CUPED θ) for the next one.
			cmd.Prior = experiments.PeriodPrior(e, snap)
		}
		rec.Applied, err = c.apply(ctx, cmd)
	} else if rec.Action != "" {
		rec.Note = strings.TrimSpace("manual rollout: recommendation only. " + rec.Note)
	}
	if perr := c.lc.store.PutRecommendation(ctx, rec); perr != nil && err == nil {
		err = fmt.Errorf("store recommendation of %q: %w", id, perr)
	}
	return err
}

// cohortFallbackNote marks a decision that cohort "new" could not make on
// the newly exposed users: the store kept no first-exposure sums for the
// period (data recorded before the setting, or by an older recorder).
const cohortFallbackNote = "cohort new: the store has no first-exposure sums for this period, so it is analysed on every active user."

// apply commits cmd; applied is false when an API command (or another
// writer) changed the state first, which is not an error: the next tick
// evaluates the new state.
func (c *Controller) apply(ctx context.Context, cmd experiments.Command) (applied bool, err error) {
	t, err := c.lc.Do(ctx, cmd)
	switch {
	case err == nil:
		c.log.Info("rollout controller: transition", "experiment", cmd.Experiment, "action", t.Action,
			"from", t.From, "to", t.To, "step", t.ToStep, "period", t.Period, "reason", t.Reason)
		return true, nil
	case errors.Is(err, experiments.ErrConflict):
		c.log.Info("rollout controller: state changed meanwhile; re-evaluating next tick", "experiment", cmd.Experiment, "action", cmd.Action)
		return false, nil
	}
	return false, err
}

// plan turns a decision into the controller's action at step st (or ""
// to wait) with a note explaining a wait.
func plan(st experiments.RampStep, s experiments.State, d stats.Decision, in stats.Input, now time.Time) (experiments.Action, string) {
	gate := func() string {
		if el := now.Sub(s.StepStarted); el < time.Duration(st.MinDuration) {
			return fmt.Sprintf("step min_duration %s not reached (%s elapsed)", time.Duration(st.MinDuration), el.Truncate(time.Second))
		}
		if st.MinUsers > 0 {
			least := slices.Min(in.Users)
			if least < float64(st.MinUsers) {
				return fmt.Sprintf("step min_users %d not reached (smallest variant has %.0f)", st.MinUsers, least)
			}
		}
		return ""
	}
	switch d.Verdict {
	case stats.HaltSRM:
		return experiments.ActionHaltSRM, ""
	case stats.Rollback:
		return experiments.ActionRollback, ""
	case stats.StopFutility:
		return experiments.ActionFutility, ""
	case stats.Advance:
		if w := gate(); w != "" {
			return "", "advance pending: " + w
		}
		return experiments.ActionAdvance, ""
	case stats.Promote:
		if d.Winner == nil {
			return "", "promote without a winner"
		}
		if w := gate(); w != "" {
			return "", "promote pending: " + w
		}
		return experiments.ActionPromote, ""
	}
	return "", ""
}

func reasonText(steps []experiments.RampStep, step int, d stats.Decision) string {
	return fmt.Sprintf("controller verdict %s at step %d of %d (%g%% per candidate): %s",
		d.Verdict, step+1, len(steps), steps[step].Percent, reasonMessages(d))
}

// reasonMessages joins the decision's reasons, each said once: a message
// that another one extends ("… better on thumbs" and "… better on thumbs
// and non-inferior on all guardrails") gives way to the longer one.
func reasonMessages(d stats.Decision) string {
	var msgs []string
	for _, r := range d.Reasons {
		m := r.Message
		if r.Metric != "" && !strings.Contains(m, r.Metric) {
			m = r.Metric + ": " + m
		}
		if r.Variant != nil && !strings.Contains(m, "variant") {
			m = fmt.Sprintf("variant %d %s", *r.Variant, m)
		}
		if slices.ContainsFunc(msgs, func(o string) bool { return strings.HasPrefix(o, m) }) {
			continue
		}
		msgs = slices.DeleteFunc(msgs, func(o string) bool { return strings.HasPrefix(m, o) })
		msgs = append(msgs, m)
	}
	return strings.Join(msgs, "; ")
}

func reasonCodes(d stats.Decision) []string {
	var out []string
	for _, r := range d.Reasons {
		if !slices.Contains(out, string(r.Code)) {
			out = append(out, string(r.Code))
		}
	}
	return out
}
