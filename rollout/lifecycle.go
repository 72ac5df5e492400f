package rollout

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/abgate/abgate/experiments"
)

// Notifier receives every committed transition with the state it
// produced. Notify must not block (webhook.Sender enqueues).
type Notifier interface {
	Notify(t experiments.Transition, s experiments.State)
}

// Lifecycle is the lifecycle service: the admin API's commands (start,
// pause, resume, set step, promote, roll back, stop) and the controller's
// all go through Do, which validates the action against the current
// status, commits it with compare-and-set and notifies. It is safe for
// concurrent use.
type Lifecycle struct {
	store  experiments.LifecycleStore
	now    func() time.Time
	notify Notifier
	exps   atomic.Pointer[map[string]*experiments.Experiment]
}

// NewLifecycle returns the service for cfg's experiments.
func NewLifecycle(store experiments.LifecycleStore, cfg *experiments.Config, opts ...Option) *Lifecycle {
	o := newOptions(opts)
	l := &Lifecycle{store: store, now: o.now, notify: o.notify}
	l.Update(cfg)
	return l
}

// Update replaces the experiments (config reload).
func (l *Lifecycle) Update(cfg *experiments.Config) {
	m := make(map[string]*experiments.Experiment, len(cfg.Experiments))
	for i := range cfg.Experiments {
		e := cfg.Experiments[i]
		m[e.ID] = &e
	}
	l.exps.Store(&m)
}

// Experiment returns the configured experiment, or ErrNotFound.
func (l *Lifecycle) Experiment(id string) (*experiments.Experiment, error) {
	if e := (*l.exps.Load())[id]; e != nil {
		return e, nil
	}
	return nil, fmt.Errorf("experiment %q: %w", id, experiments.ErrNotFound)
}

// rolloutExperiments returns every configured experiment with a rollout.
func (l *Lifecycle) rolloutExperiments() []*experiments.Experiment {
	var out []*experiments.Experiment
	for _, e := range *l.exps.Load() {
		if e.Rollout != nil {
			out = append(out, e)
		}
	}
	return out
}

// State returns the experiment's state; Draft if none was stored.
func (l *Lifecycle) State(ctx context.Context, id string) (experiments.State, error) {
	e, err := l.Experiment(id)
	if err != nil {
		return experiments.State{}, err
	}
	return l.state(ctx, e)
}

func (l *Lifecycle) state(ctx context.Context, e *experiments.Experiment) (experiments.State, error) {
	s, err := l.store.State(ctx, e.ID)
	if errors.Is(err, experiments.ErrNotFound) {
		return experiments.Draft(e), nil
	}
	if err != nil {
		return experiments.State{}, fmt.Errorf("read state of %q: %w", e.ID, err)
	}
	return s, nil
}

// Allocation is the allocation the experiment serves now.
func (l *Lifecycle) Allocation(ctx context.Context, id string) (*experiments.Allocation, error) {
	e, err := l.Experiment(id)
	if err != nil {
		return nil, err
	}
	s, err := l.state(ctx, e)
	if err != nil {
		return nil, err
	}
	return e.AllocationFor(s), nil
}

// History returns the last limit transitions (all if limit <= 0), oldest first.
func (l *Lifecycle) History(ctx context.Context, id string, limit int) ([]experiments.Transition, error) {
	return l.store.Transitions(ctx, id, limit)
}

// LatestDecision returns the controller's latest recommendation for the
// experiment, or ErrNotFound before its first evaluation.
func (l *Lifecycle) LatestDecision(ctx context.Context, id string) (experiments.Recommendation, error) {
	return l.store.Recommendation(ctx, id)
}

// Start starts (or restarts) the experiment's rollout at its first step.
func (l *Lifecycle) Start(ctx context.Context, id, actor, reason string) (experiments.Transition, error) {
	return l.Do(ctx, experiments.Command{Experiment: id, Action: experiments.ActionStart, Actor: actor, Reason: reason})
}

// Pause freezes the split; the controller leaves the experiment alone.
func (l *Lifecycle) Pause(ctx context.Context, id, actor, reason string) (experiments.Transition, error) {
	return l.Do(ctx, experiments.Command{Experiment: id, Action: experiments.ActionPause, Actor: actor, Reason: reason})
}

// Resume hands a paused experiment back to the controller.
func (l *Lifecycle) Resume(ctx context.Context, id, actor, reason string) (experiments.Transition, error) {
	return l.Do(ctx, experiments.Command{Experiment: id, Action: experiments.ActionResume, Actor: actor, Reason: reason})
}

// SetStep moves the experiment to ramp step step (0-based), starting a
// new data period.
func (l *Lifecycle) SetStep(ctx context.Context, id string, step int, actor, reason string) (experiments.Transition, error) {
	return l.Do(ctx, experiments.Command{Experiment: id, Action: experiments.ActionSetStep, Step: step, Actor: actor, Reason: reason})
}

// ShadowPass ends the shadow stage as if the judge gate had passed: ramp
// step 1 begins on a new data period. It is the person's decision the
// shadow rule leaves open (an inconclusive gate, max_duration reached);
// ErrInvalidTransition when the experiment is not in shadow.
func (l *Lifecycle) ShadowPass(ctx context.Context, id, actor, reason string) (experiments.Transition, error) {
	return l.Do(ctx, experiments.Command{Experiment: id, Action: experiments.ActionShadowPass, Actor: actor, Reason: reason})
}

// Promote serves candidate winner to everyone.
func (l *Lifecycle) Promote(ctx context.Context, id string, winner int, actor, reason string) (experiments.Transition, error) {
	return l.Do(ctx, experiments.Command{Experiment: id, Action: experiments.ActionPromote, Winner: winner, Actor: actor, Reason: reason})
}

// Rollback serves the base to everyone.
func (l *Lifecycle) Rollback(ctx context.Context, id, actor, reason string) (experiments.Transition, error) {
	return l.Do(ctx, experiments.Command{Experiment: id, Action: experiments.ActionRollback, Actor: actor, Reason: reason})
}

// Stop ends the experiment without a winner; the base serves everyone.
func (l *Lifecycle) Stop(ctx context.Context, id, actor, reason string) (experiments.Transition, error) {
	return l.Do(ctx, experiments.Command{Experiment: id, Action: experiments.ActionStop, Actor: actor, Reason: reason})
}

// ErrNoRestorer: the lifecycle store can't put back lost states.
var ErrNoRestorer = errors.New("lifecycle store cannot restore states")

// Restore puts back a state the store lost (docs/rollout.md, "Store
// loss"): last, as a replica knew it, with a new version and an
// ActionRestore transition "restored after store loss", fenced by the
// caller's lease (fence) and raising the store's fence counter above
// every fence that wrote it. It fails with ErrConflict when a state is
// stored again (someone restored or started it first).
func (l *Lifecycle) Restore(ctx context.Context, last experiments.State, fence int64, actor string) (experiments.Transition, error) {
	e, err := l.Experiment(last.Experiment)
	if err != nil {
		return experiments.Transition{}, err
	}
	r, ok := l.store.(experiments.StateRestorer)
	if !ok {
		return experiments.Transition{}, ErrNoRestorer
	}
	now := l.now().UTC()
	next := last
	next.Version = last.Version + 1
	next.UpdatedAt, next.UpdatedBy = now, actor
	next.Fence = max(last.Fence, fence)
	t := experiments.Transition{
		Seq: next.Version, Experiment: e.ID, At: now, Actor: actor, Action: experiments.ActionRestore,
		From: last.Status, To: next.Status, FromStep: last.Step, ToStep: next.Step, Period: next.Period,
		Reason: experiments.ReasonStoreLoss, Codes: []string{"store_loss"}, Fence: fence,
	}
	if last.Status == experiments.StatusPromoted {
		w := last.Winner
		t.Winner = &w
	}
	if err := r.Restore(ctx, next, t); err != nil {
		return experiments.Transition{}, fmt.Errorf("restore %q: %w", e.ID, err)
	}
	if l.notify != nil {
		l.notify.Notify(t, next)
	}
	return t, nil
}

// maxCASRetries bounds how often an unconditional command re-reads the
// state after losing a compare-and-set race.
const maxCASRetries = 8

// Do applies c: it reads the state, checks the action (Next), commits with
// compare-and-set and notifies. A command without IfVersion (or
// Conditional) is retried on ErrConflict against the fresh state
// (re-checked, so a command that became invalid fails with
// ErrInvalidTransition); with it, it fails with ErrConflict if the state
// moved on.
func (l *Lifecycle) Do(ctx context.Context, c experiments.Command) (experiments.Transition, error) {
	e, err := l.Experiment(c.Experiment)
	if err != nil {
		return experiments.Transition{}, err
	}
	if c.Actor == "" {
		return experiments.Transition{}, fmt.Errorf("%w: %s of %q without an actor", experiments.ErrInvalidTransition, c.Action, e.ID)
	}
	conditional := c.IfVersion != 0 || c.Conditional
	for attempt := 0; ; attempt++ {
		s, err := l.state(ctx, e)
		if err != nil {
			return experiments.Transition{}, err
		}
		if conditional && s.Version != c.IfVersion {
			return experiments.Transition{}, fmt.Errorf("%s %q: state is at version %d, not %d: %w", c.Action, e.ID, s.Version, c.IfVersion, experiments.ErrConflict)
		}
		next, t, err := experiments.Next(e, s, c, l.now().UTC())
		if err != nil {
			return experiments.Transition{}, err
		}
		err = l.store.Commit(ctx, s.Version, next, t)
		if err == nil {
			if l.notify != nil {
				l.notify.Notify(t, next)
			}
			return t, nil
		}
		if !errors.Is(err, experiments.ErrConflict) || conditional || attempt >= maxCASRetries {
			return experiments.Transition{}, fmt.Errorf("%s %q: %w", c.Action, e.ID, err)
		}
	}
}
