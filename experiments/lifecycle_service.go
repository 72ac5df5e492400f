package experiments

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Notifier receives every committed transition with the state it
// produced. Notify must not block (Webhooks enqueues).
type Notifier interface {
	Notify(t Transition, s State)
}

// LifecycleOption configures a Lifecycle.
type LifecycleOption func(*Lifecycle)

// WithLifecycleClock replaces time.Now (transition times, step starts).
func WithLifecycleClock(now func() time.Time) LifecycleOption {
	return func(l *Lifecycle) { l.now = now }
}

// WithNotifier sends every transition this process commits to n (e.g.
// Webhooks). Only the process that committed a transition notifies, so a
// transition is delivered once however many replicas run.
func WithNotifier(n Notifier) LifecycleOption { return func(l *Lifecycle) { l.notify = n } }

// Lifecycle is the lifecycle service: the admin API's commands (start,
// pause, resume, set step, promote, roll back, stop) and the controller's
// all go through Do, which validates the action against the current
// status, commits it with compare-and-set and notifies. It is safe for
// concurrent use.
type Lifecycle struct {
	store  LifecycleStore
	now    func() time.Time
	notify Notifier
	exps   atomic.Pointer[map[string]*Experiment]
}

// NewLifecycle returns the service for cfg's experiments.
func NewLifecycle(store LifecycleStore, cfg *Config, opts ...LifecycleOption) *Lifecycle {
	l := &Lifecycle{store: store, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	l.Update(cfg)
	return l
}

// Update replaces the experiments (config reload).
func (l *Lifecycle) Update(cfg *Config) {
	m := make(map[string]*Experiment, len(cfg.Experiments))
	for i := range cfg.Experiments {
		e := cfg.Experiments[i]
		m[e.ID] = &e
	}
	l.exps.Store(&m)
}

// Experiment returns the configured experiment, or ErrNotFound.
func (l *Lifecycle) Experiment(id string) (*Experiment, error) {
	if e := (*l.exps.Load())[id]; e != nil {
		return e, nil
	}
	return nil, fmt.Errorf("experiment %q: %w", id, ErrNotFound)
}

// rolloutExperiments returns every configured experiment with a rollout.
func (l *Lifecycle) rolloutExperiments() []*Experiment {
	var out []*Experiment
	for _, e := range *l.exps.Load() {
		if e.Rollout != nil {
			out = append(out, e)
		}
	}
	return out
}

// State returns the experiment's state; Draft if none was stored.
func (l *Lifecycle) State(ctx context.Context, id string) (State, error) {
	e, err := l.Experiment(id)
	if err != nil {
		return State{}, err
	}
	return l.state(ctx, e)
}

func (l *Lifecycle) state(ctx context.Context, e *Experiment) (State, error) {
	s, err := l.store.State(ctx, e.ID)
	if errors.Is(err, ErrNotFound) {
		return Draft(e), nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read state of %q: %w", e.ID, err)
	}
	return s, nil
}

// Allocation is the allocation the experiment serves now.
func (l *Lifecycle) Allocation(ctx context.Context, id string) (*Allocation, error) {
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
func (l *Lifecycle) History(ctx context.Context, id string, limit int) ([]Transition, error) {
	return l.store.Transitions(ctx, id, limit)
}

// LatestDecision returns the controller's latest recommendation for the
// experiment, or ErrNotFound before its first evaluation.
func (l *Lifecycle) LatestDecision(ctx context.Context, id string) (Recommendation, error) {
	return l.store.Recommendation(ctx, id)
}

// Start starts (or restarts) the experiment's rollout at its first step.
func (l *Lifecycle) Start(ctx context.Context, id, actor, reason string) (Transition, error) {
	return l.Do(ctx, Command{Experiment: id, Action: ActionStart, Actor: actor, Reason: reason})
}

// Pause freezes the split; the controller leaves the experiment alone.
func (l *Lifecycle) Pause(ctx context.Context, id, actor, reason string) (Transition, error) {
	return l.Do(ctx, Command{Experiment: id, Action: ActionPause, Actor: actor, Reason: reason})
}

// Resume hands a paused experiment back to the controller.
func (l *Lifecycle) Resume(ctx context.Context, id, actor, reason string) (Transition, error) {
	return l.Do(ctx, Command{Experiment: id, Action: ActionResume, Actor: actor, Reason: reason})
}

// SetStep moves the experiment to ramp step step (0-based), starting a
// new data period.
func (l *Lifecycle) SetStep(ctx context.Context, id string, step int, actor, reason string) (Transition, error) {
	return l.Do(ctx, Command{Experiment: id, Action: ActionSetStep, Step: step, Actor: actor, Reason: reason})
}

// Promote serves candidate winner to everyone.
func (l *Lifecycle) Promote(ctx context.Context, id string, winner int, actor, reason string) (Transition, error) {
	return l.Do(ctx, Command{Experiment: id, Action: ActionPromote, Winner: winner, Actor: actor, Reason: reason})
}

// Rollback serves the base to everyone.
func (l *Lifecycle) Rollback(ctx context.Context, id, actor, reason string) (Transition, error) {
	return l.Do(ctx, Command{Experiment: id, Action: ActionRollback, Actor: actor, Reason: reason})
}

// Stop ends the experiment without a winner; the base serves everyone.
func (l *Lifecycle) Stop(ctx context.Context, id, actor, reason string) (Transition, error) {
	return l.Do(ctx, Command{Experiment: id, Action: ActionStop, Actor: actor, Reason: reason})
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
func (l *Lifecycle) Do(ctx context.Context, c Command) (Transition, error) {
	e, err := l.Experiment(c.Experiment)
	if err != nil {
		return Transition{}, err
	}
	if c.Actor == "" {
		return Transition{}, fmt.Errorf("%w: %s of %q without an actor", ErrInvalidTransition, c.Action, e.ID)
	}
	conditional := c.IfVersion != 0 || c.Conditional
	for attempt := 0; ; attempt++ {
		s, err := l.state(ctx, e)
		if err != nil {
			return Transition{}, err
		}
		if conditional && s.Version != c.IfVersion {
			return Transition{}, fmt.Errorf("%s %q: state is at version %d, not %d: %w", c.Action, e.ID, s.Version, c.IfVersion, ErrConflict)
		}
		next, t, err := Next(e, s, c, l.now().UTC())
		if err != nil {
			return Transition{}, err
		}
		err = l.store.Commit(ctx, s.Version, next, t)
		if err == nil {
			if l.notify != nil {
				l.notify.Notify(t, next)
			}
			return t, nil
		}
		if !errors.Is(err, ErrConflict) || conditional || attempt >= maxCASRetries {
			return Transition{}, fmt.Errorf("%s %q: %w", c.Action, e.ID, err)
		}
	}
}
