package api

import (
	"fmt"
	"strings"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// Judge section sources (ReportJudge.Source).
const (
	// JudgeLive: stats.JudgeGate on the current period's judge_score and
	// judge_first summaries, with the experiment's judge policy, exactly
	// as the controller evaluates the shadow stage.
	JudgeLive = "live"
	// JudgeRecorded: the decisions stored with the transition that ended
	// the shadow stage (shadow_pass, or a stop on the judge).
	JudgeRecorded = "recorded"
)

// ReportJudge is the shadow stage's judge section (docs/reports.md,
// "The judge"): per candidate, the judge's win rate and position bias
// with their anytime-valid intervals and the gate's verdict.
type ReportJudge struct {
	// Source is JudgeLive or JudgeRecorded; At is when the recorded
	// decision was made (zero for live).
	Source string    `json:"source"`
	At     time.Time `json:"at,omitzero"`
	// Policy is the gate's policy (experiments.Experiment.JudgePolicy).
	Policy     stats.JudgePolicy      `json:"policy"`
	Candidates []ReportJudgeCandidate `json:"candidates"`
	// Spend is what the replay and the judge cost, from this replica's
	// shadow service (nil without one, see WithReportsShadow).
	Spend *ShadowSpend `json:"spend,omitempty"`
	// Humans compares the live judge with human feedback and corrects
	// its lift (report_ppi.go); nil without a live judge's data.
	Humans *ReportJudgeHumans `json:"humans,omitempty"`
}

// ReportJudgeCandidate is one candidate's judge gate decision.
type ReportJudgeCandidate struct {
	Variant  int                 `json:"variant"`
	Name     string              `json:"name"`
	Decision stats.JudgeDecision `json:"decision"`
	// Sentence says the decision in plain words.
	Sentence string `json:"sentence"`
}

// ShadowSpend is the shadow replay's counts and spend for an experiment,
// since this replica started (cmd/abgate adapts shadow.Stats). Costs are
// in the experiment's currency; they are never either arm's cost.
type ShadowSpend struct {
	Replayed    int64   `json:"replayed"`
	Judged      int64   `json:"judged"`
	Dropped     int64   `json:"dropped"` // queue full, replay or judge failed
	ReplayCost  float64 `json:"replay_cost"`
	JudgeCost   float64 `json:"judge_cost"`
	Currency    string  `json:"currency"`
	PerJudgment float64 `json:"per_judgment,omitempty"` // (replay + judge cost) / judged
}

// WithReportsShadow adds the shadow spend to full reports' judge section:
// spend(exp) returns an experiment's counts, ok false when this replica
// has none.
func WithReportsShadow(spend func(experiment string) (ShadowSpend, bool)) ReportsOption {
	return func(h *Reports) { h.shadow = spend }
}

// addShadowSpend sets r.Judge.Spend from h's source, if it has one.
func (h *Reports) addShadowSpend(r *Report, exp *experiments.Experiment, full bool) {
	if !full || h.shadow == nil || r.Judge == nil {
		return
	}
	s, ok := h.shadow(r.Experiment)
	if !ok {
		return
	}
	if s.Currency == "" {
		s.Currency, _ = exp.Money()
	}
	if s.Judged > 0 {
		s.PerJudgment = (s.ReplayCost + s.JudgeCost) / float64(s.Judged)
	}
	r.Judge.Spend = &s
}

// judgeSection is the report's judge section: the gate on the current
// period's judge data when it has any (the shadow stage, or the live
// judge during a ramp step, shadow.live_percent); otherwise, once the
// experiment has left shadow, the decisions recorded with the transition
// that ended it. Nil for an experiment without a judge that never had
// judge data.
func (a *analysis) judgeSection(status string, transitions []ReportTransition, snap experiments.Snapshot) *ReportJudge {
	j := &ReportJudge{Policy: a.exp.JudgePolicy(), Candidates: []ReportJudgeCandidate{}}
	j.Policy.Alpha = orDefault(j.Policy.Alpha, stats.DefaultAlpha) // JudgeGate's default, shown
	has := false
	for v := 1; v < len(a.exp.Variants); v++ {
		has = has || snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricJudgeScore}].N > 0
	}
	inShadow := status == string(experiments.StatusShadow)
	if (!has && !inShadow) || isEnded(status) {
		for i := len(transitions) - 1; i >= 0; i-- {
			if t := transitions[i]; len(t.Judge) > 0 {
				j.Source, j.At = JudgeRecorded, t.At
				for k, d := range t.Judge {
					j.add(a.exp, k+1, d)
				}
				return j
			}
		}
	}
	if !has && (a.exp.Judge == nil || !inShadow) {
		return nil // (an ended experiment without a recorded gate and no judge data)
	}
	j.Source = JudgeLive
	for v := 1; v < len(a.exp.Variants); v++ {
		j.add(a.exp, v, stats.JudgeGate(experiments.JudgeInput(snap, v), j.Policy))
	}
	return j
}

func (j *ReportJudge) add(exp *experiments.Experiment, v int, d stats.JudgeDecision) {
	name := fmt.Sprintf("variant %d", v)
	if v < len(exp.Variants) {
		name = exp.Variants[v].Name
	}
	j.Candidates = append(j.Candidates, ReportJudgeCandidate{Variant: v, Name: name, Decision: d, Sentence: judgeSentence(name, d, j.Policy)})
}

// judgeSentence says a candidate's gate decision for a reader who has
// never heard of a confidence sequence.
func judgeSentence(name string, d stats.JudgeDecision, p stats.JudgePolicy) string {
	conf := fmtConfidence(1 - orDefault(d.Alpha, stats.DefaultAlpha))
	var b strings.Builder
	if d.WinRate == nil {
		fmt.Fprintf(&b, "The judge has compared no answers of %q yet", name)
	} else {
		fmt.Fprintf(&b, "The judge preferred the answer of %q in %s of %s comparisons over %s users (ties half; anytime-valid %s CI %s to %s)",
			name, fmtPct(*d.WinRate), fmtCount(d.Comparisons), fmtCount(d.Users), conf, fmtPct(d.WinRateCI.Low), fmtPct(d.WinRateCI.High))
	}
	bar := 0.5 - p.NonInferiorityMargin
	switch d.Verdict {
	case stats.JudgePass:
		if d.Superior {
			fmt.Fprintf(&b, ": shown better than the base; gate passed")
		} else {
			fmt.Fprintf(&b, ": shown above %s, not worse than the base by more than the margin; gate passed", fmtPct(bar))
		}
	case stats.JudgeStopWorse:
		fmt.Fprintf(&b, ": shown below %s, worse than the base; stop before any user sees it", fmtPct(bar))
	case stats.JudgeInconclusive:
		b.WriteString(": the gate can't conclude in its favour; a person decides")
	default:
		b.WriteString(": keep judging")
	}
	return b.String() + "."
}

// judgeBiasText is a decision's position bias for the renderers.
func judgeBiasText(d stats.JudgeDecision) string {
	if d.PositionBias == nil {
		if d.BothOrders == 0 {
			return "not measured (no comparison asked in both orders)"
		}
		return "n/a"
	}
	s := fmt.Sprintf("%s points (CI %s to %s) over %s comparisons asked in both orders",
		fmtSignedPoints(*d.PositionBias), fmtSignedPoints(d.PositionBiasCI.Low), fmtSignedPoints(d.PositionBiasCI.High), fmtCount(d.BothOrders))
	if d.Biased {
		s += "; BIASED beyond the limit"
	}
	return s
}

func fmtSignedPoints(x float64) string { return fmt.Sprintf("%+.1f", 100*x) }

// judgeWinText is a decision's win rate and interval for table cells.
func judgeWinText(d stats.JudgeDecision) string {
	if d.WinRate == nil {
		return "-"
	}
	return fmt.Sprintf("%s (%s to %s)", fmtPct(*d.WinRate), fmtPct(d.WinRateCI.Low), fmtPct(d.WinRateCI.High))
}

// judgeReasonsText joins a decision's reason messages.
func judgeReasonsText(d stats.JudgeDecision) string {
	msgs := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		msgs = append(msgs, string(r.Code)+": "+r.Message)
	}
	return strings.Join(msgs, "; ")
}

// judgeNote says where the section's numbers come from.
func (j *ReportJudge) note() string {
	s := fmt.Sprintf("Live: the gate on this period's judge data so far (pass when the win rate is shown above %s, stop when shown below it; position bias limit ±%s points).",
		fmtPct(0.5-j.Policy.NonInferiorityMargin), fmtNum(100*j.Policy.PositionBiasLimit))
	if j.Source == JudgeRecorded {
		s = "Recorded: the decision the controller made when the shadow stage ended, " + fmtTime(j.At) + "."
	}
	return s + " Win rates count a tie as half a win; position bias is the judge's preference for the first-shown answer minus 50%."
}

// spendText says the shadow spend in one line.
func (s *ShadowSpend) text() string {
	t := fmt.Sprintf("%s replays, %s judgments, %s dropped; replay cost %s %s, judge cost %s %s",
		fmtCount(float64(s.Replayed)), fmtCount(float64(s.Judged)), fmtCount(float64(s.Dropped)),
		fmtSig(s.ReplayCost, 3), s.Currency, fmtSig(s.JudgeCost, 3), s.Currency)
	if s.PerJudgment > 0 {
		t += fmt.Sprintf(" (%s %s a judged comparison)", fmtSig(s.PerJudgment, 3), s.Currency)
	}
	return t + "; never counted as either arm's cost (this replica, since it started)"
}

// judgeView is the judge section for the page.
type judgeView struct {
	Source, Note, Spend string
	Sentences           []string
	Rows                []judgeRowView
	Humans              *humansView
}

type judgeRowView struct {
	Name, Users, Comparisons, WinRate, Bias, Gate, Reasons string
}

func (j *ReportJudge) view() *judgeView {
	if j == nil {
		return nil
	}
	v := &judgeView{Source: j.Source, Note: j.note(), Humans: j.Humans.view()}
	for _, c := range j.Candidates {
		d := c.Decision
		v.Sentences = append(v.Sentences, c.Sentence)
		v.Rows = append(v.Rows, judgeRowView{Name: c.Name, Users: fmtCount(d.Users), Comparisons: fmtCount(d.Comparisons),
			WinRate: judgeWinText(d), Bias: judgeBiasText(d), Gate: string(d.Verdict), Reasons: judgeReasonsText(d)})
	}
	if j.Spend != nil {
		v.Spend = j.Spend.text()
	}
	return v
}

// VerdictShadow: the experiment is in its shadow stage, or ended there;
// the judge gate, not stats.Decide, decides (docs/rollout.md).
const VerdictShadow = "shadow"

// inShadowPeriod reports whether the report's period is a shadow
// stage's: the experiment is in shadow, or ended there (its last
// transition left shadow for the ended status).
func inShadowPeriod(status string, transitions []ReportTransition) bool {
	if status == string(experiments.StatusShadow) {
		return true
	}
	n := len(transitions)
	return isEnded(status) && n > 0 && transitions[n-1].From == string(experiments.StatusShadow) && transitions[n-1].To == status
}

// shadowSplit is the shadow stage's expected split: the base serves
// everyone.
func shadowSplit(n int) []float64 {
	s := make([]float64, n)
	s[0] = 1
	return s
}

// judgeVerdict is the report's verdict for an experiment in shadow or
// stopped by the judge gate: the gate's decisions in words; ok false
// otherwise.
func judgeVerdict(r *Report, transitions []ReportTransition) (ReportVerdict, bool) {
	j := r.Judge
	if j == nil {
		return ReportVerdict{}, false
	}
	if !inShadowPeriod(r.Status, transitions) {
		return ReportVerdict{}, false
	}
	endedThere := r.Ended
	v := ReportVerdict{Kind: VerdictShadow, Recommendation: "keep judging"}
	pass, worse := true, false
	var parts []string
	for _, c := range j.Candidates {
		pass = pass && c.Decision.Verdict == stats.JudgePass
		worse = worse || c.Decision.Verdict == stats.JudgeStopWorse
		parts = append(parts, c.Sentence)
	}
	switch {
	case worse:
		v.Recommendation = "stop: no user was exposed to the candidate"
	case endedThere:
		v.Recommendation = "none: the experiment has ended"
	case pass && len(j.Candidates) > 0:
		v.Recommendation = "advance to ramp step 1"
	}
	lead := "Shadow stage: no user sees a candidate yet; the judge compares its answers with the base's. "
	if endedThere {
		lead = ""
	}
	v.Sentence = lead + strings.Join(parts, " ") + " Recommendation: " + v.Recommendation + "."
	if len(parts) > 1 {
		v.Sentence = lead + "Recommendation: " + v.Recommendation + "."
		v.Details = parts
	}
	return v, true
}
