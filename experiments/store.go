package experiments

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/abgate/abgate/stats"
)

// Store errors.
var (
	// ErrNotFound: the store has no such record. Stores translate their
	// own "absent" (redis.Nil) into it at their boundary.
	ErrNotFound = errors.New("not found")
	// ErrInvalidBatch: a batch the store can never apply (empty
	// experiment id, non-finite value). The recorder drops such a batch
	// instead of retrying it.
	ErrInvalidBatch = errors.New("invalid batch")
)

// Store keeps the per-user sufficient statistics of every experiment. The
// recorder writes it, reports and the rollout controller read it. It is
// safe for concurrent use, also from several processes (Redis).
type Store interface {
	// Apply adds one experiment-phase's pre-aggregated deltas. A batch is
	// applied exactly once: applying a batch whose ID was already applied
	// (a retry after a lost reply) changes nothing and returns nil, and a
	// feedback event whose ID was already applied is skipped. Apply is
	// atomic per batch in memstore; redisstore applies a large batch in
	// chunks, each atomic and each applied at most once, so retrying a
	// batch after any error is always safe.
	Apply(ctx context.Context, b *Batch) (ApplyResult, error)
	// Summaries returns the cumulative statistics of one phase. An
	// unknown experiment or phase gives an empty Snapshot, not an error.
	Summaries(ctx context.Context, experiment string, phase int) (Snapshot, error)
	// Hourly returns, for each hour that overlaps [from, to) and has
	// data, the change of the cumulative statistics during that hour, in
	// hour order. A batch's entries are applied in hour order, so with
	// batches arriving in time order the prefix sums give the cumulative
	// Summary at the end of each hour; the sum over all hours always
	// equals Summaries.
	Hourly(ctx context.Context, experiment string, phase int, from, to time.Time) ([]HourSummaries, error)
	// Expire makes everything the experiment wrote (all phases) disappear
	// after the given duration, e.g. Retention after the experiment ends.
	// Data written later (late feedback) expires at the same time.
	Expire(ctx context.Context, experiment string, after time.Duration) error
}

// VariantMetric names one statistic of a phase.
type VariantMetric struct {
	Variant int
	Metric  string
}

// Summary is the user-level summary of one (variant, metric): over the
// users with at least one observation, x is a user's sum of the metric's
// values and y their number of observations. It is stats.Summary, so the
// statistics a store returns go to stats.Decide without conversion.
type Summary = stats.Summary

// SummaryDelta is the change of a Summary when one user's totals go from
// (x0, y0) to (x1, y1); isNew says the user had no observation before.
// It includes the change of SumR and SumR2, the sums of each user's own
// ratio x/y and its square (kept for every metric; only Ratio metrics
// with bounds read them), and of the covariate sums SumZ, SumZ2, SumXZ
// for the user's covariate z (Batch.Covariates; 0 without one): z and z²
// when the user is new, (x1 − x0)·z on every change, so SumXZ telescopes
// to Σ x·z over users (likewise SumYZ and SumRZ).
func SummaryDelta(isNew bool, x0, y0, x1, y1, z float64) Summary {
	var n, sz, sz2 float64
	if isNew {
		n, sz, sz2 = 1, z, z*z
	}
	r0, r1 := userRatio(x0, y0), userRatio(x1, y1)
	return Summary{
		N:     n,
		SumX:  x1 - x0,
		SumX2: x1*x1 - x0*x0,
		SumY:  y1 - y0,
		SumY2: y1*y1 - y0*y0,
		SumXY: x1*y1 - x0*y0,
		SumR:  r1 - r0,
		SumR2: r1*r1 - r0*r0,
		SumZ:  sz,
		SumZ2: sz2,
		SumXZ: (x1 - x0) * z,
		SumYZ: (y1 - y0) * z,
		SumRZ: (r1 - r0) * z,
	}
}

// userRatio is a user's own ratio x/y (the mean of their observations:
// their error rate, their mean latency), the per-user value the bounded
// test analyses for a Ratio metric (docs/statistics.md §2.9). A user
// without observations (y = 0) has none: 0. redisstore's apply script
// computes the same in Lua; the storetest suite checks both stores.
func userRatio(x, y float64) float64 {
	if y == 0 {
		return 0
	}
	return x / y
}

// Snapshot is the cumulative state of one experiment phase.
type Snapshot struct {
	// Stats holds a Summary for every (variant, metric) with data. The
	// users per variant (sample-ratio check) are Stats[{v, "requests"}].N.
	Stats map[VariantMetric]Summary
	// Counters holds operations counters, e.g. CounterUnanalysed per
	// variant.
	Counters map[VariantMetric]int64
	// Segments holds a Summary for every (variant, metric, dimension,
	// value) with data, for experiments that declare segments. A user is
	// counted in each value of a dimension they were seen in, with the
	// observations made in it (docs/segments.md).
	Segments map[SegmentKey]Summary
	// Fresh holds, for every (variant, metric) with data, the same
	// Summary as Stats over only the units first exposed in this period
	// (in its salt phase; with their whole data in the period): the
	// newly exposed cohort a ramp step is analysed on (rollout.cohort,
	// docs/statistics.md §2.12). In the first period of a salt phase it
	// equals Stats. Kept only from batches with Covariates (empty
	// without); segments, hourly buckets and joint sums have no fresh
	// copy.
	Fresh map[VariantMetric]Summary
	// Joint holds, for every (variant, human metric, judge metric) pair
	// the batches asked for (Batch.Joint) with data, the user-level joint
	// sums prediction-powered inference reads (JointSummary).
	Joint map[JointKey]JointSummary
}

// HourSummaries is the change of the cumulative statistics during one hour.
type HourSummaries struct {
	Hour  time.Time // start of the hour, UTC
	Stats map[VariantMetric]Summary
}

// Hour is an hour since the Unix epoch: the unit of the hourly buckets.
type Hour int64

// HourOf returns the hour t falls in.
func HourOf(t time.Time) Hour {
	s := t.Unix()
	h := s / 3600
	if s < 0 && s%3600 != 0 {
		h--
	}
	return Hour(h)
}

// Time returns the start of the hour.
func (h Hour) Time() time.Time { return time.Unix(int64(h)*3600, 0).UTC() }

// Batch is one experiment phase's deltas, pre-aggregated by the recorder.
// A store must not modify a batch.
type Batch struct {
	// ID identifies the batch for exactly-once application: a retry
	// carries the same ID. It must be unique across recorders (the
	// recorder uses a random per-process prefix and a sequence number).
	ID         string
	Experiment string
	Phase      int
	// Deltas are merged per (variant, unit, metric, hour, segments): the
	// order of a user's observations within a batch does not change the
	// statistics. A user may have several deltas of one metric and hour
	// (one per segment combination); stores apply them in turn.
	Deltas []Delta
	// Events are feedback signals with an EventID. They are not merged: a
	// store applies each at most once per experiment, ever.
	Events []Event
	// Counters are increments of operations counters (no per-user state).
	Counters []Counter
	// Hist are increments of the experiment's hourly drift histograms
	// (experiment-level: the Phase does not apply). Stores that don't
	// implement DriftReader may ignore them.
	Hist []HistDelta
	// Records are feedback events for the feedback log (export). Stores
	// that don't implement FeedbackLog may ignore them.
	Records []FeedbackRecord
	// Count is the number of recorder events the batch carries (for
	// accounting; stores ignore it).
	Count int64
	// Covariates, when set, asks the store for CUPED's covariate sums,
	// for the experiment's pre-exposure history (Experiment.CUPED) and
	// for each unit's first exposure in the salt phase with the newly
	// exposed cohort's sums (Snapshot.Fresh; also for rollout.cohort
	// "new" without CUPED, then with no metrics). Nil: z = 0 for
	// everyone, no history, no Fresh.
	Covariates *Covariates
	// History are outcomes of units the experiment did not analyse
	// (outside coverage, holdout: Outcome.Analysed false), merged per
	// unit and metric. With Covariates they add to the units'
	// pre-exposure history and to nothing else; Variant, Hour and
	// Segments are ignored. Without Covariates the store ignores them.
	History []Delta
	// Joint asks the store to keep, per variant, the joint sums of each
	// pair's human and judge metric over users (JointSummary), updated
	// whenever either of a user's totals changes (JointDelta). The
	// recorder sets it from Experiment.JudgePairs.
	Joint []JointPair
}

// JointPair names a human signal and a judge score whose joint per-user
// sums a store keeps (docs/statistics.md, "Judge vs humans"). Cut binarises the human
// signal for the agreement table: a user's mean above Cut is "good".
type JointPair struct {
	Human, Judge string
	Cut          float64
}

// JointKey names one pair's joint sums of one variant.
type JointKey struct {
	Variant      int
	Human, Judge string
}

// JointSummary is one variant's joint sums of a human metric H and a
// judge metric F over its users, each user counted by their own means
// h = x_H/y_H and f = x_F/y_F. PPI's labelled users are those with both
// (n, Σh, Σh², Σf, Σf², Σhf), its unlabelled ones those with F only
// (N, Σf, Σf²); users without F are not in it. Agree[j][k] counts the
// labelled users by j = 1 when f > ½ (the judge preferred the served
// answer) and k = 1 when h > the pair's Cut.
type JointSummary struct {
	PPI   stats.PPISummary
	Agree [2][2]float64
}

// Add returns s + d.
func (s JointSummary) Add(d JointSummary) JointSummary {
	p, q := &s.PPI, d.PPI
	p.Labeled += q.Labeled
	p.SumHuman += q.SumHuman
	p.SumHuman2 += q.SumHuman2
	p.SumJudge += q.SumJudge
	p.SumJudge2 += q.SumJudge2
	p.SumHumanJudge += q.SumHumanJudge
	p.Unlabeled += q.Unlabeled
	p.SumJudgeU += q.SumJudgeU
	p.SumJudgeU2 += q.SumJudgeU2
	for j := range 2 {
		for k := range 2 {
			s.Agree[j][k] += d.Agree[j][k]
		}
	}
	return s
}

// JointContribution is one user's part of a JointSummary, from their
// totals (hx, hy) of the human metric and (fx, fy) of the judge metric:
// nothing without a judge score (fy = 0), unlabelled with a judge score
// only, labelled with both. redisstore's apply script computes the same
// in Lua (ppiContribution); the storetest suite checks both stores
// against a direct computation.
func JointContribution(hx, hy, fx, fy, cut float64) JointSummary {
	var s JointSummary
	if fy == 0 {
		return s
	}
	f := fx / fy
	if hy == 0 {
		s.PPI.Unlabeled, s.PPI.SumJudgeU, s.PPI.SumJudgeU2 = 1, f, f*f
		return s
	}
	h := hx / hy
	s.PPI = stats.PPISummary{Labeled: 1, SumHuman: h, SumHuman2: h * h, SumJudge: f, SumJudge2: f * f, SumHumanJudge: h * f}
	s.Agree[b2i(f > 0.5)][b2i(h > cut)] = 1
	return s
}

// JointDelta is the change of a JointSummary when one user's totals go
// from old to new: the new contribution minus the old, so the sums
// telescope to the direct computation over users however the updates
// are split (as SummaryDelta does for SumXY).
func JointDelta(old, new [4]float64, cut float64) JointSummary {
	a := JointContribution(old[0], old[1], old[2], old[3], cut)
	b := JointContribution(new[0], new[1], new[2], new[3], cut)
	neg := JointSummary{PPI: stats.PPISummary{
		Labeled: -a.PPI.Labeled, SumHuman: -a.PPI.SumHuman, SumHuman2: -a.PPI.SumHuman2, SumJudge: -a.PPI.SumJudge,
		SumJudge2: -a.PPI.SumJudge2, SumHumanJudge: -a.PPI.SumHumanJudge,
		Unlabeled: -a.PPI.Unlabeled, SumJudgeU: -a.PPI.SumJudgeU, SumJudgeU2: -a.PPI.SumJudgeU2,
	}}
	for j := range 2 {
		for k := range 2 {
			neg.Agree[j][k] = -a.Agree[j][k]
		}
	}
	return b.Add(neg)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Covariates says how a store fixes CUPED's covariate z (docs/statistics.md
// §9.1, docs/recording.md "Pre-exposure history").
//
// The store keeps, per experiment and unit, the unit's running totals
// (x, y) of every metric in Metrics, from every batch with Covariates
// (Deltas, applied Events and History alike, segment copies excluded),
// for HistoryTTL after the unit's last update: what the gateway saw of
// the unit on the experiment's routes. When a unit first appears in the
// batch's salt phase (its first Delta or Event there), the store copies
// its history as it stood before this batch into a per-phase record that
// never changes afterwards. In every data period of the phase, a unit's
// z for metric m is Z(m, x, y) of that copy, fixed when the unit first has
// data of m in the period. The copy predates the unit's first exposure in
// the phase, so z is a valid covariate in every ramp step: the arms of
// the phase's periods are independent of anything before it.
//
// A data period belongs to the salt phase of the first batch with
// Covariates the store got for it (later batches of the period keep it),
// so late data of an old period never reads a newer phase's copy.
type Covariates struct {
	// SaltPhase is the phase of the variant salt (Experiment.PhaseOrOne).
	SaltPhase int
	// HistoryTTL is how long a unit's history lives after its last
	// update (Experiment.CUPEDHistoryTTL).
	HistoryTTL time.Duration
	// Metrics are the metrics kept in the history, with how their z is
	// formed (MetricInfo.CovariateZ); segment statistics use their
	// metric's. A metric not in it gets z = 0.
	Metrics map[string]MetricInfo
}

// ExposureReader reads, per salt phase, the data period in which each unit
// was first exposed (its copy of the pre-exposure history was made):
// recorded from every batch with Covariates (CUPED, or rollout.cohort
// "new"); Snapshot.Fresh holds the sums decisions read. memstore and
// redisstore implement it; it is separate from Store so other Store
// implementations keep compiling.
type ExposureReader interface {
	// FirstExposures returns unit -> period for salt phase phase (empty
	// for an unknown experiment or phase).
	FirstExposures(ctx context.Context, experiment string, phase int) (map[UnitKey]int, error)
}

// NewCovariates returns the Covariates of e's batches: its salt phase, its
// history TTL and, with e.CUPED, every metric it can record whose registry
// entry names a covariate source. With rollout.cohort "new" and no CUPED
// it has no metrics: z = 0 for everyone and no history is kept, but the
// store still records each unit's first exposure in the salt phase and
// keeps the newly exposed cohort's sums (Snapshot.Fresh). Nil otherwise.
func NewCovariates(e *Experiment) *Covariates {
	if e == nil || !(e.CUPED || e.CohortOrDefault() == CohortNew) {
		return nil
	}
	c := &Covariates{SaltPhase: e.PhaseOrOne(), HistoryTTL: e.CUPEDHistoryTTLOrDefault(), Metrics: map[string]MetricInfo{}}
	if !e.CUPED {
		return c
	}
	add := func(name string) {
		if m, ok := LookupMetric(e, name); ok && m.Covariate != CovariateNone {
			c.Metrics[name] = m
		}
	}
	for _, m := range builtinMetrics {
		add(m.Name)
	}
	for i := range e.Metrics {
		add(e.Metrics[i].Name)
	}
	return c
}

// Info is what c knows of metric (or, for a segment statistic, of the
// metric it segments); ok is false for a metric without a covariate.
func (c *Covariates) Info(metric string) (MetricInfo, bool) {
	if c == nil {
		return MetricInfo{}, false
	}
	if base, _, _, ok := ParseSegmentMetric(metric); ok {
		metric = base
	}
	m, ok := c.Metrics[metric]
	return m, ok
}

// Z is a unit's covariate for metric given their pre-exposure totals
// (x, y) of it (0, 0: none).
func (c *Covariates) Z(metric string, x, y float64) float64 {
	m, ok := c.Info(metric)
	if !ok {
		return 0
	}
	return m.CovariateZ(x, y)
}

// Delta adds (DX, DY) to one user's totals of one metric; Hour says which
// hourly bucket the resulting change of the statistics belongs to.
type Delta struct {
	Variant int
	Unit    UnitKey
	Metric  string
	Hour    Hour
	DX, DY  float64
	// Segments: the same change applies to the user's totals of Metric
	// within each of these segment values (see SegmentMetric).
	Segments SegmentValues
}

// Event is a Delta that must be applied at most once per ID.
//
// With Cap > 0 it is also one of at most Cap events of its Group that
// apply: an event whose ID is new (or empty) is applied only while fewer
// than Cap events of the group have been; later ones are skipped and
// counted as duplicates. Feedback count metrics use it for their
// per-response cap (max_per_response): Group names the response and
// metric, ID is the client's event id (retries) or empty.
type Event struct {
	ID    string
	Group string
	Cap   int
	Delta
}

// Counter increments an operations counter of a variant.
type Counter struct {
	Variant int
	Name    string
	N       int64
}

// ApplyResult says what Apply did.
type ApplyResult struct {
	// Duplicate: the batch (or, in redisstore, every chunk of it) had
	// already been applied; nothing changed.
	Duplicate bool
	// DuplicateEvents is how many Events were skipped because their ID
	// had been applied before.
	DuplicateEvents int
}

// Validate reports ErrInvalidBatch (wrapped with the reason) for a batch no
// store can apply: no experiment or ID, a phase below 1, an empty metric
// name or a non-finite value.
func (b *Batch) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidBatch}, args...)...)
	}
	switch {
	case b.Experiment == "":
		return bad("no experiment")
	case b.ID == "":
		return bad("no batch id")
	case b.Phase < 1:
		return bad("phase %d", b.Phase)
	}
	check := func(d *Delta) error {
		if d.Metric == "" {
			return bad("empty metric name")
		}
		if IsSegmentMetric(d.Metric) {
			return bad("metric %q: %q is reserved for segment statistics", d.Metric, string(segmentSep))
		}
		if d.Segments.N > MaxSegmentDimensions {
			return bad("metric %q: %d segment dimensions", d.Metric, d.Segments.N)
		}
		if !finite(d.DX) || !finite(d.DY) {
			return bad("metric %q: non-finite value", d.Metric)
		}
		return nil
	}
	for i := range b.Deltas {
		if err := check(&b.Deltas[i]); err != nil {
			return err
		}
	}
	for i := range b.Events {
		ev := &b.Events[i]
		capped := ev.Group != "" && ev.Cap > 0
		if (ev.ID == "" && !capped) || ev.ID == "=" {
			return bad("event without id or capped group (or the reserved id \"=\")")
		}
		if ev.Cap < 0 || (ev.Cap > 0) != (ev.Group != "") || ev.Cap > MaxEventCap {
			return bad("event %q: group %q with cap %d", ev.ID, ev.Group, ev.Cap)
		}
		if err := check(&b.Events[i].Delta); err != nil {
			return err
		}
	}
	if c := b.Covariates; c != nil && (c.SaltPhase < 1 || c.HistoryTTL <= 0) {
		return bad("covariates: salt phase %d, history TTL %v", c.SaltPhase, c.HistoryTTL)
	}
	for i := range b.History {
		d := &b.History[i]
		if d.Segments.N > 0 {
			return bad("history metric %q: segments", d.Metric)
		}
		if err := check(d); err != nil {
			return err
		}
	}
	for _, c := range b.Counters {
		if c.Name == "" {
			return bad("empty counter name")
		}
	}
	for _, p := range b.Joint {
		if p.Human == "" || p.Judge == "" || p.Human == p.Judge || IsSegmentMetric(p.Human) || IsSegmentMetric(p.Judge) || !finite(p.Cut) {
			return bad("joint pair %q/%q", p.Human, p.Judge)
		}
	}
	for _, h := range b.Hist {
		if DriftFeatureIndex(h.Feature) < 0 || h.Bin < 0 || h.Bin >= DriftBins || h.N < 0 {
			return bad("drift histogram %q bin %d", h.Feature, h.Bin)
		}
	}
	return nil
}

// MaxEventCap bounds Event.Cap (and a metric's max_per_response).
const MaxEventCap = 1000

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
