package recorder

import "github.com/abgate/abgate/experiments"

// driftKey is a pre-aggregated histogram bin in the recorder.
type driftKey struct {
	variant int32
	feature uint8 // index into DriftFeatures
	bin     uint8
	hour    experiments.Hour
}

// addDrift counts an Outcome in the drift histograms: every outcome (also
// unanalysed ones, so drift is watched after promotion) counts for the
// error rate; latency and tokens only for responses without error that
// reported usage, so a burst of errors shows as errors, not as a shift
// of the token distribution.
func (e *epAgg) addDrift(o *experiments.Outcome, h experiments.Hour) {
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
	add(2, experiments.DriftBin(float64(o.Latency)/1e6))
	if o.PromptTokens > 0 || o.CompletionTokens > 0 {
		add(0, experiments.DriftBin(float64(o.PromptTokens)))
		add(1, experiments.DriftBin(float64(o.CompletionTokens)))
	}
}

// addDriftFeedback counts a feedback value of a rate metric (thumbs,
// correction: 0/1; rating: 1-5) in its histogram, one bin per value.
func (e *epAgg) addDriftFeedback(f *experiments.Feedback, h experiments.Hour) {
	fi := experiments.DriftFeatureIndex(f.Metric)
	if fi < firstFeedbackFeature || !(f.Value >= 0 && f.Value < experiments.DriftBins) {
		return
	}
	if e.drift == nil {
		e.drift = make(map[driftKey]int64)
	}
	e.drift[driftKey{int32(f.Variant), uint8(fi), uint8(f.Value), h}]++
}

// driftDeltas lists e's histogram increments for a batch.
func (e *epAgg) driftDeltas() []experiments.HistDelta {
	if len(e.drift) == 0 {
		return nil
	}
	out := make([]experiments.HistDelta, 0, len(e.drift))
	for k, n := range e.drift {
		out = append(out, experiments.HistDelta{Variant: int(k.variant), Feature: experiments.DriftFeatures[k.feature], Hour: k.hour, Bin: int(k.bin), N: n})
	}
	clear(e.drift)
	return out
}
