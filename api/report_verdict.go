package api

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// describe is how metric name reads to people, from the registry. A
// metric the experiment no longer declares (data from an older config)
// reads as its name, higher is better, as the policy would judge it.
func describe(exp *experiments.Experiment, name string) experiments.MetricInfo {
	if in, ok := experiments.LookupMetric(exp, name); ok {
		return in
	}
	return experiments.MetricInfo{Name: name, Label: name, Noun: name, Better: experiments.HigherIsBetter}
}

// verdict writes the plain-language summary. It puts the decision in
// words, with the metric rows already in r as the evidence; it decides
// nothing itself.
func (a *analysis) verdict(r *Report, in stats.Input, st map[experiments.VariantMetric]experiments.Summary) ReportVerdict {
	v := a.decisionVerdict(r, in, st)
	switch v.Kind {
	case VerdictNoData, VerdictSRM, VerdictTooFew:
		return v
	}
	// Every significant change of the candidate the sentence is about,
	// regressions first, then what switching does to spend.
	focus := a.bestCandidate(r.metric(r.Policy.Primary))
	if w := r.Decision.Winner; w != nil {
		focus = *w
	} else if hv, _ := r.harm(); hv > 0 {
		focus = hv
	}
	if c := a.changesPhrase(r, focus); c != "" {
		v.Sentence += " " + c
	}
	if m := r.Money; m != nil {
		for _, s := range m.Candidates {
			if s.Variant == focus && s.Significant {
				v.Sentence += " " + s.Sentence
			}
		}
	}
	return v
}

// changesPhrase names every metric other than the primary on which
// candidate j differs significantly from the base (row.Change),
// regressions first: "Also significant: worse cost per request (+102%,
// 95% CI +98% to +106%); better mean latency (-4.0%, ...)." Empty when
// there is none.
func (a *analysis) changesPhrase(r *Report, j int) string {
	conf := fmtConfidence(r.Policy.Confidence)
	var worse, better []string
	for i := range r.Metrics {
		m := &r.Metrics[i]
		row := m.row(j)
		if m.Name == r.Policy.Primary || row == nil || row.Change == "" {
			continue
		}
		lift, lo, hi := "", "", ""
		if row.RelReadable && row.RelLift != nil {
			lift, lo, hi = fmtSignedPct(*row.RelLift), fmtSignedPct(*row.RelCILow), fmtSignedPct(*row.RelCIHigh)
		} else if row.AbsLift != nil {
			lift, lo, hi = r.fmtSignedAbs(m.Unit, *row.AbsLift), r.fmtSignedAbs(m.Unit, *row.AbsCILow), r.fmtSignedAbs(m.Unit, *row.AbsCIHigh)
		} else {
			continue
		}
		phrase := fmt.Sprintf("%s %s (%s, %s CI %s to %s)", row.Change, describe(a.exp, m.Name).Noun, lift, conf, lo, hi)
		if row.Change == RowWorse {
			worse = append(worse, phrase)
		} else {
			better = append(better, phrase)
		}
	}
	all := append(worse, better...)
	if len(all) == 0 {
		return ""
	}
	who := ""
	if len(a.exp.Variants) > 2 {
		who = " for " + strconv.Quote(a.exp.Variants[j].Name)
	}
	lead := "Also significant" + who + ": "
	if len(worse) > 0 {
		lead = fmt.Sprintf("Trade-off%s: %d significant regression", who, len(worse))
		if len(worse) > 1 {
			lead += "s"
		}
		lead += ": "
	}
	return lead + strings.Join(all, "; ") + "."
}

// decisionVerdict puts the decision in words.
func (a *analysis) decisionVerdict(r *Report, in stats.Input, st map[experiments.VariantMetric]experiments.Summary) ReportVerdict {
	d := r.Decision
	conf := fmtConfidence(r.Policy.Confidence)
	primary := r.metric(r.Policy.Primary)
	info := describe(a.exp, r.Policy.Primary)
	total, minUsers := 0.0, math.Inf(1)
	for _, u := range in.Users {
		total += u
		minUsers = math.Min(minUsers, u)
	}
	cand := func(v int) string { return "candidate " + strconv.Quote(a.exp.Variants[v].Name) }
	// liftPhrase: `candidate "ft" raises the thumbs-up rate by 4.1% (anytime-valid 95% CI +1.2% to +7.0%)`.
	liftPhrase := func(v int, neutral bool) string {
		row := primary.row(v)
		if row == nil || row.RelLift == nil {
			return fmt.Sprintf("%s has no %s data yet", cand(v), info.Noun)
		}
		l := *row.RelLift
		verb := "raises"
		if l < 0 {
			verb = "lowers"
		}
		s := fmt.Sprintf("%s %s the %s by %s", cand(v), verb, info.Noun, fmtPct(math.Abs(l)))
		if neutral {
			s = fmt.Sprintf("%s changes the %s by %s", cand(v), info.Noun, fmtSignedPct(l))
		}
		return s + fmt.Sprintf(" (anytime-valid %s CI %s to %s)", conf, fmtSignedPct(*row.RelCILow), fmtSignedPct(*row.RelCIHigh))
	}
	v := ReportVerdict{Recommendation: "keep running"}
	switch {
	case total == 0:
		v.Kind = VerdictNoData
		what := "no user has reached this experiment in the current period yet"
		if r.Status == "draft" {
			what, v.Recommendation = "the experiment has not started", "start it when ready"
		}
		v.Sentence = fmt.Sprintf("No data yet: %s; recommendation: %s.", what, v.Recommendation)
		return v
	case d.Verdict == stats.HaltSRM:
		v.Kind, v.Recommendation = VerdictSRM, "check the assignment"
		v.Sentence = fmt.Sprintf("The traffic split is broken: expected %s, observed %s (anytime-valid %s). Don't trust these numbers; check the assignment.",
			fmtShares(r.SRM.Expected), fmtShares(r.SRM.Observed), pEq(r.SRM.PValue))
		if r.Step > 1 && (r.Cohort == nil || !r.Cohort.FirstExposedOnly) {
			// A later step analysed on every active user (rollout.cohort
			// all, or no first-exposure record) counts returning users,
			// and whether the earlier steps' users come back is itself an
			// outcome (docs/statistics.md §2.12, "Returning users"). On
			// the newly exposed cohort the split is the randomisation's.
			v.Sentence += " After the first step this can also be the candidate changing how many users come back (an engagement effect), not a broken assignment: compare the users per arm with the step before."
		}
		return v
	case hasReason(d, stats.ReasonMinUsers):
		v.Kind = VerdictTooFew
		v.Sentence = fmt.Sprintf("Too few users to judge yet: the smallest variant has %s users and the analysis starts at %s per variant; recommendation: %s.",
			fmtCount(minUsers), fmtCount(r.Policy.MinUsers), v.Recommendation)
		return v
	}

	k := len(a.exp.Variants) - 1
	// The candidate the sentence is about, and one detail per candidate.
	focus := a.bestCandidate(primary)
	if k > 1 {
		for j := 1; j <= k; j++ {
			v.Details = append(v.Details, a.candidateLine(r, j, conf))
		}
	}
	switch d.Verdict {
	case stats.Rollback:
		if hv, g := r.harm(); hv > 0 {
			v.Kind, v.Recommendation = VerdictHarm, "roll back"
			gi := describe(a.exp, g.Name)
			row := g.row(hv)
			lift, lo, hi, margin := row.AbsLift, row.AbsCILow, row.AbsCIHigh, fmtAbs(gi.Unit, *g.Margin)
			if g.MarginRelative {
				lift, lo, hi, margin = row.RelLift, row.RelCILow, row.RelCIHigh, fmtPct(*g.Margin)
			}
			v.Sentence = fmt.Sprintf("%s makes the %s worse by %s (anytime-valid %s CI %s to %s), more than the allowed %s; recommendation: roll back.",
				capitalize(cand(hv)), gi.Noun, fmtMagnitude(gi.Unit, g.MarginRelative, *lift), conf,
				fmtLift(gi.Unit, g.MarginRelative, *lo), fmtLift(gi.Unit, g.MarginRelative, *hi), margin)
			return v
		}
		if jv, ok := a.judgeRampHarm(d); ok {
			jv.Details = v.Details
			return jv
		}
		v.Kind, v.Recommendation = VerdictWorse, "roll back"
		v.Sentence = capitalize(liftPhrase(focus, false)) + "; it is worse than the base model; recommendation: roll back."
	case stats.Promote:
		v.Kind, v.Recommendation = VerdictPromote, "promote"
		v.Sentence = capitalize(liftPhrase(*d.Winner, false)) + "; guardrails hold; recommendation: promote."
		if d.Rule != stats.PrimaryRule { // the trade-off rule that promoted (issue 15)
			v.Sentence = fmt.Sprintf("%s; guardrails hold; the %s rule promotes it (%s); recommendation: promote.",
				capitalize(liftPhrase(*d.Winner, false)), d.Rule, d.Rule.Summary())
		}
	case stats.StopFutility:
		v.Kind, v.Recommendation = VerdictFutility, "stop and keep the base model"
		v.Sentence = fmt.Sprintf("No clear difference after the maximum of %s users per variant: %s; recommendation: stop and keep the base model.",
			fmtCount(r.Policy.MaxUsers), liftPhrase(focus, true))
	case stats.Advance:
		v.Kind, v.Recommendation = VerdictAdvance, "advance to the next step"
		v.Sentence = fmt.Sprintf("Every guardrail holds at %s; %s; recommendation: advance to the next step.",
			a.stepPhrase(), liftPhrase(focus, true))
	default:
		if sr := firstSegmentHarm(d); sr != nil {
			v.Kind, v.Recommendation = VerdictSegmentHarm, "don't promote; investigate the segment"
			v.Sentence = fmt.Sprintf("%s overall, but it is significantly worse for %s = %s (%s); recommendation: don't promote; investigate the segment.",
				capitalize(liftPhrase(sr.Variant, false)), sr.Dimension, sr.Value, segmentHarmPhrase(a.exp, sr))
			return v
		}
		if a.policy.Mode == stats.RampMode {
			v.Kind = VerdictGuardrails
			v.Sentence = fmt.Sprintf("Only the guardrails decide at %s, and they can't rule out harm yet (%s); %s; recommendation: keep running.",
				a.stepPhrase(), strings.Join(r.pendingGuardrails(focus), ", "), liftPhrase(focus, true))
			return v
		}
		row := primary.row(focus)
		if row != nil && row.Status == RowBetter {
			v.Kind = VerdictGuardrails
			v.Sentence = fmt.Sprintf("%s, but the guardrails can't rule out harm yet (%s); recommendation: keep running.",
				capitalize(liftPhrase(focus, false)), strings.Join(r.pendingGuardrails(focus), ", "))
			return v
		}
		v.Kind = VerdictInconclusve
		need := ""
		if row != nil && row.RelLift != nil {
			// Planned for the design's detectable effect, never the
			// observed lift (issue 15).
			if more, size := a.moreUsers(st, a.exp.DetectableEffect(), minUsers); more > 0 {
				v.MoreUsersNeeded = &more
				need = fmt.Sprintf("; about %s more users per variant needed to detect a change of %s", fmtAbout(more), fmtPct(size))
				if r.Policy.MaxUsers > 0 && more+minUsers > r.Policy.MaxUsers {
					need += fmt.Sprintf(", more than the maximum of %s: the change may be too small to matter", fmtCount(r.Policy.MaxUsers))
				}
			}
		}
		v.Sentence = fmt.Sprintf("Not enough evidence yet: %s%s; recommendation: keep running.", liftPhrase(focus, true), need)
	}
	return v
}

// moreUsers plans the additional users per variant the sequential test
// needs to detect a relative change of size (at least 1%) with 80% power,
// from the control's observed mean and per-user spread, with the
// policy's method, alpha, tau and N*.
func (a *analysis) moreUsers(st map[experiments.VariantMetric]experiments.Summary, size, have float64) (more, used float64) {
	size = math.Max(size, 0.01)
	c := st[experiments.VariantMetric{Variant: 0, Metric: a.policy.Primary.Name}]
	e := stats.Ratio.Estimate(c)
	sd := math.Sqrt(e.Variance * c.N)
	if !(e.Value > 0) || !(sd > 0) || math.IsInf(sd, 0) {
		return 0, size
	}
	p := a.policy
	// N* as stats.Policy documents its default: 2·MaxUsers, or 10000.
	nStar := p.NStar
	if nStar == 0 {
		nStar = orDefault(2*p.MaxUsers, stats.DefaultNStar)
	}
	pl := stats.SampleSize(stats.PlanInput{
		BaselineMean: e.Value, BaselineSD: sd, Lift: size, Relative: true,
		Alpha: orDefault(p.Alpha, stats.DefaultAlpha), Power: 0.8, Candidates: max(len(a.exp.Variants)-1, 1),
	}, p.Method, p.Tau, nStar, nil)
	return math.Max(0, pl.Sequential-have), size
}

// stepPhrase: "ramp step 1 of 4 (5% per candidate)".
func (a *analysis) stepPhrase() string {
	steps := experiments.RolloutSteps(a.exp)
	if a.step < 0 || a.step >= len(steps) {
		return "this step"
	}
	return fmt.Sprintf("ramp step %d of %d (%s per candidate)", a.step+1, len(steps), strconv.FormatFloat(steps[a.step].Percent, 'f', -1, 64)+"%")
}

// bestCandidate is the candidate with the best primary estimate.
func (a *analysis) bestCandidate(primary *ReportMetric) int {
	best, score := 1, math.Inf(-1)
	sign := 1.0
	if primary != nil && primary.Better == string(experiments.LowerIsBetter) {
		sign = -1
	}
	for j := 1; j < len(a.exp.Variants); j++ {
		if row := primary.row(j); row != nil && row.RelLift != nil && sign**row.RelLift > score {
			best, score = j, sign**row.RelLift
		}
	}
	return best
}

// candidateLine summarises one candidate: primary lift and guardrails.
func (a *analysis) candidateLine(r *Report, j int, conf string) string {
	name := strconv.Quote(a.exp.Variants[j].Name)
	primary := r.metric(r.Policy.Primary)
	info := describe(a.exp, r.Policy.Primary)
	s := name + ": " + info.Noun + " "
	if row := primary.row(j); row != nil && row.RelLift != nil {
		s += fmt.Sprintf("%s (anytime-valid %s CI %s to %s), %s", fmtSignedPct(*row.RelLift), conf, fmtSignedPct(*row.RelCILow), fmtSignedPct(*row.RelCIHigh), row.Status)
	} else {
		s += "no data"
	}
	var harmful []string
	for i := range r.Metrics {
		m := &r.Metrics[i]
		if m.Role == RoleGuardrail {
			if row := m.row(j); row != nil && row.Status == RowHarmful {
				harmful = append(harmful, describe(a.exp, m.Name).Noun)
			}
		}
	}
	switch pending := r.pendingGuardrails(j); {
	case len(harmful) > 0:
		s += "; harmful on " + strings.Join(harmful, ", ")
	case len(pending) > 0:
		s += "; guardrails not yet shown safe: " + strings.Join(pending, ", ")
	default:
		s += "; guardrails hold"
	}
	return s + "."
}

func (r *Report) metric(name string) *ReportMetric {
	for i := range r.Metrics {
		if r.Metrics[i].Name == name {
			return &r.Metrics[i]
		}
	}
	return nil
}

func (m *ReportMetric) row(v int) *ReportRow {
	if m == nil {
		return nil
	}
	for i := range m.Rows {
		if m.Rows[i].Variant == v {
			return &m.Rows[i]
		}
	}
	return nil
}

// harm returns the first candidate harmful on a guardrail, and that
// guardrail.
func (r *Report) harm() (int, *ReportMetric) {
	for i := range r.Metrics {
		m := &r.Metrics[i]
		if m.Role != RoleGuardrail || m.Margin == nil {
			continue
		}
		for _, row := range m.Rows {
			if row.Status == RowHarmful && row.AbsLift != nil && row.RelLift != nil {
				return row.Variant, m
			}
		}
	}
	return 0, nil
}

func (r *Report) pendingGuardrails(v int) []string {
	var out []string
	for i := range r.Metrics {
		m := &r.Metrics[i]
		if m.Role != RoleGuardrail {
			continue
		}
		if row := m.row(v); row == nil || row.Status != RowNonInferior {
			out = append(out, m.Label)
		}
	}
	if r.judgeRampPending(v) {
		out = append(out, "the live judge")
	}
	return out
}

// Number formatting shared by the renderers. ASCII only, so terminals and
// golden files agree.

func fmtConfidence(c float64) string {
	return strconv.FormatFloat(math.Round(c*1000)/10, 'f', -1, 64) + "%"
}

// fmtPct formats a fraction as a percentage: 0.041 → "4.1%".
func fmtPct(x float64) string {
	p := x * 100
	switch a := math.Abs(p); {
	case a == 0:
		return "0%"
	case a < 1:
		return strconv.FormatFloat(p, 'f', 2, 64) + "%"
	case a >= 100:
		return strconv.FormatFloat(p, 'f', 0, 64) + "%"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

func fmtSignedPct(x float64) string {
	s := fmtPct(x)
	if x == 0 {
		return s
	}
	if x >= 0 && !strings.HasPrefix(s, "-") {
		return "+" + s
	}
	return s
}

// fmtValue formats a metric value in its unit.
func fmtValue(unit string, x float64) string {
	switch unit {
	case experiments.UnitRate:
		return fmtPct(x)
	case experiments.UnitMS:
		return fmtNum(x) + " ms"
	case experiments.UnitSeconds:
		return fmtNum(x) + " s"
	case experiments.UnitCost:
		return fmtSig(x, 3)
	}
	return fmtNum(x)
}

// fmtAbs formats a non-negative absolute amount in the metric's unit
// (rates in percentage points).
func fmtAbs(unit string, x float64) string {
	if unit == experiments.UnitRate {
		return fmtNum(x*100) + " pp"
	}
	return fmtValue(unit, x)
}

// fmtSignedAbs is fmtAbs with a sign.
func fmtSignedAbs(unit string, x float64) string {
	s := fmtAbs(unit, math.Abs(x))
	if x < 0 {
		return "-" + s
	}
	return "+" + s
}

// fmtLift formats a signed lift, relative (%) or absolute (unit).
func fmtLift(unit string, relative bool, x float64) string {
	if relative {
		return fmtSignedPct(x)
	}
	return fmtSignedAbs(unit, x)
}

func fmtMagnitude(unit string, relative bool, x float64) string {
	if relative {
		return fmtPct(math.Abs(x))
	}
	return fmtAbs(unit, math.Abs(x))
}

// fmtNum prints about three significant digits, without exponent for
// ordinary magnitudes.
func fmtNum(x float64) string {
	a := math.Abs(x)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case a >= 10:
		return trimZeros(strconv.FormatFloat(x, 'f', 1, 64))
	case a >= 0.01:
		return trimZeros(strconv.FormatFloat(x, 'f', 2, 64))
	}
	return fmtSig(x, 2)
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// fmtP formats a p-value: three decimals, "< 0.001" below that (no one
// acts differently on 7.3e-50).
func fmtP(p float64) string {
	switch {
	case p >= 0.9995:
		return "1"
	case p >= 0.001:
		return strconv.FormatFloat(p, 'f', 3, 64)
	}
	return "< 0.001"
}

// fmtCount formats a count with thousands separators: 12345 → "12,345".
func fmtCount(x float64) string {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return "-"
	}
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtAbout rounds to two significant digits: 12345 → "12,000".
func fmtAbout(x float64) string {
	if x < 100 {
		return fmtCount(math.Ceil(x))
	}
	p := math.Pow(10, math.Floor(math.Log10(x))-1)
	return fmtCount(math.Round(x/p) * p)
}

func fmtShares(s []float64) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = strconv.FormatFloat(x*100, 'f', 1, 64) + "%"
	}
	return strings.Join(parts, " / ")
}

// pEq is "p = 0.031", or "p < 0.001".
func pEq(p float64) string {
	if p < 0.001 {
		return "p < 0.001"
	}
	return "p = " + fmtP(p)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// outcome opens the verdict of an experiment that has ended with what was
// done and when; the analysis after it is the data the decision rested
// on. It is empty while the experiment runs.
func outcome(r *Report) string {
	when := ""
	if !r.EndedAt.IsZero() {
		when = " on " + r.EndedAt.UTC().Format("2006-01-02 15:04 UTC")
	}
	switch r.Status {
	case "promoted":
		return "Promoted" + when + ": the winning candidate now serves everyone. At the decision: "
	case "rolled_back":
		return "Rolled back" + when + ": the base model serves everyone again. At the decision: "
	case "stopped":
		return "Stopped" + when + ": the base model serves everyone. At the end: "
	}
	return ""
}
