package stats

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// DefaultSRMConcentration is the Dirichlet prior concentration k of the
// sequential SRM test: prior α_i = k·π_i (Lindon & Malek's default).
const DefaultSRMConcentration = 100

// SRMResult is a sample-ratio-mismatch check.
type SRMResult struct {
	ChiSquare float64 `json:"chi_square"` // Pearson statistic Σ(o−e)²/e
	PValue    float64 `json:"p_value"`    // fixed-horizon chi-square p-value (df = k−1)
	LogBF     float64 `json:"log_bayes_factor"`
	// AnytimePValue is min(1, 1/BF) of the Dirichlet-multinomial Bayes
	// factor: valid under continuous monitoring.
	AnytimePValue float64 `json:"anytime_p_value"`
}

// normSplit returns the expected split normalised to sum 1, or nil if it
// is unusable (wrong length, non-positive or non-finite weights).
func normSplit(counts, split []float64) []float64 {
	if len(split) != len(counts) || len(counts) < 2 {
		return nil
	}
	sum := 0.0
	for _, w := range split {
		if !(w > 0) || math.IsInf(w, 0) {
			return nil
		}
		sum += w
	}
	out := make([]float64, len(split))
	for i, w := range split {
		out[i] = w / sum
	}
	return out
}

// ChiSquareSRM is Pearson's chi-square goodness-of-fit test of observed
// counts against an expected split (weights, normalised internally). It is
// a fixed-horizon test: checked repeatedly, its false-alarm rate grows.
// Degenerate input (no users, bad split) gives p = 1.
func ChiSquareSRM(counts, split []float64) (chi2, p float64) {
	pi := normSplit(counts, split)
	n := 0.0
	for _, c := range counts {
		if !(c >= 0) || math.IsInf(c, 0) {
			return 0, 1
		}
		n += c
	}
	if pi == nil || !(n > 0) || math.IsInf(n, 0) {
		return 0, 1
	}
	for i, c := range counts {
		e := n * pi[i]
		chi2 += (c - e) * (c - e) / e
	}
	if !finite(chi2) {
		return 0, 1
	}
	p = distuv.ChiSquared{K: float64(len(counts) - 1)}.Survival(chi2)
	return chi2, p
}

// SequentialSRM is the anytime-valid multinomial test of Lindon & Malek
// ("Anytime-Valid Inference for Multinomial Count Data", NeurIPS 2022).
// Under H0 counts are Multinomial(n, π); the alternative puts a
// Dirichlet(k·π) prior on the cell probabilities. The Bayes factor
//
//	BF = [B(k·π + x) / B(k·π)] / Π π_i^{x_i},  B(a) = Π Γ(a_i) / Γ(Σ a_i)
//
// is a nonnegative martingale under H0, so p = min(1, 1/BF) is an
// anytime-valid p-value (Ville's inequality). concentration ≤ 0 uses
// DefaultSRMConcentration. The multinomial coefficient cancels.
func SequentialSRM(counts, split []float64, concentration float64) (logBF, p float64) {
	if !(concentration > 0) || math.IsInf(concentration, 0) {
		concentration = DefaultSRMConcentration
	}
	pi := normSplit(counts, split)
	if pi == nil {
		return 0, 1
	}
	sumA, sumAX := 0.0, 0.0
	for i, c := range counts {
		if !(c >= 0) || math.IsInf(c, 0) {
			return 0, 1
		}
		a := concentration * pi[i]
		sumA += a
		sumAX += a + c
		logBF += lgamma(a+c) - lgamma(a) - c*math.Log(pi[i])
	}
	logBF += lgamma(sumA) - lgamma(sumAX)
	if !finite(logBF) {
		return 0, 1
	}
	if logBF <= 0 {
		return logBF, 1
	}
	return logBF, math.Exp(-logBF)
}

func lgamma(x float64) float64 {
	v, _ := math.Lgamma(x)
	return v
}

// SRM runs both checks.
func SRM(counts, split []float64, concentration float64) SRMResult {
	chi2, p := ChiSquareSRM(counts, split)
	lbf, ap := SequentialSRM(counts, split, concentration)
	return SRMResult{ChiSquare: chi2, PValue: p, LogBF: lbf, AnytimePValue: ap}
}
