package experiments

import "math"

// EffectiveSalt is the experiment's salt (its ID by default).
func (e *Experiment) EffectiveSalt() string {
	if e.Salt != "" {
		return e.Salt
	}
	return e.ID
}

// PhaseOrOne is the experiment's phase, 1 when unset.
func (e *Experiment) PhaseOrOne() int {
	if e.Phase < 1 {
		return 1
	}
	return e.Phase
}

// Allocation builds the experiment's configured allocation: the shares
// from the candidates' weights, coverage and holdout in basis points, and
// the allowlists. The rollout controller may later override the shares
// and Serve from the experiment's live state.
func (e *Experiment) Allocation() *Allocation {
	a := &Allocation{
		Salt:       PhaseSalt(e.EffectiveSalt(), e.PhaseOrOne()),
		CoverageBP: Buckets,
		HoldoutBP:  percentToBP(e.Holdout),
		Serve:      -1,
		Period:     e.PhaseOrOne(),
	}
	if e.Coverage != nil {
		a.CoverageBP = percentToBP(*e.Coverage)
	}
	for i, v := range e.Variants {
		if i > 0 {
			a.Shares = append(a.Shares, percentToBP(v.Weight))
		}
		for _, u := range v.Allowlist {
			if a.Allowlist == nil {
				a.Allowlist = make(map[string]int)
			}
			a.Allowlist[u] = i
		}
	}
	return a
}

// percentToBP converts a percentage (0..100, step 0.01) to basis points of
// Buckets, clamped to the valid range.
func percentToBP(p float64) uint16 {
	bp := math.Round(p * Buckets / 100)
	switch {
	case bp <= 0 || math.IsNaN(bp):
		return 0
	case bp >= Buckets:
		return Buckets
	}
	return uint16(bp)
}
