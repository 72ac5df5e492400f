package api

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/abgate/abgate/experiments"
)

// The text, markdown and HTML renderers share these cell strings, so the
// three formats always say the same thing.

type metricView struct {
	Name     string
	Title    string // "thumbs-up rate"
	Role     string
	Subtitle string // "primary; higher is better"
	Rows     []rowView
	// CUPED says, per candidate with an adjusted lift, how much variance
	// the pre-exposure covariate removed.
	CUPED []string
}

type rowView struct {
	Variant, Users, Mean, Lift, CI, AbsLift, AbsCI, P, Status string
	Control                                                   bool
}

func (r *Report) metricViews() []metricView {
	var out []metricView
	for _, m := range r.Metrics {
		mv := metricView{Name: m.Name, Title: m.Label, Role: m.Role}
		parts := []string{m.Role}
		if m.Role == RoleGuardrail && m.Margin != nil {
			limit := fmtAbs(m.Unit, *m.Margin)
			if m.MarginRelative {
				limit = fmtPct(*m.Margin)
			}
			parts[0] = "guardrail: at most " + limit + " worse"
		}
		switch m.Better {
		case "":
			parts = append(parts, "no preferred direction")
		default:
			parts = append(parts, m.Better+" is better")
		}
		mv.Subtitle = strings.Join(parts, "; ")
		// Costs per request are fractions of a cent: shown per 1,000
		// requests so they read "$0.499", not "$0.000499".
		scale := 1.0
		if m.Name == experiments.MetricCost {
			scale = 1000
			mv.Title = "cost per 1,000 requests"
		}
		for _, row := range m.Rows {
			row := row.scaled(scale)
			rv := rowView{Variant: row.Name, Users: fmtCount(row.Users), Mean: "-", Lift: "-", CI: "-", AbsLift: "-", AbsCI: "-", P: "-", Status: row.Status, Control: row.Variant == 0}
			if row.Mean != nil {
				rv.Mean = r.fmtValue(m.Unit, *row.Mean)
			}
			switch {
			case row.RelLift != nil && row.RelReadable:
				rv.Lift = fmtSignedPct(*row.RelLift)
				rv.CI = fmtSignedPct(*row.RelCILow) + " to " + fmtSignedPct(*row.RelCIHigh)
			case row.RelLift != nil:
				// The base is too imprecise for a percentage to mean
				// anything ("-5064% to +6918%"): absolute only.
				rv.Lift, rv.CI = "n/a", "base too uncertain"
			}
			if row.AbsLift != nil {
				rv.AbsLift = r.fmtSignedAbs(m.Unit, *row.AbsLift)
				rv.AbsCI = r.fmtSignedAbs(m.Unit, *row.AbsCILow) + " to " + r.fmtSignedAbs(m.Unit, *row.AbsCIHigh)
			}
			if row.PValue != nil {
				rv.P = fmtP(*row.PValue)
			}
			if row.VarianceRemoved != nil && row.ExtraUsers != nil {
				mv.CUPED = append(mv.CUPED, cupedNote(row.Name, *row.VarianceRemoved, *row.ExtraUsers))
			}
			mv.Rows = append(mv.Rows, rv)
		}
		out = append(out, mv)
	}
	return out
}

// cupedNote is the sentence for a candidate's CUPED-adjusted lift.
func cupedNote(variant string, removed, extra float64) string {
	return fmt.Sprintf("CUPED (%s): the users' pre-exposure history removed %s of the lift's variance, as much as %s more users would", variant, fmtPct(removed), fmtPct(extra))
}

// scaled is the row with its mean and absolute lifts multiplied by k.
func (row ReportRow) scaled(k float64) ReportRow {
	if k == 1 {
		return row
	}
	mul := func(p *float64) *float64 {
		if p == nil {
			return nil
		}
		return fptr(*p * k)
	}
	row.Mean, row.AbsLift, row.AbsCILow, row.AbsCIHigh = mul(row.Mean), mul(row.AbsLift), mul(row.AbsCILow), mul(row.AbsCIHigh)
	return row
}

// statusLine: "running, ramp step 3 of 3, period 1, since 2026-11-20 00:00 UTC".
func (r *Report) statusLine() string {
	s := r.Status
	if s == "" {
		s = "unknown"
	}
	s = strings.ReplaceAll(s, "_", " ")
	if r.Status == string(experiments.StatusShadow) {
		// The base serves everyone; the step is the one shadow leads to.
		s = "shadow stage (the base serves everyone; a judge compares the candidate's answers)"
		if r.Steps > 0 {
			s += fmt.Sprintf(", before ramp step 1 of %d", r.Steps)
		}
	} else if r.Steps > 0 && r.Step >= 1 && !r.Ended {
		s += fmt.Sprintf(", ramp step %d of %d", r.Step, r.Steps)
	}
	s += fmt.Sprintf(", period %d", r.Period)
	if !r.Started.IsZero() {
		s += ", since " + fmtTime(r.Started)
	}
	if r.Ended && !r.EndedAt.IsZero() {
		s += ", ended " + fmtTime(r.EndedAt)
	}
	return s
}

func (r *Report) policyLine() string {
	s := fmt.Sprintf("primary %s (relative lift), method %s, alpha %.4g (%s confidence, Bonferroni over candidates), at least %s users per variant",
		r.Policy.Primary, r.Policy.Method, r.Policy.Alpha, fmtConfidence(r.Policy.Confidence), fmtCount(r.Policy.MinUsers))
	if r.Policy.MaxUsers > 0 {
		s += fmt.Sprintf(", at most %s", fmtCount(r.Policy.MaxUsers))
	}
	return s + fmt.Sprintf(", SRM alarm below p = %g", r.Policy.SRMAlpha) + r.Policy.Judge.phrase()
}

func (r *Report) srmLine() string {
	status := map[string]string{"ok": "ok", "mismatch": "MISMATCH", "not_checked": "not checked"}[r.SRM.Status]
	return fmt.Sprintf("Sample ratio check: %s (expected %s, observed %s; anytime-valid %s, chi-square %s; alarm below %g)",
		status, fmtShares(r.SRM.Expected), fmtShares(r.SRM.Observed), pEq(r.SRM.PValue), pEq(r.SRM.ChiSquarePValue), r.SRM.Alpha)
}

func (r *Report) decisionLine() string {
	s := string(r.Decision.Verdict)
	if w := r.Decision.Winner; w != nil && *w < len(r.Variants) {
		s += " (winner: " + r.Variants[*w].Name + ")"
	}
	return s
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// sampledHours picks at most max hours, evenly spaced, always the last.
func (r *Report) sampledHours(max int) []ReportHour {
	n := len(r.Hourly)
	if n <= max {
		return r.Hourly
	}
	out := make([]ReportHour, 0, max)
	for i := range max {
		out = append(out, r.Hourly[(n-1)-(max-1-i)*(n-1)/(max-1)])
	}
	return out
}

func (r *Report) hourCells(h ReportHour) (users []string, lifts []string) {
	for _, u := range h.Users {
		users = append(users, fmtCount(u))
	}
	for _, p := range h.Lift {
		if p.Lift == nil {
			lifts = append(lifts, "-")
			continue
		}
		lifts = append(lifts, fmt.Sprintf("%s (%s to %s)", fmtSignedPct(*p.Lift), fmtSignedPct(*p.CILow), fmtSignedPct(*p.CIHigh)))
	}
	return users, lifts
}

func (t ReportTransition) summary() (change, detail string) {
	change = t.Action
	if t.From != "" || t.To != "" {
		change += ": " + t.From + " -> " + t.To
	}
	var parts []string
	if t.Reason != "" {
		parts = append(parts, t.Reason)
	}
	if len(t.Codes) > 0 {
		parts = append(parts, "codes "+strings.Join(t.Codes, ", "))
	}
	if t.Verdict != "" {
		parts = append(parts, "verdict "+string(t.Verdict))
	}
	return change, strings.Join(parts, "; ")
}

// errWriter remembers the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

// RenderText writes the report as plain text for a terminal.
func RenderText(w io.Writer, r Report) error {
	ew := &errWriter{w: w}
	p := ew.printf
	p("Experiment report: %s\n", r.Experiment)
	if r.Description != "" {
		p("%s\n", r.Description)
	}
	p("Status: %s\n", r.statusLine())
	p("Generated: %s\n\n", fmtTime(r.GeneratedAt))

	p("VERDICT\n  %s\n", r.Verdict.Sentence)
	for _, d := range r.Verdict.Details {
		p("  - %s\n", d)
	}
	if m := r.Money; m != nil {
		p("\nMONEY AT CURRENT TRAFFIC (%s; see glossary)\n", m.Currency)
		for _, s := range m.Candidates {
			p("  %s\n", s.Sentence)
		}
	}
	if e := r.TimeToDecision; e != nil {
		p("\nTIME TO DECISION\n  %s\n", e.Sentence)
	}
	if j := r.Judge; j != nil {
		p("\nSHADOW JUDGE (%s)\n  %s\n", j.Source, j.note())
		for _, c := range j.Candidates {
			p("  %s\n", c.Sentence)
			p("    gate: %s", c.Decision.Verdict)
			if rs := judgeReasonsText(c.Decision); rs != "" {
				p(" (%s)", rs)
			}
			p("\n    position bias: %s\n", judgeBiasText(c.Decision))
		}
		if s := j.Spend; s != nil {
			p("  spend: %s\n", s.text())
		}
		if h := j.Humans; h != nil {
			p("\nJUDGE VS HUMANS\n  %s\n", h.note())
			for _, c := range h.Candidates {
				p("  %s\n", c.Sentence)
				p("    corrected lift: %s\n    feedback alone: %s\n    judge alone:    %s\n",
					humansLiftText(h.Unit, c.Corrected), humansLiftText(h.Unit, c.HumanOnly), c.judgeText())
			}
			for _, a := range h.Arms {
				p("  %s: %s judged users with feedback, %s without; judge bias %s; %s\n",
					a.Name, fmtCount(a.Labeled), fmtCount(a.Unlabeled), humansBiasText(a), humansAgreementText(a))
			}
		}
	}

	p("\nTRAFFIC\n")
	tw := tabwriter.NewWriter(ew.w, 0, 0, 2, ' ', 0)
	tw.Write([]byte("  variant\tmodel\tusers\texpected\tobserved\n"))
	for _, v := range r.Variants {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", v.Name, v.Model, fmtCount(v.Users), fmtShareCell(v.ExpectedShare), fmtShareCell(v.ObservedShare))
	}
	if err := tw.Flush(); err != nil && ew.err == nil {
		ew.err = err
	}
	p("  %s\n", r.srmLine())
	if r.Cohort != nil {
		p("  %s\n", r.Cohort.Sentence)
	}

	p("\nMETRICS (lift against %s, anytime-valid %s confidence intervals)\n", r.controlName(), fmtConfidence(r.Policy.Confidence))
	for _, m := range r.metricViews() {
		p("\n  %s [%s]\n", m.Title, m.Subtitle)
		tw := tabwriter.NewWriter(ew.w, 0, 0, 2, ' ', 0)
		tw.Write([]byte("    variant\tusers\tmean\tlift\tCI\tabs. lift\tabs. CI\tp-value\tstatus\n"))
		for _, rv := range m.Rows {
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", rv.Variant, rv.Users, rv.Mean, rv.Lift, rv.CI, rv.AbsLift, rv.AbsCI, rv.P, rv.Status)
		}
		if err := tw.Flush(); err != nil && ew.err == nil {
			ew.err = err
		}
		for _, n := range m.CUPED {
			p("    %s\n", n)
		}
	}

	p("\nDECISION\n  verdict: %s\n", r.decisionLine())
	for _, rs := range r.Decision.Reasons {
		p("  - %s: %s\n", rs.Code, rs.Message)
	}
	p("  policy: %s\n", r.policyLine())
	if r.Policy.AlphaSpent > 0 {
		p("  alpha spent so far on this step: %.4g (this test runs at %.4g; restarts share the rollout's alpha)\n", r.Policy.AlphaSpent, r.Policy.Alpha)
	}

	if len(r.Segments) > 0 {
		p("\nSEGMENTS (%s)\n", r.segmentsNote())
		tw := tabwriter.NewWriter(ew.w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "    segment\tvariant\tusers\t%s lift (CI)\tguardrails\tstatus\n", r.Policy.Primary)
		for _, s := range r.segmentViews() {
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\n", s.Segment, s.Variant, s.Users, s.Primary, s.Guardrails, s.Status)
		}
		if err := tw.Flush(); err != nil && ew.err == nil {
			ew.err = err
		}
	}
	if d := r.Drift; d != nil {
		p("\nDRIFT (window %s to %s against %s to %s; drifted when PSI >= %s and chi-square p < %s)\n",
			fmtTime(d.Window.From), fmtTime(d.Window.To), fmtTime(d.Reference.From), fmtTime(d.Reference.To), fmtPSI(d.PSIThreshold), fmtP(d.Alpha))
		tw := tabwriter.NewWriter(ew.w, 0, 0, 2, ' ', 0)
		tw.Write([]byte("    variant\tfeature\treference n\twindow n\tPSI\tp-value\tstatus\n"))
		for _, f := range d.Features {
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Variant, f.Feature, fmtCount(float64(f.RefCount)), fmtCount(float64(f.Count)), fmtPSI(f.PSI), fmtP(f.PValue), f.Status)
		}
		if err := tw.Flush(); err != nil && ew.err == nil {
			ew.err = err
		}
	}

	if len(r.Hourly) > 0 {
		p("\nOVER TIME (cumulative; %s lift with its anytime-valid CI)\n", r.Policy.Primary)
		tw := tabwriter.NewWriter(ew.w, 0, 0, 2, ' ', 0)
		head := "    as of (UTC)"
		for _, v := range r.Variants {
			head += "\tusers " + v.Name
		}
		for _, v := range r.Variants[1:] {
			head += "\tlift " + v.Name
		}
		tw.Write([]byte(head + "\tverdict\n"))
		for _, h := range r.sampledHours(12) {
			users, lifts := r.hourCells(h)
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", fmtHour(h), strings.Join(users, "\t"), strings.Join(lifts, "\t"), h.Verdict)
		}
		if err := tw.Flush(); err != nil && ew.err == nil {
			ew.err = err
		}
	}

	p("\nAUDIT TRAIL\n")
	if len(r.Transitions) == 0 {
		p("  (no transitions)\n")
	}
	tw = tabwriter.NewWriter(ew.w, 0, 0, 2, ' ', 0)
	for _, t := range r.Transitions {
		change, detail := t.summary()
		fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\t%s\n", t.Seq, fmtTime(t.At), t.Actor, change, detail)
	}
	if err := tw.Flush(); err != nil && ew.err == nil {
		ew.err = err
	}
	if len(r.Glossary) > 0 {
		p("\nGLOSSARY\n")
		for _, g := range r.Glossary {
			p("  %s: %s\n", g.Term, g.Definition)
		}
	}
	return ew.err
}

// fmtHour is the end of an hourly point: its values are cumulative then.
func fmtHour(h ReportHour) string { return hourEnd(h).UTC().Format("2006-01-02 15:04") }

func (r *Report) controlName() string {
	if len(r.Variants) > 0 {
		return r.Variants[0].Name
	}
	return "the control"
}

func fmtShareCell(x float64) string { return fmt.Sprintf("%.1f%%", x*100) }

// mdEscape keeps a cell from breaking a markdown table.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "*", `\*`, "_", `\_`, "<", "&lt;", ">", "&gt;").Replace(s)
}

// RenderMarkdown writes the report as GitHub-flavoured markdown, for a
// pull request, a ticket or a wiki page.
func RenderMarkdown(w io.Writer, r Report) error {
	ew := &errWriter{w: w}
	p := ew.printf
	e := mdEscape
	p("# Experiment report: %s\n\n", e(r.Experiment))
	if r.Description != "" {
		p("%s\n\n", e(r.Description))
	}
	p("**Status:** %s  \n**Generated:** %s\n\n", e(r.statusLine()), fmtTime(r.GeneratedAt))
	p("## Verdict\n\n> %s\n", e(r.Verdict.Sentence))
	for _, d := range r.Verdict.Details {
		p(">\n> - %s\n", e(d))
	}
	if m := r.Money; m != nil {
		p("\n## Money at current traffic\n\nIn %s; see [money at current traffic](#glossary).\n\n", m.Currency)
		for _, s := range m.Candidates {
			p("- %s\n", e(s.Sentence))
		}
	}
	if t := r.TimeToDecision; t != nil {
		p("\n## Time to decision\n\n%s See [time to decision](#glossary).\n", e(t.Sentence))
	}
	if j := r.Judge; j != nil {
		p("\n## Shadow judge\n\n_%s_\n\n", e(j.note()))
		for _, c := range j.Candidates {
			p("- %s\n", e(c.Sentence))
		}
		p("\n| candidate | users | comparisons | win rate (CI) | position bias | gate | reasons |\n|---|--:|--:|---|---|---|---|\n")
		for _, c := range j.Candidates {
			d := c.Decision
			p("| %s | %s | %s | %s | %s | `%s` | %s |\n", e(c.Name), fmtCount(d.Users), fmtCount(d.Comparisons), e(judgeWinText(d)), e(judgeBiasText(d)), d.Verdict, e(judgeReasonsText(d)))
		}
		if s := j.Spend; s != nil {
			p("\nSpend: %s.\n", e(s.text()))
		}
		if h := j.Humans; h != nil {
			p("\n### Judge vs humans\n\n_%s_\n\n", e(h.note()))
			for _, c := range h.Candidates {
				p("- %s\n", e(c.Sentence))
			}
			p("\n| candidate | corrected lift (CI) | feedback alone (CI) | judge alone (CI) |\n|---|---|---|---|\n")
			for _, c := range h.Candidates {
				p("| %s | %s | %s | %s |\n", e(c.Name), e(humansLiftText(h.Unit, c.Corrected)), e(humansLiftText(h.Unit, c.HumanOnly)), e(c.judgeText()))
			}
			p("\n| arm | judged with feedback | judged without | judge bias (CI) | agreement with people |\n|---|--:|--:|---|---|\n")
			for _, a := range h.Arms {
				p("| %s | %s | %s | %s | %s |\n", e(a.Name), fmtCount(a.Labeled), fmtCount(a.Unlabeled), e(humansBiasText(a)), e(humansAgreementText(a)))
			}
		}
	}

	p("\n## Traffic\n\n| variant | model | users | expected | observed |\n|---|---|--:|--:|--:|\n")
	for _, v := range r.Variants {
		p("| %s | %s | %s | %s | %s |\n", e(v.Name), e(v.Model), fmtCount(v.Users), fmtShareCell(v.ExpectedShare), fmtShareCell(v.ObservedShare))
	}
	p("\n%s\n", e(r.srmLine()))
	if r.Cohort != nil {
		p("\n%s\n", e(r.Cohort.Sentence))
	}

	p("\n## Metrics\n\nLift against %s, with anytime-valid %s confidence intervals.\n", e(r.controlName()), fmtConfidence(r.Policy.Confidence))
	for _, m := range r.metricViews() {
		p("\n### %s\n\n_%s_\n\n", e(m.Title), e(m.Subtitle))
		p("| variant | users | mean | lift | CI | abs. lift | abs. CI | p-value | status |\n|---|--:|--:|--:|---|--:|---|--:|---|\n")
		for _, rv := range m.Rows {
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", e(rv.Variant), rv.Users, e(rv.Mean), rv.Lift, rv.CI, e(rv.AbsLift), e(rv.AbsCI), rv.P, e(rv.Status))
		}
		for _, n := range m.CUPED {
			p("\n%s\n", e(n))
		}
	}

	p("\n## Decision\n\n**Verdict:** `%s`\n\n", r.decisionLine())
	for _, rs := range r.Decision.Reasons {
		p("- `%s`: %s\n", rs.Code, e(rs.Message))
	}
	p("\nPolicy: %s.\n", e(r.policyLine()))

	if len(r.Segments) > 0 {
		p("\n## Segments\n\n_%s._\n\n| segment | variant | users | %s lift (CI) | guardrails | status |\n|---|---|--:|---|---|---|\n", e(r.segmentsNote()), e(r.Policy.Primary))
		for _, s := range r.segmentViews() {
			p("| %s | %s | %s | %s | %s | %s |\n", e(s.Segment), e(s.Variant), s.Users, e(s.Primary), e(s.Guardrails), e(s.Status))
		}
	}
	if d := r.Drift; d != nil {
		p("\n## Drift\n\nWindow %s to %s against the reference %s to %s; drifted when PSI >= %s and chi-square p < %s.\n\n",
			fmtTime(d.Window.From), fmtTime(d.Window.To), fmtTime(d.Reference.From), fmtTime(d.Reference.To), fmtPSI(d.PSIThreshold), fmtP(d.Alpha))
		p("| variant | feature | reference n | window n | PSI | p-value | status |\n|---|---|--:|--:|--:|--:|---|\n")
		for _, f := range d.Features {
			p("| %s | %s | %s | %s | %s | %s | %s |\n", e(f.Variant), e(f.Feature), fmtCount(float64(f.RefCount)), fmtCount(float64(f.Count)), fmtPSI(f.PSI), fmtP(f.PValue), e(f.Status))
		}
	}

	if len(r.Hourly) > 0 {
		p("\n## Over time\n\nCumulative at the end of each hour; %s lift with its anytime-valid CI.\n\n| as of (UTC) |", e(r.Policy.Primary))
		sep := "|---|"
		for _, v := range r.Variants {
			p(" users %s |", e(v.Name))
			sep += "--:|"
		}
		for _, v := range r.Variants[1:] {
			p(" lift %s |", e(v.Name))
			sep += "---|"
		}
		p(" verdict |\n%s---|\n", sep)
		for _, h := range r.sampledHours(12) {
			users, lifts := r.hourCells(h)
			p("| %s | %s | %s | %s |\n", fmtHour(h), strings.Join(users, " | "), strings.Join(lifts, " | "), h.Verdict)
		}
	}

	p("\n## Audit trail\n\n")
	if len(r.Transitions) == 0 {
		p("No transitions.\n")
	} else {
		p("| # | time | actor | change | details |\n|--:|---|---|---|---|\n")
		for _, t := range r.Transitions {
			change, detail := t.summary()
			p("| %d | %s | %s | %s | %s |\n", t.Seq, fmtTime(t.At), e(t.Actor), e(change), e(detail))
		}
	}
	if len(r.Glossary) > 0 {
		p("\n## Glossary\n\n")
		for _, g := range r.Glossary {
			p("- **%s**: %s\n", e(g.Term), e(g.Definition))
		}
	}
	return ew.err
}
