package stats

import "math"

// CombineLogE combines the log e-values of the same null hypothesis
// measured on independent, successive cohorts, e.g. the users first
// exposed in each ramp period, by multiplying the e-values (summing the
// logs). If each period's e-value is valid given everything before it (an
// e-process started afresh on new users), the running product is a
// nonnegative supermartingale across periods, so rejecting when it
// reaches 1/α keeps the error ≤ α however the periods were chosen to
// continue or stop ("optional continuation": Vovk & Wang 2021,
// "E-values: calibration, combination and applications", Ann. Statist.
// 49(3); Grünwald, de Heide & Koolen 2024, "Safe testing", JRSS-B 86(5)).
//
// Estimand: the same null in every period, e.g. "the candidate's mean
// harm on the guardrail metric is ≥ the margin", for the same candidate
// version and the same population of users (ramp steps sample it at
// different rates, which is fine). It is not valid to combine periods
// that share users (a user counted in two periods' sums makes them
// dependent) or to combine asymptotic e-values as if exact. Non-finite
// entries are ignored; the result is finite (capped at ±700).
func CombineLogE(logEs ...float64) float64 {
	s := 0.0
	for _, l := range logEs {
		if finite(l) {
			s += l
		}
	}
	return math.Max(-700, math.Min(700, s))
}

// RejectLogE reports whether a (combined) log e-value rejects at level
// alpha: log E ≥ log(1/α) (Ville's inequality).
func RejectLogE(logE, alpha float64) bool {
	checkAlpha(alpha)
	return logE >= math.Log(1/alpha)
}

// RestartAlpha is the level for the i-th fresh test (i = 1, 2, …) of the
// same question, e.g. a ramp step restarted after a fix, so that the
// levels of all restarts together sum to at most alpha:
//
//	α_1 = 0.9·α,  α_i = 0.1·α · 6/(π² (i−1)²) for i ≥ 2,  Σ_i α_i = α.
//
// Most steps are never restarted, so the first test keeps 90% of α (a
// plain 6/(π² i²) schedule would leave it 61% and cost every experiment
// power); restarts share the remaining 10%: 0.0061α, 0.0015α, … A union
// bound over restarts needs no independence. It panics when alpha ∉ (0,1)
// or i < 1.
func RestartAlpha(alpha float64, i int) float64 {
	checkAlpha(alpha)
	if i < 1 {
		panic("stats: restart index must be >= 1")
	}
	if i == 1 {
		return restartFirstShare * alpha
	}
	k := float64(i - 1)
	return (1 - restartFirstShare) * alpha * 6 / (math.Pi * math.Pi * k * k)
}

// restartFirstShare is the share of α a step's first test gets.
const restartFirstShare = 0.9

// AlphaSpent is the type I error already spent after `restarts` fresh
// tests at the RestartAlpha levels: Σ_{i≤restarts} α_i ≤ α.
func AlphaSpent(alpha float64, restarts int) float64 {
	checkAlpha(alpha)
	s := 0.0
	for i := 1; i <= restarts; i++ {
		s += RestartAlpha(alpha, i)
	}
	return s
}
