package memstore

import (
	"context"
	"time"

	"github.com/abgate/abgate/experiments"
)

// preExposure is an experiment's CUPED state (experiments.Covariates):
// each unit's pre-exposure history, the per-salt-phase copies of it taken
// at each unit's first exposure in the phase, and the salt phase each
// data period belongs to.
//
// Memory: the history is bounded by its TTL, swept every quarter TTL (at
// most once a minute) under the store's lock; the per-phase copies live
// as long as the experiment (Expire drops them with it).
type preExposure struct {
	hist      map[experiments.UnitKey]*history
	copies    map[int]map[experiments.UnitKey]*phaseCopy // salt phase -> unit -> copy
	pin       map[int]int                                // data period -> salt phase
	lastSweep time.Time
}

// phaseCopy is a unit's history copied at its first exposure in a salt
// phase, and the data period that exposure was in.
type phaseCopy struct {
	totals map[string][2]float64
	period int
}

// history is a unit's running (x, y) per metric and when it expires.
type history struct {
	totals  map[string][2]float64
	expires time.Time
}

// covariates is what one Apply needs: nil c means no covariates (z = 0).
type covariates struct {
	c       *experiments.Covariates
	pre     *preExposure
	copies  map[experiments.UnitKey]*phaseCopy // of the batch's salt phase
	period  int
	now     time.Time
	applied []*experiments.Delta // deltas applied, for the history
}

// begin pins b's period to a salt phase and returns its covariates.
func (p *preExposure) begin(b *experiments.Batch, now time.Time) covariates {
	c := b.Covariates
	if c == nil {
		return covariates{}
	}
	if p.pin == nil {
		p.pin = make(map[int]int)
		p.copies = make(map[int]map[experiments.UnitKey]*phaseCopy)
		p.hist = make(map[experiments.UnitKey]*history)
	}
	sp, ok := p.pin[b.Phase]
	if !ok {
		sp = c.SaltPhase
		p.pin[b.Phase] = sp
	}
	cp := p.copies[sp]
	if cp == nil {
		cp = make(map[experiments.UnitKey]*phaseCopy)
		p.copies[sp] = cp
	}
	return covariates{c: c, pre: p, copies: cp, period: b.Phase, now: now}
}

// expose copies unit's history, as it stood before this batch (finish
// adds the batch), at the unit's first entry of a metric new to it in a
// period, if it has no copy in the salt phase yet: a unit's first entry
// in a phase is always new to its period, so the copy holds nothing of
// the phase, and later entries cost no lookup of the copies.
func (cv *covariates) expose(unit experiments.UnitKey) {
	if _, ok := cv.copies[unit]; ok {
		return
	}
	cp := &phaseCopy{totals: map[string][2]float64{}, period: cv.period}
	if h := cv.pre.hist[unit]; h != nil && cv.now.Before(h.expires) {
		for m, t := range h.totals {
			cp.totals[m] = t
		}
	}
	cv.copies[unit] = cp
}

// fresh reports whether unit was first exposed in this batch's period
// (of its salt phase), making its copy if this is its first entry: its
// deltas then also go to the newly exposed cohort's sums
// (Snapshot.Fresh). False without covariates.
func (cv *covariates) fresh(unit experiments.UnitKey) bool {
	if cv.c == nil {
		return false
	}
	cv.expose(unit)
	return cv.copies[unit].period == cv.period
}

// z is unit's covariate for metric (a segment statistic reads the
// history of the metric it segments).
func (cv *covariates) z(unit experiments.UnitKey, metric string) float64 {
	if cv.c == nil {
		return 0
	}
	cv.expose(unit)
	m, ok := cv.c.Info(metric)
	if !ok {
		return 0
	}
	t := cv.copies[unit].totals[m.Name]
	return m.CovariateZ(t[0], t[1])
}

// finish adds the batch's applied deltas and its History to the units'
// histories, each of which then expires HistoryTTL from now, and sweeps
// expired histories now and then.
func (p *preExposure) finish(b *experiments.Batch, cv covariates, now time.Time) {
	if cv.c == nil {
		return
	}
	ttl := cv.c.HistoryTTL
	add := func(d *experiments.Delta) {
		if _, ok := cv.c.Metrics[d.Metric]; !ok {
			return
		}
		h := p.hist[d.Unit]
		if h == nil || !now.Before(h.expires) {
			h = &history{totals: make(map[string][2]float64, 4)}
			p.hist[d.Unit] = h
		}
		t := h.totals[d.Metric]
		h.totals[d.Metric] = [2]float64{t[0] + d.DX, t[1] + d.DY}
		h.expires = now.Add(ttl)
	}
	for _, d := range cv.applied {
		add(d)
	}
	for i := range b.History {
		add(&b.History[i])
	}
	if now.Sub(p.lastSweep) >= max(ttl/4, time.Minute) {
		for u, h := range p.hist {
			if !now.Before(h.expires) {
				delete(p.hist, u)
			}
		}
		p.lastSweep = now
	}
}

// FirstExposures implements experiments.ExposureReader.
func (s *Store) FirstExposures(ctx context.Context, exp string, phase int) (map[experiments.UnitKey]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[experiments.UnitKey]int{}
	if e := s.get(exp, false); e != nil {
		for u, c := range e.pre.copies[phase] {
			out[u] = c.period
		}
	}
	return out, nil
}
