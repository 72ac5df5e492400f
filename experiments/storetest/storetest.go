// Package storetest is the conformance suite every experiments.Store runs
// (memstore, redisstore on one server and on a cluster), in the style of
// Flipt's shared storage harness: the same observations must give the
// same statistics in every store.
package storetest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// Option configures Run.
type Option func(*config)

type config struct {
	checkExpiry func(t *testing.T, s experiments.Store, exp string, after time.Duration)
	histExpire  func(t *testing.T, s experiments.Store, exp string, ttl time.Duration)
}

// WithHistoryExpiry supplies the store-specific half of the pre-exposure
// history's TTL test (experiments.Covariates): called once the test's
// experiment has history written with the TTL ttl, it must check that
// the history carries that TTL and then make it expire (advance an
// injected clock by ttl, or delete what Redis would delete). Without it
// the covariate test skips its expiry part.
func WithHistoryExpiry(f func(t *testing.T, s experiments.Store, exp string, ttl time.Duration)) Option {
	return func(c *config) { c.histExpire = f }
}

// WithExpiryCheck supplies the store-specific half of the expiry test:
// it is called after Expire(exp, after) and must assert that the data
// will be (or has been) removed, e.g. by reading TTLs or advancing an
// injected clock. Without it the expiry test only checks that Expire
// succeeds and keeps the data readable before the deadline.
func WithExpiryCheck(f func(t *testing.T, s experiments.Store, exp string, after time.Duration)) Option {
	return func(c *config) { c.checkExpiry = f }
}

// Run runs the suite. newStore is called once per subtest; stores may be
// shared between calls as long as experiments with distinct ids don't
// interfere (the suite uses a fresh random id in every subtest).
func Run(t *testing.T, newStore func(t *testing.T) experiments.Store, opts ...Option) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	t.Run("StatsMath", func(t *testing.T) { testStatsMath(t, newStore(t)) })
	t.Run("FloatValues", func(t *testing.T) { testFloats(t, newStore(t)) })
	t.Run("UserRatios", func(t *testing.T) { testUserRatios(t, newStore(t)) })
	t.Run("Covariates", func(t *testing.T) { testCovariates(t, newStore(t), cfg.histExpire) })
	t.Run("CovariatesOff", func(t *testing.T) { testCovariatesOff(t, newStore(t)) })
	t.Run("FreshCohort", func(t *testing.T) { testFresh(t, newStore(t)) })
	t.Run("CovariateSegments", func(t *testing.T) { testCovariateSegments(t, newStore(t)) })
	t.Run("JointSums", func(t *testing.T) { testJoint(t, newStore(t), false) })
	t.Run("JointSumsWithCovariates", func(t *testing.T) { testJoint(t, newStore(t), true) })
	t.Run("PhasesApart", func(t *testing.T) { testPhases(t, newStore(t)) })
	t.Run("HourlyPrefixSums", func(t *testing.T) { testHourly(t, newStore(t)) })
	t.Run("Counters", func(t *testing.T) { testCounters(t, newStore(t)) })
	t.Run("BatchAppliedOnce", func(t *testing.T) { testBatchOnce(t, newStore(t)) })
	t.Run("EventIDsConcurrent", func(t *testing.T) { testEventsConcurrent(t, newStore(t)) })
	t.Run("OneVotePerResponse", func(t *testing.T) { testOneVote(t, newStore(t)) })
	t.Run("UnknownExperiment", func(t *testing.T) { testUnknown(t, newStore(t)) })
	t.Run("Expire", func(t *testing.T) { testExpire(t, newStore(t), cfg.checkExpiry) })
	t.Run("InvalidBatch", func(t *testing.T) { testInvalid(t, newStore(t)) })
	t.Run("Segments", func(t *testing.T) { testSegments(t, newStore(t)) })
	t.Run("Drift", func(t *testing.T) { testDrift(t, newStore(t)) })
	t.Run("FeedbackLog", func(t *testing.T) { testFeedbackLog(t, newStore(t)) })
}

var seq atomic.Int64

// NewID returns an experiment id unique within the process and run.
func NewID(name string) string {
	return fmt.Sprintf("st-%s-%d-%d", name, time.Now().UnixNano()%1e9, seq.Add(1))
}

// BatchID returns a batch id unique within the process.
func BatchID() string { return fmt.Sprintf("b%d-%d", time.Now().UnixNano(), seq.Add(1)) }

// Obs is one raw observation: the model the stores are checked against.
type Obs struct {
	Variant int
	Unit    experiments.UnitKey
	Metric  string
	Hour    experiments.Hour
	X, Y    float64
	EventID string
}

// Expected recomputes the statistics from raw observations the slow,
// obvious way: each user's totals, then sums over users. Observations
// with a repeated EventID count once.
func Expected(obs []Obs) map[experiments.VariantMetric]experiments.Summary {
	type uk struct {
		v int
		u experiments.UnitKey
		m string
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
		k := uk{o.Variant, o.Unit, o.Metric}
		t := tot[k]
		tot[k] = [2]float64{t[0] + o.X, t[1] + o.Y}
	}
	out := map[experiments.VariantMetric]experiments.Summary{}
	for k, t := range tot {
		vm := experiments.VariantMetric{Variant: k.v, Metric: k.m}
		s := out[vm]
		x, y := t[0], t[1]
		s.N++
		s.SumX += x
		s.SumX2 += x * x
		s.SumY += y
		s.SumY2 += y * y
		s.SumXY += x * y
		if y != 0 {
			s.SumR += x / y
			s.SumR2 += (x / y) * (x / y)
		}
		out[vm] = s
	}
	return out
}

// ToBatches turns observations into batches of about size observations,
// merging plain ones per (variant, unit, metric, hour) as the recorder does.
func ToBatches(exp string, phase int, obs []Obs, size int) []*experiments.Batch {
	var out []*experiments.Batch
	for start := 0; start < len(obs); start += size {
		end := min(start+size, len(obs))
		b := &experiments.Batch{ID: BatchID(), Experiment: exp, Phase: phase, Count: int64(end - start)}
		type mk struct {
			v int
			u experiments.UnitKey
			m string
			h experiments.Hour
		}
		idx := map[mk]int{}
		for _, o := range obs[start:end] {
			d := experiments.Delta{Variant: o.Variant, Unit: o.Unit, Metric: o.Metric, Hour: o.Hour, DX: o.X, DY: o.Y}
			if o.EventID != "" {
				b.Events = append(b.Events, experiments.Event{ID: o.EventID, Delta: d})
				continue
			}
			k := mk{o.Variant, o.Unit, o.Metric, o.Hour}
			if i, ok := idx[k]; ok {
				b.Deltas[i].DX += o.X
				b.Deltas[i].DY += o.Y
				continue
			}
			idx[k] = len(b.Deltas)
			b.Deltas = append(b.Deltas, d)
		}
		out = append(out, b)
	}
	return out
}

// Unit returns a deterministic unit key for small integers.
func Unit(i int) experiments.UnitKey {
	var k experiments.UnitKey
	for j := range k {
		k[j] = byte(i >> (8 * (j % 4)))
	}
	k[15] = 0xab
	return k
}

// CompareExact fails t unless got equals want exactly (integer data).
func CompareExact(t testing.TB, got, want map[experiments.VariantMetric]experiments.Summary) {
	t.Helper()
	compare(t, got, want, 0)
}

// CompareApprox fails t unless got equals want within rel, relative (so
// tiny values must keep their significant digits too).
func CompareApprox(t testing.TB, got, want map[experiments.VariantMetric]experiments.Summary, rel float64) {
	t.Helper()
	compare(t, got, want, rel)
}

func compare(t testing.TB, got, want map[experiments.VariantMetric]experiments.Summary, rel float64) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%v: missing, want %+v", k, w)
			continue
		}
		if i, ok := SummaryNear(g, w, rel); !ok {
			t.Errorf("%v field %d differs (rel %g)\n got  %+v\n want %+v", k, i, rel, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok && g != (experiments.Summary{}) {
			t.Errorf("%v: unexpected %+v", k, g)
		}
	}
}

// ratioRel is the relative tolerance of SumR and SumR2.
const ratioRel = 1e-9

// SummaryNear reports whether g equals w within rel, relative, field by
// field, and the first field that differs. SumR and SumR2 are compared
// within at least 1e-9: a user's ratio x/y is not an integer, and each
// store sums its changes r1−r0 in its own order, so they equal the
// direct Σr only within rounding; so is SumRZ (field 12). The other
// covariate sums (fields 8 to 11) are compared like the first six.
func SummaryNear(g, w experiments.Summary, rel float64) (int, bool) {
	gs := [...]float64{g.N, g.SumX, g.SumX2, g.SumY, g.SumY2, g.SumXY, g.SumR, g.SumR2, g.SumZ, g.SumZ2, g.SumXZ, g.SumYZ, g.SumRZ}
	ws := [...]float64{w.N, w.SumX, w.SumX2, w.SumY, w.SumY2, w.SumXY, w.SumR, w.SumR2, w.SumZ, w.SumZ2, w.SumXZ, w.SumYZ, w.SumRZ}
	for i := range gs {
		r := rel
		if i == 6 || i == 7 || i == 12 {
			r = max(rel, ratioRel)
		}
		if !near(gs[i], ws[i], r) {
			return i, false
		}
	}
	return -1, true
}

func near(a, b, rel float64) bool {
	if rel == 0 {
		return a == b
	}
	d := math.Abs(a - b)
	return d <= rel*math.Max(math.Abs(a), math.Abs(b))
}

func apply(t testing.TB, s experiments.Store, bs ...*experiments.Batch) {
	t.Helper()
	for _, b := range bs {
		if _, err := s.Apply(context.Background(), b); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
}

func summaries(t testing.TB, s experiments.Store, exp string, phase int) experiments.Snapshot {
	t.Helper()
	snap, err := s.Summaries(context.Background(), exp, phase)
	if err != nil {
		t.Fatalf("Summaries: %v", err)
	}
	return snap
}

var intMetrics = []string{experiments.MetricRequests, experiments.MetricError, experiments.MetricPromptTokens, experiments.MetricRating, "escalations"}

// randomInts makes integer observations over users, variants, metrics.
func randomInts(r *rand.Rand, n, users, variants int, hour experiments.Hour, hours int) []Obs {
	obs := make([]Obs, n)
	for i := range obs {
		u := r.IntN(users)
		obs[i] = Obs{
			Variant: u % variants, // sticky: a user has one variant
			Unit:    Unit(u),
			Metric:  intMetrics[r.IntN(len(intMetrics))],
			Hour:    hour + experiments.Hour(r.IntN(hours)),
			X:       float64(r.IntN(2000) - 100),
			Y:       1,
		}
	}
	return obs
}

func testStatsMath(t *testing.T, s experiments.Store) {
	r := rand.New(rand.NewPCG(1, 2))
	exp := NewID("math")
	h0 := experiments.HourOf(time.Now())
	obs := randomInts(r, 20000, 500, 3, h0, 1)
	// Some observations carry several requests at once (pre-aggregated y).
	for i := 0; i < len(obs); i += 7 {
		obs[i].Y = 3
	}
	apply(t, s, ToBatches(exp, 1, obs, 1500)...)
	CompareExact(t, summaries(t, s, exp, 1).Stats, Expected(obs))
}

func testFloats(t *testing.T, s experiments.Store) {
	r := rand.New(rand.NewPCG(3, 4))
	exp := NewID("float")
	h0 := experiments.HourOf(time.Now())
	var obs []Obs
	for i := 0; i < 5000; i++ {
		u := r.IntN(300)
		obs = append(obs, Obs{Variant: u % 2, Unit: Unit(u), Metric: experiments.MetricLatencyMS, Hour: h0, X: r.ExpFloat64() * 812.3456789, Y: 1})
		obs = append(obs, Obs{Variant: u % 2, Unit: Unit(u), Metric: experiments.MetricCost, Hour: h0, X: r.Float64() * 1e-5, Y: 1})
		// tiny values: sums of squares near 1e-18 must keep their digits
		obs = append(obs, Obs{Variant: u % 2, Unit: Unit(u), Metric: "tiny", Hour: h0, X: r.Float64() * 1e-9, Y: 1})
		obs = append(obs, Obs{Variant: u % 2, Unit: Unit(u), Metric: "huge", Hour: h0, X: r.Float64() * 1e12, Y: 1})
	}
	apply(t, s, ToBatches(exp, 1, obs, 999)...)
	CompareApprox(t, summaries(t, s, exp, 1).Stats, Expected(obs), 1e-9)
}

func testPhases(t *testing.T, s experiments.Store) {
	r := rand.New(rand.NewPCG(5, 6))
	exp := NewID("phases")
	h0 := experiments.HourOf(time.Now())
	p1 := randomInts(r, 3000, 100, 2, h0, 1)
	p2 := randomInts(r, 2000, 100, 2, h0, 1) // same users, new phase
	apply(t, s, ToBatches(exp, 1, p1, 700)...)
	apply(t, s, ToBatches(exp, 2, p2, 700)...)
	CompareExact(t, summaries(t, s, exp, 1).Stats, Expected(p1))
	CompareExact(t, summaries(t, s, exp, 2).Stats, Expected(p2))
	if got := summaries(t, s, exp, 3); len(got.Stats) != 0 {
		t.Errorf("phase 3 has data: %v", got.Stats)
	}
}

func testHourly(t *testing.T, s experiments.Store) {
	r := rand.New(rand.NewPCG(7, 8))
	exp := NewID("hourly")
	h0 := experiments.HourOf(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC))
	const hours = 6
	var all []Obs
	// Batches arrive in time order; a batch may straddle an hour.
	for h := 0; h < hours; h++ {
		obs := randomInts(r, 1500, 200, 2, h0+experiments.Hour(h), 1)
		if h > 0 {
			// a few late ones of the previous hour in the same batch
			for i := 0; i < 50; i++ {
				obs[i].Hour--
			}
		}
		all = append(all, obs...)
		apply(t, s, ToBatches(exp, 1, obs, 400)...)
	}
	ctx := context.Background()
	got, err := s.Hourly(ctx, exp, 1, h0.Time(), (h0 + hours).Time())
	if err != nil {
		t.Fatalf("Hourly: %v", err)
	}
	if len(got) != hours {
		t.Fatalf("got %d hours, want %d", len(got), hours)
	}
	cum := map[experiments.VariantMetric]experiments.Summary{}
	for i, hs := range got {
		if want := (h0 + experiments.Hour(i)).Time(); !hs.Hour.Equal(want) {
			t.Fatalf("hour %d is %v, want %v", i, hs.Hour, want)
		}
		for k, v := range hs.Stats {
			cum[k] = cum[k].Add(v)
		}
	}
	CompareExact(t, cum, Expected(all))
	CompareExact(t, cum, summaries(t, s, exp, 1).Stats)

	// A window inside the range.
	mid, err := s.Hourly(ctx, exp, 1, (h0 + 2).Time().Add(30*time.Minute), (h0 + 4).Time())
	if err != nil {
		t.Fatal(err)
	}
	if len(mid) != 2 || !mid[0].Hour.Equal((h0 + 2).Time()) || !mid[1].Hour.Equal((h0 + 3).Time()) {
		t.Errorf("window [h2:30, h4) gave %d hours: %v", len(mid), hoursOf(mid))
	}

	// In-order data: prefix sums are the cumulative summary at the end
	// of each hour.
	exp2 := NewID("hourly-inorder")
	var all2 []Obs
	for h := 0; h < 4; h++ {
		obs := randomInts(r, 800, 100, 2, h0+experiments.Hour(h), 1)
		all2 = append(all2, obs...)
		apply(t, s, ToBatches(exp2, 1, obs, 300)...)
	}
	got2, err := s.Hourly(ctx, exp2, 1, h0.Time(), (h0 + 4).Time())
	if err != nil {
		t.Fatal(err)
	}
	cum = map[experiments.VariantMetric]experiments.Summary{}
	for i, hs := range got2 {
		for k, v := range hs.Stats {
			cum[k] = cum[k].Add(v)
		}
		CompareExact(t, cum, Expected(all2[:800*(i+1)]))
	}
}

func hoursOf(hs []experiments.HourSummaries) []time.Time {
	var out []time.Time
	for _, h := range hs {
		out = append(out, h.Hour)
	}
	return out
}

func testCounters(t *testing.T, s experiments.Store) {
	exp := NewID("counters")
	b1 := &experiments.Batch{ID: BatchID(), Experiment: exp, Phase: 1, Counters: []experiments.Counter{
		{Variant: 0, Name: experiments.CounterUnanalysed, N: 5}, {Variant: 1, Name: experiments.CounterUnanalysed, N: 2},
	}}
	b2 := &experiments.Batch{ID: BatchID(), Experiment: exp, Phase: 1, Counters: []experiments.Counter{
		{Variant: 1, Name: experiments.CounterUnanalysed, N: 40},
	}, Deltas: []experiments.Delta{{Variant: 1, Unit: Unit(1), Metric: experiments.MetricRequests, Hour: 1000, DX: 1, DY: 1}}}
	apply(t, s, b1, b2)
	snap := summaries(t, s, exp, 1)
	want := map[experiments.VariantMetric]int64{
		{Variant: 0, Metric: experiments.CounterUnanalysed}: 5,
		{Variant: 1, Metric: experiments.CounterUnanalysed}: 42,
	}
	if len(snap.Counters) != len(want) {
		t.Errorf("counters %v, want %v", snap.Counters, want)
	}
	for k, v := range want {
		if snap.Counters[k] != v {
			t.Errorf("counter %v = %d, want %d", k, snap.Counters[k], v)
		}
	}
}

func testBatchOnce(t *testing.T, s experiments.Store) {
	r := rand.New(rand.NewPCG(9, 10))
	exp := NewID("once")
	obs := randomInts(r, 3000, 300, 2, 1000, 2)
	bs := ToBatches(exp, 1, obs, 3000)
	bs[0].Counters = []experiments.Counter{{Variant: 0, Name: experiments.CounterUnanalysed, N: 1}}
	res, err := s.Apply(context.Background(), bs[0])
	if err != nil || res.Duplicate {
		t.Fatalf("first Apply: %+v, %v", res, err)
	}
	for i := 0; i < 3; i++ { // retries after a "lost reply"
		res, err = s.Apply(context.Background(), bs[0])
		if err != nil || !res.Duplicate {
			t.Fatalf("retried Apply: %+v, %v; want Duplicate", res, err)
		}
	}
	snap := summaries(t, s, exp, 1)
	CompareExact(t, snap.Stats, Expected(obs))
	if n := snap.Counters[experiments.VariantMetric{Variant: 0, Metric: experiments.CounterUnanalysed}]; n != 1 {
		t.Errorf("counter applied %d times", n)
	}
}

func testEventsConcurrent(t *testing.T, s experiments.Store) {
	exp := NewID("events")
	const (
		workers = 8
		events  = 400
	)
	// Every worker sends every event id (as clients retrying through
	// different replicas would), each in its own batches.
	var all []Obs
	for i := 0; i < events; i++ {
		all = append(all, Obs{
			Variant: i % 2, Unit: Unit(i % 37), Metric: experiments.MetricThumbs,
			Hour: 1000, X: float64(i % 2), Y: 1, EventID: fmt.Sprintf("ev-%d", i),
		})
	}
	var wg sync.WaitGroup
	var dups atomic.Int64
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 11))
			obs := append([]Obs(nil), all...)
			r.Shuffle(len(obs), func(i, j int) { obs[i], obs[j] = obs[j], obs[i] })
			// plus plain feedback without ids, which always counts
			for i := 0; i < 50; i++ {
				obs = append(obs, Obs{Variant: 0, Unit: Unit(1000 + w), Metric: experiments.MetricThumbs, Hour: 1000, X: 1, Y: 1})
			}
			for _, b := range ToBatches(exp, 1, obs, 37) {
				res, err := s.Apply(context.Background(), b)
				if err != nil {
					errs <- err
					return
				}
				dups.Add(int64(res.DuplicateEvents))
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Apply: %v", err)
	}
	var want []Obs
	want = append(want, all...)
	for w := 0; w < workers; w++ {
		for i := 0; i < 50; i++ {
			want = append(want, Obs{Variant: 0, Unit: Unit(1000 + w), Metric: experiments.MetricThumbs, Hour: 1000, X: 1, Y: 1})
		}
	}
	CompareExact(t, summaries(t, s, exp, 1).Stats, Expected(want))
	if d := dups.Load(); d != (workers-1)*events {
		t.Errorf("reported %d duplicate events, want %d", d, (workers-1)*events)
	}
}

func testUnknown(t *testing.T, s experiments.Store) {
	ctx := context.Background()
	snap, err := s.Summaries(ctx, NewID("nothing"), 1)
	if err != nil {
		t.Fatalf("Summaries of unknown experiment: %v", err)
	}
	if len(snap.Stats) != 0 || len(snap.Counters) != 0 {
		t.Errorf("unknown experiment has data: %+v", snap)
	}
	hs, err := s.Hourly(ctx, NewID("nothing"), 1, time.Unix(0, 0), time.Now())
	if err != nil || len(hs) != 0 {
		t.Errorf("Hourly of unknown experiment: %v, %v", hs, err)
	}
	if err := s.Expire(ctx, NewID("nothing"), time.Hour); err != nil {
		t.Errorf("Expire of unknown experiment: %v", err)
	}
}

func testExpire(t *testing.T, s experiments.Store, check func(*testing.T, experiments.Store, string, time.Duration)) {
	r := rand.New(rand.NewPCG(12, 13))
	exp := NewID("expire")
	obs := randomInts(r, 500, 50, 2, 1000, 3)
	apply(t, s, ToBatches(exp, 1, obs, 200)...)
	apply(t, s, ToBatches(exp, 2, obs, 200)...)
	const after = 90 * 24 * time.Hour
	if err := s.Expire(context.Background(), exp, after); err != nil {
		t.Fatalf("Expire: %v", err)
	}
	// Late data after Expire is still accepted and readable.
	late := randomInts(r, 100, 50, 2, 1005, 1)
	late[0].EventID = "late-event"
	apply(t, s, ToBatches(exp, 1, late, 100)...)
	CompareExact(t, summaries(t, s, exp, 1).Stats, Expected(append(append([]Obs(nil), obs...), late...)))
	if check != nil {
		check(t, s, exp, after)
	}
}

func testInvalid(t *testing.T, s experiments.Store) {
	for name, b := range map[string]*experiments.Batch{
		"no experiment": {ID: "x", Phase: 1},
		"no id":         {Experiment: "e", Phase: 1},
		"phase 0":       {ID: "x", Experiment: "e"},
		"NaN":           {ID: "x", Experiment: "e", Phase: 1, Deltas: []experiments.Delta{{Metric: "m", DX: math.NaN(), DY: 1}}},
	} {
		if _, err := s.Apply(context.Background(), b); err == nil {
			t.Errorf("%s: Apply accepted an invalid batch", name)
		}
	}
}

// testUserRatios: SumR and SumR2, the sums of each user's own ratio x/y
// and its square (issue 11: the bounded test reads them), match the
// direct computation when users come back in later batches with other
// request counts, their ratios going up and down.
func testUserRatios(t *testing.T, s experiments.Store) {
	r := rand.New(rand.NewPCG(5, 8))
	exp := NewID("ratios")
	h0 := experiments.HourOf(time.Now())
	var obs []Obs
	for i := 0; i < 6000; i++ {
		u := r.IntN(300)
		obs = append(obs,
			Obs{Variant: u % 2, Unit: Unit(u), Metric: experiments.MetricLatencyMS, Hour: h0, X: 1 + 3000*r.Float64(), Y: 1},
			Obs{Variant: u % 2, Unit: Unit(u), Metric: experiments.MetricError, Hour: h0, X: float64(r.IntN(2)), Y: 1})
	}
	apply(t, s, ToBatches(exp, 1, obs, 700)...)
	got := summaries(t, s, exp, 1).Stats
	want := Expected(obs)
	CompareApprox(t, got, want, 1e-12)
	for _, m := range []string{experiments.MetricLatencyMS, experiments.MetricError} {
		if g := got[experiments.VariantMetric{Variant: 1, Metric: m}]; !(g.SumR > 0 && g.SumR2 > 0) {
			t.Errorf("%s: no user ratios kept: %+v", m, g)
		}
	}
}
