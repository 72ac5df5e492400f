package api

import (
	"fmt"
	"math"
	"strings"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// This file is the judge section's "judge vs humans" part (issue 14,
// items 5 and 7; docs/reports.md, "Judge vs humans"): on users with both
// a judge score of their served answers (judge_served) and human
// feedback, the judge's bias and its agreement with people per arm, and
// the lift on the human signal corrected by prediction-powered inference
// (stats.PPILift, PPI++), beside the lift from feedback alone and the
// judge's own.

// ReportJudgeHumans compares the live judge with human feedback.
type ReportJudgeHumans struct {
	// HumanMetric is the human signal (experiments.Experiment.HumanMetric)
	// and JudgeMetric the judge's score of the served answer.
	HumanMetric string `json:"human_metric"`
	JudgeMetric string `json:"judge_metric"`
	// Unit is the human metric's (experiments.MetricInfo.Unit): lifts
	// are in it.
	Unit  string  `json:"unit"`
	Alpha float64 `json:"alpha"`
	// Arms holds every arm's judge bias and agreement, the base first.
	Arms []ReportJudgeHumansArm `json:"arms"`
	// Candidates holds each candidate's lifts against the base.
	Candidates []ReportJudgeHumansLift `json:"candidates"`
}

// ReportJudgeHumansArm is one arm's judged users and how the judge's
// scores sit against its users' feedback.
type ReportJudgeHumansArm struct {
	Variant int    `json:"variant"`
	Name    string `json:"name"`
	// Labeled users have both a judge score and feedback; Unlabeled
	// users a judge score only.
	Labeled   float64 `json:"labeled"`
	Unlabeled float64 `json:"unlabeled"`
	// Bias is the mean, over labelled users, of the judge's score minus
	// the human signal rescaled to [0,1] with 1 the good end ((h − min)/
	// (max − min), reversed for a lower-is-better signal), with its
	// fixed-n interval; nil with fewer than 2 labelled users.
	Bias   *float64       `json:"bias,omitempty"`
	BiasCI stats.Interval `json:"bias_ci"`
	// Agreement is Cohen's κ between the judge (a user's mean score above
	// ½: it preferred the served answer) and the user (their mean signal
	// on the good side of its range's midpoint), per labelled user.
	Agreement stats.AgreementResult `json:"agreement"`
}

// ReportJudgeHumansLift is a candidate's lift on the human signal three
// ways. Intervals are the asymptotic anytime-valid ones (SequentialCI),
// all three built alike so their widths compare.
type ReportJudgeHumansLift struct {
	Variant int    `json:"variant"`
	Name    string `json:"name"`
	// Corrected is PPI++ on each arm; Valid false when either arm has
	// fewer than 2 labelled users (then nothing else is set but Sentence).
	Corrected HumanLift `json:"corrected"`
	// HumanOnly is the lift from the labelled users' feedback alone.
	HumanOnly HumanLift `json:"human_only"`
	// JudgeLift is the lift of the judge's own score of the served
	// answer over all judged users (on the judge's scale), and JudgeCI
	// its interval; nil when either arm has fewer than 2 judged users.
	JudgeLift *float64       `json:"judge_lift,omitempty"`
	JudgeCI   stats.Interval `json:"judge_ci"`
	// LabelGain is (human-only width / corrected width)²: how many times
	// the feedback the correction's interval is worth.
	LabelGain *float64 `json:"label_gain,omitempty"`
	Sentence  string   `json:"sentence"`
}

// HumanLift is a lift candidate − base of the human metric's per-user
// mean, in the metric's own unit.
type HumanLift struct {
	Lift float64 `json:"lift"`
	// CI is the asymptotic anytime-valid interval (stats.PPILiftResult.
	// SequentialCI), FixedCI the one valid at a single look.
	CI      stats.Interval `json:"ci"`
	FixedCI stats.Interval `json:"fixed_ci"`
	// Lambda is each arm's PPI++ weight of the judge's scores, base
	// first (0: the judge was not used).
	Lambda [2]float64 `json:"lambda"`
	Valid  bool       `json:"valid"`
}

// judgeHumans is the part for exp's pair in snap, nil when the experiment
// keeps no joint sums (no live judge or no human metric) or has no
// judged user yet.
func (a *analysis) judgeHumans(snap experiments.Snapshot, alpha float64) *ReportJudgeHumans {
	pairs := a.exp.JudgePairs()
	if len(pairs) == 0 {
		return nil
	}
	p := pairs[0]
	info, _ := a.exp.HumanMetric()
	sums := make([]experiments.JointSummary, len(a.exp.Variants))
	seen := false
	for v := range sums {
		sums[v] = sane(snap.Joint[experiments.JointKey{Variant: v, Human: p.Human, Judge: p.Judge}])
		seen = seen || sums[v].PPI.Labeled+sums[v].PPI.Unlabeled > 0
	}
	if !seen {
		return nil
	}
	h := &ReportJudgeHumans{HumanMetric: p.Human, JudgeMetric: p.Judge, Unit: info.Unit, Alpha: alpha,
		Arms: []ReportJudgeHumansArm{}, Candidates: []ReportJudgeHumansLift{}}
	opt := stats.PPIOptions{Alpha: alpha, NStar: a.humansNStar()}
	for v, s := range sums {
		arm := ReportJudgeHumansArm{Variant: v, Name: a.exp.Variants[v].Name, Labeled: s.PPI.Labeled, Unlabeled: s.PPI.Unlabeled}
		if r := stats.PPIMean(goodnessScale(s.PPI, info), opt); r.Valid {
			b := r.JudgeBias
			arm.Bias, arm.BiasCI = &b, r.JudgeBiasCI
		}
		arm.Agreement = stats.Agreement(agreementTable(s.Agree, info.Better), alpha)
		h.Arms = append(h.Arms, arm)
	}
	// PPI runs on the goodness scale g (goodnessScale), the judge's own
	// scale and direction: PPI++ clips λ to [0,1], which presumes the two
	// share them (on a 1-5 rating λ would clip at 1, on a lower-is-better
	// signal at 0). The lifts go back to the metric's unit exactly (g is
	// affine in h).
	base := goodnessScale(sums[0].PPI, info)
	for v := 1; v < len(sums); v++ {
		c := ReportJudgeHumansLift{Variant: v, Name: a.exp.Variants[v].Name}
		cand := goodnessScale(sums[v].PPI, info)
		if l := stats.PPILift(base, cand, opt); l.Valid {
			hopt := opt
			hopt.Mode = stats.PPIHumanOnly
			c.Corrected = toHumanLift(l, info)
			c.HumanOnly = toHumanLift(stats.PPILift(base, cand, hopt), info)
			if w, wh := width(c.Corrected.CI), width(c.HumanOnly.CI); w > 0 && wh > 0 {
				g := (wh / w) * (wh / w)
				c.LabelGain = &g
			}
		}
		if l, ci, ok := judgeLift(sums[0].PPI, sums[v].PPI, opt); ok {
			c.JudgeLift, c.JudgeCI = &l, ci
		}
		c.Sentence = humansSentence(info, &c, h.Arms[0], h.Arms[v], alpha)
		h.Candidates = append(h.Candidates, c)
	}
	return h
}

// sane is s, or nothing when a sum is not finite or a count negative (a
// corrupted store): the part then says there is not enough data rather
// than showing NaN.
func sane(s experiments.JointSummary) experiments.JointSummary {
	p := s.PPI
	for _, x := range []float64{p.Labeled, p.SumHuman, p.SumHuman2, p.SumJudge, p.SumJudge2, p.SumHumanJudge,
		p.Unlabeled, p.SumJudgeU, p.SumJudgeU2, s.Agree[0][0], s.Agree[0][1], s.Agree[1][0], s.Agree[1][1]} {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return experiments.JointSummary{}
		}
	}
	if p.Labeled < 0 || p.Unlabeled < 0 {
		return experiments.JointSummary{}
	}
	return s
}

// humansNStar tunes the part's confidence sequences at the users the
// live judge is expected to judge in the step: the policy's N* (users in
// the comparison) times live_percent, at least 2·DefaultMinUsers. The
// stats default (10 000 labels) would make them needlessly wide at the
// hundreds of judged users a step has.
func (a *analysis) humansNStar() float64 {
	n := a.policy.NStar
	if n == 0 {
		n = orDefault(2*a.policy.MaxUsers, stats.DefaultNStar)
	}
	if s := a.exp.Shadow; s != nil && s.LivePercent > 0 {
		n *= s.LivePercent / 100
	}
	return math.Max(n, 2*stats.DefaultMinUsers)
}

// toHumanLift is r, a lift of g, in the human metric's unit:
// lift_h = lift_g / c for g = a + c·h.
func toHumanLift(r stats.PPILiftResult, m experiments.MetricInfo) HumanLift {
	if !r.Valid {
		return HumanLift{}
	}
	_, c := goodness(m)
	back := func(i stats.Interval) stats.Interval {
		lo, hi := i.Low/c, i.High/c
		return stats.Interval{Low: math.Min(lo, hi), High: math.Max(lo, hi)}
	}
	return HumanLift{Lift: r.Lift / c, CI: back(r.SequentialCI), FixedCI: back(r.CI),
		Lambda: [2]float64{r.Base.Lambda, r.Candidate.Lambda}, Valid: true}
}

func width(i stats.Interval) float64 {
	w := i.High - i.Low
	if math.IsNaN(w) || math.IsInf(w, 0) {
		return 0
	}
	return w
}

// goodnessScale maps the human signal h of s to g = (h − min)/(max − min),
// or (max − h)/(max − min) for a lower-is-better signal, so a judge score
// in [0,1] and g share a scale and a direction: PPIMean's JudgeBias on
// the result is mean(f − g). The sums transform exactly (g is affine in
// h).
func goodnessScale(s stats.PPISummary, m experiments.MetricInfo) stats.PPISummary {
	a, c := goodness(m)
	n := s.Labeled
	s.SumHuman2 = n*a*a + 2*a*c*s.SumHuman + c*c*s.SumHuman2
	s.SumHumanJudge = a*s.SumJudge + c*s.SumHumanJudge
	s.SumHuman = n*a + c*s.SumHuman
	return s
}

// goodness is (a, c) of g = a + c·h (goodnessScale); (0, 1) for a
// metric without a usable range (validation refuses those).
func goodness(m experiments.MetricInfo) (a, c float64) {
	span := m.Max - m.Min
	if !(span > 0) || math.IsInf(span, 0) {
		return 0, 1
	}
	if m.Better == experiments.LowerIsBetter {
		return m.Max / span, -1 / span
	}
	return -m.Min / span, 1 / span
}

// agreementTable is the store's agreement cells (judge > ½, human above
// the midpoint) as a square table of (judge good, person good): for a
// lower-is-better signal, a person's good side is below the midpoint.
func agreementTable(c [2][2]float64, better experiments.Direction) [][]float64 {
	t := [][]float64{{c[0][0], c[0][1]}, {c[1][0], c[1][1]}}
	if better == experiments.LowerIsBetter {
		t[0][0], t[0][1] = t[0][1], t[0][0]
		t[1][0], t[1][1] = t[1][1], t[1][0]
	}
	return t
}

// judgeLift is the lift of the judge's mean score of the served answer
// over each arm's judged users (labelled and not), with the same
// asymptotic confidence sequence PPILift uses; ok false with fewer than
// 2 judged users in an arm or no variance.
func judgeLift(base, cand stats.PPISummary, opt stats.PPIOptions) (float64, stats.Interval, bool) {
	mean := func(s stats.PPISummary) (stats.Estimate, float64, bool) {
		n, sx, sx2 := s.Labeled+s.Unlabeled, s.SumJudge+s.SumJudgeU, s.SumJudge2+s.SumJudgeU2
		if !(n >= 2) || math.IsInf(n, 0) {
			return stats.Estimate{}, 0, false
		}
		m := sx / n
		v := math.Max((sx2-n*m*m)/(n-1), 0)
		return stats.Estimate{Value: m, Variance: v / n}, n, true
	}
	b, nb, ok1 := mean(base)
	c, nc, ok2 := mean(cand)
	if !ok1 || !ok2 {
		return 0, stats.Interval{}, false
	}
	e := stats.Lift(b, c, false)
	t := stats.ConfidenceSequence(e, 0, nb+nc, opt.NStar, opt.Alpha)
	if !t.Valid || math.IsInf(t.CI.Low, 0) || math.IsInf(t.CI.High, 0) {
		return 0, stats.Interval{}, false
	}
	return e.Value, t.CI, true
}

// humansSentence says a candidate's corrected lift for a reader who has
// never heard of prediction-powered inference.
func humansSentence(m experiments.MetricInfo, c *ReportJudgeHumansLift, base, cand ReportJudgeHumansArm, alpha float64) string {
	conf := fmtConfidence(1 - alpha)
	if !c.Corrected.Valid {
		return fmt.Sprintf("Not enough data yet to correct the judge with people's %s for %q: each arm needs at least 2 judged users who also gave feedback (base: %s, %s: %s).",
			m.Noun, c.Name, fmtCount(base.Labeled), c.Name, fmtCount(cand.Labeled))
	}
	l := c.Corrected
	var b strings.Builder
	fmt.Fprintf(&b, "Correcting the judge with people's feedback, %q changes the %s by %s against the base (anytime-valid %s CI %s to %s), from %s judged users who also gave feedback and %s who did not",
		c.Name, m.Noun, fmtSignedAbs(m.Unit, l.Lift), conf, fmtSignedAbs(m.Unit, l.CI.Low), fmtSignedAbs(m.Unit, l.CI.High),
		fmtCount(base.Labeled+cand.Labeled), fmtCount(base.Unlabeled+cand.Unlabeled))
	ho := c.HumanOnly
	fmt.Fprintf(&b, "; feedback alone says %s (CI %s to %s)", fmtSignedAbs(m.Unit, ho.Lift), fmtSignedAbs(m.Unit, ho.CI.Low), fmtSignedAbs(m.Unit, ho.CI.High))
	if c.JudgeLift != nil {
		fmt.Fprintf(&b, ", the judge alone %s points on its own scale", fmtSignedPoints(*c.JudgeLift))
	}
	b.WriteString(".")
	if g := c.LabelGain; g != nil && *g >= 1.05 {
		fmt.Fprintf(&b, " The judge's scores make the feedback worth %s× as much.", fmtNum(*g))
	} else if g != nil {
		b.WriteString(" The judge's scores add little here: its scores barely track people's.")
	}
	return b.String()
}

// humansBiasText is an arm's judge bias for the renderers.
func humansBiasText(a ReportJudgeHumansArm) string {
	if a.Bias == nil {
		return "-"
	}
	return fmt.Sprintf("%s points (CI %s to %s)", fmtSignedPoints(*a.Bias), fmtSignedPoints(a.BiasCI.Low), fmtSignedPoints(a.BiasCI.High))
}

// humansAgreementText is an arm's judge–human agreement for the
// renderers.
func humansAgreementText(a ReportJudgeHumansArm) string {
	g := a.Agreement
	switch {
	case g.Observed == nil:
		return "-"
	case g.Kappa == nil:
		return fmt.Sprintf("agree on %s of %s users; kappa undefined (one side always says the same)", fmtPct(*g.Observed), fmtCount(g.N))
	}
	return fmt.Sprintf("agree on %s of %s users; kappa %s (CI %s to %s)", fmtPct(*g.Observed), fmtCount(g.N),
		fmtNum(*g.Kappa), fmtNum(g.KappaCI.Low), fmtNum(g.KappaCI.High))
}

// humansLiftText is a lift and its interval for table cells.
func humansLiftText(unit string, r HumanLift) string {
	if !r.Valid {
		return "-"
	}
	return fmt.Sprintf("%s (%s to %s)", fmtSignedAbs(unit, r.Lift), fmtSignedAbs(unit, r.CI.Low), fmtSignedAbs(unit, r.CI.High))
}

func (c *ReportJudgeHumansLift) judgeText() string {
	if c.JudgeLift == nil {
		return "-"
	}
	return fmt.Sprintf("%s (%s to %s) points", fmtSignedPoints(*c.JudgeLift), fmtSignedPoints(c.JudgeCI.Low), fmtSignedPoints(c.JudgeCI.High))
}

// note says what the part shows and what it rests on.
func (h *ReportJudgeHumans) note() string {
	return fmt.Sprintf("Judge vs humans, on %s: per user, the judge's score of the answers they were served (%s) against their own feedback. "+
		"The corrected lift is prediction-powered inference (PPI++): the judge's scores of every judged user, corrected by the judge's error measured on users who also gave feedback. "+
		"It is valid only if whether a judged user gives feedback does not depend on how good their answers were; bias is the judge's score minus the feedback rescaled to 0-100 points.",
		h.HumanMetric, h.JudgeMetric)
}

// humansView is the part for the page.
type humansView struct {
	Note      string
	Sentences []string
	Arms      []humansArmView
	Lifts     []humansLiftView
}

type humansArmView struct{ Name, Labeled, Unlabeled, Bias, Agreement string }
type humansLiftView struct{ Name, Corrected, HumanOnly, Judge string }

func (h *ReportJudgeHumans) view() *humansView {
	if h == nil {
		return nil
	}
	v := &humansView{Note: h.note()}
	for _, a := range h.Arms {
		v.Arms = append(v.Arms, humansArmView{Name: a.Name, Labeled: fmtCount(a.Labeled), Unlabeled: fmtCount(a.Unlabeled),
			Bias: humansBiasText(a), Agreement: humansAgreementText(a)})
	}
	for i := range h.Candidates {
		c := &h.Candidates[i]
		v.Sentences = append(v.Sentences, c.Sentence)
		v.Lifts = append(v.Lifts, humansLiftView{Name: c.Name, Corrected: humansLiftText(h.Unit, c.Corrected),
			HumanOnly: humansLiftText(h.Unit, c.HumanOnly), Judge: c.judgeText()})
	}
	return v
}
