package recorder

import (
	"math/bits"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/internal/yield"
)

// aggregate merges events between two cuts: per (experiment, phase,
// variant, unit, hour) one userAgg holding each metric's (Σx, count). The
// statistics depend only on each user's totals, so merging a user's
// observations before the store sees them changes nothing but the work.
type aggregate struct {
	eps     map[epKey]int32
	list    []*epAgg
	users   map[aggKey]*userAgg
	count   int64 // events since the last cut
	invalid int64 // of which unrecordable (no experiment, bad segments or cost)
	free    []*userAgg
	// lookup finds an experiment's config (WithExperiments), for the
	// cost-per-success metric; nil records none.
	lookup func(id string) *experiments.Experiment
}

type epKey struct {
	exp   string
	phase int
}

type epAgg struct {
	exp      string
	phase    int
	count    int64
	fbCount  int64 // of which feedback
	events   []experiments.Event
	counters map[int]int64 // variant -> unanalysed requests
	drift    map[driftKey]int64
	records  []experiments.FeedbackRecord
}

type aggKey struct {
	ep      int32
	variant int32
	unit    experiments.UnitKey
	hour    experiments.Hour
	segs    experiments.SegmentValues
}

type userAgg struct {
	has uint16 // bit i: outcomeMetrics[i] has data
	v   [numOutcomeMetrics][2]float64
	fb  []fbDelta
}

type fbDelta struct {
	metric string
	dx, dy float64
}

func (a *aggregate) init() {
	a.eps = make(map[epKey]int32)
	a.users = make(map[aggKey]*userAgg)
}

func (a *aggregate) ep(exp string, phase int) int32 {
	if phase < 1 {
		phase = 1
	}
	k := epKey{exp, phase}
	i, ok := a.eps[k]
	if !ok {
		i = int32(len(a.list))
		a.eps[k] = i
		a.list = append(a.list, &epAgg{exp: exp, phase: phase})
	}
	return i
}

func (a *aggregate) user(k aggKey) *userAgg {
	u := a.users[k]
	if u == nil {
		if n := len(a.free); n > 0 {
			u = a.free[n-1]
			a.free = a.free[:n-1]
		} else {
			u = new(userAgg)
		}
		a.users[k] = u
	}
	return u
}

func hourOr(t time.Time, now experiments.Hour) experiments.Hour {
	if t.IsZero() {
		return now
	}
	return experiments.HourOf(t)
}

// addOutcome adds o's metric values, clamped by capv (the recorder's
// caps of o's experiment; nil: none), to its user's aggregate.
func (a *aggregate) addOutcome(o *experiments.Outcome, now experiments.Hour, capv func(string, *[numOutcomeMetrics]float64)) {
	a.count++
	if !o.Recordable() {
		// Unrecordable; in a batch it would make the store refuse the
		// whole batch (ErrInvalidBatch), everyone's events with it.
		a.invalid++
		return
	}
	ei := a.ep(o.Experiment, o.Phase)
	e := a.list[ei]
	e.count++
	e.addDrift(o, hourOr(o.At, now))
	var u *userAgg
	if !o.Analysed {
		if e.counters == nil {
			e.counters = make(map[int]int64)
		}
		e.counters[o.Variant]++
		// With CUPED, what the gateway sees of a unit it does not analyse
		// (outside coverage, holdout) is that unit's pre-exposure history
		// (Batch.History), merged per unit.
		if o.Unit == (experiments.UnitKey{}) || !a.cuped(o.Experiment) {
			return
		}
		u = a.user(aggKey{ep: ei, variant: historyVariant, unit: o.Unit})
	} else {
		u = a.user(aggKey{ep: ei, variant: int32(o.Variant), unit: o.Unit, hour: hourOr(o.At, now), segs: o.Segments})
	}
	var vals [numOutcomeMetrics]float64
	var has [numOutcomeMetrics]bool
	outcomeValues(o, &vals, &has)
	if capv != nil {
		capv(o.Experiment, &vals)
	}
	for i := range vals {
		if has[i] {
			u.v[i][0] += vals[i]
			u.v[i][1]++
			u.has |= 1 << i
		}
	}
	// Cost per success: the spend is its x; the successes (y) come with
	// the feedback, on the same user key (addFeedback).
	if !o.UsageMissing && a.successSignal(o.Experiment) != nil {
		u.addFB(experiments.MetricCostPerSuccess, o.Cost, 0)
	}
	// Cache hit ratio: cached prompt tokens over prompt tokens (issue 15).
	if !o.UsageMissing && o.PromptTokens > 0 {
		u.addFB(experiments.MetricCacheHitRatio, float64(min(max(o.CachedTokens, 0), o.PromptTokens)), float64(o.PromptTokens))
	}
}

// successSignal is the experiment's cost-per-success config, or nil.
func (a *aggregate) successSignal(exp string) *experiments.Experiment {
	if a.lookup == nil {
		return nil
	}
	if e := a.lookup(exp); e != nil && e.Success != nil {
		return e
	}
	return nil
}

// historyVariant marks the aggregate of a unit's unanalysed outcomes:
// they go to Batch.History, not to the statistics.
const historyVariant = -1

// cuped reports whether exp keeps CUPED covariates (cheap: no Covariates
// is built).
func (a *aggregate) cuped(exp string) bool {
	if a.lookup == nil {
		return false
	}
	e := a.lookup(exp)
	return e != nil && e.CUPED
}

// covariates is what the store needs to fix CUPED covariates for a batch
// of exp (Experiment.CUPED; needs WithExperiments), nil without: every
// period of every phase gets them, because the covariate is the unit's
// pre-exposure history, copied at their first exposure in the phase
// (experiments.Covariates), never data of an earlier ramp step.
func (a *aggregate) covariates(exp string) *experiments.Covariates {
	if a.lookup == nil {
		return nil
	}
	return experiments.NewCovariates(a.lookup(exp))
}

// joint is the joint sums of a human signal and the judge's score the
// store keeps for exp (experiments.Experiment.JudgePairs; needs
// WithExperiments): every batch of the experiment asks for the same
// pairs, so the sums cover every update of a user's totals.
func (a *aggregate) joint(exp string) []experiments.JointPair {
	if a.lookup == nil {
		return nil
	}
	return a.lookup(exp).JudgePairs()
}

func (u *userAgg) addFB(metric string, dx, dy float64) {
	for i := range u.fb {
		if u.fb[i].metric == metric {
			u.fb[i].dx += dx
			u.fb[i].dy += dy
			return
		}
	}
	u.fb = append(u.fb, fbDelta{metric: metric, dx: dx, dy: dy})
}

func (a *aggregate) addFeedback(f *experiments.Feedback, now experiments.Hour) {
	a.count++
	ei := a.ep(f.Experiment, f.Phase)
	e := a.list[ei]
	e.count++
	e.fbCount++
	h := hourOr(f.At, now)
	e.addDriftFeedback(f, h)
	if rec, ok := f.Record(); ok {
		if rec.At.IsZero() {
			rec.At = h.Time()
		}
		e.records = append(e.records, rec)
	}
	// A success signal also counts its successes as the y of cost per
	// success, under the same vote rules (its own event id and group, so
	// one response still counts once).
	succ, isSucc := 0.0, false
	if exp := a.successSignal(f.Experiment); exp != nil {
		succ, isSucc = exp.SuccessValue(f.Metric, f.Value)
	}
	if group, capN := f.Vote(); f.EventID != "" || capN > 0 {
		e.events = append(e.events, experiments.Event{ID: f.EventID, Group: group, Cap: capN, Delta: experiments.Delta{
			Variant: f.Variant, Unit: f.Unit, Metric: f.Metric, Hour: h, DX: f.Value, DY: 1, Segments: f.Segments,
		}})
		if isSucc {
			id, g := f.EventID, group
			if id != "" {
				id += "#" + experiments.MetricCostPerSuccess
			}
			if g != "" {
				g += "#" + experiments.MetricCostPerSuccess
			}
			e.events = append(e.events, experiments.Event{ID: id, Group: g, Cap: capN, Delta: experiments.Delta{
				Variant: f.Variant, Unit: f.Unit, Metric: experiments.MetricCostPerSuccess, Hour: h, DX: 0, DY: succ, Segments: f.Segments,
			}})
		}
		return
	}
	u := a.user(aggKey{ep: ei, variant: int32(f.Variant), unit: f.Unit, hour: h, segs: f.Segments})
	u.addFB(f.Metric, f.Value, 1)
	if isSucc {
		u.addFB(experiments.MetricCostPerSuccess, 0, succ)
	}
}

// cut returns one batch per experiment phase, with the number of
// feedback events each holds, and resets the aggregate. Unrecordable
// events are returned in invalid, not in a batch.
func (a *aggregate) cut(prefix string, seq *uint64, ys *yield.Slicer) (bs []*experiments.Batch, fb []int64, invalid int64) {
	bs = make([]*experiments.Batch, len(a.list))
	fb = make([]int64, len(a.list))
	for i, e := range a.list {
		fb[i] = e.fbCount
		b := &experiments.Batch{ID: batchID(prefix, seq), Experiment: e.exp, Phase: e.phase, Count: e.count, Events: e.events, Hist: e.driftDeltas(), Records: e.records,
			Covariates: a.covariates(e.exp), Joint: a.joint(e.exp)}
		for v, n := range e.counters {
			b.Counters = append(b.Counters, experiments.Counter{Variant: v, Name: experiments.CounterUnanalysed, N: n})
		}
		bs[i] = b
	}
	// The deltas' slices are sized before they are filled: appended to
	// from nothing, a cut at full load on one core spent 87% of its time
	// growing them (pprof: growslice, 2.5% of all CPU), copying each
	// batch's deltas about twice over and leaving the copies to the GC.
	// Counting first is one more pass over the users map, which
	// allocates nothing per user.
	need := make([][2]int, len(a.list)) // per batch: deltas, history
	for k, u := range a.users {
		n := bits.OnesCount16(u.has) + len(u.fb)
		if k.variant == historyVariant {
			need[k.ep][1] += n
		} else {
			need[k.ep][0] += n
		}
	}
	for i, b := range bs {
		if n := need[i][0]; n > 0 {
			b.Deltas = make([]experiments.Delta, 0, n)
		}
		if n := need[i][1]; n > 0 {
			b.History = make([]experiments.Delta, 0, n)
		}
	}
	for k, u := range a.users {
		b := bs[k.ep]
		out := &b.Deltas
		if k.variant == historyVariant {
			out = &b.History
		}
		for i := range u.v {
			if u.has&(1<<i) != 0 {
				*out = append(*out, experiments.Delta{
					Variant: int(k.variant), Unit: k.unit, Metric: outcomeMetrics[i], Hour: k.hour,
					DX: u.v[i][0], DY: u.v[i][1], Segments: k.segs,
				})
			}
		}
		for _, f := range u.fb {
			*out = append(*out, experiments.Delta{Variant: int(k.variant), Unit: k.unit, Metric: f.metric, Hour: k.hour, DX: f.dx, DY: f.dy, Segments: k.segs})
		}
		*u = userAgg{fb: u.fb[:0]}
		a.free = append(a.free, u)
		ys.Tick()
	}
	invalid = a.invalid
	clear(a.users)
	clear(a.eps)
	a.list = a.list[:0]
	a.count, a.invalid = 0, 0
	return bs, fb, invalid
}

// feedbackOnly returns the feedback part of b, under a new batch id: its
// events, feedback records, feedback drift and feedback deltas (metrics
// that are not request outcomes), and fb events as its Count. The
// recorder keeps it when the pending limit makes it drop b's outcomes.
// The new id matters: redisstore marks applied chunks of a batch id, and
// the smaller batch cuts into other chunks; every feedback event the API
// sends has an event id or a response group, so whatever a lost reply
// had applied of b the store skips.
func feedbackOnly(b *experiments.Batch, fb int64) *experiments.Batch {
	out := &experiments.Batch{ID: b.ID + "-fb", Experiment: b.Experiment, Phase: b.Phase, Count: fb,
		Events: b.Events, Records: b.Records, Covariates: b.Covariates, Joint: b.Joint}
	for _, d := range b.Deltas {
		if !isOutcomeMetric(d.Metric) {
			out.Deltas = append(out.Deltas, d)
		}
	}
	for _, h := range b.Hist {
		if experiments.DriftFeatureIndex(h.Feature) >= firstFeedbackFeature {
			out.Hist = append(out.Hist, h)
		}
	}
	return out
}

// firstFeedbackFeature is the index of the first drift feature that
// feedback (not the outcome) counts (see addDriftFeedback).
const firstFeedbackFeature = 4

func isOutcomeMetric(m string) bool {
	for _, o := range outcomeMetrics {
		if o == m {
			return true
		}
	}
	return false
}
