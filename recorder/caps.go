package recorder

import (
	"math"

	"github.com/abgate/abgate/experiments"
)

// capTable holds, per experiment id, each outcome metric's cap (indexed
// like outcomeMetrics; 0: none). It is replaced whole by SetCaps and read
// by the drainer, so it is never modified after it is published.
type capTable map[string]*[numOutcomeMetrics]float64

// SetCaps installs the experiments' caps (experiments[].caps, issue 11):
// from the next drained event on, every request metric's value is clamped
// at its experiment's cap before it is summed, so each user's mean lies in
// [0, cap] as the policy's bounded test assumes. Call it at start and on
// every config reload. Experiments without caps are recorded as they come.
func (r *Recorder) SetCaps(cfg *experiments.Config) {
	exps := cfg.Experiments
	t := make(capTable, len(exps))
	for i := range exps {
		e := &exps[i]
		var row [numOutcomeMetrics]float64
		any := false
		for j, m := range outcomeMetrics {
			if c, ok := experiments.RecordingCap(e, cfg.Upstreams, m); ok {
				row[j], any = c, true
			}
		}
		if any {
			t[e.ID] = &row
		}
	}
	r.caps.Store(&t)
}

// capValues clamps v at the caps of o's experiment.
func (r *Recorder) capValues(exp string, v *[numOutcomeMetrics]float64) {
	t := r.caps.Load()
	if t == nil {
		return
	}
	row := (*t)[exp]
	if row == nil {
		return
	}
	for i, c := range row {
		if c > 0 {
			v[i] = math.Min(v[i], c)
		}
	}
}
