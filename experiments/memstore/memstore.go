// Package memstore is the in-memory experiments.Store: a mutex and maps.
// It is the embedded default for a single replica (nothing survives a
// restart) and the reference the Redis store is tested against.
package memstore

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/internal/yield"
)

var (
	_ experiments.Store       = (*Store)(nil)
	_ experiments.DriftReader = (*Store)(nil)
	_ experiments.FeedbackLog = (*Store)(nil)

	_ experiments.ExposureReader = (*Store)(nil)
)

// Store is an in-memory experiments.Store. The zero value is not usable;
// call New.
type Store struct {
	now         func() time.Time
	dedupWindow time.Duration
	logKeep     time.Duration
	logMax      int

	mu   sync.Mutex
	exps map[string]*experiment
}

// Option configures a Store.
type Option func(*Store)

// WithClock replaces time.Now (expiry), for tests.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New returns an empty Store.
func New(opts ...Option) *Store {
	s := &Store{
		now: time.Now, dedupWindow: time.Hour, exps: make(map[string]*experiment),
		logKeep: experiments.DefaultFeedbackLogRetention, logMax: experiments.DefaultFeedbackLogMax,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

type experiment struct {
	phases    map[int]*phase
	events    map[string]struct{}  // applied feedback event ids
	groups    map[string]int       // events applied per capped group
	batches   map[string]time.Time // applied batch ids -> when
	lastPrune time.Time
	deadline  time.Time // zero: no expiry
	drift     map[experiments.Hour]map[experiments.HistKey]int64
	log       []experiments.FeedbackRecord // in arrival order
	pre       preExposure
}

type userKey struct {
	variant int
	unit    experiments.UnitKey
}

// totals are a user's running sums of one metric in a data period, and z
// the covariate fixed when they first had data of it there
// (Batch.Covariates, covariates.go).
type totals struct{ x, y, z float64 }

type phase struct {
	stats    map[experiments.VariantMetric]experiments.Summary
	counters map[experiments.VariantMetric]int64
	segs     map[experiments.SegmentKey]experiments.Summary
	fresh    map[experiments.VariantMetric]experiments.Summary // Snapshot.Fresh
	users    map[userKey]map[string]totals
	hours    map[experiments.Hour]map[experiments.VariantMetric]experiments.Summary
	joint    map[experiments.JointKey]experiments.JointSummary
}

// get returns the live experiment, dropping it if it has expired; with
// create it makes a missing one. Call with s.mu held.
func (s *Store) get(id string, create bool) *experiment {
	e := s.exps[id]
	if e != nil && !e.deadline.IsZero() && !s.now().Before(e.deadline) {
		delete(s.exps, id)
		e = nil
	}
	if e == nil && create {
		e = &experiment{
			phases:  make(map[int]*phase),
			events:  make(map[string]struct{}),
			groups:  make(map[string]int),
			batches: make(map[string]time.Time),
		}
		s.exps[id] = e
	}
	return e
}

// Apply implements experiments.Store. The whole batch is applied under one
// lock, so it is atomic.
func (s *Store) Apply(ctx context.Context, b *experiments.Batch) (experiments.ApplyResult, error) {
	var res experiments.ApplyResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := b.Validate(); err != nil {
		return res, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.get(b.Experiment, true)
	now := s.now()
	if now.Sub(e.lastPrune) > s.dedupWindow/4 {
		for id, at := range e.batches {
			if now.Sub(at) > s.dedupWindow {
				delete(e.batches, id)
			}
		}
		e.lastPrune = now
	}
	if _, ok := e.batches[b.ID]; ok {
		res.Duplicate = true
		return res, nil
	}
	e.batches[b.ID] = now
	p := e.phases[b.Phase]
	if p == nil {
		p = &phase{
			stats:    make(map[experiments.VariantMetric]experiments.Summary),
			counters: make(map[experiments.VariantMetric]int64),
			segs:     make(map[experiments.SegmentKey]experiments.Summary),
			fresh:    make(map[experiments.VariantMetric]experiments.Summary),
			users:    make(map[userKey]map[string]totals),
			hours:    make(map[experiments.Hour]map[experiments.VariantMetric]experiments.Summary),
			joint:    make(map[experiments.JointKey]experiments.JointSummary),
		}
		e.phases[b.Phase] = p
	}
	// Entries go in hour order, so each hourly bucket gets the change
	// that happened during that hour (the Redis store does the same).
	type entry struct {
		d     *experiments.Delta
		id    string
		group string
		cap   int
		event bool
	}
	entries := make([]entry, 0, len(b.Deltas)+len(b.Events))
	for i := range b.Deltas {
		entries = append(entries, entry{d: &b.Deltas[i]})
	}
	for i := range b.Events {
		ev := &b.Events[i]
		entries = append(entries, entry{d: &ev.Delta, id: ev.ID, group: ev.Group, cap: ev.Cap, event: true})
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].d.Hour < entries[j].d.Hour })
	cov := e.pre.begin(b, now)
	// Applying a 100 ms interval's batch at 2,000 requests/s ran for
	// about 2 ms in a runtime/trace of the load harness's tail scenario;
	// on a gateway pinned to one core every request that arrived
	// meanwhile waited (issue "Live streams at scale"). ys pauses for
	// them every yield.Slice of work; readers of the store wait for the
	// lock.
	var ys yield.Slicer
	for _, en := range entries {
		ys.Tick()
		if en.event && !e.admit(en.id, en.group, en.cap) {
			res.DuplicateEvents++
			continue
		}
		p.apply(en.d, &cov, b.Joint)
		cov.applied = append(cov.applied, en.d)
	}
	e.pre.finish(b, cov, now)
	for _, c := range b.Counters {
		p.counters[experiments.VariantMetric{Variant: c.Variant, Metric: c.Name}] += c.N
	}
	for _, h := range b.Hist {
		if e.drift == nil {
			e.drift = make(map[experiments.Hour]map[experiments.HistKey]int64)
		}
		m := e.drift[h.Hour]
		if m == nil {
			m = make(map[experiments.HistKey]int64)
			e.drift[h.Hour] = m
		}
		m[experiments.HistKey{Variant: h.Variant, Feature: h.Feature, Bin: h.Bin}] += h.N
	}
	for _, r := range b.Records {
		if r.Expires.IsZero() {
			r.Expires = r.At.Add(s.logKeep)
		}
		e.log = append(e.log, r)
	}
	if len(b.Records) > 0 {
		e.pruneLog(now, s.logMax)
	}
	return res, nil
}

// admit reports whether an event applies, and records it if so: its id
// (if any) must be new, and its capped group (if any) must have room. An
// id is remembered even when the cap refuses it, as the Redis script
// does, so a retry of a refused event stays refused.
func (e *experiment) admit(id, group string, capN int) bool {
	if id != "" {
		if _, ok := e.events[id]; ok {
			return false
		}
		e.events[id] = struct{}{}
	}
	if group != "" && capN > 0 {
		if e.groups[group] >= capN {
			return false
		}
		e.groups[group]++
	}
	return true
}

func (p *phase) apply(d *experiments.Delta, cov *covariates, joint []experiments.JointPair) {
	uk := userKey{d.Variant, d.Unit}
	u := p.users[uk]
	if u == nil {
		u = make(map[string]totals, 4)
		p.users[uk] = u
	}
	var before [][4]float64 // the user's joint totals of each pair d touches
	for _, jp := range joint {
		if d.Metric == jp.Human || d.Metric == jp.Judge {
			before = append(before, jointTotals(u, jp))
		}
	}
	delta := userDelta(u, d.Metric, d.DX, d.DY, cov, d.Unit)
	k := 0
	for _, jp := range joint {
		if d.Metric == jp.Human || d.Metric == jp.Judge {
			jk := experiments.JointKey{Variant: d.Variant, Human: jp.Human, Judge: jp.Judge}
			p.joint[jk] = p.joint[jk].Add(experiments.JointDelta(before[k], jointTotals(u, jp), jp.Cut))
			k++
		}
	}
	// Segment statistics: the user's totals within each segment value
	// are kept under the segment metric name, like any other metric.
	d.ForEachSegment(func(dim, value int, name string) {
		sk := experiments.SegmentKey{Variant: d.Variant, Metric: d.Metric, Dimension: dim, Value: value}
		p.segs[sk] = p.segs[sk].Add(userDelta(u, name, d.DX, d.DY, cov, d.Unit))
	})
	vm := experiments.VariantMetric{Variant: d.Variant, Metric: d.Metric}
	p.stats[vm] = p.stats[vm].Add(delta)
	if cov.fresh(d.Unit) {
		p.fresh[vm] = p.fresh[vm].Add(delta)
	}
	h := p.hours[d.Hour]
	if h == nil {
		h = make(map[experiments.VariantMetric]experiments.Summary)
		p.hours[d.Hour] = h
	}
	h[vm] = h[vm].Add(delta)
}

// jointTotals are a user's totals (x, y) of a pair's human metric, then
// of its judge metric.
func jointTotals(u map[string]totals, jp experiments.JointPair) [4]float64 {
	h, f := u[jp.Human], u[jp.Judge]
	return [4]float64{h.x, h.y, f.x, f.y}
}

// pruneLog deletes expired records (free text past its retention goes
// here) and, past maxRecords, the oldest.
func (e *experiment) pruneLog(now time.Time, maxRecords int) {
	kept := e.log[:0]
	for _, r := range e.log {
		if now.Before(r.Expires) {
			kept = append(kept, r)
		}
	}
	clear(e.log[len(kept):])
	e.log = kept
	if n := len(e.log) - maxRecords; n > 0 {
		e.log = append(e.log[:0], e.log[n:]...)
	}
}

// DriftHistograms implements experiments.DriftReader.
func (s *Store) DriftHistograms(ctx context.Context, exp string, from, to time.Time) ([]experiments.HourHistograms, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.get(exp, false)
	if e == nil {
		return nil, nil
	}
	lo, hi := experiments.HourOf(from), experiments.HourOf(to)
	if !to.Equal(hi.Time()) {
		hi++
	}
	var out []experiments.HourHistograms
	for h, m := range e.drift {
		if h < lo || h >= hi {
			continue
		}
		hh := experiments.HourHistograms{Hour: h.Time(), Counts: make(map[experiments.HistKey]int64, len(m))}
		for k, v := range m {
			hh.Counts[k] = v
		}
		out = append(out, hh)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hour.Before(out[j].Hour) })
	return out, nil
}

// FeedbackRecords implements experiments.FeedbackLog.
func (s *Store) FeedbackRecords(ctx context.Context, exp string, since time.Time, limit int) ([]experiments.FeedbackRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.get(exp, false)
	if e == nil {
		return nil, nil
	}
	e.pruneLog(s.now(), s.logMax)
	// Deduplicate over the whole log before filtering by since, so an
	// export resuming after an event doesn't get its retry.
	all := append([]experiments.FeedbackRecord(nil), e.log...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].At.Before(all[j].At) })
	var out []experiments.FeedbackRecord
	for _, r := range experiments.DedupRecords(all) {
		if !r.At.Before(since) {
			out = append(out, r)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// userDelta adds (dx, dy) to the user's totals of metric and returns the
// change of the Summary. A user new to metric gets their covariate.
func userDelta(u map[string]totals, metric string, dx, dy float64, cov *covariates, unit experiments.UnitKey) experiments.Summary {
	t0, seen := u[metric]
	if !seen {
		t0.z = cov.z(unit, metric)
	}
	t1 := totals{t0.x + dx, t0.y + dy, t0.z}
	u[metric] = t1
	return experiments.SummaryDelta(!seen, t0.x, t0.y, t1.x, t1.y, t0.z)
}

// Summaries implements experiments.Store.
func (s *Store) Summaries(ctx context.Context, exp string, ph int) (experiments.Snapshot, error) {
	snap := experiments.Snapshot{
		Stats:    make(map[experiments.VariantMetric]experiments.Summary),
		Counters: make(map[experiments.VariantMetric]int64),
		Segments: make(map[experiments.SegmentKey]experiments.Summary),
		Fresh:    make(map[experiments.VariantMetric]experiments.Summary),
		Joint:    make(map[experiments.JointKey]experiments.JointSummary),
	}
	if err := ctx.Err(); err != nil {
		return snap, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.get(exp, false)
	if e == nil || e.phases[ph] == nil {
		return snap, nil
	}
	p := e.phases[ph]
	for k, v := range p.stats {
		snap.Stats[k] = v
	}
	for k, v := range p.counters {
		snap.Counters[k] = v
	}
	for k, v := range p.segs {
		snap.Segments[k] = v
	}
	for k, v := range p.joint {
		snap.Joint[k] = v
	}
	for k, v := range p.fresh {
		snap.Fresh[k] = v
	}
	return snap, nil
}

// Hourly implements experiments.Store.
func (s *Store) Hourly(ctx context.Context, exp string, ph int, from, to time.Time) ([]experiments.HourSummaries, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.get(exp, false)
	if e == nil || e.phases[ph] == nil {
		return nil, nil
	}
	lo, hi := experiments.HourOf(from), experiments.HourOf(to)
	if !to.Equal(hi.Time()) {
		hi++ // [from, to) touches the hour to falls in
	}
	var out []experiments.HourSummaries
	for h, m := range e.phases[ph].hours {
		if h < lo || h >= hi {
			continue
		}
		hs := experiments.HourSummaries{Hour: h.Time(), Stats: make(map[experiments.VariantMetric]experiments.Summary, len(m))}
		for k, v := range m {
			hs.Stats[k] = v
		}
		out = append(out, hs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hour.Before(out[j].Hour) })
	return out, nil
}

// Expire implements experiments.Store. An unknown experiment is a no-op.
func (s *Store) Expire(ctx context.Context, exp string, after time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.get(exp, false); e != nil {
		e.deadline = s.now().Add(after)
	}
	return nil
}
