package experiments

import (
	"math"
	"strconv"
)

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

// CheckReshuffles compares a config with the one it replaces: an
// experiment whose new allocation would reshuffle units (see Reshuffles)
// must raise its phase, or users who were randomized one way would be
// pooled in one phase with users randomized another. Each such experiment
// is reported against its phase field.
func CheckReshuffles(old, next *Config) error {
	var errs ValidationError
	for i := range next.Experiments {
		n := &next.Experiments[i]
		o := old.Experiment(n.ID)
		if o == nil || n.PhaseOrOne() > o.PhaseOrOne() {
			continue
		}
		if Reshuffles(o.Allocation(), n.Allocation()) {
			errs = append(errs, FieldError{
				Field:  "experiments[" + strconv.Itoa(i) + "].phase",
				Reason: "this change moves users between variants (salt, number of candidates, lower coverage or higher holdout); raise phase above " + strconv.Itoa(o.PhaseOrOne()) + " to start a new phase",
			})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
