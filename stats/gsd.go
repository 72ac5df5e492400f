package stats

import (
	"fmt"
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

// Design is a group sequential design with boundaries Bounds[k] on the
// z-statistic at the planned information fractions Fractions[k]
// (increasing, last = 1): two-sided with symmetric boundaries ±Bounds[k]
// and α/2 per side (Sides 0 or 2, NewDesign's designs), or one-sided,
// rejecting when Z ≥ Bounds[k] at level α (Sides 1; Decide then makes each
// one-sided call, better or worse, at α). Build it once with NewDesign,
// NewSpendingDesign or NewWangTsiatis; it is immutable and safe for
// concurrent use.
type Design struct {
	Alpha     float64   `json:"alpha"`
	Spending  Spending  `json:"spending"`
	Fractions []float64 `json:"fractions"`
	Bounds    []float64 `json:"bounds"`
	Sides     int       `json:"sides,omitempty"`
}

// oneSided reports whether d is a one-sided design.
func (d *Design) oneSided() bool { return d.Sides == 1 }

// gridPerUnit is the number of Simpson intervals per unit of z on the
// continuation region: 24/unit agrees with 96/unit to 2e-6 on the
// boundaries and inflation factors of the tests, and reproduces the
// published boundaries (ld98, gsDesign, Jennison & Turnbull) to ≤ 1e-4.
const gridPerUnit = 24

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
	return newSpendingDesign(alpha, s, func(t float64) float64 { return s.Spend(alpha, t) }, fractions, 2)
}

// SpendingFunc is a cumulative α-spending function: the type I error
// α*(t) spent by information fraction t ∈ [0,1], increasing from
// α*(0) = 0 to α*(1) = α.
type SpendingFunc func(alpha, t float64) float64

// PowerSpending is the power family α*(t) = α·t^ρ (ρ > 0) of Kim and
// DeMets (1987, "Design and analysis of group sequential tests based on
// the type I error spending rate function", Biometrika 74(1)) and
// Jennison and Turnbull (2000, §7.2): ρ = 1 is close to Pocock, ρ = 3 to
// O'Brien-Fleming. gsDesign's sfPower; Spotify Confidence's sequential
// tests use ρ = 2 (spotify_confidence sequential_bounds: rho=2, α/sides per
// side). It panics unless ρ > 0 is finite.
func PowerSpending(rho float64) SpendingFunc {
	if !(rho > 0) || math.IsInf(rho, 0) {
		panic("stats: power spending needs rho > 0")
	}
	return func(alpha, t float64) float64 {
		switch {
		case t <= 0:
			return 0
		case t >= 1:
			return alpha
		}
		return alpha * math.Pow(t, rho)
	}
}

// HSDSpending is the Hwang-Shih-DeCani family (Hwang, Shih & DeCani 1990,
// "Group sequential designs using a family of type I error probability
// spending functions", Stat. Med. 9(12)):
//
//	α*(t) = α·(1 − e^{−γt})/(1 − e^{−γ}),  γ ≠ 0;  α·t for γ = 0.
//
// γ = −4 approximates O'Brien-Fleming (gsDesign's default sfHSD, −4),
// γ = 1 Pocock. It panics unless γ is finite.
func HSDSpending(gamma float64) SpendingFunc {
	if !finite(gamma) {
		panic("stats: HSD spending needs a finite gamma")
	}
	return func(alpha, t float64) float64 {
		switch {
		case t <= 0:
			return 0
		case t >= 1:
			return alpha
		case gamma == 0:
			return alpha * t
		}
		return alpha * math.Expm1(-gamma*t) / math.Expm1(-gamma)
	}
}

// NewSpendingDesign is NewDesign for any spending function f, two-sided
// (sides = 2: symmetric, f's α split evenly between the sides, as gsDesign's
// test.type = 2 and Spotify's sides = 2) or one-sided (sides = 1: upper
// boundary only, as gsDesign's test.type = 1). name is recorded in
// Design.Spending (e.g. "power(2)", "hsd(-4)"). It panics as NewDesign does
// and when sides is not 1 or 2.
func NewSpendingDesign(alpha float64, name string, f SpendingFunc, fractions []float64, sides int) *Design {
	checkAlpha(alpha)
	if f == nil {
		panic("stats: nil spending function")
	}
	return newSpendingDesign(alpha, Spending(name), func(t float64) float64 { return f(alpha, t) }, fractions, sides)
}

func checkFractions(fractions []float64) {
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
}

// ztrunc is where a continuation region is cut, in standard deviations
// of Z_k around its mean: P(|Z| > 8) ≈ 1e-15 (Spotify's ztrun = 8).
const ztrunc = 8

// region returns the continuation region of look k with bound c, cut to
// ztrunc standard deviations around the mean θ√t of Z_k (beyond which the
// density is below 1e-15; without the cut a huge trial bound, as the root
// finders try, would make a grid of thousands of points).
func (d *Design) region(c, t, theta float64) (lo, hi float64) {
	mu := theta * math.Sqrt(t)
	lo, hi = -c, c
	if d.oneSided() {
		lo = math.Inf(-1)
	}
	return math.Max(lo, mu-ztrunc), math.Max(math.Min(hi, mu+ztrunc), math.Max(lo, mu-ztrunc))
}

// lowBound is the lower exit bound as passed to exitProb (P(Z ≤ −low)).
func (d *Design) lowBound(c float64) float64 {
	if d.oneSided() {
		return math.Inf(1)
	}
	return c
}

func newSpendingDesign(alpha float64, name Spending, spend func(t float64) float64, fractions []float64, sides int) *Design {
	checkFractions(fractions)
	if sides != 1 && sides != 2 {
		panic("stats: design sides must be 1 or 2")
	}
	d := &Design{Alpha: alpha, Spending: name, Fractions: append([]float64(nil), fractions...), Bounds: make([]float64, len(fractions))}
	if sides == 1 {
		d.Sides = 1
	}
	var g *grid // density of Z_{k-1} on the continuation region
	spent := 0.0
	for k, t := range fractions {
		cum := spend(t)
		target := cum - spent
		if k == 0 {
			if d.oneSided() {
				d.Bounds[0] = unitNormal.Quantile(1 - target)
			} else {
				d.Bounds[0] = unitNormal.Quantile(1 - target/2)
			}
			if math.IsInf(d.Bounds[0], 1) || d.Bounds[0] > 40 {
				d.Bounds[0] = 40 // nothing spent yet: never stop
			}
		} else {
			tp := fractions[k-1]
			exit := func(c float64) float64 { return g.exitProb(tp, t, c, d.lowBound(c), 0) }
			d.Bounds[k] = solveDecreasing(exit, target, 0, 40)
		}
		spent = cum
		if k+1 < len(fractions) {
			g = d.advance(g, k, 0)
		}
	}
	return d
}

// advance returns the sub-density on look k's continuation region given
// the one at look k−1 (nil for k = 0), under drift theta.
func (d *Design) advance(g *grid, k int, theta float64) *grid {
	t := d.Fractions[k]
	lo, hi := d.region(d.Bounds[k], t, theta)
	if k == 0 {
		return firstGrid(lo, hi, t, theta)
	}
	return g.next(d.Fractions[k-1], t, lo, hi, theta)
}

// exitProbs returns the probability of stopping at each look (crossing
// either boundary for a two-sided design, the upper one for a one-sided
// design) under drift theta.
func (d *Design) exitProbs(theta float64) []float64 { return d.crossProbs(theta, false) }

// crossProbs is exitProbs, counting only upper crossings when upperOnly
// (paths that cross the lower boundary still stop).
func (d *Design) crossProbs(theta float64, upperOnly bool) []float64 {
	out := make([]float64, len(d.Fractions))
	var g *grid
	for k, t := range d.Fractions {
		c := d.Bounds[k]
		if k == 0 {
			mu := theta * math.Sqrt(t)
			out[0] = unitNormal.Survival(c - mu)
			if !d.oneSided() && !upperOnly {
				out[0] += unitNormal.CDF(-c - mu)
			}
		} else {
			low := d.lowBound(c)
			if upperOnly {
				low = math.Inf(1)
			}
			out[k] = g.exitProb(d.Fractions[k-1], t, c, low, theta)
		}
		if k+1 < len(d.Fractions) {
			g = d.advance(g, k, theta)
		}
	}
	return out
}

// CumulativeAlpha returns the type I error spent by each look: the
// cumulative probability under H0 of having stopped (gsDesign's
// "P(Cross) if delta=0", summed).
func (d *Design) CumulativeAlpha() []float64 {
	p := d.exitProbs(0)
	for k := 1; k < len(p); k++ {
		p[k] += p[k-1]
	}
	return p
}

// NewWangTsiatis is the classical Wang-Tsiatis design (Wang & Tsiatis
// 1987, "Approximately optimal one-parameter boundaries for group
// sequential trials", Biometrics 43(1)) with boundaries
//
//	c_k = C · t_k^{Δ−½},
//
// C chosen so that the total type I error is alpha (two-sided, α/2 per
// side, or one-sided). Δ = 0 is O'Brien & Fleming (1979), Δ = ½ is Pocock
// (1977); gsDesign's sfu = "WT", "OF", "Pocock". It panics as NewDesign
// does, and on a non-finite Δ or sides other than 1 or 2.
func NewWangTsiatis(alpha, delta float64, fractions []float64, sides int) *Design {
	checkAlpha(alpha)
	checkFractions(fractions)
	if !finite(delta) {
		panic("stats: Wang-Tsiatis needs a finite delta")
	}
	if sides != 1 && sides != 2 {
		panic("stats: design sides must be 1 or 2")
	}
	d := &Design{Alpha: alpha, Spending: Spending(fmt.Sprintf("wang-tsiatis(%g)", delta)), Fractions: append([]float64(nil), fractions...), Bounds: make([]float64, len(fractions))}
	if sides == 1 {
		d.Sides = 1
	}
	set := func(c float64) {
		for k, t := range fractions {
			d.Bounds[k] = c * math.Pow(t, delta-0.5)
		}
	}
	total := func(c float64) float64 {
		set(c)
		p := 0.0
		for _, x := range d.exitProbs(0) {
			p += x
		}
		return p
	}
	set(solveDecreasing(total, alpha, 0, 40))
	return d
}

// solveDecreasing finds c in [lo,hi] with f(c) = target for a decreasing f,
// by the Illinois variant of regula falsi (bracketing, like bisection, but
// superlinear: about 8 evaluations instead of 40 for 1e-10), falling back
// to bisection steps when the secant stalls.
func solveDecreasing(f func(float64) float64, target, lo, hi float64) float64 {
	return solveBracket(func(x float64) float64 { return f(x) - target }, lo, hi, 1e-10)
}

// solveBracket finds a root of g in [a,b] where g(a) and g(b) have
// opposite signs (if not, it returns the end nearer to a root).
func solveBracket(g func(float64) float64, a, b, tol float64) float64 {
	ga, gb := g(a), g(b)
	if ga == 0 {
		return a
	}
	if gb == 0 || ga*gb > 0 {
		if math.Abs(ga) < math.Abs(gb) {
			return a
		}
		return b
	}
	side := 0
	prev := math.NaN()
	for range 100 {
		c := (a*gb - b*ga) / (gb - ga)
		if !(c > math.Min(a, b) && c < math.Max(a, b)) {
			c = 0.5 * (a + b)
		}
		if math.Abs(c-prev) < tol*math.Max(1, math.Abs(c)) {
			return c
		}
		prev = c
		gc := g(c)
		switch {
		case gc == 0:
			return c
		case gc*gb > 0:
			b, gb = c, gc
			if side == -1 {
				ga /= 2
			}
			side = -1
		default:
			a, ga = c, gc
			if side == 1 {
				gb /= 2
			}
			side = 1
		}
		if math.Abs(b-a) < tol*math.Max(1, math.Abs(a)) {
			break
		}
	}
	return 0.5 * (a + b)
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

// firstGrid is the density of Z_1 ~ N(θ√t, 1) on [lo, hi] times Simpson
// weights. theta is the drift: E[Z_k] = θ√t_k.
func firstGrid(lo, hi, t, theta float64) *grid {
	z, w := simpson(lo, hi)
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
// [lo, hi].
func (g *grid) next(tp, t, lo, hi, theta float64) *grid {
	z, w := simpson(lo, hi)
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

// Power returns the probability that the design rejects H0 (two-sided:
// in either direction, boundary ±Bounds; one-sided: Z ≥ Bounds) when the
// z-statistic has drift θ, i.e. E[Z_k] = θ·√t_k; θ = δ/SE(Δ̂ at t=1).
func (d *Design) Power(theta float64) float64 {
	p := 0.0
	for _, x := range d.exitProbs(theta) {
		p += x
	}
	return p
}

// InflationFactor is the ratio of the design's maximum sample size to the
// fixed-horizon sample size for the same alpha and power (two-sided, or
// one-sided for a one-sided design): gsDesign's n.I[K] for n.fix = 1.
// Jennison & Turnbull (2000), Tables 2.1-2.4, tabulate it for classical
// designs.
func (d *Design) InflationFactor(power float64) float64 {
	if !(power > 0 && power < 1) {
		panic("stats: power must be in (0,1)")
	}
	za := unitNormal.Quantile(1 - d.Alpha/2)
	if d.oneSided() {
		za = unitNormal.Quantile(1 - d.Alpha)
	}
	zf := za + unitNormal.Quantile(power)
	// DirectionalPower(θ) is increasing in θ ≥ 0.
	th := solveBracket(func(th float64) float64 { return d.DirectionalPower(th) - power }, 0, 3*zf, 1e-9)
	return th * th / (zf * zf)
}

// DirectionalPower is Power counting only crossings of the upper
// boundary: the probability of concluding "better" when the drift θ > 0
// (gsDesign's power for test.type = 2). InflationFactor uses it.
func (d *Design) DirectionalPower(theta float64) float64 {
	p := 0.0
	for _, x := range d.crossProbs(theta, true) {
		p += x
	}
	return p
}
