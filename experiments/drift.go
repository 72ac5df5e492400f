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
	DriftPromptTokens     = MetricPromptTokens
	DriftCompletionTokens = MetricCompletionTokens
	DriftLatencyMS        = MetricLatencyMS
	DriftError            = MetricError
	DriftThumbs           = MetricThumbs
	DriftRating           = MetricRating
	DriftCorrection       = MetricCorrection
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

// DriftFeatureIndex returns name's index in DriftFeatures, or -1.
func DriftFeatureIndex(name string) int {
	for i, f := range DriftFeatures {
		if f == name {
			return i
		}
	}
	return -1
}
