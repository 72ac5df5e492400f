package stats

import "math"

// SPRTResult is the state of Wald's sequential probability ratio test.
type SPRTResult struct {
	LogLR float64 // log likelihood ratio of H1 to H0
	Upper float64 // log((1−β)/α): accept H1 at or above
	Lower float64 // log(β/(1−α)): accept H0 at or below
	// Decision is +1 (accept H1), −1 (accept H0) or 0 (continue).
	Decision int
}

// BinarySPRT is Wald's SPRT (Wald 1945, "Sequential Tests of Statistical
// Hypotheses", Ann. Math. Statist. 16(2)) for a Bernoulli rate, testing
// H0: p = p0 against H1: p = p1 after s successes in n trials:
//
//	log Λ = s·log(p1/p0) + (n−s)·log((1−p1)/(1−p0)),
//
// with Wald's approximate thresholds A = log((1−β)/α), B = log(β/(1−α)),
// which keep the error rates at most about α and β.
// It panics unless 0 < p0, p1 < 1, p0 ≠ p1 and alpha, beta ∈ (0,1).
func BinarySPRT(s, n, p0, p1, alpha, beta float64) SPRTResult {
	checkAlpha(alpha)
	checkAlpha(beta)
	if !(p0 > 0 && p0 < 1 && p1 > 0 && p1 < 1) || p0 == p1 {
		panic("stats: SPRT needs 0 < p0 != p1 < 1")
	}
	r := SPRTResult{Upper: math.Log((1 - beta) / alpha), Lower: math.Log(beta / (1 - alpha))}
	if !(n > 0) || !(s >= 0) || s > n || math.IsInf(n, 0) {
		return r
	}
	r.LogLR = s*math.Log(p1/p0) + (n-s)*math.Log((1-p1)/(1-p0))
	switch {
	case r.LogLR >= r.Upper:
		r.Decision = 1
	case r.LogLR <= r.Lower:
		r.Decision = -1
	}
	return r
}
