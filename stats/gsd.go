package stats

import (
	"math"
)

// Spending is a Lan-DeMets alpha-spending function family.
type Spending string

const (
	// OBrienFleming is the O'Brien-Fleming-type spending function of
	// Lan & DeMets (1983), applied to each side at level α/2 as in
	// Reboussin et al.'s ld98/ldbounds and gsDesign's sfLDOF:
	// per side α/2·*(t) = 2 − 2Φ(z_{1−α/4}/√t), total α*(t) = 4 − 4Φ(z_{1−α/4}/√t).
	OBrienFleming Spending = "obrien-fleming"
	// Pocock is the Pocock-type spending function
	// α*(t) = α·log(1 + (e−1)t) (Lan & DeMets 1983), α/2 per side.
	Pocock Spending = "pocock"
)

// Spend returns the cumulative two-sided type I error α*(t) spent by
// information fraction t ∈ [0,1].
func (s Spending) Spend(alpha, t float64) float64 {
	checkAlpha(alpha)
	switch {
	case t <= 0:
		return 0
	case t >= 1:
		return alpha
	}
	switch s {
	case Pocock:
		return alpha * math.Log(1+(math.E-1)*t)
	case OBrienFleming:
		return 4 * unitNormal.Survival(unitNormal.Quantile(1-alpha/4)/math.Sqrt(t))
	default:
		panic("stats: unknown spending function " + string(s))
	}
}

// Design is a two-sided group sequential design with symmetric boundaries
// ±Bounds[k] on the z-statistic at the planned information fractions
// Fractions[k] (increasing, last = 1). Build it once with NewDesign; it is
// immutable and safe for concurrent use.
type Design struct {
	Alpha     float64   `json:"alpha"`
	Spending  Spending  `json:"spending"`
	Fractions []float64 `json:"fractions"`
	Bounds    []float64 `json:"bounds"`
}

// gridPerUnit is the number of Simpson intervals per unit of z on the
// continuation region; 48/unit reproduces published boundaries to ≤ 1e-4.
const gridPerUnit = 48

// NewDesign computes Lan-DeMets boundaries for the given spending function
// at the information fractions (e.g. {0.2,0.4,0.6,0.8,1}) by recursive
// numerical integration of the density of the z-statistic on the
// continuation region (Armitage, McPherson & Rowe 1969; Jennison & Turnbull
// 2000, ch. 19), using composite Simpson's rule.
//
// It panics if alpha ∉ (0,1), fractions is empty, not strictly increasing
// within (0,1], or does not end at 1.
func NewDesign(alpha float64, s Spending, fractions []float64) *Design {
	checkAlpha(alpha)
	s.Spend(alpha, 0.5) // validates s
	if len(fractions) == 0 || fractions[len(fractions)-1] != 1 {
		panic("stats: design fractions must be non-empty and end at 1")
	}
	prev := 0.0
	for _, f := range fractions {
		if !(f > prev) || f > 1 {
			panic("stats: design fractions must be strictly increasing in (0,1]")
		}
		prev = f
	}
	d := &Design{Alpha: alpha, Spending: s, Fractions: append([]float64(nil), fractions...), Bounds: make([]float64, len(fractions))}
	var g *grid // density of Z_{k-1} on the continuation region
	spent := 0.0
	for k, t := range fractions {
		target := s.Spend(alpha, t) - spent
		if k == 0 {
			d.Bounds[0] = unitNormal.Quantile(1 - target/2)
		} else {
			tp := fractions[k-1]
			exit := func(c float64) float64 { return g.exitProb(tp, t, c, c, 0) }
			d.Bounds[k] = solveDecreasing(exit, target, 0.5, 40)
		}
		spent = s.Spend(alpha, t)
		if k+1 < len(fractions) {
			if k == 0 {
				g = firstGrid(d.Bounds[0], t, 0)
			} else {
				g = g.next(fractions[k-1], t, d.Bounds[k], 0)
			}
		}
	}
	return d
}

// solveDecreasing finds c in [lo,hi] with f(c) = target for a decreasing f,
// by bisection.
func solveDecreasing(f func(float64) float64, target, lo, hi float64) float64 {
	for range 80 {
		mid := 0.5 * (lo + hi)
		if f(mid) > target {
			lo = mid
		} else {
			hi = mid
		}
		if hi-lo < 1e-9 {
			break
		}
	}
	return 0.5 * (lo + hi)
}

// grid is a sub-density of the z-statistic on [−c, c] at one look, with
// Simpson weights (w already includes the quadrature weight).
type grid struct {
	z, w []float64
}

func simpson(lo, hi float64) (z, w []float64) {
	m := int(math.Ceil((hi-lo)*gridPerUnit/2)) * 2
	if m < 2 {
		m = 2
	}
	h := (hi - lo) / float64(m)
	z = make([]float64, m+1)
	w = make([]float64, m+1)
	for i := range z {
		z[i] = lo + float64(i)*h
		c := 2.0
		switch {
		case i == 0 || i == m:
			c = 1
		case i%2 == 1:
			c = 4
		}
		w[i] = c * h / 3
	}
	return z, w
}

// firstGrid is the density of Z_1 ~ N(θ√t, 1) on [−c, c] times Simpson
// weights. theta is the drift: E[Z_k] = θ√t_k.
func firstGrid(c, t, theta float64) *grid {
	z, w := simpson(-c, c)
	mu := theta * math.Sqrt(t)
	for i := range z {
		w[i] *= normPDF(z[i] - mu)
	}
	return &grid{z: z, w: w}
}

func normPDF(x float64) float64 { return math.Exp(-0.5*x*x) / math.Sqrt(2*math.Pi) }

// exitProb returns P(continue to look k−1, then Z_k ≥ up or Z_k ≤ −low)
// where g is the sub-density at look k−1 (information tp) and look k has
// information t. Z_k√t = Z_{k−1}√tp + N(θ(t−tp), t−tp).
func (g *grid) exitProb(tp, t, up, low, theta float64) float64 {
	sd := math.Sqrt(t - tp)
	st, sp := math.Sqrt(t), math.Sqrt(tp)
	drift := theta * (t - tp)
	p := 0.0
	for i, z := range g.z {
		m := z*sp + drift
		p += g.w[i] * (unitNormal.Survival((up*st-m)/sd) + unitNormal.CDF((-low*st-m)/sd))
	}
	return p
}

// next propagates the sub-density to the next look's continuation region
// [−c, c].
func (g *grid) next(tp, t, c, theta float64) *grid {
	z, w := simpson(-c, c)
	sd := math.Sqrt(t - tp)
	st, sp := math.Sqrt(t), math.Sqrt(tp)
	drift := theta * (t - tp)
	for j, zj := range z {
		f := 0.0
		for i, zi := range g.z {
			f += g.w[i] * normPDF((zj*st-zi*sp-drift)/sd)
		}
		w[j] *= f * st / sd
	}
	return &grid{z: z, w: w}
}

// Look returns the index of the last planned look reached at information
// fraction frac (e.g. users/maxUsers), or −1 before the first look. A small
// relative tolerance (1e-9) absorbs rounding.
func (d *Design) Look(frac float64) int {
	k := -1
	for i, f := range d.Fractions {
		if frac >= f*(1-1e-9) {
			k = i
		}
	}
	return k
}

// Power returns the probability that the design rejects H0 (in either
// direction, boundary ±Bounds) when the z-statistic has drift θ, i.e.
// E[Z_k] = θ·√t_k; θ = δ/SE(Δ̂ at t=1).
func (d *Design) Power(theta float64) float64 {
	var g *grid
	p := 0.0
	for k, t := range d.Fractions {
		c := d.Bounds[k]
		if k == 0 {
			mu := theta * math.Sqrt(t)
			p += unitNormal.Survival(c-mu) + unitNormal.CDF(-c-mu)
		} else {
			p += g.exitProb(d.Fractions[k-1], t, c, c, theta)
		}
		if k+1 < len(d.Fractions) {
			if k == 0 {
				g = firstGrid(c, t, theta)
			} else {
				g = g.next(d.Fractions[k-1], t, c, theta)
			}
		}
	}
	return p
}

// InflationFactor is the ratio of the design's maximum sample size to the
// fixed-horizon sample size for the same alpha and power (two-sided).
// Jennison & Turnbull (2000), Tables 2.1-2.4, tabulate it for classical
// designs.
func (d *Design) InflationFactor(power float64) float64 {
	if !(power > 0 && power < 1) {
		panic("stats: power must be in (0,1)")
	}
	zf := unitNormal.Quantile(1-d.Alpha/2) + unitNormal.Quantile(power)
	// Power(θ) is increasing in θ ≥ 0: bisection.
	lo, hi := 0.0, 3*zf
	for hi-lo > 1e-7 {
		mid := 0.5 * (lo + hi)
		if d.Power(mid) < power {
			lo = mid
		} else {
			hi = mid
		}
	}
	th := 0.5 * (lo + hi)
	return th * th / (zf * zf)
}
