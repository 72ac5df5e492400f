package api

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// daysPerMonth turns a daily amount into a monthly one: the mean
// Gregorian month (365.2425 / 12 days).
const daysPerMonth = 30.436875

// ReportMoney is what switching everyone to each candidate would do to
// spend at the traffic observed so far (issue 15).
type ReportMoney struct {
	Currency string `json:"currency"` // ISO 4217 code
	Symbol   string `json:"symbol"`
	// Days is the time the traffic was observed over; RequestsPerDay is
	// every request the experiment saw (analysed or not) per day.
	Days           float64        `json:"days"`
	RequestsPerDay float64        `json:"requests_per_day"`
	Candidates     []ReportSaving `json:"candidates"`
}

// ReportSaving is one candidate's money figures. Savings are positive
// when the candidate is cheaper; each interval is the cost metric's
// anytime-valid interval (at the policy's confidence) times the traffic,
// so it carries the cost's uncertainty, not the traffic's.
type ReportSaving struct {
	Variant int    `json:"variant"`
	Name    string `json:"name"`
	// Per day and per month (30.44 days), with the interval.
	PerDay       *float64 `json:"per_day,omitempty"`
	PerDayLow    *float64 `json:"per_day_low,omitempty"`
	PerDayHigh   *float64 `json:"per_day_high,omitempty"`
	PerMonth     *float64 `json:"per_month,omitempty"`
	PerMonthLow  *float64 `json:"per_month_low,omitempty"`
	PerMonthHigh *float64 `json:"per_month_high,omitempty"`
	// Significant: the interval excludes zero.
	Significant bool `json:"significant"`
	// CostPerSuccess and BaseCostPerSuccess, when the experiment has a
	// success signal: spend per successful outcome.
	CostPerSuccess     *float64 `json:"cost_per_success,omitempty"`
	BaseCostPerSuccess *float64 `json:"base_cost_per_success,omitempty"`
	// Sentence: "Switching to "ft" saves $1,230 a month (95% interval
	// $800 to $1,650) at 12,000 requests a day."
	Sentence string `json:"sentence"`
}

// ReportETA estimates when the primary metric will be decided, planned
// from the design (alpha, method, the detectable effect) and the
// observed traffic and baseline, never from the observed lift.
type ReportETA struct {
	// Effect is the relative change planned for (report.detectable_effect).
	Effect float64 `json:"effect"`
	// UsersPerVariant is the sequential plan's users per variant for 80%
	// power; Have is the smallest variant's users now.
	UsersPerVariant float64 `json:"users_per_variant"`
	Have            float64 `json:"have"`
	// UsersPerDay is new users a day in the experiment, observed.
	UsersPerDay float64 `json:"users_per_day"`
	// Days is the estimated days from now until the plan's users are
	// reached (0: already there; null: the traffic never gets there).
	Days *float64 `json:"days"`
	// CappedByMaxUsers: max_users ends the experiment before the plan's
	// users are reached; Days counts to max_users then.
	CappedByMaxUsers bool   `json:"capped_by_max_users,omitempty"`
	Sentence         string `json:"sentence"`
}

// observedDays is the span the period's traffic was observed over: from
// the period start (or the first hour with data) to now or the end, at
// least one hour so a first minute's traffic is not extrapolated wildly.
func observedDays(r *Report, hourly []experiments.HourSummaries) float64 {
	from := r.Started
	if len(hourly) > 0 && (from.IsZero() || hourly[0].Hour.Before(from)) {
		from = hourly[0].Hour
	}
	to := r.GeneratedAt
	if r.Ended && !r.EndedAt.IsZero() {
		to = r.EndedAt
	}
	if from.IsZero() || !to.After(from) {
		return 0
	}
	return math.Max(to.Sub(from).Hours(), 1) / 24
}

// money computes the money section from the cost metric's rows.
func (a *analysis) money(r *Report, snap experiments.Snapshot, days float64) *ReportMoney {
	cost := r.metric(experiments.MetricCost)
	if cost == nil || !(days > 0) {
		return nil
	}
	cur, sym := a.exp.Money()
	m := &ReportMoney{Currency: cur, Symbol: sym, Days: days, Candidates: []ReportSaving{}}
	requests := 0.0
	for v := range a.exp.Variants {
		requests += snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricRequests}].SumX
		requests += float64(snap.Counters[experiments.VariantMetric{Variant: v, Metric: experiments.CounterUnanalysed}])
	}
	m.RequestsPerDay = requests / days
	cps := r.metric(experiments.MetricCostPerSuccess)
	for v := 1; v < len(a.exp.Variants); v++ {
		s := ReportSaving{Variant: v, Name: a.exp.Variants[v].Name}
		row := cost.row(v)
		if row != nil && row.AbsLift != nil && row.AbsCILow != nil && row.AbsCIHigh != nil {
			// A saving is the cost lift with its sign flipped.
			rate := m.RequestsPerDay
			s.PerDay, s.PerDayLow, s.PerDayHigh = fptr(-*row.AbsLift*rate), fptr(-*row.AbsCIHigh*rate), fptr(-*row.AbsCILow*rate)
			s.PerMonth, s.PerMonthLow, s.PerMonthHigh = fptr(*s.PerDay*daysPerMonth), fptr(*s.PerDayLow*daysPerMonth), fptr(*s.PerDayHigh*daysPerMonth)
			s.Significant = *row.AbsCILow > 0 || *row.AbsCIHigh < 0
		}
		if cps != nil {
			if b, c := cps.row(0), cps.row(v); b != nil && c != nil {
				s.BaseCostPerSuccess, s.CostPerSuccess = b.Mean, c.Mean
			}
		}
		s.Sentence = m.sentence(s, r.Policy.Confidence)
		m.Candidates = append(m.Candidates, s)
	}
	return m
}

// sentence puts a saving in words.
func (m *ReportMoney) sentence(s ReportSaving, conf float64) string {
	if s.PerMonth == nil {
		return fmt.Sprintf("No cost data for candidate %s yet.", strconv.Quote(s.Name))
	}
	verb, amount, lo, hi := "saves", *s.PerMonth, *s.PerMonthLow, *s.PerMonthHigh
	if amount < 0 {
		verb, amount, lo, hi = "costs", -amount, -hi, -lo
	}
	extra := ""
	if verb == "costs" {
		extra = " more"
	}
	// An interval on one side of zero reads in the verb's direction; one
	// across zero needs its signs.
	los, his := m.fmtMoney(lo), m.fmtMoney(hi)
	if lo < 0 {
		los, his = m.fmtSignedMoney(lo), m.fmtSignedMoney(hi)
	}
	out := fmt.Sprintf("Switching everyone to %s %s %s%s a month (%s a day; %s interval %s to %s a month) at %s requests a day.",
		strconv.Quote(s.Name), verb, m.fmtMoney(amount), extra, m.fmtMoney(math.Abs(*s.PerDay)), fmtConfidence(conf),
		los, his, fmtAbout(m.RequestsPerDay))
	if !s.Significant {
		out += " The interval includes no change: the difference in cost is not established."
	}
	if s.CostPerSuccess != nil && s.BaseCostPerSuccess != nil {
		out += fmt.Sprintf(" Cost per success: %s against %s for the base.", m.fmtUnit(*s.CostPerSuccess), m.fmtUnit(*s.BaseCostPerSuccess))
	}
	return out
}

// fmtMoney prints an amount of money for people: whole units from 100
// up, cents below ("$1,234", "$12.50", "$0.42").
func (m *ReportMoney) fmtMoney(x float64) string {
	a := math.Abs(x)
	var s string
	switch {
	case a >= 100:
		s = fmtCount(a)
	case a >= 0.01:
		s = strconv.FormatFloat(a, 'f', 2, 64)
	default:
		s = fmtSig(a, 2)
	}
	if x < 0 {
		return "-" + m.Symbol + s
	}
	return m.Symbol + s
}

func (m *ReportMoney) fmtSignedMoney(x float64) string {
	if x > 0 {
		return "+" + m.fmtMoney(x)
	}
	return m.fmtMoney(x)
}

// fmtUnit prints a unit price (cost per request or per success) with
// three significant digits: "$0.000499".
func (m *ReportMoney) fmtUnit(x float64) string {
	return m.Symbol + fmtSig(x, 3)
}

// fmtSig prints x with n significant digits, never in exponent form.
func fmtSig(x float64, n int) string {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	digits := n - 1 - int(math.Floor(math.Log10(math.Abs(x))))
	if digits <= 0 {
		p := math.Pow(10, float64(-digits))
		return strconv.FormatFloat(math.Round(x/p)*p, 'f', 0, 64)
	}
	return trimZeros(strconv.FormatFloat(x, 'f', digits, 64))
}

// eta plans the time to a decision on the primary metric: the
// sequential plan's users per variant for the detectable effect at 80%
// power, from the control's observed baseline and spread, at the
// observed rate of new users and the current split.
func (a *analysis) eta(r *Report, st map[experiments.VariantMetric]experiments.Summary, in stats.Input, days float64) *ReportETA {
	// Only while the primary is still open: a decided experiment needs
	// no estimate.
	if v := r.Decision.Verdict; r.Ended || !(days > 0) || len(in.Users) < 2 || (v != stats.Continue && v != stats.Advance) {
		return nil
	}
	effect := a.exp.DetectableEffect()
	have, total := math.Inf(1), 0.0
	for _, u := range in.Users {
		have, total = math.Min(have, u), total+u
	}
	c := st[experiments.VariantMetric{Variant: 0, Metric: a.policy.Primary.Name}]
	e := stats.Ratio.Estimate(c)
	sd := math.Sqrt(e.Variance * c.N)
	if !(e.Value > 0) || !(sd > 0) || math.IsInf(sd, 0) || !(total > 0) {
		return nil
	}
	p := a.policy
	nStar := p.NStar
	if nStar == 0 {
		nStar = orDefault(2*p.MaxUsers, stats.DefaultNStar)
	}
	k := max(len(a.exp.Variants)-1, 1)
	pl := stats.SampleSize(stats.PlanInput{
		BaselineMean: e.Value, BaselineSD: sd, Lift: effect, Relative: true,
		Alpha: orDefault(p.Alpha, stats.DefaultAlpha), Power: 0.8, Candidates: k, OneSided: p.OneSided,
	}, p.Method, p.Tau, nStar, nil)
	if !(pl.Sequential > 0) {
		return nil
	}
	// The base and one candidate: their users a day and the candidate's
	// share between them, from the current split.
	w := a.split
	pair := 0.0
	if len(w) > 1 && w[0]+w[1] > 0 {
		splitSum := 0.0
		for _, x := range w {
			splitSum += math.Max(x, 0)
		}
		pair = (w[0] + w[1]) / splitSum
	}
	share := 0.5
	if len(w) > 1 && w[0]+w[1] > 0 {
		share = w[1] / (w[0] + w[1])
	}
	perDay := total / days
	eta := &ReportETA{Effect: effect, UsersPerVariant: pl.Sequential, Have: have, UsersPerDay: perDay}
	target := pl.Sequential
	if p.MaxUsers > 0 && p.MaxUsers < target {
		target, eta.CappedByMaxUsers = p.MaxUsers, true
	}
	d := stats.DaysToDecision(math.Max(0, target-have), perDay*pair, share)
	eta.Days = fptr(d)
	conf := fmtConfidence(r.Policy.Confidence)
	switch {
	case eta.Days == nil:
		eta.Sentence = fmt.Sprintf("At the current traffic the experiment never reaches the %s users per variant it needs to detect a %s change of the %s.", fmtAbout(pl.Sequential), fmtPct(effect), describe(a.exp, p.Primary.Name).Noun)
	case d == 0:
		eta.Sentence = fmt.Sprintf("The experiment already has the %s users per variant planned to detect a %s change of the %s with 80%% power at %s confidence; a smaller true change may still take longer.", fmtAbout(pl.Sequential), fmtPct(effect), describe(a.exp, p.Primary.Name).Noun, conf)
	default:
		eta.Sentence = fmt.Sprintf("A decision is expected within about %s: that is when each variant reaches the %s users planned to detect a %s change of the %s with 80%% power (at %s new users a day, the current split and %s confidence). It comes sooner if the true change is larger.",
			fmtDays(d), fmtAbout(target), fmtPct(effect), describe(a.exp, p.Primary.Name).Noun, fmtAbout(perDay), conf)
		if eta.CappedByMaxUsers {
			eta.Sentence = fmt.Sprintf("The experiment stops at max_users (%s per variant) in about %s, before the %s users planned to detect a %s change of the %s.",
				fmtCount(p.MaxUsers), fmtDays(d), fmtAbout(pl.Sequential), fmtPct(effect), describe(a.exp, p.Primary.Name).Noun)
		}
	}
	return eta
}

// fmtDays: "5 hours", "3.5 days", "12 days".
func fmtDays(d float64) string {
	switch {
	case d < 1:
		return fmt.Sprintf("%d hours", int(math.Max(1, math.Ceil(d*24))))
	case d < 10:
		return trimZeros(strconv.FormatFloat(math.Ceil(d*2)/2, 'f', 1, 64)) + " days"
	}
	return fmtCount(math.Ceil(d)) + " days"
}

// hourAsOf is the moment a cumulative hourly point describes: the end of
// its hour, or now for the hour still under way.
func hourAsOf(hour, now time.Time) time.Time {
	end := hour.Add(time.Hour)
	if now.After(hour) && now.Before(end) {
		return now.UTC()
	}
	return end.UTC()
}

// symbol is the currency symbol costs are printed with ("" without a
// money section).
func (r *Report) symbol() string {
	if r.Money != nil {
		return r.Money.Symbol
	}
	return ""
}

// fmtValue is fmtValue with costs in the report's currency.
func (r *Report) fmtValue(unit string, x float64) string {
	if unit == experiments.UnitCost {
		if x < 0 {
			return "-" + r.symbol() + fmtSig(-x, 3)
		}
		return r.symbol() + fmtSig(x, 3)
	}
	return fmtValue(unit, x)
}

// fmtSignedAbs is fmtSignedAbs with costs in the report's currency.
func (r *Report) fmtSignedAbs(unit string, x float64) string {
	if unit == experiments.UnitCost {
		if x < 0 {
			return r.fmtValue(unit, x)
		}
		return "+" + r.fmtValue(unit, x)
	}
	return fmtSignedAbs(unit, x)
}
