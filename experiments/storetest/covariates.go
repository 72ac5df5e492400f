package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// covMetrics are the metrics of the covariate test: a Mean metric (z =
// pre-exposure total), bounded Ratio metrics (z = pre-exposure ratio; a
// rating's z without history is 1, its lower bound), a custom count and
// a metric without a covariate (the judge's).
var covMetrics = []string{experiments.MetricRequests, experiments.MetricError, experiments.MetricRating, "escalations", experiments.MetricJudgeScore}

// CovariatesFor is the Covariates a recorder sends for the test's
// experiment at salt phase phase.
func CovariatesFor(exp string, phase int, ttl time.Duration) *experiments.Covariates {
	return experiments.NewCovariates(&experiments.Experiment{ID: exp, CUPED: true, Phase: phase,
		CUPEDHistoryTTL: experiments.Duration(ttl),
		Metrics:         []experiments.Metric{{Name: "escalations", Kind: experiments.MetricCount}}})
}

// CovModel recomputes CUPED's covariate sums the slow, obvious way, batch
// by batch (experiments.Covariates): each unit's history, the copy of it
// taken at the unit's first applied observation in a salt phase (as it
// stood before that batch), the salt phase of each period (its first
// batch's), and each period's per-user totals with z from the copy.
type CovModel struct {
	hist   map[experiments.UnitKey]map[string][2]float64
	copies map[int]map[experiments.UnitKey]map[string][2]float64
	pin    map[int]int
	seen   map[string]bool
	c      map[int]*experiments.Covariates // per period
	obs    map[int][]Obs                   // applied, per period
	first  map[int]map[experiments.UnitKey]int
}

// NewCovModel returns an empty model.
func NewCovModel() *CovModel {
	return &CovModel{hist: map[experiments.UnitKey]map[string][2]float64{}, copies: map[int]map[experiments.UnitKey]map[string][2]float64{},
		pin: map[int]int{}, seen: map[string]bool{}, c: map[int]*experiments.Covariates{}, obs: map[int][]Obs{},
		first: map[int]map[experiments.UnitKey]int{}}
}

// Apply adds one batch: obs are its observations (EventID: applied once
// per experiment), history its units' unanalysed observations.
func (m *CovModel) Apply(period int, c *experiments.Covariates, obs, history []Obs) {
	sp, ok := m.pin[period]
	if !ok {
		sp = c.SaltPhase
		m.pin[period] = sp
		m.c[period] = c
	}
	if m.copies[sp] == nil {
		m.copies[sp] = map[experiments.UnitKey]map[string][2]float64{}
		m.first[sp] = map[experiments.UnitKey]int{}
	}
	var applied []Obs
	for _, o := range obs {
		if o.EventID != "" {
			if m.seen[o.EventID] {
				continue
			}
			m.seen[o.EventID] = true
		}
		if _, ok := m.copies[sp][o.Unit]; !ok {
			cp := map[string][2]float64{}
			for k, v := range m.hist[o.Unit] {
				cp[k] = v
			}
			m.copies[sp][o.Unit] = cp
			m.first[sp][o.Unit] = period
		}
		applied = append(applied, o)
	}
	m.obs[period] = append(m.obs[period], applied...)
	for _, o := range append(applied, history...) {
		if _, ok := c.Metrics[o.Metric]; !ok {
			continue
		}
		if m.hist[o.Unit] == nil {
			m.hist[o.Unit] = map[string][2]float64{}
		}
		t := m.hist[o.Unit][o.Metric]
		m.hist[o.Unit][o.Metric] = [2]float64{t[0] + o.X, t[1] + o.Y}
	}
}

// FirstExposures is each unit's period of first exposure in salt phase
// sp.
func (m *CovModel) FirstExposures(sp int) map[experiments.UnitKey]int { return m.first[sp] }

// Forget drops every unit's history (it expired).
func (m *CovModel) Forget() { clear(m.hist) }

// Expected returns period's statistics with their covariate sums.
func (m *CovModel) Expected(period int) map[experiments.VariantMetric]experiments.Summary {
	return m.expected(period, false)
}

// ExpectedFresh returns period's statistics over the units first exposed
// in it (experiments.Snapshot.Fresh): the units whose copy in the
// period's salt phase was made in this period.
func (m *CovModel) ExpectedFresh(period int) map[experiments.VariantMetric]experiments.Summary {
	return m.expected(period, true)
}

func (m *CovModel) expected(period int, fresh bool) map[experiments.VariantMetric]experiments.Summary {
	type uk struct {
		v int
		u experiments.UnitKey
		m string
	}
	tot := map[uk][2]float64{}
	first := m.first[m.pin[period]]
	for _, o := range m.obs[period] {
		if fresh && first[o.Unit] != period {
			continue
		}
		k := uk{o.Variant, o.Unit, o.Metric}
		t := tot[k]
		tot[k] = [2]float64{t[0] + o.X, t[1] + o.Y}
	}
	c, cp := m.c[period], m.copies[m.pin[period]]
	out := map[experiments.VariantMetric]experiments.Summary{}
	for k, t := range tot {
		vm := experiments.VariantMetric{Variant: k.v, Metric: k.m}
		s := out[vm]
		x, y := t[0], t[1]
		h := cp[k.u][k.m]
		z := c.Z(k.m, h[0], h[1])
		var r float64
		if y != 0 {
			r = x / y
		}
		s = s.Add(experiments.Summary{N: 1, SumX: x, SumX2: x * x, SumY: y, SumY2: y * y, SumXY: x * y, SumR: r, SumR2: r * r,
			SumZ: z, SumZ2: z * z, SumXZ: x * z, SumYZ: y * z, SumRZ: r * z})
		out[vm] = s
	}
	return out
}

// covBatches cuts obs (and history, into the last one) into batches of
// about size observations with Covariates c, and feeds them to the model.
func covBatches(m *CovModel, exp string, period int, c *experiments.Covariates, obs, history []Obs, size int) []*experiments.Batch {
	var out []*experiments.Batch
	for start := 0; start < len(obs); start += size {
		end := min(start+size, len(obs))
		b := ToBatches(exp, period, obs[start:end], size)[0]
		b.Covariates = c
		var h []Obs
		if end == len(obs) {
			h = history
			for _, o := range history {
				b.History = append(b.History, experiments.Delta{Unit: o.Unit, Metric: o.Metric, DX: o.X, DY: o.Y})
			}
		}
		m.Apply(period, c, obs[start:end], h)
		out = append(out, b)
	}
	return out
}

// testCovariates: the pre-exposure covariate across ramp steps and a
// reshuffle. Period 1 (salt phase 1) sees units 0..99 unanalysed (their
// history) and exposes 100..199; period 2, a sticky ramp step of the same
// phase, exposes 0..49 as well: their z is their history before their
// first exposure, the returning units keep the copy taken before period
// 1. Period 3 (salt phase 2) reshuffles: every unit gets a new copy, now
// holding what it did in periods 1 and 2. Late data of period 1 sent
// with the new salt phase keeps period 1's. Some observations are feedback
// events, one of them sent twice. Integer data, so every sum but those
// of ratio covariates (z = x/y) is exact; those are compared at 1e-12.
func testCovariates(t *testing.T, s experiments.Store, histExpire func(t *testing.T, s experiments.Store, exp string, ttl time.Duration)) {
	r := rand.New(rand.NewPCG(11, 4))
	exp := NewID("cuped")
	ttl := 48 * time.Hour
	h0 := experiments.HourOf(time.Now())
	obs := func(n, lo, hi int, variant func(u int) int) []Obs {
		out := make([]Obs, 0, n)
		for range n {
			u := lo + r.IntN(hi-lo)
			if lo == -50 { // period 2: units 0..49 and 100..199
				u = 50 + r.IntN(150)
				if u < 100 {
					u -= 50
				}
			}
			m := covMetrics[r.IntN(len(covMetrics))]
			x := float64(r.IntN(5))
			switch m {
			case experiments.MetricError:
				x = float64(r.IntN(2))
			case experiments.MetricRating:
				x = float64(1 + r.IntN(5))
			}
			out = append(out, Obs{Variant: variant(u), Unit: Unit(u), Metric: m, Hour: h0 + experiments.Hour(r.IntN(2)), X: x, Y: 1})
		}
		return out
	}
	events := func(o []Obs, tag string) []Obs {
		for i := range o {
			if i%10 == 3 {
				o[i].EventID = fmt.Sprint(tag, i)
			}
		}
		return o
	}
	sticky := func(u int) int { return u % 2 }
	m := NewCovModel()
	c1 := CovariatesFor(exp, 1, ttl)

	// Period 1: history of 0..99, exposure of 100..199.
	p1 := events(obs(2000, 100, 200, sticky), "a")
	p1 = append(p1, p1[13]) // a retried event
	apply(t, s, covBatches(m, exp, 1, c1, p1, obs(1500, 0, 100, sticky), 600)...)

	// Period 2: a ramp step, same salt phase; 0..49 are new, 50..99
	// still unanalysed.
	p2 := events(obs(3000, -50, 200, func(u int) int {
		if u < 50 {
			return 0
		}
		return sticky(u)
	}), "b")
	apply(t, s, covBatches(m, exp, 2, c1, p2[:1000], obs(500, 50, 100, sticky), 400)...)

	// Period 3: salt phase 2, a new split; late data of period 1 arrives
	// meanwhile, labelled with the new salt phase.
	c2 := CovariatesFor(exp, 2, ttl)
	p3 := events(obs(3000, 0, 200, func(u int) int { return (u / 3) % 2 }), "c")
	apply(t, s, covBatches(m, exp, 3, c2, p3[:1500], nil, 500)...)
	apply(t, s, covBatches(m, exp, 1, c2, obs(400, 100, 200, sticky), nil, 400)...)
	apply(t, s, covBatches(m, exp, 2, c1, p2[1000:], nil, 700)...)
	apply(t, s, covBatches(m, exp, 3, c2, p3[1500:], nil, 700)...)

	for period := 1; period <= 3; period++ {
		snap := summaries(t, s, exp, period)
		got := snap.Stats
		want := m.Expected(period)
		CompareApprox(t, got, want, 1e-12)
		// The newly exposed cohort keeps the same sums, covariates
		// included.
		CompareApprox(t, snap.Fresh, m.ExpectedFresh(period), 1e-12)
		// Period 1 exposes units without history: z is 0, the rating's
		// 1. Later, units 0..49 (variant 0) bring theirs.
		for _, met := range covMetrics[:4] {
			g := got[experiments.VariantMetric{Variant: 0, Metric: met}]
			switch {
			case period == 1 && met == experiments.MetricRating:
				if g.SumZ != g.N || g.SumYZ != g.SumY {
					t.Errorf("period 1, rating: z should be 1: %+v", g)
				}
			case period == 1:
				if g.SumZ != 0 || g.SumXZ != 0 {
					t.Errorf("period 1, %s: z should be 0: %+v", met, g)
				}
			case !(g.SumZ > 0 && g.SumZ2 > 0 && g.SumXZ > 0 && g.SumYZ > 0 && g.SumRZ > 0):
				t.Errorf("period %d, %s: no covariate sums: %+v", period, met, g)
			}
		}
		if g := got[experiments.VariantMetric{Variant: 1, Metric: experiments.MetricJudgeScore}]; g.SumZ != 0 || g.SumXZ != 0 {
			t.Errorf("period %d: judge_score has no covariate, got %+v", period, g)
		}
		// The hourly changes add up to the cumulative sums.
		hs, err := s.Hourly(context.Background(), exp, period, h0.Time(), (h0 + 2).Time())
		if err != nil {
			t.Fatalf("Hourly: %v", err)
		}
		sum := map[experiments.VariantMetric]experiments.Summary{}
		for _, h := range hs {
			for k, v := range h.Stats {
				sum[k] = sum[k].Add(v)
			}
		}
		CompareApprox(t, sum, want, 1e-12)
	}
	// Integer covariates (requests: z = a total) are exact.
	for period := 1; period <= 3; period++ {
		got, want := summaries(t, s, exp, period).Stats, m.Expected(period)
		for v := range 2 {
			vm := experiments.VariantMetric{Variant: v, Metric: experiments.MetricRequests}
			if i, ok := SummaryNear(got[vm], want[vm], 0); !ok {
				t.Errorf("period %d %v: field %d not exact\n got  %+v\n want %+v", period, vm, i, got[vm], want[vm])
			}
		}
	}

	// Each unit's first-exposure period per salt phase (ExposureReader).
	if er, ok := s.(experiments.ExposureReader); ok {
		for sp := 1; sp <= 3; sp++ {
			got, err := er.FirstExposures(context.Background(), exp, sp)
			if err != nil {
				t.Fatal(err)
			}
			want := m.FirstExposures(sp)
			if sp < 3 && len(want) < 150 {
				t.Fatalf("salt phase %d: the model has %d first exposures", sp, len(want))
			}
			if len(got) != len(want) {
				t.Errorf("salt phase %d: %d first exposures, want %d", sp, len(got), len(want))
			}
			for u, p := range want {
				if got[u] != p {
					t.Errorf("salt phase %d, unit %x: first exposed in period %d, want %d", sp, u[:2], got[u], p)
				}
			}
		}
	}

	// The history expires: after the TTL, units new to a salt phase get
	// the z of a unit without history (a rating's lower bound, 1).
	if histExpire == nil {
		return
	}
	histExpire(t, s, exp, ttl)
	m.Forget()
	c3 := CovariatesFor(exp, 3, ttl)
	p4 := obs(800, 0, 200, sticky)
	apply(t, s, covBatches(m, exp, 4, c3, p4, nil, 400)...)
	got, want := summaries(t, s, exp, 4).Stats, m.Expected(4)
	CompareApprox(t, got, want, 1e-12)
	rt := got[experiments.VariantMetric{Variant: 0, Metric: experiments.MetricRating}]
	if rt.N == 0 || rt.SumZ != rt.N || rt.SumZ2 != rt.N {
		t.Errorf("rating after the history expired: z should be 1 for everyone: %+v", rt)
	}
}

// testCovariatesOff: batches without Covariates keep no covariate sums
// and no history, and History entries are ignored.
func testCovariatesOff(t *testing.T, s experiments.Store) {
	exp := NewID("nocov")
	h0 := experiments.HourOf(time.Now())
	b := &experiments.Batch{ID: BatchID(), Experiment: exp, Phase: 1,
		Deltas:  []experiments.Delta{{Variant: 0, Unit: Unit(1), Metric: experiments.MetricRequests, Hour: h0, DX: 3, DY: 3}},
		History: []experiments.Delta{{Unit: Unit(2), Metric: experiments.MetricRequests, DX: 5, DY: 5}}}
	apply(t, s, b)
	// Unit 2 appears later with covariates: it has no history.
	b2 := &experiments.Batch{ID: BatchID(), Experiment: exp, Phase: 2, Covariates: CovariatesFor(exp, 1, time.Hour),
		Deltas: []experiments.Delta{{Variant: 0, Unit: Unit(2), Metric: experiments.MetricRequests, Hour: h0, DX: 1, DY: 1},
			{Variant: 0, Unit: Unit(1), Metric: experiments.MetricRequests, Hour: h0, DX: 1, DY: 1}}}
	apply(t, s, b2)
	if g := summaries(t, s, exp, 1).Stats[experiments.VariantMetric{Metric: experiments.MetricRequests}]; g.SumZ != 0 || g.N != 1 {
		t.Errorf("period 1 without covariates: %+v", g)
	}
	if g := summaries(t, s, exp, 2).Stats[experiments.VariantMetric{Metric: experiments.MetricRequests}]; g.SumZ != 0 || g.N != 2 {
		t.Errorf("period 2: no history was kept before, want z = 0: %+v", g)
	}
	// No batch of period 1 asked for the first-exposure record: no fresh
	// sums. Both units were first exposed (with covariates) in period 2.
	if f := summaries(t, s, exp, 1).Fresh; len(f) != 0 {
		t.Errorf("period 1 without covariates has fresh sums: %+v", f)
	}
	if g := summaries(t, s, exp, 2).Fresh[experiments.VariantMetric{Metric: experiments.MetricRequests}]; g.N != 2 || g.SumX != 2 {
		t.Errorf("period 2: fresh %+v, want both units", g)
	}
}

// CohortCovariatesFor is the Covariates a recorder sends for an
// experiment with rollout.cohort "new" and no CUPED: no metrics, only
// the first-exposure record and the fresh sums.
func CohortCovariatesFor(exp string, phase int) *experiments.Covariates {
	return experiments.NewCovariates(&experiments.Experiment{ID: exp, Phase: phase,
		Rollout: &experiments.Rollout{Cohort: experiments.CohortNew}})
}

// testFresh: the newly exposed cohort's sums (Snapshot.Fresh) against a
// direct computation, with the Covariates of cohort "new" without CUPED.
// Period 1 (salt phase 1) exposes units 0..99; period 2, a ramp step of
// the same phase, sees 50..99 return and 100..149 arrive; late data of
// period 1 arrives meanwhile, from old units and from some first exposed
// in period 2 (not fresh in period 1, then); period 3 reshuffles (salt
// phase 2): everyone is new again; period 4, a step of phase 2, turns
// CUPED on. Batches are retried and some observations are feedback
// events, one sent twice. Integer data (ratio covariates at 1e-12).
func testFresh(t *testing.T, s experiments.Store) {
	r := rand.New(rand.NewPCG(5, 17))
	exp := NewID("fresh")
	h0 := experiments.HourOf(time.Now())
	metrics := []string{experiments.MetricRequests, experiments.MetricError, experiments.MetricThumbs, "escalations"}
	obs := func(n, lo, hi int, variant func(u int) int, tag string) []Obs {
		out := make([]Obs, 0, n)
		for k := range n {
			u := lo + r.IntN(hi-lo)
			m := metrics[r.IntN(len(metrics))]
			x := float64(r.IntN(4))
			if m != "escalations" && m != experiments.MetricRequests {
				x = float64(r.IntN(2))
			}
			o := Obs{Variant: variant(u), Unit: Unit(u), Metric: m, Hour: h0 + experiments.Hour(r.IntN(2)), X: x, Y: 1}
			if k%9 == 4 {
				o.EventID = fmt.Sprint(tag, k)
			}
			out = append(out, o)
		}
		return out
	}
	sticky := func(u int) int { return u % 2 }
	m := NewCovModel()
	c1, c2 := CohortCovariatesFor(exp, 1), CohortCovariatesFor(exp, 2)
	if c1 == nil || len(c1.Metrics) != 0 {
		t.Fatalf("cohort new without CUPED: covariates %+v, want some without metrics", c1)
	}
	retry := func(bs []*experiments.Batch) []*experiments.Batch { return append(bs, bs[0], bs[len(bs)-1]) }

	p1 := obs(1500, 0, 100, sticky, "a")
	p1 = append(p1, p1[4]) // a retried event
	apply(t, s, retry(covBatches(m, exp, 1, c1, p1, nil, 400))...)
	p2 := obs(2000, 50, 150, sticky, "b")
	apply(t, s, retry(covBatches(m, exp, 2, c1, p2[:800], nil, 300))...)
	apply(t, s, covBatches(m, exp, 1, c1, obs(300, 60, 130, sticky, "late"), nil, 300)...)
	apply(t, s, retry(covBatches(m, exp, 2, c1, p2[800:], nil, 500))...)
	p3 := obs(2000, 0, 150, func(u int) int { return (u / 3) % 2 }, "c")
	apply(t, s, retry(covBatches(m, exp, 3, c2, p3, nil, 700))...)
	// Period 4, a ramp step of salt phase 2 with CUPED turned on: units
	// 100..149 return (exposed in period 3, when no history was kept:
	// their copy stays empty, whatever history they gather now),
	// 150..199 are new and bring the history recorded since (History
	// entries of units outside the analysis).
	cuped := CovariatesFor(exp, 2, 48*time.Hour)
	hist := obs(400, 100, 200, sticky, "")
	for i := range hist {
		hist[i].EventID = ""
	}
	hb := &experiments.Batch{ID: BatchID(), Experiment: exp, Phase: 4, Covariates: cuped}
	for _, o := range hist {
		hb.History = append(hb.History, experiments.Delta{Unit: o.Unit, Metric: o.Metric, DX: o.X, DY: o.Y})
	}
	m.Apply(4, cuped, nil, hist)
	apply(t, s, hb)
	p4 := obs(1600, 100, 200, func(u int) int { return (u / 3) % 2 }, "d")
	apply(t, s, covBatches(m, exp, 4, cuped, p4[:800], nil, 300)...)
	apply(t, s, retry(covBatches(m, exp, 4, cuped, p4[800:], nil, 400))...)
	if g := summaries(t, s, exp, 4).Fresh[experiments.VariantMetric{Variant: 0, Metric: experiments.MetricRequests}]; !(g.SumZ > 0) {
		t.Errorf("period 4: the new units' history gives no covariate: %+v", g)
	}

	for period := 1; period <= 4; period++ {
		snap := summaries(t, s, exp, period)
		want := m.ExpectedFresh(period)
		CompareApprox(t, snap.Fresh, want, 1e-12)
		CompareApprox(t, snap.Stats, m.Expected(period), 1e-12)
		for v := range 2 {
			vm := experiments.VariantMetric{Variant: v, Metric: experiments.MetricRequests}
			all, fresh := snap.Stats[vm].N, snap.Fresh[vm].N
			switch period {
			case 2: // about 25 returning and 25 new units per arm
				if !(fresh >= 15 && all-fresh >= 15) {
					t.Errorf("period 2, variant %d: %g fresh of %g users, want both new and returning ones", v, fresh, all)
				}
			case 3: // the first period of salt phase 2: everyone is new
				if fresh != all || snap.Fresh[vm] != snap.Stats[vm] {
					t.Errorf("period 3, variant %d: fresh %+v, want all %+v", v, snap.Fresh[vm], snap.Stats[vm])
				}
			}
		}
	}
	// Late data of period 1 from units first exposed in period 2 is in
	// period 1's Stats but not in its Fresh.
	s1 := summaries(t, s, exp, 1)
	vm := experiments.VariantMetric{Variant: 0, Metric: experiments.MetricRequests}
	if all, fresh := s1.Stats[vm].N, s1.Fresh[vm].N; all <= fresh {
		t.Errorf("period 1: %g users, %g fresh: the late units first exposed in period 2 should not be fresh", all, fresh)
	}
}

// ExpectedSegments returns period's segment statistics with their
// covariate sums: as ExpectedSegments, each user's z for a segment of
// metric m being their z for m (from their copy in the period's salt
// phase). obs are all the period's observations with their segments.
func (m *CovModel) ExpectedSegments(period int, obs []SegObs) map[experiments.SegmentKey]experiments.Summary {
	type uk struct {
		k experiments.SegmentKey
		u experiments.UnitKey
	}
	tot := map[uk][2]float64{}
	seen := map[string]bool{}
	for _, o := range obs {
		if o.EventID != "" {
			if seen[o.EventID] {
				continue
			}
			seen[o.EventID] = true
		}
		for d := 0; d < int(o.Segments.N); d++ {
			k := uk{experiments.SegmentKey{Variant: o.Variant, Metric: o.Metric, Dimension: d, Value: int(o.Segments.V[d])}, o.Unit}
			t := tot[k]
			tot[k] = [2]float64{t[0] + o.X, t[1] + o.Y}
		}
	}
	c, cp := m.c[period], m.copies[m.pin[period]]
	out := map[experiments.SegmentKey]experiments.Summary{}
	for k, t := range tot {
		h := cp[k.u][k.k.Metric]
		z := c.Z(k.k.Metric, h[0], h[1])
		out[k.k] = out[k.k].Add(experiments.SummaryDelta(true, 0, 0, t[0], t[1], z))
	}
	return out
}

// testCovariateSegments: segment statistics get the covariate of the
// metric they segment, and segment copies add nothing to the history.
// Units 0..99 have history; period 2 exposes 0..199 with two dimensions,
// one of them changing between a user's requests.
func testCovariateSegments(t *testing.T, s experiments.Store) {
	r := rand.New(rand.NewPCG(12, 5))
	exp := NewID("cupedseg")
	c := CovariatesFor(exp, 1, time.Hour)
	h0 := experiments.HourOf(time.Now())
	m := NewCovModel()
	metrics := covMetrics[:3]
	var hist []Obs
	for range 600 {
		u := r.IntN(100)
		hist = append(hist, Obs{Unit: Unit(u), Metric: metrics[r.IntN(len(metrics))], X: float64(r.IntN(2)), Y: 1})
	}
	apply(t, s, covBatches(m, exp, 1, c, []Obs{{Variant: 0, Unit: Unit(500), Metric: metrics[0], Hour: h0, X: 1, Y: 1}}, hist, 10)...)
	var obs []SegObs
	for i := range 3000 {
		u := r.IntN(200)
		o := SegObs{Obs: Obs{Variant: u % 2, Unit: Unit(u), Metric: metrics[r.IntN(len(metrics))], Hour: h0, X: float64(1 + r.IntN(3)), Y: 1}}
		if o.Metric == experiments.MetricError {
			o.X = float64(r.IntN(2))
		}
		o.Segments.N = 2
		o.Segments.V[0] = uint8(u % 3)
		o.Segments.V[1] = uint8(r.IntN(2))
		if i%9 == 4 {
			o.EventID = fmt.Sprint("s", i)
		}
		obs = append(obs, o)
	}
	obs = append(obs, obs[4]) // a retried event
	for start := 0; start < len(obs); start += 700 {
		part := obs[start:min(start+700, len(obs))]
		b := segBatches(exp, 2, part, len(part))[0]
		b.Covariates = c
		plain := make([]Obs, len(part))
		for i, o := range part {
			plain[i] = o.Obs
		}
		m.Apply(2, c, plain, nil)
		apply(t, s, b)
	}
	snap := summaries(t, s, exp, 2)
	CompareApprox(t, snap.Stats, m.Expected(2), 1e-12)
	want := m.ExpectedSegments(2, obs)
	for k, w := range want {
		if i, ok := SummaryNear(snap.Segments[k], w, 1e-12); !ok {
			t.Errorf("%v: field %d\n got  %+v\n want %+v", k, i, snap.Segments[k], w)
		}
	}
	if len(snap.Segments) != len(want) {
		t.Errorf("%d segment statistics, want %d", len(snap.Segments), len(want))
	}
	k := experiments.SegmentKey{Variant: 0, Metric: experiments.MetricError, Dimension: 1, Value: 1}
	if g := snap.Segments[k]; !(g.SumZ > 0 && g.SumRZ > 0 && g.SumYZ > 0) {
		t.Errorf("%v: no covariate sums: %+v", k, g)
	}
	// The history holds the plain deltas only: a new salt phase copies
	// it, and its z equals the model's (which never saw segment copies).
	c2 := CovariatesFor(exp, 2, time.Hour)
	late := []Obs{{Variant: 1, Unit: Unit(7), Metric: experiments.MetricRequests, Hour: h0, X: 1, Y: 1}, {Variant: 1, Unit: Unit(150), Metric: experiments.MetricError, Hour: h0, X: 0, Y: 1}}
	apply(t, s, covBatches(m, exp, 3, c2, late, nil, 10)...)
	CompareApprox(t, summaries(t, s, exp, 3).Stats, m.Expected(3), 1e-12)
}
