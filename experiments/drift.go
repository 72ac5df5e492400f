package experiments

import (
	"context"
	"math"
	"time"
)

// Drift features: what the gateway observes cheaply about each request
// and its feedback, kept as hourly histograms per (experiment, variant)
// in fixed bins (issue #7). Token counts and latency use log-spaced bins
// (see DriftBin); the rates use one bin per value.
const (
	DriftPromptTokens     = "prompt_tokens"
	DriftCompletionTokens = "completion_tokens"
	DriftLatencyMS        = "latency_ms"
	DriftError            = "error"
	DriftThumbs           = "thumbs"
	DriftRating           = "rating"
	DriftCorrection       = "correction"
)

// DriftFeatures lists the drift features, in a fixed order.
var DriftFeatures = [...]string{
	DriftPromptTokens, DriftCompletionTokens, DriftLatencyMS, DriftError,
	DriftThumbs, DriftRating, DriftCorrection,
}

// DriftBins is the number of bins of every drift histogram.
const DriftBins = 48

// DriftBin returns the log-spaced bin of a non-negative value: bin 0 is
// [0, 1), bin b ≥ 1 is [2^((b−1)/2), 2^(b/2)): two bins per doubling, so
// 1, 1.41, 2, 2.83, 4 … up to about 2^23.5 (16 million tokens or ms); the
// last bin takes everything larger.
func DriftBin(v float64) int {
	if !(v >= 1) {
		return 0
	}
	b := 1 + int(math.Floor(2*math.Log2(v)))
	return min(b, DriftBins-1)
}

// DriftBinRange returns bin b's [lo, hi) (hi is +Inf for the last bin).
func DriftBinRange(b int) (lo, hi float64) {
	if b <= 0 {
		return 0, 1
	}
	lo = math.Exp2(float64(b-1) / 2)
	hi = math.Exp2(float64(b) / 2)
	if b >= DriftBins-1 {
		hi = math.Inf(1)
	}
	return lo, hi
}

// HistDelta adds N to one bin of one hourly drift histogram. Drift
// histograms belong to the experiment, not to a phase: they continue
// across phases and after promotion, for as long as the route sends
// requests.
type HistDelta struct {
	Variant int
	Feature string
	Hour    Hour
	Bin     int
	N       int64
}

// HistKey names one bin of a drift histogram.
type HistKey struct {
	Variant int
	Feature string
	Bin     int
}

// HourHistograms is one hour of an experiment's drift histograms.
type HourHistograms struct {
	Hour   time.Time
	Counts map[HistKey]int64
}

// DriftReader reads drift histograms. memstore and redisstore implement
// it; it is separate from Store so other Store implementations keep
// compiling.
type DriftReader interface {
	// DriftHistograms returns the hours overlapping [from, to) with data,
	// in hour order.
	DriftHistograms(ctx context.Context, experiment string, from, to time.Time) ([]HourHistograms, error)
}

// driftKey is a pre-aggregated histogram bin in the recorder.
type driftKey struct {
	variant int32
	feature uint8 // index into DriftFeatures
	bin     uint8
	hour    Hour
}

func driftFeatureIndex(name string) int {
	for i, f := range DriftFeatures {
		if f == name {
			return i
		}
	}
	return -1
}

// addDrift counts an Outcome in the drift histograms: every outcome (also
// unanalysed ones, so drift is watched after promotion) counts for the
// error rate; latency and tokens only for responses without error that
// reported usage, so a burst of errors shows as errors, not as a shift
// of the token distribution.
func (e *epAgg) addDrift(o *Outcome, h Hour) {
	if e.drift == nil {
		e.drift = make(map[driftKey]int64)
	}
	v := int32(o.Variant)
	add := func(f int, bin int) { e.drift[driftKey{v, uint8(f), uint8(bin), h}]++ }
	if o.Error {
		add(3, 1)
		return
	}
	add(3, 0)
	add(2, DriftBin(float64(o.Latency)/1e6))
	if o.PromptTokens > 0 || o.CompletionTokens > 0 {
		add(0, DriftBin(float64(o.PromptTokens)))
		add(1, DriftBin(float64(o.CompletionTokens)))
	}
}

// addDriftFeedback counts a feedback value of a rate metric (thumbs,
// correction: 0/1; rating: 1-5) in its histogram, one bin per value.
func (e *epAgg) addDriftFeedback(f *Feedback, h Hour) {
	fi := driftFeatureIndex(f.Metric)
	if fi < 4 || !(f.Value >= 0 && f.Value < DriftBins) {
		return
	}
	if e.drift == nil {
		e.drift = make(map[driftKey]int64)
	}
	e.drift[driftKey{int32(f.Variant), uint8(fi), uint8(f.Value), h}]++
}

// driftDeltas lists e's histogram increments for a batch.
func (e *epAgg) driftDeltas() []HistDelta {
	if len(e.drift) == 0 {
		return nil
	}
	out := make([]HistDelta, 0, len(e.drift))
	for k, n := range e.drift {
		out = append(out, HistDelta{Variant: int(k.variant), Feature: DriftFeatures[k.feature], Hour: k.hour, Bin: int(k.bin), N: n})
	}
	clear(e.drift)
	return out
}
