//go:build simulation

package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// Validity at the margin under continuous monitoring, per metric shape:
// go test -tags simulation -run SimValid -v ./stats/
//
// Each run randomises users one at a time to control or candidate
// (probability 1/2, as the hash does), with the candidate's true harm
// exactly at the guardrail margin, and looks after every user up to 100
// users and then every time the total grows by 2%, up to 20 000 users per
// arm. A "false advance" is a look at which the test declares the
// candidate non-inferior. The table reports the share of runs with a
// false advance by 200, 1 000, 5 000 and 20 000 users per arm.

// validShape is one metric shape at its margin.
type validShape struct {
	name   string
	metric Metric // Kind, Better, Relative, Bounds
	margin float64
	mean0  float64 // the control's true per-user mean (a centre from an earlier period)
	share  float64 // the candidate's traffic share (0 = 1/2)
	// user draws one user's (x, y): x the sum of values, y the count.
	user func(rng *rand.Rand, arm int) (x, y float64)
}

// cappedLogNormalMean is E[min(X, c)] for log X ~ N(mu, s²).
func cappedLogNormalMean(mu, s, c float64) float64 {
	lc := math.Log(c)
	return math.Exp(mu+s*s/2)*unitNormal.CDF((lc-mu-s*s)/s) + c*unitNormal.Survival((lc-mu)/s)
}

// poisson1 is 1 + Poisson(lambda): a user's requests.
func poisson1(rng *rand.Rand, lambda float64) float64 {
	l, k, p := math.Exp(-lambda), 0.0, rng.Float64()
	for p > l {
		k++
		p *= rng.Float64()
	}
	return 1 + k
}

func validShapes() []validShape {
	bern := func(p0, p1 float64) func(*rand.Rand, int) (float64, float64) {
		return func(rng *rand.Rand, arm int) (float64, float64) {
			p := p0
			if arm == 1 {
				p = p1
			}
			if rng.Float64() < p {
				return 1, 1
			}
			return 0, 1
		}
	}
	unit := &Bounds{0, 1}
	// Clustered errors: 3% of control users fail a quarter of their
	// requests, the rest 0.2%; the candidate has more heavy users, so its
	// mean per-user error rate is exactly 0.5 points higher. Requests per
	// user are independent of the rate, so the request-weighted rate the
	// old test estimates has the same truth.
	const light, heavy, q0 = 0.002, 0.25, 0.03
	mean0 := (1-q0)*light + q0*heavy
	q1 := (mean0 + 0.005 - light) / (heavy - light)
	clustered := func(rng *rand.Rand, arm int) (float64, float64) {
		q := q0
		if arm == 1 {
			q = q1
		}
		r := light
		if rng.Float64() < q {
			r = heavy
		}
		y := poisson1(rng, 4)
		x := 0.0
		for range int(y) {
			if rng.Float64() < r {
				x++
			}
		}
		return x, y
	}
	// Ratings 1-5: control mean 4.0, candidate 3.9 (margin 0.1).
	cum0 := []float64{0.05, 0.10, 0.25, 0.60, 1}
	cum1 := []float64{0.05, 0.10, 0.25, 0.70, 1}
	rating := func(rng *rand.Rand, arm int) (float64, float64) {
		c := cum0
		if arm == 1 {
			c = cum1
		}
		u := rng.Float64()
		for i, p := range c {
			if u < p {
				return float64(i + 1), 1
			}
		}
		return 5, 1
	}
	// Latency: log-normal per request (median 300 ms, σ = 1.5), capped at
	// the 30 s upstream timeout; the candidate's log-mean is set so that
	// its capped mean is exactly 1.10× the control's.
	const sigma, capMS = 1.5, 30000.0
	mu0 := math.Log(300)
	target := 1.10 * cappedLogNormalMean(mu0, sigma, capMS)
	lo, hi := mu0, mu0+1
	for range 100 {
		mid := (lo + hi) / 2
		if cappedLogNormalMean(mid, sigma, capMS) < target {
			lo = mid
		} else {
			hi = mid
		}
	}
	mu1 := (lo + hi) / 2
	latency := func(rng *rand.Rand, arm int) (float64, float64) {
		mu := mu0
		if arm == 1 {
			mu = mu1
		}
		y := poisson1(rng, 2)
		x := 0.0
		for range int(y) {
			x += math.Min(math.Exp(mu+sigma*rng.NormFloat64()), capMS)
		}
		return x, y
	}
	return []validShape{
		{"Bernoulli 10% (+2 pt margin)", Metric{Kind: Mean, Better: LowerIsBetter, Bounds: unit}, 0.02, 0.10, 0, bern(0.10, 0.12)},
		{"rare 0.4% (+0.5 pt margin)", Metric{Kind: Mean, Better: LowerIsBetter, Bounds: unit}, 0.005, 0.004, 0, bern(0.004, 0.009)},
		{"rare 0.4%, 5% ramp step", Metric{Kind: Mean, Better: LowerIsBetter, Bounds: unit}, 0.005, 0.004, 0.05, bern(0.004, 0.009)},
		{"clustered errors 0.94% (+0.5 pt)", Metric{Kind: Ratio, Better: LowerIsBetter, Bounds: unit}, 0.005, mean0, 0, clustered},
		{"clustered errors, 5% ramp step", Metric{Kind: Ratio, Better: LowerIsBetter, Bounds: unit}, 0.005, mean0, 0.05, clustered},
		{"rating 1-5 (-0.1 margin)", Metric{Kind: Mean, Better: HigherIsBetter, Bounds: &Bounds{1, 5}}, 0.1, 4.0, 0, rating},
		{"log-normal latency capped (+10%)", Metric{Kind: Ratio, Better: LowerIsBetter, Relative: true, Bounds: &Bounds{0, capMS}}, 0.10, cappedLogNormalMean(mu0, sigma, capMS), 0, latency},
		{"latency, 5% ramp step", Metric{Kind: Ratio, Better: LowerIsBetter, Relative: true, Bounds: &Bounds{0, capMS}}, 0.10, cappedLogNormalMean(mu0, sigma, capMS), 0.05, latency},
	}
}

// lookSchedule returns the total users (both arms) at which to look: every
// user up to 100, then every 2% growth, up to maxTotal.
func lookSchedule(maxTotal int, growth float64) []int {
	var looks []int
	for n := 2; n <= maxTotal; {
		looks = append(looks, n)
		next := int(math.Ceil(float64(n) * (1 + growth)))
		if n < 100 || next <= n {
			next = n + 1
		}
		n = next
	}
	return looks
}

var validCheckpoints = []float64{200, 1000, 5000, 20000}

type validRow struct {
	shape, method string
	byN           []int // false advances by each checkpoint
	runs          int
	maxN          float64 // per-arm users at the last look
}

// userSummary is one user's contribution to a Summary.
func userSummary(x, y float64) Summary {
	r := x / y
	return Summary{N: 1, SumX: x, SumX2: x * x, SumY: y, SumY2: y * y, SumXY: x * y, SumR: r, SumR2: r * r}
}

// runValidShape simulates one shape. The methods: the old Decide call
// (two-sided asymptotic confidence sequence, N* = 10 000, MinUsers 100,
// ratio metrics by the delta method); the one-sided asymptotic sequence
// (OneSided, without Bounds, same MinUsers); and the new bounded test
// (Bounds, from the first users).
func runValidShape(sh validShape, runs int, seed uint64, alpha float64, maxPerArm float64) []validRow {
	rng := rand.New(rand.NewPCG(seed, 0xabcdef))
	pi := sh.share
	if pi == 0 {
		pi = 0.5
	}
	// Looks by total users; the per-arm n reported is the candidate's.
	looks := lookSchedule(int(maxPerArm/pi), 0.02)
	names := []string{"old: Decide, two-sided CS", "one-sided CS (asymptotic)", "new: bounded e-process", "new: bounded, centre given"}
	rows := make([]validRow, len(names))
	for i := range rows {
		rows[i] = validRow{shape: sh.name, method: names[i], byN: make([]int, len(validCheckpoints)), runs: runs, maxN: maxPerArm}
	}
	oldM := sh.metric
	oldM.Name, oldM.Bounds = "m", nil
	split := []float64{1 - pi, pi}
	oldP := Policy{Mode: RampMode, Guardrails: []Guardrail{{Metric: oldM, Margin: sh.margin}}, Alpha: alpha, SRMAlpha: 1e-12}
	oneP := oldP
	oneP.OneSided = true
	newM := sh.metric
	s := newM.Better.sign()
	for range runs {
		var sum [2]Summary
		first := make([]float64, len(rows)) // per-arm n at the first false advance (0 = none)
		total, li := 0, 0
		for li < len(looks) {
			for total < looks[li] {
				arm := 0
				if rng.Float64() < pi {
					arm = 1
				}
				x, y := sh.user(rng, arm)
				sum[arm] = sum[arm].Add(userSummary(x, y))
				total++
			}
			li++
			n := sum[1].N
			if sum[0].N < 1 || sum[1].N < 1 {
				continue
			}
			in := Input{Users: []float64{sum[0].N, sum[1].N}, ExpectedSplit: split, Metrics: map[string][]Summary{"m": sum[:]}}
			if first[0] == 0 && sum[0].N >= DefaultMinUsers && sum[1].N >= DefaultMinUsers {
				if d := Decide(in, oldP); d.Verdict == Advance {
					first[0] = n
				}
			}
			if first[1] == 0 && sum[0].N >= DefaultMinUsers && sum[1].N >= DefaultMinUsers {
				if d := Decide(in, oneP); d.Verdict == Advance {
					first[1] = n
				}
			}
			c, _ := userMoments(sum[0], newM.Kind)
			t, _ := userMoments(sum[1], newM.Kind)
			null := BoundedNull{Theta0: -s * sh.margin, Relative: newM.Relative, Side: Side(s)}
			if first[2] == 0 && BoundedTest(c, t, *newM.Bounds, pi, null, math.NaN(), alpha).Reject {
				first[2] = n
			}
			if first[3] == 0 && BoundedTest(c, t, *newM.Bounds, pi, null, sh.mean0, alpha).Reject {
				first[3] = n
			}
		}
		for i, f := range first {
			for k, cp := range validCheckpoints {
				if f > 0 && f <= cp {
					rows[i].byN[k]++
				}
			}
		}
	}
	return rows
}

func formatValid(rows []validRow, alpha float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| shape | method |")
	for _, cp := range validCheckpoints {
		fmt.Fprintf(&b, " by n=%.0f/arm |", cp)
	}
	fmt.Fprintf(&b, "\n|---|---|%s\n", strings.Repeat("---|", len(validCheckpoints)))
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s |", r.shape, r.method)
		for k, c := range r.byN {
			if validCheckpoints[k] > r.maxN {
				b.WriteString(" — |")
				continue
			}
			fmt.Fprintf(&b, " %.4f |", float64(c)/float64(r.runs))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "(α = %.2f one-sided; %d runs per shape)\n", alpha, rows[0].runs)
	return b.String()
}

// validBound is the assertion's bound: α plus three Monte Carlo standard
// errors of a rate α over runs (the chance that a run at exactly α
// exceeds it is 0.13%), so a test whose error is ≤ α fails this check
// only by a 3-σ accident.
func validBound(alpha float64, runs int) float64 {
	return alpha + 3*math.Sqrt(alpha*(1-alpha)/float64(runs))
}

// simRuns is the runs per shape: the Monte Carlo SE of a 5% rate is then
// 0.0049, and validBound allows α + 0.0146.
const simRuns = 2000

func TestSimValidShapes(t *testing.T) {
	t.Parallel()
	const alpha = 0.05
	var all []validRow
	for i, sh := range validShapes() {
		maxN := 20000.0
		if sh.share > 0 && sh.share < 0.5 {
			maxN = 5000 // 100 000 users in all at a 5% step
		}
		rows := runValidShape(sh, simRuns, uint64(100+i), alpha, maxN)
		all = append(all, rows...)
		for _, nr := range rows[2:] {
			if fa := float64(nr.byN[len(validCheckpoints)-1]) / simRuns; fa > validBound(alpha, simRuns) {
				t.Errorf("%s, %s: false-advance rate %.4f > %.4f", sh.name, nr.method, fa, validBound(alpha, simRuns))
			}
		}
	}
	t.Log("\n" + formatValid(all, alpha))
}

// TestSimValidPower: the same shapes with no harm at all (candidate =
// control): the share of runs that advance by each n, i.e. the price in
// users of validity at every n.
func TestSimValidPower(t *testing.T) {
	t.Parallel()
	const alpha = 0.05
	var all []validRow
	for i, sh := range validShapes() {
		u := sh.user
		sh.user = func(rng *rand.Rand, _ int) (float64, float64) { return u(rng, 0) }
		sh.name += ", no harm"
		maxN := 20000.0
		if sh.share > 0 && sh.share < 0.5 {
			maxN = 5000
		}
		all = append(all, runValidShape(sh, simRuns/4, uint64(200+i), alpha, maxN)...)
	}
	t.Log("\n" + formatValid(all, alpha))
}

// TestSimValidDecide: the controller's own call. Decide in ramp mode with
// abgate's default guardrails (error rate +0.5 pt absolute, latency +10%
// relative), at a 5% ramp step, the error guardrail exactly at its margin
// (clustered errors) and latency equal: the share of runs that Advance.
// Old policy: today's (two-sided CS, no bounds). New policy: Bounds on
// both metrics ([0,1] for the per-user error rate, [0, 30 s] for the
// per-user mean latency, from SumR/SumR2), OneSided.
func TestSimValidDecide(t *testing.T) {
	t.Parallel()
	const runs, alpha, share, maxPerArm = 500, 0.05, 0.05, 5000
	var errShape, latShape validShape
	for _, sh := range validShapes() {
		switch sh.name {
		case "clustered errors, 5% ramp step":
			errShape = sh
		case "latency, 5% ramp step":
			latShape = sh
		}
	}
	errG := Guardrail{Metric: Metric{Name: "error", Kind: Ratio, Better: LowerIsBetter}, Margin: 0.005}
	latG := Guardrail{Metric: Metric{Name: "latency", Kind: Ratio, Better: LowerIsBetter, Relative: true}, Margin: 0.10}
	oldP := Policy{Mode: RampMode, Guardrails: []Guardrail{errG, latG}, Alpha: alpha}
	newP := oldP
	newP.OneSided = true
	newP.Guardrails = []Guardrail{errG, latG}
	newP.Guardrails[0].Bounds = &Bounds{0, 1}
	newP.Guardrails[1].Bounds = &Bounds{0, 30000}
	rng := rand.New(rand.NewPCG(300, 1))
	looks := lookSchedule(int(maxPerArm/share), 0.02)
	split := []float64{1 - share, share}
	// The same with the error guardrail alone (a step whose only
	// guardrail is the error rate).
	oldE, newE := oldP, newP
	oldE.Guardrails, newE.Guardrails = oldP.Guardrails[:1], newP.Guardrails[:1]
	policies := []Policy{oldP, newP, oldE, newE}
	row := func(shape, method string) validRow {
		return validRow{shape: shape, method: method, byN: make([]int, len(validCheckpoints)), runs: runs, maxN: maxPerArm}
	}
	rows := []validRow{
		row("Decide, ramp 5%, errors at margin + latency equal", "old policy"),
		row("Decide, ramp 5%, errors at margin + latency equal", "new policy (Bounds, OneSided)"),
		row("Decide, ramp 5%, error guardrail alone at margin", "old policy"),
		row("Decide, ramp 5%, error guardrail alone at margin", "new policy (Bounds, OneSided)"),
	}
	for range runs {
		var e, l [2]Summary
		var users [2]float64
		first := make([]float64, len(policies))
		total, li := 0, 0
		for li < len(looks) {
			for total < looks[li] {
				arm := 0
				if rng.Float64() < share {
					arm = 1
				}
				x, y := errShape.user(rng, arm)
				e[arm] = e[arm].Add(userSummary(x, y))
				x, y = latShape.user(rng, 0) // latency equal in both arms
				l[arm] = l[arm].Add(userSummary(x, y))
				users[arm]++
				total++
			}
			li++
			in := Input{Users: users[:], ExpectedSplit: split, Metrics: map[string][]Summary{"error": e[:], "latency": l[:]}}
			for i, p := range policies {
				if first[i] == 0 && Decide(in, p).Verdict == Advance {
					first[i] = users[1]
				}
			}
		}
		for i, f := range first {
			for k, cp := range validCheckpoints {
				if f > 0 && f <= cp {
					rows[i].byN[k]++
				}
			}
		}
	}
	t.Log("\n" + formatValid(rows, alpha))
	for _, r := range []validRow{rows[1], rows[3]} {
		if fa := float64(r.byN[len(validCheckpoints)-2]) / runs; fa > validBound(alpha, runs) {
			t.Errorf("%s, %s: false advance rate %.4f > %.4f", r.shape, r.method, fa, validBound(alpha, runs))
		}
	}
}
