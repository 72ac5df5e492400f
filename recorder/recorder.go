package recorder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	rand2 "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/internal/yield"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Recorder errors.
var (
	// ErrQueueFull: the recorder can't take more feedback right now (its
	// queue is full, or the store is failing and the feedback it holds
	// reached the feedback limit); the feedback API answers 503 and the
	// client retries. Nothing already accepted is lost by this.
	ErrQueueFull = errors.New("recorder queue full")
	// ErrClosed: the recorder has been closed.
	ErrClosed = errors.New("recorder closed")
	// ErrInvalidFeedback: the feedback can never be recorded (no
	// experiment or metric, a metric name with the reserved "@", the
	// reserved event id "=", more than MaxSegmentDimensions segments,
	// non-finite value).
	ErrInvalidFeedback = errors.New("invalid feedback")
)

// Recorder defaults beyond the config's. A zero Recording passed
// directly (tests, embedding) takes the same Default* values that
// Config.SetDefaults fills in.
const (
	// DefaultMaxBatchAge is below redisstore's default dedup window (1h):
	// a batch is never retried after the store may have forgotten it.
	DefaultMaxBatchAge  = 50 * time.Minute
	DefaultApplyTimeout = 5 * time.Second
)

// Recorder records Outcomes and Feedback into a Store without ever making
// a request wait for it. Observe and Feedback put events in bounded
// queues; a background loop drains them every FlushInterval (or as soon
// as BatchSize events wait), pre-aggregates them per (experiment, phase,
// variant, unit, hour, metric) and cuts per experiment phase one Batch of
// outcomes and one of feedback; a flusher applies the batches in order,
// retrying failures with backoff. Failed batches wait in a bounded
// pending buffer; past its bound the oldest outcome batches are dropped,
// counted and logged.
//
// Feedback is never dropped once accepted (docs/recording.md, "What a 200
// means"): its batches are exempt from the pending bound and the age
// limit, and instead Feedback refuses new feedback (ErrQueueFull, a 503
// the client retries) while the feedback held reaches the feedback limit
// (default half the pending limit). Only a process that dies, or closes
// while the store stays down past Close's deadline, loses it, and Close
// logs that at error level.
//
// Every event is accounted for: at any time
//
//	Accepted = Persisted + Dropped + Pending
//
// and after Close, Pending is 0. Feedback refused with ErrQueueFull is not
// accepted (the client retries) and is counted in Rejected.
//
// It is the Prometheus notifier's sendLoop pattern: a bounded queue, a
// wake-up channel of capacity one, counted drops, a timeout per send and
// a drain on shutdown.
type Recorder struct {
	store        experiments.Store
	now          func() time.Time
	log          *slog.Logger
	mp           metric.MeterProvider
	tracer       trace.Tracer
	batchSize    int
	interval     time.Duration
	pendingLimit int64
	fbLimit      int64
	maxBatchAge  time.Duration
	applyTimeout time.Duration
	backoffMin   time.Duration
	backoffMax   time.Duration
	idPrefix     string

	obs  *queue[experiments.Outcome]  // bounded by QueueSize, grows on demand (queue.go)
	fb   *queue[experiments.Feedback] // the same
	wake chan struct{}                // cap 1: a queue reached batchSize
	work chan struct{}                // cap 1: the flusher has batches

	caps          atomic.Pointer[capTable] // SetCaps
	closed        atomic.Bool
	droppedFull   atomic.Int64 // Observe with a full queue
	droppedClosed atomic.Int64 // Observe after Close
	rejected      atomic.Int64 // Feedback refused
	fbHeld        atomic.Int64 // feedback accepted and not yet persisted

	closeMu sync.RWMutex // Feedback holds it shared, Close exclusively

	mu            sync.Mutex
	received      int64 // events taken from the queues
	agg           aggregate
	pending       []*pendingBatch
	pendingEvents int64 // events in pending (including the one in flight)
	persisted     int64
	dropOverflow  int64
	dropExpired   int64
	dropInvalid   int64
	dropShutdown  int64
	dupEvents     int64
	failures      int64
	batches       int64
	seq           uint64
	perExp        map[string]*expCounts
	draining      bool // the drainer has exited: pending is final
	drops         dropLog

	stop        chan struct{} // closed by Close: the drainer's last round
	drainerDone chan struct{}
	flusherDone chan struct{}
	abort       context.CancelFunc
	baseCtx     context.Context
	closeOnce   sync.Once
	reg         metric.Registration
}

type pendingBatch struct {
	b        *experiments.Batch
	created  time.Time
	inFlight bool
	attempts int
	feedback int64 // feedback events in b: never dropped for overflow or age
}

type expCounts struct {
	accepted, persisted, dropped, duplicates int64
}

// Option configures a Recorder.
type Option func(*Recorder)

// WithClock replaces time.Now (hour buckets of events without a time,
// batch ages), for tests.
func WithClock(now func() time.Time) Option { return func(r *Recorder) { r.now = now } }

// WithExperiments lets the recorder read experiments' configs (the live
// one, after reloads): an experiment with a success signal gets the
// derived cost-per-success metric (experiments.MetricCostPerSuccess), and
// one with cuped gets its covariate sums (experiments.Batch.Covariates).
// Without it neither is recorded.
func WithExperiments(lookup func(id string) *experiments.Experiment) Option {
	return func(r *Recorder) { r.agg.lookup = lookup }
}

// WithMeterProvider sets where the recorder's OTel metrics go (default:
// the global provider).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(r *Recorder) { r.mp = mp }
}

// WithTracerProvider sets where the recorder's spans go (default: the
// global provider): one span per batch the store applies.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(r *Recorder) { r.tracer = tp.Tracer(tracerName) }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(r *Recorder) { r.log = l } }

// WithPendingLimit bounds the events held in batches the store has not
// taken yet (default 4 × QueueSize). Past it the oldest batches are
// dropped and counted.
func WithPendingLimit(n int) Option {
	return func(r *Recorder) {
		if n > 0 {
			r.pendingLimit = int64(n)
		}
	}
}

// WithFeedbackLimit bounds the feedback events held (queued or in batches
// the store has not taken yet) before Feedback refuses more with
// ErrQueueFull (default half the pending limit).
func WithFeedbackLimit(n int) Option {
	return func(r *Recorder) {
		if n > 0 {
			r.fbLimit = int64(n)
		}
	}
}

// WithApplyTimeout bounds one Store.Apply call (default 5s).
func WithApplyTimeout(d time.Duration) Option {
	return func(r *Recorder) {
		if d > 0 {
			r.applyTimeout = d
		}
	}
}

// WithRetryBackoff sets the backoff between failed flushes (default 50ms
// doubling up to 5s, with jitter).
func WithRetryBackoff(minD, maxD time.Duration) Option {
	return func(r *Recorder) {
		if minD > 0 && maxD >= minD {
			r.backoffMin, r.backoffMax = minD, maxD
		}
	}
}

// New starts a recorder writing into store, tuned by cfg (zero
// fields take the defaults). Call Close to flush and stop it.
func New(store experiments.Store, cfg experiments.Recording, opts ...Option) *Recorder {
	qs := cfg.QueueSize
	if qs <= 0 {
		qs = experiments.DefaultQueueSize
	}
	r := &Recorder{
		store:        store,
		now:          time.Now,
		log:          slog.Default(),
		batchSize:    cfg.BatchSize,
		interval:     time.Duration(cfg.FlushInterval),
		pendingLimit: 4 * int64(qs),
		maxBatchAge:  DefaultMaxBatchAge,
		applyTimeout: DefaultApplyTimeout,
		backoffMin:   50 * time.Millisecond,
		backoffMax:   5 * time.Second,
		obs:          newQueue[experiments.Outcome](qs),
		fb:           newQueue[experiments.Feedback](qs),
		wake:         make(chan struct{}, 1),
		work:         make(chan struct{}, 1),
		perExp:       make(map[string]*expCounts),
		stop:         make(chan struct{}),
		drainerDone:  make(chan struct{}),
		flusherDone:  make(chan struct{}),
	}
	if r.batchSize <= 0 {
		r.batchSize = experiments.DefaultBatchSize
	}
	if r.interval <= 0 {
		r.interval = time.Duration(experiments.DefaultFlushInterval)
	}
	for _, o := range opts {
		o(r)
	}
	if r.fbLimit <= 0 {
		r.fbLimit = max(1, r.pendingLimit/2)
	}
	if r.mp == nil {
		r.mp = otel.GetMeterProvider()
	}
	if r.tracer == nil {
		r.tracer = otel.Tracer(tracerName)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	r.idPrefix = hex.EncodeToString(rnd[:]) + "-"
	r.agg.init()
	r.baseCtx, r.abort = context.WithCancel(context.Background())
	r.registerMetrics()
	go r.drainLoop()
	go r.flushLoop()
	return r
}

// Observe records one proxied request. It never blocks and allocates
// nothing: when the queue is full the outcome is dropped and counted.
func (r *Recorder) Observe(o experiments.Outcome) {
	if r.closed.Load() {
		r.droppedClosed.Add(1)
		return
	}
	n, ok := r.obs.push(o)
	if !ok {
		r.droppedFull.Add(1)
		return
	}
	r.wakeAt(n)
}

// wakeAt wakes the drainer once a queue holds n ≥ batchSize events.
func (r *Recorder) wakeAt(n int) {
	if n >= r.batchSize {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// Feedback records one feedback signal. It never blocks: when the queue
// is full it returns ErrQueueFull and the signal is not accepted (the
// caller should answer 503 so the client retries).
func (r *Recorder) Feedback(f experiments.Feedback) error {
	if f.Experiment == "" || f.Metric == "" || math.IsNaN(f.Value) || math.IsInf(f.Value, 0) ||
		experiments.IsSegmentMetric(f.Metric) || f.Segments.N > experiments.MaxSegmentDimensions || f.EventID == "=" ||
		f.PerResponse < 0 || f.PerResponse > experiments.MaxEventCap {
		// Unrecordable: in a batch it would make the store refuse the
		// whole batch, everyone's events with it (ErrInvalidBatch).
		return fmt.Errorf("%w: experiment %q metric %q value %v", ErrInvalidFeedback, f.Experiment, f.Metric, f.Value)
	}
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed.Load() {
		r.rejected.Add(1)
		return ErrClosed
	}
	// Refuse before accepting: past the feedback limit (the store is
	// failing and feedback piles up) the client is told to retry, rather
	// than accepting and later dropping.
	if r.fbHeld.Add(1) > r.fbLimit {
		r.fbHeld.Add(-1)
		r.rejected.Add(1)
		return ErrQueueFull
	}
	n, ok := r.fb.push(f)
	if !ok {
		r.fbHeld.Add(-1)
		r.rejected.Add(1)
		return ErrQueueFull
	}
	r.wakeAt(n)
	return nil
}

// Stats counts the recorder's events. Accepted = Persisted +
// Dropped + Pending always holds; Dropped is the sum of the Dropped*
// fields. GET /api/v1/recorder serves it as JSON.
type Stats struct {
	Accepted  int64 `json:"accepted"`  // Observe calls and Feedback calls that returned nil
	Persisted int64 `json:"persisted"` // applied by the store (duplicates included: counted once there)
	Dropped   int64 `json:"dropped"`
	Pending   int64 `json:"pending"` // queued, being aggregated, or in batches not yet applied
	// PendingFeedback is the feedback accepted and not yet persisted
	// (part of Pending); at FeedbackLimit new feedback is refused.
	PendingFeedback int64 `json:"pending_feedback"`
	FeedbackLimit   int64 `json:"feedback_limit"`

	DroppedQueueFull int64 `json:"dropped_queue_full"` // Observe found the queue full
	DroppedClosed    int64 `json:"dropped_closed"`     // Observe after Close
	DroppedOverflow  int64 `json:"dropped_overflow"`   // oldest outcome batches dropped past the pending limit
	DroppedExpired   int64 `json:"dropped_expired"`    // outcome batches older than the max batch age
	DroppedInvalid   int64 `json:"dropped_invalid"`    // invalid events or batches the store refused as invalid
	DroppedShutdown  int64 `json:"dropped_shutdown"`   // still pending when Close's deadline passed

	Rejected        int64 `json:"rejected"`         // Feedback refused (ErrQueueFull, ErrClosed): not accepted
	DuplicateEvents int64 `json:"duplicate_events"` // feedback events skipped by the store (repeats, one vote per response)
	Batches         int64 `json:"batches"`          // batches applied
	FlushFailures   int64 `json:"flush_failures"`   // failed Apply calls (each retried or dropped)

	// Experiments breaks the counts down by experiment (events dropped
	// at the queue, before they are looked at, are in no experiment).
	Experiments map[string]ExperimentStats `json:"experiments"`
}

// ExperimentStats are one experiment's recorder counts: what a report
// needs to say how much of the experiment's data was lost.
type ExperimentStats struct {
	Accepted   int64 `json:"accepted"` // events cut into batches
	Persisted  int64 `json:"persisted"`
	Dropped    int64 `json:"dropped"`
	Duplicates int64 `json:"duplicate_events"`
	// DroppedShare is Dropped / Accepted (0 without events): the share
	// of the experiment's recorded events lost.
	DroppedShare float64 `json:"dropped_share"`
}

func (c *expCounts) stats() ExperimentStats {
	s := ExperimentStats{Accepted: c.accepted, Persisted: c.persisted, Dropped: c.dropped, Duplicates: c.duplicates}
	if c.accepted > 0 {
		s.DroppedShare = float64(c.dropped) / float64(c.accepted)
	}
	return s
}

// Experiment returns one experiment's counts (zero if it has none).
func (r *Recorder) Experiment(id string) ExperimentStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.perExp[id]; c != nil {
		return c.stats()
	}
	return ExperimentStats{}
}

// Stats returns the counters as one consistent snapshot (taken under the
// recorder's lock; Observe calls in progress on other goroutines are
// either fully counted or not at all).
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.draining && r.closed.Load() {
		// Observe calls racing Close may have queued after the last
		// drain: they are dropped, and counted.
		late := r.obs.take()
		r.droppedClosed.Add(int64(len(late)))
		r.obs.recycle(late)
	}
	q := int64(r.obs.len() + r.fb.len())
	s := Stats{
		Persisted:        r.persisted,
		DroppedQueueFull: r.droppedFull.Load(),
		DroppedClosed:    r.droppedClosed.Load(),
		DroppedOverflow:  r.dropOverflow,
		DroppedExpired:   r.dropExpired,
		DroppedInvalid:   r.dropInvalid,
		DroppedShutdown:  r.dropShutdown,
		Rejected:         r.rejected.Load(),
		DuplicateEvents:  r.dupEvents,
		Batches:          r.batches,
		FlushFailures:    r.failures,
		PendingFeedback:  r.fbHeld.Load(),
		FeedbackLimit:    r.fbLimit,
		Experiments:      make(map[string]ExperimentStats, len(r.perExp)),
	}
	for id, c := range r.perExp {
		s.Experiments[id] = c.stats()
	}
	s.Dropped = s.DroppedQueueFull + s.DroppedClosed + s.DroppedOverflow + s.DroppedExpired + s.DroppedInvalid + s.DroppedShutdown
	s.Pending = q + r.agg.count + r.pendingEvents
	// Counted independently of the other fields (what entered the
	// queues), so Accepted = Persisted + Dropped + Pending checks the
	// bookkeeping rather than restating it.
	s.Accepted = s.DroppedQueueFull + s.DroppedClosed + r.received + q
	return s
}

// Close stops accepting events, drains the queues, and flushes everything
// to the store until ctx is done; whatever is still pending then is
// dropped and counted. Afterwards Accepted = Persisted + Dropped.
func (r *Recorder) Close(ctx context.Context) error {
	var err error
	r.closeOnce.Do(func() {
		r.closeMu.Lock()
		r.closed.Store(true)
		r.closeMu.Unlock()
		close(r.stop)
		<-r.drainerDone
		select {
		case <-r.flusherDone:
		case <-ctx.Done():
			err = fmt.Errorf("recorder close: %w", ctx.Err())
			r.abort()
			<-r.flusherDone
		}
		r.abort()
		r.mu.Lock()
		var lostFeedback int64
		for _, p := range r.pending {
			r.dropShutdown += p.b.Count
			r.expCounts(p.b.Experiment).dropped += p.b.Count
			lostFeedback += p.feedback
			r.fbHeld.Add(-p.feedback)
		}
		r.pending, r.pendingEvents = nil, 0
		r.mu.Unlock()
		if lostFeedback > 0 {
			// The one way accepted feedback is lost: the store stayed
			// down through the whole shutdown budget.
			r.log.Error("recorder: accepted feedback lost at shutdown: the store did not take it before the deadline",
				"feedback_events", lostFeedback)
		}
		if r.reg != nil {
			_ = r.reg.Unregister()
		}
		if s := r.Stats(); s.Dropped > 0 {
			r.log.Warn("recorder closed with dropped events", "accepted", s.Accepted, "persisted", s.Persisted, "dropped", s.Dropped)
		}
	})
	return err
}

func (r *Recorder) drainLoop() {
	defer close(r.drainerDone)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		final := false
		select {
		case <-t.C:
		case <-r.wake:
		case <-r.stop:
			final = true
		}
		r.drain(final)
		if final {
			return
		}
	}
}

// drain moves queued events into the aggregate and, when the flusher has
// nothing to do (or the aggregate is large, or this is the last round),
// cuts the aggregate into batches for the flusher.
func (r *Recorder) drain(final bool) {
	r.mu.Lock()
	now := r.now()
	nowHour := experiments.HourOf(now)
	// Both queues are taken at once, before the merge pauses: feedback
	// that follows an outcome (a live judge's score of the request) then
	// never reaches a batch before it. Taken after the outcomes' merge,
	// the pauses in between let an outcome wait for the next drain while
	// its judge score went in this one, and a snapshot counted more
	// judged users than served ones (e2e TestLiveJudgeDuringRamp).
	obs, fb := r.obs.take(), r.fb.take()
	// Merging the 200 outcomes of a 100 ms interval at 2,000 requests/s
	// showed as runs of 0.7 ms (up to 3.8 ms on a busy machine) in a
	// runtime/trace of the load harness's tail scenario; on a gateway
	// pinned to one core every request that arrived during one waited
	// (issue "Live streams at scale"). ys pauses for them every
	// yield.Slice of work. The lock held meanwhile is the recorder's own;
	// the request path's Observe does not take it.
	var ys yield.Slicer
	for i := range obs {
		r.agg.addOutcome(&obs[i], nowHour, r.capValues)
		ys.Tick()
	}
	r.received += int64(len(obs))
	r.obs.recycle(obs)
	for i := range fb {
		r.agg.addFeedback(&fb[i], nowHour)
		ys.Tick()
	}
	r.received += int64(len(fb))
	r.fb.recycle(fb)
	// While batches wait, the aggregate keeps merging (fewer, larger
	// batches for a slow store), up to maxAggregate events.
	cut := r.agg.count > 0 && (final || len(r.pending) == 0 || r.agg.count >= r.maxAggregate())
	if cut {
		bs, fb, invalid := r.agg.cut(r.idPrefix, &r.seq, &ys)
		r.dropInvalid += invalid
		r.drops.note("", invalid)
		for i, b := range bs {
			r.expCounts(b.Experiment).accepted += b.Count
			r.pending = append(r.pending, &pendingBatch{b: b, created: now, feedback: fb[i]})
			r.pendingEvents += b.Count
		}
		r.enforceLimit()
	}
	if final {
		r.draining = true
	}
	r.drops.flush(r.log, now, r.droppedFull.Load())
	r.mu.Unlock()
	if cut || final {
		select {
		case r.work <- struct{}{}:
		default:
		}
	}
}

// maxAggregate is the most events the aggregate holds while the flusher
// is busy: 8 batches, but at most a quarter of the pending limit so one
// cut never overflows it on its own.
func (r *Recorder) maxAggregate() int64 {
	return max(int64(r.batchSize), min(8*int64(r.batchSize), r.pendingLimit/4))
}

// enforceLimit drops the outcomes of the oldest batches not in flight
// while the pending events exceed the limit. Feedback is kept (its bound
// is Feedback's refusal): a batch holding some keeps just that part.
// Call with r.mu held.
func (r *Recorder) enforceLimit() {
	for i := 0; r.pendingEvents > r.pendingLimit && i < len(r.pending); {
		p := r.pending[i]
		if p.inFlight || p.b.Count == p.feedback {
			i++
			continue
		}
		n := p.b.Count - p.feedback
		r.pendingEvents -= n
		r.dropOverflow += n
		r.expCounts(p.b.Experiment).dropped += n
		r.drops.note(p.b.Experiment, n)
		if p.feedback > 0 {
			p.b = feedbackOnly(p.b, p.feedback)
			i++
			continue
		}
		r.pending = append(r.pending[:i], r.pending[i+1:]...)
	}
}

func (r *Recorder) expCounts(exp string) *expCounts {
	c := r.perExp[exp]
	if c == nil {
		c = &expCounts{}
		r.perExp[exp] = c
	}
	return c
}

func (r *Recorder) flushLoop() {
	defer close(r.flusherDone)
	backoff := time.Duration(0)
	failing := 0
	for {
		p := r.next()
		if p == nil {
			r.mu.Lock()
			done := r.draining && len(r.pending) == 0
			r.mu.Unlock()
			if done {
				return
			}
			select {
			case <-r.work:
			case <-r.baseCtx.Done():
				return
			}
			continue
		}
		ctx, cancel := context.WithTimeout(r.baseCtx, r.applyTimeout)
		res, err := r.apply(ctx, p)
		cancel()
		r.mu.Lock()
		p.inFlight = false
		switch {
		case err == nil:
			r.remove(p)
			r.persisted += p.b.Count
			r.batches++
			r.fbHeld.Add(-p.feedback)
			r.dupEvents += int64(res.DuplicateEvents)
			c := r.expCounts(p.b.Experiment)
			c.persisted += p.b.Count
			c.duplicates += int64(res.DuplicateEvents)
		case errors.Is(err, experiments.ErrInvalidBatch):
			r.remove(p)
			r.dropInvalid += p.b.Count
			r.expCounts(p.b.Experiment).dropped += p.b.Count
			r.drops.note(p.b.Experiment, p.b.Count)
			r.fbHeld.Add(-p.feedback)
		default:
			r.failures++
			p.attempts++
		}
		r.mu.Unlock()
		if err == nil {
			if failing > 0 {
				r.log.Info("recorder: store recovered", "failed_attempts", failing)
			}
			failing, backoff = 0, 0
			continue
		}
		if errors.Is(err, experiments.ErrInvalidBatch) {
			r.log.Error("recorder: store refused a batch; dropped", "experiment", p.b.Experiment, "events", p.b.Count, "err", err)
			continue
		}
		if failing == 0 {
			r.log.Warn("recorder: flush failed; retrying with backoff", "experiment", p.b.Experiment, "err", err)
		}
		failing++
		if backoff == 0 {
			backoff = r.backoffMin
		} else if backoff *= 2; backoff > r.backoffMax {
			backoff = r.backoffMax
		}
		wait := backoff/2 + rand2.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.baseCtx.Done():
			t.Stop()
			return
		}
	}
}

// tracerName names the recorder's spans' instrumentation scope.
const tracerName = "github.com/abgate/abgate/recorder"

// apply hands one batch to the store inside a span that says what it
// carried. The store's own Redis pipeline is not traced command by
// command (cmd/abgate's redisotel filter): its span would spell out the
// encoded batch, tens of kilobytes, as db.statement on every flush.
func (r *Recorder) apply(ctx context.Context, p *pendingBatch) (experiments.ApplyResult, error) {
	ctx, span := r.tracer.Start(ctx, "abgate.recorder.apply", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			attribute.String("abgate.experiment", p.b.Experiment),
			attribute.String("abgate.batch.id", p.b.ID),
			attribute.Int64("abgate.batch.events", p.b.Count),
			attribute.Int("abgate.batch.attempt", p.attempts+1),
		))
	defer span.End()
	res, err := r.store.Apply(ctx, p.b)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return res, err
	}
	span.SetAttributes(
		attribute.Bool("abgate.batch.duplicate", res.Duplicate),
		attribute.Int("abgate.batch.duplicate_events", res.DuplicateEvents),
	)
	return res, nil
}

// next returns the oldest pending batch and marks it in flight, dropping
// batches that are too old on the way; nil if there is none.
func (r *Recorder) next() *pendingBatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	for len(r.pending) > 0 {
		p := r.pending[0]
		// Feedback batches don't expire: every feedback event carries
		// an event id or a response group, so the store skips whatever
		// of a late retry it had applied.
		if p.feedback == 0 && p.attempts > 0 && now.Sub(p.created) > r.maxBatchAge {
			r.pending = r.pending[1:]
			r.pendingEvents -= p.b.Count
			r.dropExpired += p.b.Count
			r.expCounts(p.b.Experiment).dropped += p.b.Count
			r.drops.note(p.b.Experiment, p.b.Count)
			continue
		}
		p.inFlight = true
		return p
	}
	return nil
}

// remove takes p out of pending. Call with r.mu held.
func (r *Recorder) remove(p *pendingBatch) {
	for i, q := range r.pending {
		if q == p {
			r.pending = append(r.pending[:i], r.pending[i+1:]...)
			r.pendingEvents -= p.b.Count
			return
		}
	}
}

// Metric names of the recorder.
const (
	metricAccepted   = "abgate.recorder.events.accepted"
	metricPersisted  = "abgate.recorder.events.persisted"
	metricDropped    = "abgate.recorder.events.dropped"
	metricPending    = "abgate.recorder.events.pending"
	metricRejected   = "abgate.recorder.feedback.rejected"
	metricDuplicates = "abgate.recorder.feedback.duplicates"
	metricFailures   = "abgate.recorder.flush.failures"
	attrExperiment   = "experiment"
)

// registerMetrics exposes the counters as OTel observable instruments, read
// from Stats-like snapshots at collection time, so the hot path pays
// nothing. The only attribute is the experiment; drops at the queue
// (before an event is looked at) carry none.
func (r *Recorder) registerMetrics() {
	m := r.mp.Meter("github.com/abgate/abgate/experiments")
	accepted, err1 := m.Int64ObservableCounter(metricAccepted, metric.WithDescription("Events the recorder accepted."))
	persisted, err2 := m.Int64ObservableCounter(metricPersisted, metric.WithDescription("Events applied by the store."))
	dropped, err3 := m.Int64ObservableCounter(metricDropped, metric.WithDescription("Events dropped (queue full, pending overflow, too old, invalid, shutdown)."))
	pending, err4 := m.Int64ObservableGauge(metricPending, metric.WithDescription("Events accepted but not yet applied."))
	rejected, err5 := m.Int64ObservableCounter(metricRejected, metric.WithDescription("Feedback refused because the queue was full or the recorder closed."))
	dups, err6 := m.Int64ObservableCounter(metricDuplicates, metric.WithDescription("Feedback events skipped as already applied."))
	failures, err7 := m.Int64ObservableCounter(metricFailures, metric.WithDescription("Failed store writes (retried)."))
	if err := errors.Join(err1, err2, err3, err4, err5, err6, err7); err != nil {
		r.log.Warn("recorder: metrics unavailable", "err", err)
		return
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := r.Stats()
		r.mu.Lock()
		type row struct {
			exp string
			c   expCounts
		}
		rows := make([]row, 0, len(r.perExp))
		for exp, c := range r.perExp {
			rows = append(rows, row{exp, *c})
		}
		r.mu.Unlock()
		// Queue-level counts are not attributed to an experiment.
		o.ObserveInt64(accepted, s.DroppedQueueFull+s.DroppedClosed)
		o.ObserveInt64(dropped, s.DroppedQueueFull+s.DroppedClosed)
		o.ObserveInt64(pending, s.Pending)
		o.ObserveInt64(rejected, s.Rejected)
		o.ObserveInt64(failures, s.FlushFailures)
		for _, rw := range rows {
			attrs := metric.WithAttributes(attribute.String(attrExperiment, rw.exp))
			o.ObserveInt64(accepted, rw.c.accepted, attrs)
			o.ObserveInt64(persisted, rw.c.persisted, attrs)
			o.ObserveInt64(dropped, rw.c.dropped, attrs)
			o.ObserveInt64(dups, rw.c.duplicates, attrs)
		}
		return nil
	}, accepted, persisted, dropped, pending, rejected, dups, failures)
	if err != nil {
		r.log.Warn("recorder: metrics unavailable", "err", err)
		return
	}
	r.reg = reg
}

// batchID returns the next batch id: a random per-recorder prefix and a
// sequence number, unique across replicas.
func batchID(prefix string, seq *uint64) string {
	*seq++
	return prefix + strconv.FormatUint(*seq, 10)
}
