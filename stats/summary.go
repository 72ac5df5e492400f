package stats

import "math"

// Summary holds user-level sufficient statistics for one variant and one
// metric, exactly as the recorder stores them. The analysis unit is the
// user (the randomization unit). For each user there is a numerator x (the
// sum of the metric's values for that user) and a denominator y (that
// user's number of observations, e.g. requests or feedback events).
type Summary struct {
	N     float64 // users
	SumX  float64 // Σx
	SumX2 float64 // Σx²
	SumY  float64 // Σy
	SumY2 float64 // Σy²
	SumXY float64 // Σxy

	// Optional sums, zero when the store does not keep them.

	// SumR and SumR2 are Σr and Σr² of each user's own ratio r = x/y
	// (for a Ratio metric: the user's error rate, mean latency, …). A
	// Ratio metric with Metric.Bounds is analysed on r, whose range is
	// the per-observation range (see BoundedTest).
	SumR  float64 `json:",omitempty"`
	SumR2 float64 `json:",omitempty"`
	// SumZ, SumZ2 and SumXZ are Σz, Σz², Σxz of a pre-exposure covariate
	// z per user (e.g. the same metric over the user's last 14 days
	// before first exposure, 0 for new users), for CUPED (Metric.CUPED).
	SumZ  float64 `json:",omitempty"`
	SumZ2 float64 `json:",omitempty"`
	SumXZ float64 `json:",omitempty"`
	// SumYZ and SumRZ are Σyz and Σrz: the denominator's and the user's
	// own ratio's cross-moments with z, for CUPED on a Ratio metric (the
	// delta method's linearisation needs Σyz; the bounded test on r
	// needs Σrz).
	SumYZ float64 `json:",omitempty"`
	SumRZ float64 `json:",omitempty"`
}

// Add returns s + d field by field (all sums, optional ones included).
func (s Summary) Add(d Summary) Summary {
	return Summary{
		N: s.N + d.N, SumX: s.SumX + d.SumX, SumX2: s.SumX2 + d.SumX2,
		SumY: s.SumY + d.SumY, SumY2: s.SumY2 + d.SumY2, SumXY: s.SumXY + d.SumXY,
		SumR: s.SumR + d.SumR, SumR2: s.SumR2 + d.SumR2,
		SumZ: s.SumZ + d.SumZ, SumZ2: s.SumZ2 + d.SumZ2, SumXZ: s.SumXZ + d.SumXZ,
		SumYZ: s.SumYZ + d.SumYZ, SumRZ: s.SumRZ + d.SumRZ,
	}
}

// Kind says how a metric is computed from a Summary.
type Kind string

const (
	// Mean is the per-user mean of x: SumX/N. A proportion is a Mean
	// metric with x ∈ {0,1}.
	Mean Kind = "mean"
	// Ratio is the per-observation mean Σx/Σy (e.g. thumbs-up rate per
	// request, mean latency per request), with delta-method variance.
	Ratio Kind = "ratio"
)

// Estimate is a point estimate and the variance of that estimate (not of
// a single user).
type Estimate struct {
	Value    float64
	Variance float64
}

// valid reports whether e is usable for inference: finite with a finite,
// strictly positive variance.
func (e Estimate) valid() bool {
	return finite(e.Value) && finite(e.Variance) && e.Variance > 0
}

// roundoff is the relative size below which a variance computed as a
// difference of sums of squares is rounding noise: with every value equal
// (say 0.3), Σx² − n·x̄² comes out at ±1e-16 of Σx² rather than 0, and a
// positive remainder would make the estimate look exact.
const roundoff = 1e-10

// sampleVar is the unbiased sample variance from n, Σx, Σx², clamped at 0
// against rounding. It returns 0 when n < 2.
func sampleVar(n, sx, sx2 float64) float64 {
	if n < 2 {
		return 0
	}
	m := sx / n
	v := (sx2 - n*m*m) / (n - 1)
	if !(v > roundoff*math.Abs(sx2)/(n-1)) { // also catches NaN
		return 0
	}
	return v
}

func sampleCov(n, sx, sy, sxy float64) float64 {
	if n < 2 {
		return 0
	}
	c := (sxy - sx*sy/n) / (n - 1)
	if !finite(c) {
		return 0
	}
	return c
}

// MeanEstimate estimates the per-user mean SumX/N and its variance s²/N.
// With N = 0 it returns NaN for the value; callers check validity.
func MeanEstimate(s Summary) Estimate {
	if !(s.N > 0) {
		return Estimate{Value: math.NaN(), Variance: math.NaN()}
	}
	m := s.SumX / s.N
	v := sampleVar(s.N, s.SumX, s.SumX2) / s.N
	if v == 0 && s.N >= 2 {
		v = zeroVarianceFloor(m, s.N)
	}
	return Estimate{Value: m, Variance: v}
}

// zeroVarianceFloor is the variance of an estimate whose sample shows no
// variation at all: every user had the same value, typically no errors
// yet, or every task completed. The sample variance is then 0, the
// estimate would look exact, and no test could conclude anything (a
// candidate with no errors could never be shown non-inferior). For a 0/1
// metric with no event in m trials, Agresti and Coull's adjusted estimate
// ("add two successes and two failures", Agresti & Coull 1998,
// "Approximate is better than exact for interval estimation of binomial
// proportions") has variance p̃(1−p̃)/(m+4) with p̃ = 2/(m+4), about
// 2/(m+4)²; the floor uses that, scaled by the value's magnitude for
// metrics that are not rates. It shrinks as m grows, so zero errors
// become evidence of non-inferiority once there is enough traffic.
func zeroVarianceFloor(value, m float64) float64 {
	scale := math.Max(math.Abs(value), 1)
	return 2 * scale * scale / ((m + 4) * (m + 4))
}

// RatioEstimate estimates Σx/Σy with the delta-method variance
//
//	Var(R̂) ≈ (1/N)·(s²x/ȳ² − 2·x̄·sxy/ȳ³ + x̄²·s²y/ȳ⁴)
//
// where x̄, ȳ are per-user means and s²x, s²y, sxy the per-user sample
// (co)variances (Deng, Knoblich, Lu 2018, "Applying the Delta Method in
// Metric Analytics").
func RatioEstimate(s Summary) Estimate {
	if !(s.N > 0) || !(s.SumY > 0) {
		return Estimate{Value: math.NaN(), Variance: math.NaN()}
	}
	mx, my := s.SumX/s.N, s.SumY/s.N
	vx := sampleVar(s.N, s.SumX, s.SumX2)
	vy := sampleVar(s.N, s.SumY, s.SumY2)
	cxy := sampleCov(s.N, s.SumX, s.SumY, s.SumXY)
	v := (vx/(my*my) - 2*mx*cxy/(my*my*my) + mx*mx*vy/(my*my*my*my)) / s.N
	// The terms nearly cancel when every observation has the same value
	// (x = R·y for every user, e.g. every task completed): what is left
	// is rounding, relative to the raw second moments.
	my2 := my * my
	raw := (math.Abs(s.SumX2)/my2 + 2*math.Abs(mx*s.SumXY)/(my2*my) + mx*mx*math.Abs(s.SumY2)/(my2*my2)) / (s.N * (s.N - 1))
	if !(v > roundoff*raw) {
		v = 0
	}
	if v == 0 && s.N >= 2 {
		// Every observation has the same value (e.g. no errors at all,
		// or every task completed): the observations are the trials.
		v = zeroVarianceFloor(mx/my, s.SumY)
	}
	return Estimate{Value: mx / my, Variance: v}
}

// Estimate returns the metric estimate of kind k for s.
func (k Kind) Estimate(s Summary) Estimate {
	if k == Ratio {
		return RatioEstimate(s)
	}
	return MeanEstimate(s)
}

// Lift returns the treatment-minus-control effect and its variance, for
// independent arms. Absolute: Δ = t − c, Var = Vt + Vc. Relative:
// Δ = t/c − 1 with the delta-method variance Vt/c² + t²·Vc/c⁴.
func Lift(control, treatment Estimate, relative bool) Estimate {
	if !relative {
		return Estimate{Value: treatment.Value - control.Value, Variance: treatment.Variance + control.Variance}
	}
	c, t := control.Value, treatment.Value
	if c == 0 || !finite(c) {
		return Estimate{Value: math.NaN(), Variance: math.NaN()}
	}
	c2 := c * c
	return Estimate{Value: t/c - 1, Variance: treatment.Variance/c2 + t*t*control.Variance/(c2*c2)}
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
