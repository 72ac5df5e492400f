package experiments

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/abgate/abgate/stats"
)

// Lifecycle errors.
var (
	// ErrInvalidTransition: the action is not allowed from the
	// experiment's current status (e.g. resuming a promoted experiment).
	// The wrapped message names the action, the status and what is
	// allowed.
	ErrInvalidTransition = errors.New("invalid transition")
	// ErrConflict: the state changed since it was read (compare-and-set
	// on State.Version failed). Nothing was written.
	ErrConflict = errors.New("lifecycle state changed concurrently")
	// ErrFenced: the writer's lease fence is no longer the current one (a
	// leader that lost its lease tried to write). Nothing was written.
	ErrFenced = errors.New("lease lost: write fenced off")
)

// Status is where an experiment is in its lifecycle (docs/rollout.md).
type Status string

const (
	// StatusDraft: never started; the base serves everyone.
	StatusDraft Status = "draft"
	// StatusRunning: the candidates get the current ramp step's share and
	// the controller evaluates the experiment every interval.
	StatusRunning Status = "running"
	// StatusPaused: the split stays as it is; the controller does not act.
	StatusPaused Status = "paused"
	// StatusPromoted: the winning candidate (State.Winner) serves everyone.
	StatusPromoted Status = "promoted"
	// StatusRolledBack: the base serves everyone after the candidate was
	// found harmful or worse (or an operator rolled it back).
	StatusRolledBack Status = "rolled_back"
	// StatusStopped: ended without a winner (futility, a broken split or an
	// operator); the base serves everyone.
	StatusStopped Status = "stopped"
	// StatusShadow: the stage before ramp step 1 of an experiment with a
	// shadow block: the base serves everyone while a sample of its
	// requests is replayed to the candidates and judged (see Shadow).
	StatusShadow Status = "shadow"
)

// Action is what a Transition did.
type Action string

const (
	ActionStart     Action = "start"     // draft/stopped/rolled_back -> running at step 0 (shadow first with a shadow block)
	ActionAdvance   Action = "advance"   // running -> running at the next step (controller)
	ActionPause     Action = "pause"     // running -> paused
	ActionResume    Action = "resume"    // paused -> running
	ActionSetStep   Action = "set_step"  // running/paused -> same status at another step
	ActionPromote   Action = "promote"   // running/paused -> promoted
	ActionRollback  Action = "rollback"  // running/paused/promoted -> rolled_back
	ActionStop      Action = "stop"      // running/paused -> stopped
	ActionHaltSRM   Action = "halt_srm"  // running -> stopped: the split is broken (controller)
	ActionFutility  Action = "futility"  // running -> stopped: max users without a conclusion (controller)
	ActionReshuffle Action = "reshuffle" // running/paused -> same status, new salt phase (config phase raised)
	// ActionShadowPass: shadow -> running at step 0 (the judge gate
	// passed, or an operator skipped the rest of the stage).
	ActionShadowPass Action = "shadow_pass"
	// ActionRestore puts back a state the store lost (a Redis restarted
	// without persistence): same status, step and period, a new version.
	// Only StateRestorer.Restore writes it, never Next.
	ActionRestore Action = "restore"
)

// ReasonStoreLoss is the Reason of an ActionRestore transition.
const ReasonStoreLoss = "restored after store loss"

// ControllerActor is the Actor of transitions the rollout controller makes;
// API commands use "api:<name>".
const ControllerActor = "controller"

// State is an experiment's live lifecycle state. The stores keep it
// under compare-and-set on Version.
type State struct {
	Experiment string `json:"experiment"`
	Status     Status `json:"status"`
	// Step indexes the rollout's steps (see RolloutSteps); meaningful
	// while running or paused.
	Step        int       `json:"step"`
	StepStarted time.Time `json:"step_started"`
	// SaltPhase is the phase the variant salt is built from (PhaseSalt):
	// it changes only on a reshuffle, so ramps stay monotone.
	SaltPhase int `json:"salt_phase"`
	// Period is the data period outcomes are recorded under
	// (Allocation.Period): every step change starts a new one, so data of
	// different splits is never pooled.
	Period int `json:"period"`
	// Winner is the variant served to everyone when promoted.
	Winner int `json:"winner,omitempty"`
	// Version increases by one with every transition; 0 means never
	// written (the implicit draft).
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
	// Fence is the highest lease fence that wrote this state or one
	// before it (0: none). Replicas remember it, so after a store loss
	// the fence counter is seeded above every fence already issued
	// (see StateRestorer).
	Fence int64 `json:"fence,omitempty"`
	// StepTests counts the fresh tests opened since the rollout last
	// advanced into its current step: an advance opens test 1 of the new
	// step, and a restart (start from stopped or rolled back), a set_step
	// and a reshuffle each open the next one on a new period. Test i runs
	// at stats.RestartAlpha(α, i), so all of them together spend at most
	// α (Experiment.TestAlpha, docs/rollout.md "α spent"). 0 (a state
	// written before it existed) reads as test 1 (TestIndex).
	StepTests int `json:"step_tests,omitempty"`
}

// TestIndex is the index (1, 2, …) of the step's current test: StepTests,
// at least 1.
func (s State) TestIndex() int { return max(s.StepTests, 1) }

// Transition is one entry of an experiment's audit trail.
type Transition struct {
	// Seq is the State.Version the transition produced (1, 2, ...).
	Seq        int64     `json:"seq"`
	Experiment string    `json:"experiment"`
	At         time.Time `json:"at"`
	// Actor is ControllerActor or "api:<name>".
	Actor    string `json:"actor"`
	Action   Action `json:"action"`
	From     Status `json:"from"`
	To       Status `json:"to"`
	FromStep int    `json:"from_step"`
	ToStep   int    `json:"to_step"`
	// Period is the data period after the transition.
	Period int `json:"period"`
	// Winner is set by promote.
	Winner *int `json:"winner,omitempty"`
	// Reason says why in plain words; Codes are the machine-readable
	// reasons (stats reason codes for controller decisions).
	Reason string   `json:"reason"`
	Codes  []string `json:"codes,omitempty"`
	// Decision is the statistics snapshot behind a controller transition.
	Decision *stats.Decision `json:"decision,omitempty"`
	// Prior is what the period this transition closed fixes for the
	// next one's bounded tests (PeriodPrior; set by the controller on
	// advance, read back by PriorOf).
	Prior map[string]MetricPrior `json:"prior,omitempty"`
	// Fence is the lease fence of the controller that wrote it (0 for
	// API commands, which are not fenced).
	Fence int64 `json:"fence,omitempty"`
	// Judge holds the shadow judge gate's decisions behind a controller
	// transition out of shadow, one per candidate (variant i+1).
	Judge []stats.JudgeDecision `json:"judge,omitempty"`
	// Test is the index of the step's test open after the transition
	// (State.StepTests) and Alpha the level it runs at
	// (Experiment.TestAlpha); a controller decision's own level is in
	// Decision's metric results. Both are 0 for an experiment without a
	// rollout.
	Test  int     `json:"test,omitempty"`
	Alpha float64 `json:"alpha,omitempty"`
}

// Recommendation is the controller's latest evaluation of an experiment,
// kept whether or not it led to a transition (reports show it; with
// Rollout.Manual it is all the controller does).
type Recommendation struct {
	Experiment string    `json:"experiment"`
	At         time.Time `json:"at"`
	Step       int       `json:"step"`
	Period     int       `json:"period"`
	// Action is what the controller does (or, with Manual, would do);
	// empty when the decision is to wait.
	Action  Action `json:"action,omitempty"`
	Applied bool   `json:"applied"`
	// Note explains a wait (e.g. "step min_duration not reached").
	Note     string          `json:"note,omitempty"`
	Decision *stats.Decision `json:"decision"`
	// Judge holds the shadow judge gate's decisions while in shadow, one
	// per candidate (Decision is then nil).
	Judge []stats.JudgeDecision `json:"judge,omitempty"`
	// Fence is the lease fence of the controller that evaluated (0: not
	// fenced). PutRecommendation refuses it with ErrFenced once it is no
	// longer the current lease's, so a leader that lost its lease can't
	// overwrite the new leader's recommendation. Not stored.
	Fence int64 `json:"-"`
}

// LifecycleStore keeps lifecycle states, their transition history and the
// controller's latest recommendations. memstore.Lifecycle and
// redisstore.Lifecycle implement it; storetest.RunLifecycle is their
// shared conformance suite.
type LifecycleStore interface {
	// State returns the stored state, or ErrNotFound if none was written.
	State(ctx context.Context, experiment string) (State, error)
	// Commit stores next and appends t to the history atomically, if the
	// stored version is still prev (0: nothing stored) and, when t.Fence
	// is not 0, t.Fence is still the current lease's fence. next.Version
	// must be prev+1 and t.Seq next.Version. It returns ErrConflict or
	// ErrFenced without writing anything otherwise, and announces the
	// change to ChangeFeed subscribers.
	Commit(ctx context.Context, prev int64, next State, t Transition) error
	// Transitions returns the last limit transitions (all when limit <=
	// 0), oldest first.
	Transitions(ctx context.Context, experiment string, limit int) ([]Transition, error)
	// PutRecommendation replaces the experiment's latest recommendation
	// if r.Fence is 0 or still the current lease's fence; it returns
	// ErrFenced without writing otherwise.
	PutRecommendation(ctx context.Context, r Recommendation) error
	// Recommendation returns the latest one, or ErrNotFound.
	Recommendation(ctx context.Context, experiment string) (Recommendation, error)
}

// StateRestorer puts back lifecycle states a store lost (docs/rollout.md,
// "Store loss"). memstore.Lifecycle and redisstore.Lifecycle implement
// it.
type StateRestorer interface {
	// Restore stores next and appends t (ActionRestore, t.Seq =
	// next.Version) only if no state is stored for the experiment
	// (ErrConflict otherwise) and, when t.Fence is not 0, t.Fence is the
	// current lease's (ErrFenced otherwise). It also raises the fence
	// counter to at least next.Fence, so no later lease gets a fence at
	// or below one that wrote the state.
	Restore(ctx context.Context, next State, t Transition) error
	// SeedFence raises the fence counter to at least floor (no-op when
	// it is higher): the next lease gets a larger fence.
	SeedFence(ctx context.Context, floor int64) error
}

// Leaser is the controller's leader lease with a fencing token. One
// holder at a time; each acquisition gets a larger fence, and
// LifecycleStore.Commit refuses a fenced write whose fence is not the
// current lease's.
type Leaser interface {
	// Acquire takes the lease for holder when it is free (or already
	// holder's, which extends it) and returns its fence; ok is false when
	// someone else holds it.
	Acquire(ctx context.Context, holder string, ttl time.Duration) (fence int64, ok bool, err error)
	// Renew extends the lease if holder still holds it with fence.
	Renew(ctx context.Context, holder string, fence int64, ttl time.Duration) (bool, error)
	// Release gives the lease up if holder still holds it with fence.
	Release(ctx context.Context, holder string, fence int64) error
}

// ChangeFeed announces committed lifecycle changes (the experiment id)
// to every replica. Delivery is best effort: watchers poll as well.
type ChangeFeed interface {
	// Subscribe delivers experiment ids until ctx ends; the channel is
	// then closed.
	Subscribe(ctx context.Context) (<-chan string, error)
}

// Draft is the implicit state of an experiment nothing was ever stored for.
func Draft(e *Experiment) State {
	return State{Experiment: e.ID, Status: StatusDraft, SaltPhase: e.PhaseOrOne(), Period: e.PhaseOrOne()}
}

// AllocationFor is the allocation an experiment serves in state s:
//
//   - running, paused: every candidate's share is the current step's
//     percent (capped at MaxShare);
//   - promoted: Serve = s.Winner;
//   - shadow: Serve = 0 (the base) and Shadow set;
//   - draft, rolled back, stopped: Serve = 0 (the base).
//
// Salt comes from s.SaltPhase and Period from s.Period; coverage, holdout
// and allowlists from the config.
func (e *Experiment) AllocationFor(s State) *Allocation {
	a := e.Allocation()
	phase := s.SaltPhase
	if phase < 1 {
		phase = e.PhaseOrOne()
	}
	a.Salt = PhaseSalt(e.EffectiveSalt(), phase)
	if s.Period >= 1 {
		a.Period = s.Period
	}
	n := len(a.Shares)
	switch s.Status {
	case StatusRunning, StatusPaused:
		steps := RolloutSteps(e)
		var bp uint16
		if len(steps) > 0 {
			i := min(max(s.Step, 0), len(steps)-1)
			bp = min(percentToBP(steps[i].Percent), MaxShare(n))
		}
		for i := range a.Shares {
			a.Shares[i] = bp
		}
		a.Serve = -1
	case StatusPromoted:
		a.Serve = s.Winner
	case StatusShadow:
		a.Serve, a.Shadow = 0, true
	default:
		a.Serve = 0
	}
	return a
}

// Command is one lifecycle action to apply.
type Command struct {
	Experiment string
	Action     Action
	// Step is the target of ActionSetStep.
	Step int
	// Winner is the variant of ActionPromote (1..candidates).
	Winner int
	Actor  string
	Reason string
	Codes  []string
	// Decision is the statistics behind a controller command.
	Decision *stats.Decision
	// Prior is PeriodPrior of the period an advance closes.
	Prior map[string]MetricPrior
	// Judge is the judge gate's decisions behind a shadow verdict.
	Judge []stats.JudgeDecision
	// Fence, when not 0, makes the write conditional on the lease.
	Fence int64
	// IfVersion, when not 0 (or with Conditional), applies the command
	// only to that state version (ErrConflict otherwise, no retry): the
	// controller acts only on the state it evaluated. API commands leave
	// it 0 and are retried on a concurrent change.
	IfVersion int64
	// Conditional applies IfVersion even when it is 0, the implicit
	// draft (the controller's auto-start).
	Conditional bool
}

// allowed lists the statuses each action may start from.
var allowed = map[Action][]Status{
	ActionStart:      {StatusDraft, StatusStopped, StatusRolledBack},
	ActionAdvance:    {StatusRunning},
	ActionPause:      {StatusRunning},
	ActionResume:     {StatusPaused},
	ActionSetStep:    {StatusRunning, StatusPaused},
	ActionPromote:    {StatusRunning, StatusPaused},
	ActionRollback:   {StatusRunning, StatusPaused, StatusPromoted, StatusShadow},
	ActionStop:       {StatusRunning, StatusPaused, StatusShadow},
	ActionHaltSRM:    {StatusRunning},
	ActionFutility:   {StatusRunning},
	ActionReshuffle:  {StatusRunning, StatusPaused},
	ActionShadowPass: {StatusShadow},
}

// Next computes the state after applying c to s (the stored state, or
// Draft) at time now. It checks the action is allowed from s.Status and
// its arguments fit the experiment, and returns the new state and its
// transition record (Seq and Version set to s.Version+1). It is pure: the
// caller commits the result.
func Next(e *Experiment, s State, c Command, now time.Time) (State, Transition, error) {
	from, ok := allowed[c.Action]
	if !ok {
		return s, Transition{}, fmt.Errorf("%w: unknown action %q", ErrInvalidTransition, c.Action)
	}
	okFrom := false
	for _, st := range from {
		okFrom = okFrom || st == s.Status
	}
	if !okFrom {
		return s, Transition{}, fmt.Errorf("%w: cannot %s experiment %q: it is %s (allowed from: %v)", ErrInvalidTransition, c.Action, e.ID, s.Status, from)
	}
	steps := RolloutSteps(e)
	if len(steps) == 0 {
		return s, Transition{}, fmt.Errorf("%w: experiment %q has no rollout", ErrInvalidTransition, e.ID)
	}
	n := s
	n.Experiment = e.ID
	newPeriod := func() {
		n.Period = max(s.Period+1, e.PhaseOrOne())
		n.StepStarted = now
	}
	switch c.Action {
	case ActionStart:
		n.Status, n.Step, n.Winner = e.startStatus(), 0, 0
		n.SaltPhase = max(s.SaltPhase, e.PhaseOrOne())
		// A restart tests the same question again on a new period.
		n.StepTests = s.StepTests + 1
		// Even a first start takes a fresh period: the configured phase's
		// period may hold data of the static weights served before the
		// rollout was configured.
		newPeriod()
	case ActionShadowPass:
		// Ramp data never pool with the shadow stage's judge data.
		n.Status, n.Step = StatusRunning, 0
		n.StepTests = max(s.StepTests, 1)
		newPeriod()
	case ActionAdvance:
		if s.Step+1 >= len(steps) {
			return s, Transition{}, fmt.Errorf("%w: experiment %q is at its last step (%d of %d)", ErrInvalidTransition, e.ID, StepNumber(s.Step), len(steps))
		}
		n.Step = s.Step + 1
		n.StepTests = 1
		newPeriod()
	case ActionPause:
		n.Status = StatusPaused
	case ActionResume:
		n.Status = StatusRunning
	case ActionSetStep:
		if c.Step < 0 || c.Step >= len(steps) {
			return s, Transition{}, fmt.Errorf("%w: step %d of experiment %q is out of range 1..%d", ErrInvalidTransition, StepNumber(c.Step), e.ID, len(steps))
		}
		if c.Step == s.Step {
			return s, Transition{}, fmt.Errorf("%w: experiment %q is already at step %d", ErrInvalidTransition, e.ID, StepNumber(c.Step))
		}
		n.Step = c.Step
		n.StepTests = s.StepTests + 1
		newPeriod()
	case ActionPromote:
		if c.Winner < 1 || c.Winner >= len(e.Variants) {
			return s, Transition{}, fmt.Errorf("%w: winner %d of experiment %q is not a candidate (1..%d)", ErrInvalidTransition, c.Winner, e.ID, len(e.Variants)-1)
		}
		n.Status, n.Winner = StatusPromoted, c.Winner
	case ActionRollback:
		n.Status, n.Winner = StatusRolledBack, 0
	case ActionStop, ActionHaltSRM, ActionFutility:
		n.Status = StatusStopped
	case ActionReshuffle:
		if e.PhaseOrOne() <= s.SaltPhase {
			return s, Transition{}, fmt.Errorf("%w: experiment %q is already at salt phase %d", ErrInvalidTransition, e.ID, s.SaltPhase)
		}
		n.SaltPhase = e.PhaseOrOne()
		n.StepTests = s.StepTests + 1
		newPeriod()
	}
	n.Version = s.Version + 1
	n.UpdatedAt, n.UpdatedBy = now, c.Actor
	n.Fence = max(s.Fence, c.Fence)
	t := Transition{
		Seq: n.Version, Experiment: e.ID, At: now, Actor: c.Actor, Action: c.Action,
		From: s.Status, To: n.Status, FromStep: s.Step, ToStep: n.Step, Period: n.Period,
		Reason: c.Reason, Codes: c.Codes, Decision: c.Decision, Prior: c.Prior, Fence: c.Fence, Judge: c.Judge,
		Test: n.TestIndex(), Alpha: e.TestAlpha(n.TestIndex()),
	}
	if c.Action == ActionPromote {
		w := c.Winner
		t.Winner = &w
	}
	return n, t, nil
}
