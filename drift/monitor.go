package drift

import (
	"context"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// Drift monitor defaults (docs/segments.md).
const (
	DefaultDriftInterval       = 5 * time.Minute
	DefaultDriftWindow         = 6 * time.Hour
	DefaultDriftReferenceHours = 72
	// DefaultDriftPSI is the alert threshold on the population stability
	// index: 0.1-0.25 is commonly read as a moderate shift, above 0.25 as
	// a major one.
	DefaultDriftPSI = 0.2
	// DefaultDriftAlpha is the level of the chi-square test that must
	// also reject "same distribution": it keeps small windows, whose PSI
	// is noisy, from alerting.
	DefaultDriftAlpha = 1e-3
	// DefaultDriftMinCount is the fewest observations in both the
	// reference and the window before a feature is compared.
	DefaultDriftMinCount = 200
)

// TimeRange is [From, To).
type TimeRange struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Result compares one feature of one variant in the latest window
// with the reference window.
type Result struct {
	Experiment string    `json:"experiment"`
	Variant    int       `json:"variant"`
	Feature    string    `json:"feature"`
	Reference  TimeRange `json:"reference"`
	Window     TimeRange `json:"window"`
	RefCount   int64     `json:"ref_count"`
	Count      int64     `json:"count"`
	// PSI is the population stability index (stats.PSI); ChiSquare, DF
	// and PValue the chi-square test of homogeneity of the two
	// histograms (stats.ChiSquareHomogeneity). Zero when not Compared.
	PSI       float64 `json:"psi"`
	ChiSquare float64 `json:"chi_square"`
	DF        int     `json:"df"`
	PValue    float64 `json:"p_value"`
	// Compared is false when either side has fewer than MinCount
	// observations.
	Compared bool `json:"compared"`
	// Drifted: PSI >= the threshold and PValue < alpha.
	Drifted bool `json:"drifted"`
	// RefHist and Hist are the two histograms (DriftBins counts).
	RefHist []int64 `json:"ref_hist"`
	Hist    []int64 `json:"hist"`
}

// Alert is sent when a feature starts drifting (a Result that
// became Drifted); one alert per crossing, not per evaluation.
type Alert struct {
	Result
	At time.Time `json:"at"`
}

// Monitor compares, on an interval, each route's latest window of
// drift histograms with a reference window (the experiment's first
// DefaultDriftReferenceHours hours with data, or a pinned baseline) and
// calls an alert callback when a feature crosses the thresholds. It runs
// for as long as the experiment ids it is given exist, also after
// promotion: the gateway records drift for every request of a route.
type Monitor struct {
	reader   experiments.DriftReader
	ids      func() []string
	alert    func(context.Context, Alert)
	now      func() time.Time
	log      *slog.Logger
	interval time.Duration
	window   time.Duration
	refHours int
	psi      float64
	alpha    float64
	minCount int64

	mu       sync.Mutex
	pinned   map[string]TimeRange
	refStart map[string]time.Time // first hour with data, once found
	drifted  map[driftState]bool
}

type driftState struct {
	exp     string
	variant int
	feature string
}

// Option configures a Monitor.
type Option func(*Monitor)

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(m *Monitor) { m.now = now } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(m *Monitor) { m.log = l } }

// New returns a monitor reading reader, evaluating the
// experiments ids returns (the routed experiments of the live config) and
// calling alert (which must not block long; nil logs only).
func New(reader experiments.DriftReader, ids func() []string, alert func(context.Context, Alert), opts ...Option) *Monitor {
	m := &Monitor{
		reader: reader, ids: ids, alert: alert, now: time.Now, log: slog.Default(),
		interval: DefaultDriftInterval, window: DefaultDriftWindow, refHours: DefaultDriftReferenceHours,
		psi: DefaultDriftPSI, alpha: DefaultDriftAlpha, minCount: DefaultDriftMinCount,
		pinned: map[string]TimeRange{}, refStart: map[string]time.Time{}, drifted: map[driftState]bool{},
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Thresholds returns the PSI threshold and the chi-square level.
func (m *Monitor) Thresholds() (psi, alpha float64) { return m.psi, m.alpha }

// PinBaseline makes [from, to) the reference of an experiment (e.g. a
// known-good week), instead of its first hours.
func (m *Monitor) PinBaseline(exp string, from, to time.Time) {
	m.mu.Lock()
	m.pinned[exp] = TimeRange{from, to}
	m.mu.Unlock()
}

// Run evaluates every experiment each interval until ctx is done.
func (m *Monitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		m.Tick(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Tick evaluates every experiment once and sends the alerts of features
// that started drifting.
func (m *Monitor) Tick(ctx context.Context) {
	now := m.now()
	for _, exp := range m.ids() {
		rs, err := m.Evaluate(ctx, exp, now)
		if err != nil {
			m.log.Warn("drift: evaluation failed", "experiment", exp, "err", err)
			continue
		}
		for _, r := range rs {
			k := driftState{exp, r.Variant, r.Feature}
			m.mu.Lock()
			was := m.drifted[k]
			m.drifted[k] = r.Drifted
			m.mu.Unlock()
			if r.Drifted && !was {
				m.log.Warn("drift: feature shifted", "experiment", exp, "variant", r.Variant, "feature", r.Feature, "psi", r.PSI, "p", r.PValue)
				if m.alert != nil {
					m.alert(ctx, Alert{Result: r, At: now})
				}
			}
		}
	}
}

// reference returns the experiment's reference range, finding its first
// hour with data once.
func (m *Monitor) reference(ctx context.Context, exp string, now time.Time) (TimeRange, bool, error) {
	m.mu.Lock()
	pin, pinned := m.pinned[exp]
	start, found := m.refStart[exp]
	m.mu.Unlock()
	if pinned {
		return pin, true, nil
	}
	if !found {
		hs, err := m.reader.DriftHistograms(ctx, exp, time.Unix(0, 0), now)
		if err != nil {
			return TimeRange{}, false, err
		}
		if len(hs) == 0 {
			return TimeRange{}, false, nil
		}
		start = hs[0].Hour
		m.mu.Lock()
		m.refStart[exp] = start
		m.mu.Unlock()
	}
	return TimeRange{start, start.Add(time.Duration(m.refHours) * time.Hour)}, true, nil
}

// Evaluate compares the window ending at now with the reference for every
// (variant, feature) of the experiment. The window starts no earlier than
// the reference's end, so a young experiment compares nothing yet.
func (m *Monitor) Evaluate(ctx context.Context, exp string, now time.Time) ([]Result, error) {
	ref, ok, err := m.reference(ctx, exp, now)
	if err != nil || !ok {
		return nil, err
	}
	win := TimeRange{now.Add(-m.window), now}
	if win.From.Before(ref.To) {
		win.From = ref.To
	}
	if !win.From.Before(win.To) {
		return nil, nil
	}
	refH, err := m.sum(ctx, exp, ref)
	if err != nil {
		return nil, err
	}
	curH, err := m.sum(ctx, exp, win)
	if err != nil {
		return nil, err
	}
	keys := map[driftState]bool{}
	for k := range refH {
		keys[k] = true
	}
	for k := range curH {
		keys[k] = true
	}
	out := make([]Result, 0, len(keys))
	for k := range keys {
		r := Compare(refH[k], curH[k], m.psi, m.alpha, m.minCount)
		r.Experiment, r.Variant, r.Feature, r.Reference, r.Window = exp, k.variant, k.feature, ref, win
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Variant != out[j].Variant {
			return out[i].Variant < out[j].Variant
		}
		return experiments.DriftFeatureIndex(out[i].Feature) < experiments.DriftFeatureIndex(out[j].Feature)
	})
	return out, nil
}

// sum adds up the hourly histograms of [r.From, r.To), by (variant,
// feature). Hours are whole: an hour is in the range if it starts in it.
func (m *Monitor) sum(ctx context.Context, exp string, r TimeRange) (map[driftState][]int64, error) {
	hs, err := m.reader.DriftHistograms(ctx, exp, r.From, r.To)
	if err != nil {
		return nil, err
	}
	out := map[driftState][]int64{}
	for _, h := range hs {
		if h.Hour.Before(r.From.Truncate(time.Hour)) {
			continue
		}
		for k, n := range h.Counts {
			if k.Bin < 0 || k.Bin >= experiments.DriftBins {
				continue
			}
			s := driftState{variant: k.Variant, feature: k.Feature}
			if out[s] == nil {
				out[s] = make([]int64, experiments.DriftBins)
			}
			out[s][k.Bin] += n
		}
	}
	return out, nil
}

// Compare compares two histograms of DriftBins counts (nil means
// empty): PSI, chi-square test, and Drifted when PSI >= psi and the
// p-value < alpha, with at least minCount observations on each side.
func Compare(ref, cur []int64, psi, alpha float64, minCount int64) Result {
	r := Result{RefHist: make([]int64, experiments.DriftBins), Hist: make([]int64, experiments.DriftBins), PValue: 1}
	copy(r.RefHist, ref)
	copy(r.Hist, cur)
	rf, cf := make([]float64, experiments.DriftBins), make([]float64, experiments.DriftBins)
	for i := range experiments.DriftBins {
		r.RefCount += r.RefHist[i]
		r.Count += r.Hist[i]
		rf[i], cf[i] = float64(r.RefHist[i]), float64(r.Hist[i])
	}
	if r.RefCount < minCount || r.Count < minCount {
		return r
	}
	r.Compared = true
	r.PSI = stats.PSI(rf, cf)
	if math.IsNaN(r.PSI) {
		r.PSI = 0
	}
	r.ChiSquare, r.DF, r.PValue = stats.ChiSquareHomogeneity(rf, cf)
	r.Drifted = r.PSI >= psi && r.PValue < alpha
	return r
}
