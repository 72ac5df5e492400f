package stats

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// PSI is the population stability index of the binned counts cur against
// ref (same bins):
//
//	PSI = Σᵢ (qᵢ − pᵢ) · ln(qᵢ / pᵢ)
//
// where pᵢ and qᵢ are the reference and current proportions of bin i. It
// is the symmetrised Kullback-Leibler divergence (Jeffreys divergence)
// of the two binned distributions (Yurdakul 2018, "Statistical
// Properties of Population Stability Index", Western Michigan
// University; Siddiqi 2006, "Credit Risk Scorecards"). The usual reading:
// below 0.1 no shift, 0.1-0.25 a moderate shift, above 0.25 a major one.
//
// Empty bins would make a term infinite, so each proportion is smoothed
// with half a count per bin (the Jeffreys prior, pᵢ = (nᵢ + ½)/(N + B/2)),
// over the bins that are non-empty in at least one of the two. It returns
// NaN when either side has no count.
func PSI(ref, cur []float64) float64 {
	if len(ref) != len(cur) {
		panic("stats: PSI of histograms with different bins")
	}
	nr, nc, bins := occupied(ref, cur)
	if !(nr > 0 && nc > 0) {
		return math.NaN()
	}
	const half = 0.5
	dr, dc := nr+half*float64(bins), nc+half*float64(bins)
	psi := 0.0
	for i := range ref {
		if !(ref[i] > 0 || cur[i] > 0) {
			continue
		}
		p, q := (ref[i]+half)/dr, (cur[i]+half)/dc
		psi += (q - p) * math.Log(q/p)
	}
	return psi
}

// ChiSquareHomogeneity tests whether two binned samples come from the
// same distribution: Pearson's chi-square on the 2×B contingency table
// of the counts, over the bins non-empty in at least one sample,
//
//	X² = Σᵢ Σ_s (n_si − E_si)² / E_si,  E_si = N_s · (n_ri + n_ci) / (N_r + N_c)
//
// with B − 1 degrees of freedom (Agresti 2013, "Categorical Data
// Analysis", 3rd ed., §3.2). It returns the statistic, the degrees of
// freedom and the p-value; p is 1 when there is nothing to compare.
// Counts must be independent observations: here requests, which are
// clustered by user, so with heavy users the test is anti-conservative
// (abgate pairs it with a PSI effect threshold for that reason).
func ChiSquareHomogeneity(ref, cur []float64) (stat float64, df int, p float64) {
	if len(ref) != len(cur) {
		panic("stats: chi-square of histograms with different bins")
	}
	nr, nc, bins := occupied(ref, cur)
	if bins < 2 || !(nr > 0 && nc > 0) {
		return 0, 0, 1
	}
	n := nr + nc
	for i := range ref {
		t := ref[i] + cur[i]
		if !(t > 0) {
			continue
		}
		er, ec := nr*t/n, nc*t/n
		stat += (ref[i]-er)*(ref[i]-er)/er + (cur[i]-ec)*(cur[i]-ec)/ec
	}
	df = bins - 1
	p = distuv.ChiSquared{K: float64(df)}.Survival(stat)
	return stat, df, p
}

// occupied returns the two histograms' totals over the bins that are
// non-empty in at least one of them, and the number of such bins.
func occupied(ref, cur []float64) (nr, nc float64, bins int) {
	for i := range ref {
		if ref[i] > 0 || cur[i] > 0 {
			bins++
			nr += ref[i]
			nc += cur[i]
		}
	}
	return nr, nc, bins
}
