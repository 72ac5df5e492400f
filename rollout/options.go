package rollout

import (
	"context"
	"log/slog"
	"time"

	"github.com/abgate/abgate/experiments"
)

// options are the settings shared by the package's services; each
// constructor reads the ones it uses and ignores the rest, so one set of
// options can configure a replica's Lifecycle, Controller, Watcher and
// Catalog alike.
type options struct {
	now       func() time.Time
	log       *slog.Logger
	poll      time.Duration // 0: the service's default
	holder    string
	autoStart bool
	notify    Notifier
	// fenceFloor and onLoss: see WithFenceFloor and WithStoreLoss.
	fenceFloor func() int64
	onLoss     func(experiments.State)
	restore    func(context.Context, experiments.State) error
}

// Option configures a Lifecycle, Controller, Watcher or Catalog.
type Option func(*options)

func newOptions(opts []Option) options {
	o := options{now: time.Now, log: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithClock replaces time.Now (transition times, step starts and
// durations, lease-free simulated runs), for tests.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithPollInterval sets how often a Watcher or Catalog polls its store as
// a fallback to the change feed (defaults DefaultPollInterval and
// DefaultCatalogPoll). Non-positive values keep the default.
func WithPollInterval(d time.Duration) Option { return func(o *options) { o.poll = max(d, 0) } }

// WithHolderID sets the Controller's lease holder id (default host name
// plus a random suffix). It must be unique per replica.
func WithHolderID(id string) Option { return func(o *options) { o.holder = id } }

// WithAutoStart makes the leading Controller start every draft experiment
// that has a rollout (default false: an operator calls Lifecycle.Start).
func WithAutoStart(on bool) Option { return func(o *options) { o.autoStart = on } }

// WithNotifier sends every transition the Lifecycle commits in this
// process to n (e.g. webhooks). Only the process that committed a
// transition notifies, so a transition is delivered once however many
// replicas run.
func WithNotifier(n Notifier) Option { return func(o *options) { o.notify = n } }

// WithFenceFloor gives the Controller the highest fence this replica has
// seen in lifecycle states (Watcher.MaxFence): before taking the lease it
// seeds the store's fence counter with it, so a store that lost its
// counter never hands out a fence at or below one already issued.
func WithFenceFloor(f func() int64) Option { return func(o *options) { o.fenceFloor = f } }

// WithStoreLoss makes the Watcher call onLoss (once per loss) when an
// experiment's known lifecycle state disappears from the store, and
// restore on every refresh until the state is back (cmd/abgate: the
// leader's Lifecycle.Restore). Either may be nil.
func WithStoreLoss(onLoss func(last experiments.State), restore func(ctx context.Context, last experiments.State) error) Option {
	return func(o *options) { o.onLoss, o.restore = onLoss, restore }
}
