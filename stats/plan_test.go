package stats

import (
	"math"
	"testing"
)

// TestTuningHelpers: N*, τ, users and days follow the traffic.
func TestTuningHelpers(t *testing.T) {
	t.Parallel()
	near(t, "N* 40k/arm", NStarFor(40000), 80000, 0)
	near(t, "N* default", NStarFor(0), DefaultNStar, 0)
	near(t, "N* floor", NStarFor(10), 200, 0)
	// τ from N*: the mSPRT with τ² = 4ρ²cv² on the relative scale equals
	// the confidence sequence at N* (relative lift, equal arms).
	const p0, n = 0.1, 40000.0
	cv := math.Sqrt((1 - p0) / p0)
	tau := TauFor(2*n, cv, 0.05)
	e := Estimate{Value: 0.05, Variance: 4 * cv * cv / (2 * n)}
	cs := ConfidenceSequence(e, 0, 2*n, 2*n, 0.05)
	ms := MSPRT(e, 0, tau*tau, 0.05)
	near(t, "TauFor ≡ CS at N*", ms.CI.Low, cs.CI.Low, 1e-12)
	near(t, "τ default", TauFor(0, 1, 0.05), DefaultTau, 0)
	// 50 000 users a day at a 5% step, 7 days: 17 500 candidate users.
	near(t, "planned users", PlannedUsers(50000, 0.05, 7), 17500, 1e-9)
	near(t, "days", DaysToDecision(17500, 50000, 0.05), 7, 1e-12)
	if !math.IsInf(DaysToDecision(10, 0, 0.5), 1) || DaysToDecision(0, 100, 0.5) != 0 || PlannedUsers(100, 1, 1) != 0 {
		t.Error("degenerate days/users")
	}
	s := PlanSchedule(PlanInput{BaselineMean: 0.1, Lift: 0.1, Relative: true, Power: 0.8}, ConfidenceSequenceMethod, 0, 0, nil, 100000, 0.5)
	near(t, "days fixed", s.DaysFixed, s.Fixed/50000, 1e-12)
	// One-sided plans need fewer users than two-sided ones.
	two := SampleSize(PlanInput{BaselineMean: 0.1, Lift: 0.1, Relative: true, Power: 0.8}, ConfidenceSequenceMethod, 0, 0, nil)
	one := SampleSize(PlanInput{BaselineMean: 0.1, Lift: 0.1, Relative: true, Power: 0.8, OneSided: true}, ConfidenceSequenceMethod, 0, 0, nil)
	t.Logf("plan 10%%→11%%, 80%%: fixed %v→%v, CS max %v→%v (two→one-sided)", two.Fixed, one.Fixed, two.Sequential, one.Sequential)
	if !(one.Fixed < two.Fixed && one.Sequential < two.Sequential) {
		t.Errorf("one-sided plan %+v not smaller than two-sided %+v", one, two)
	}
	// Fixed one-sided: (z_.95 + z_.8)²·(σ0²+σ1²)/δ² = 11 618.
	za, zb := 1.6448536269514722, 0.8416212335729143
	want := math.Ceil((za + zb) * (za + zb) * (0.09 + 0.11*0.89) / (0.01 * 0.01))
	near(t, "one-sided fixed n", one.Fixed, want, 0)
}
