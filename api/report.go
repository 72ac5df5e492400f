package api

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// ReportSource is what reports need from the experiment registry and the
// lifecycle (issue 5). It is declared here, by its user, so the lifecycle
// only needs a small adapter.
type ReportSource interface {
	// Experiment returns the experiment's current config.
	Experiment(id string) (*experiments.Experiment, bool)
	// Experiments lists every experiment, for the report index.
	Experiments() []*experiments.Experiment
	// Status is the experiment's live state.
	Status(ctx context.Context, id string) (ReportStatus, error)
	// Transitions is the audit trail, oldest first.
	Transitions(ctx context.Context, id string) ([]ReportTransition, error)
}

// ReportStatus is an experiment's live state as far as reports care.
type ReportStatus struct {
	// Status: draft, running, paused, promoted, rolled_back or stopped.
	Status string `json:"status"`
	// Step is the index of the current ramp step, -1 without a rollout.
	Step int `json:"step"`
	// Period is the data period the statistics are read from (the
	// split changes with each period); 0 means the experiment's phase.
	Period int `json:"period"`
	// Started is when the current period began; zero when unknown.
	Started time.Time `json:"started,omitzero"`
	// Ended is when the experiment ended (promoted, rolled back or
	// stopped); zero while it runs.
	Ended time.Time `json:"ended,omitzero"`
	// Split is the expected traffic weight of each variant in the current
	// period (any positive scale). Nil: derived from the rollout step or
	// the configured weights.
	Split []float64 `json:"split,omitempty"`
	// Test is the index of the current step's test
	// (experiments.State.TestIndex; 0 reads as 1), CarriedLogE the
	// guardrail evidence carried from earlier periods (used with
	// rollout.carry_over) and PeriodPrior the bounded metrics' centres
	// and CUPED θ fixed by the period the controller closed last: the
	// two halves of experiments.PriorOf(history). The controller's policy
	// is Experiment.PolicyAt(step, Test, Prior{CarriedLogE, PeriodPrior}).
	Test        int                                `json:"test,omitempty"`
	CarriedLogE map[string][]float64               `json:"carried_log_e,omitempty"`
	PeriodPrior map[string]experiments.MetricPrior `json:"period_prior,omitempty"`
}

// ReportTransition is one entry of the audit trail.
type ReportTransition struct {
	Seq    int64     `json:"seq"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason,omitempty"`
	Codes  []string  `json:"codes,omitempty"`
	// Decision is the statistics behind an automatic transition. Reports
	// keep only its verdict (in Verdict) to stay small.
	Decision *stats.Decision `json:"decision,omitempty"`
	Verdict  stats.Verdict   `json:"verdict,omitempty"`
	// Judge is the judge gate's decisions behind a transition out of the
	// shadow stage; reports move them to the judge section.
	Judge []stats.JudgeDecision `json:"judge,omitempty"`
}

// ReportTransitions turns the lifecycle's audit trail into the report's,
// keeping each automatic transition's decision (the report presents it
// for an ended experiment).
func ReportTransitions(ts []experiments.Transition) []ReportTransition {
	out := make([]ReportTransition, 0, len(ts))
	for _, t := range ts {
		rt := ReportTransition{
			Seq: t.Seq, At: t.At, Actor: t.Actor, Action: string(t.Action),
			From: string(t.From), To: string(t.To), Reason: t.Reason, Codes: t.Codes, Decision: t.Decision, Judge: t.Judge,
		}
		if t.Decision != nil {
			rt.Verdict = t.Decision.Verdict
		}
		out = append(out, rt)
	}
	return out
}

// Report is an experiment report: everything a PM needs to act and a
// statistician needs to check. docs/reports.md describes each field.
type Report struct {
	Experiment  string          `json:"experiment"`
	Description string          `json:"description,omitempty"`
	GeneratedAt time.Time       `json:"generated_at"`
	Status      string          `json:"status"`
	Ended       bool            `json:"ended"`
	EndedAt     time.Time       `json:"ended_at,omitzero"`
	Step        int             `json:"step"`  // current ramp step, counted from 1 ("step 2 of 4"); 0 without rollout
	Steps       int             `json:"steps"` // number of ramp steps, 0 without rollout
	Period      int             `json:"period"`
	Started     time.Time       `json:"started,omitzero"`
	Verdict     ReportVerdict   `json:"verdict"`
	Policy      ReportPolicy    `json:"policy"`
	Variants    []ReportVariant `json:"variants"`
	Metrics     []ReportMetric  `json:"metrics"`
	SRM         ReportSRM       `json:"srm"`
	// Cohort says which users the step is analysed on (rollout.cohort),
	// for an experiment with a rollout.
	Cohort      *ReportCohort      `json:"cohort,omitempty"`
	Decision    stats.Decision     `json:"decision"`
	Transitions []ReportTransition `json:"transitions"`
	// Hourly is the series behind the charts, one point per hour with
	// data, cumulative at the end of that hour.
	Hourly []ReportHour `json:"hourly"`
	// Segments has one row per (candidate, segment value) when the
	// experiment declares segments (docs/segments.md).
	Segments []ReportSegment `json:"segments,omitempty"`
	// Drift is the input/output drift section, when a drift reader is
	// configured (see AddDrift).
	Drift *ReportDrift `json:"drift,omitempty"`
	// Integrity is the data-loss section, when an integrity source is
	// configured (see WithReportsIntegrity).
	Integrity *ReportIntegrity `json:"integrity,omitempty"`
	// Money is what switching to each candidate does to spend at the
	// observed traffic, when the cost metric has data (issue 15).
	Money *ReportMoney `json:"money,omitempty"`
	// TimeToDecision estimates when the primary metric will be decided,
	// while the experiment runs.
	TimeToDecision *ReportETA `json:"time_to_decision,omitempty"`
	// Judge is the shadow stage's LLM judge section (issue 14), for an
	// experiment with a judge.
	Judge *ReportJudge `json:"judge,omitempty"`
	// Glossary explains the report's terms for a non-statistician.
	Glossary []ReportTerm `json:"glossary"`
}

// Verdict kinds (ReportVerdict.Kind).
const (
	VerdictNoData      = "no_data"
	VerdictSRM         = "srm"
	VerdictTooFew      = "too_few_users"
	VerdictHarm        = "harm"
	VerdictWorse       = "worse"
	VerdictPromote     = "promote"
	VerdictFutility    = "futility"
	VerdictInconclusve = "inconclusive"
	VerdictGuardrails  = "guardrails_pending"
	// VerdictAdvance: at a ramp step before the last, every guardrail
	// holds; the controller moves to the next step.
	VerdictAdvance = "advance"
	// VerdictSegmentHarm: better on average, but significantly worse in
	// a segment (issue #7).
	VerdictSegmentHarm = "segment_harm"
)

// ReportVerdict is the plain-language summary at the top of a report.
type ReportVerdict struct {
	Kind string `json:"kind"`
	// Recommendation: promote, roll back, keep running, advance to the
	// next step, stop, check the assignment.
	Recommendation string `json:"recommendation"`
	// Sentence is the verdict in one plain sentence.
	Sentence string `json:"sentence"`
	// Details has one sentence per candidate when there are several.
	Details []string `json:"details,omitempty"`
	// MoreUsersNeeded is the planned additional users per variant when
	// the primary metric is still inconclusive.
	MoreUsersNeeded *float64 `json:"more_users_needed,omitempty"`
}

// ReportPolicy is the decision policy the report was computed with.
type ReportPolicy struct {
	// Mode is "full" (primary and guardrails decide) or, at a ramp step
	// before the last, "ramp" (only the guardrails decide).
	Mode       stats.Mode        `json:"mode"`
	Primary    string            `json:"primary"`
	Better     string            `json:"better"`
	Method     stats.Method      `json:"method"`
	Alpha      float64           `json:"alpha"`
	Confidence float64           `json:"confidence"` // 1 − alpha, simultaneous over candidates
	MinUsers   float64           `json:"min_users"`
	MaxUsers   float64           `json:"max_users,omitempty"`
	SRMAlpha   float64           `json:"srm_alpha"`
	Guardrails []ReportGuardrail `json:"guardrails"`
	// AlphaSpent is the α the current step's tests have spent so far,
	// this one included (restarts, set_step and reshuffles each open one
	// at stats.RestartAlpha): at most the rollout's alpha. Omitted
	// without a rollout.
	AlphaSpent float64 `json:"alpha_spent,omitempty"`
	// Judge is the live judge guardrail of the ramp steps
	// (stats.Policy.Judge), omitted without live judging.
	Judge *ReportJudgeGuardrail `json:"judge,omitempty"`
}

// ReportGuardrail is one guardrail of the policy.
type ReportGuardrail struct {
	Metric   string  `json:"metric"`
	Margin   float64 `json:"margin"`
	Relative bool    `json:"relative"`
	Better   string  `json:"better"`
}

// ReportVariant is one variant's traffic.
type ReportVariant struct {
	Index         int     `json:"index"`
	Name          string  `json:"name"`
	Model         string  `json:"model"`
	Users         float64 `json:"users"`
	ExpectedShare float64 `json:"expected_share"`
	ObservedShare float64 `json:"observed_share"`
}

// Metric roles.
const (
	RolePrimary   = "primary"
	RoleGuardrail = "guardrail"
	RoleSecondary = "secondary"
)

// Row statuses (ReportRow.Status).
const (
	RowControl      = "control"
	RowBetter       = "better"
	RowWorse        = "worse"
	RowHigher       = "higher" // no preferred direction
	RowLower        = "lower"
	RowInconclusive = "inconclusive"
	RowNonInferior  = "non-inferior"
	RowHarmful      = "harmful"
	RowNoData       = "no data"
)

// ReportMetric is one metric across variants.
type ReportMetric struct {
	Name  string `json:"name"`
	Label string `json:"label"` // for people: "thumbs-up rate"
	Unit  string `json:"unit"`  // "rate", "ms", "s", "tokens", "cost", "score", ""
	Role  string `json:"role"`
	// Better is "higher", "lower" or "" (no preferred direction).
	Better string `json:"better"`
	// Margin and MarginRelative are the guardrail's allowed harm.
	Margin         *float64    `json:"margin,omitempty"`
	MarginRelative bool        `json:"margin_relative,omitempty"`
	Rows           []ReportRow `json:"rows"`
}

// ReportRow is one variant's numbers for a metric. Lifts compare with the
// control (variant 0), whose row has none. Undefined numbers are null.
type ReportRow struct {
	Variant int      `json:"variant"`
	Name    string   `json:"name"`
	Users   float64  `json:"users"` // users with at least one observation
	Mean    *float64 `json:"mean"`  // per-observation mean (a rate for 0/1 metrics)
	// Absolute lift (metric units) and relative lift (fraction), each with
	// its anytime-valid confidence interval at the policy's confidence.
	AbsLift   *float64 `json:"abs_lift,omitempty"`
	AbsCILow  *float64 `json:"abs_ci_low,omitempty"`
	AbsCIHigh *float64 `json:"abs_ci_high,omitempty"`
	RelLift   *float64 `json:"rel_lift,omitempty"`
	RelCILow  *float64 `json:"rel_ci_low,omitempty"`
	RelCIHigh *float64 `json:"rel_ci_high,omitempty"`
	// PValue is the anytime-valid p-value of "no difference".
	PValue *float64 `json:"p_value,omitempty"`
	// MarginPValue (guardrails) is the p-value of "harm equals the
	// margin" from the decision.
	MarginPValue *float64 `json:"margin_p_value,omitempty"`
	Status       string   `json:"status"`
	// Change is what the interval of the lift the metric is judged on
	// shows, whatever the metric's role: "better" or "worse" (or, without
	// a preferred direction, "higher" or "lower") when it excludes zero,
	// "" otherwise. The verdict names every such change.
	Change string `json:"change,omitempty"`
	// RelReadable: the base is measured precisely enough for the relative
	// lift to mean something (its interval is at most 100 points wide);
	// the renderers show only the absolute lift otherwise.
	RelReadable bool `json:"rel_readable,omitempty"`
	// VarianceRemoved and ExtraUsers (experiments[].cuped): the share of
	// the lift's variance the pre-exposure covariate removed, and the
	// users the unadjusted test would need in addition (0.46: 46% more),
	// as stats.Decide returned them for the lift the metric is judged on;
	// absent when no adjustment applied.
	VarianceRemoved *float64 `json:"variance_removed,omitempty"`
	ExtraUsers      *float64 `json:"extra_users,omitempty"`
}

// ReportSRM is the sample ratio check.
type ReportSRM struct {
	Expected        []float64 `json:"expected"` // shares, summing to 1
	Observed        []float64 `json:"observed"`
	PValue          float64   `json:"p_value"` // anytime-valid
	ChiSquarePValue float64   `json:"chi_square_p_value"`
	Alpha           float64   `json:"alpha"`
	// Status: ok, mismatch, not_checked.
	Status string `json:"status"`
}

// ReportHour is the state at the end of one hour with data.
type ReportHour struct {
	Hour time.Time `json:"hour"` // start of the hour, UTC
	// AsOf is the moment the cumulative values describe: the end of the
	// hour, or the report's generation time for the hour under way.
	AsOf  time.Time `json:"as_of"`
	Users []float64 `json:"users"` // cumulative users per variant
	// Lift holds each candidate's relative lift on the primary metric
	// with its anytime-valid CI, on the data up to this hour (null before
	// every variant has min_users users).
	Lift    []ReportPoint `json:"lift"`
	Verdict stats.Verdict `json:"verdict"`
}

// ReportPoint is one candidate's primary lift at one hour.
type ReportPoint struct {
	Variant int      `json:"variant"`
	Lift    *float64 `json:"lift"`
	CILow   *float64 `json:"ci_low"`
	CIHigh  *float64 `json:"ci_high"`
}

// analysis is what a report presents: the experiment, and the policy and
// allocation the rollout controller decides with in the experiment's
// current state.
type analysis struct {
	exp    *experiments.Experiment
	step   int          // exp.StepIndex(status.Step), or -1
	policy stats.Policy // exp.PolicyAt(step, …), untouched: what the controller passes to stats.Decide
	test   int          // the step's test index (ReportStatus.Test)
	alloc  *experiments.Allocation
	split  []float64 // the expected split: alloc's, or the status's
}

func newAnalysis(exp *experiments.Experiment, st ReportStatus) *analysis {
	// Step -1: no rollout, or no lifecycle runs it (the configured
	// weights are served and the full decision applies).
	a := &analysis{exp: exp, step: -1}
	if st.Step >= 0 {
		a.step = exp.StepIndex(st.Step)
	}
	a.test = max(st.Test, 1)
	a.policy = exp.PolicyAt(a.step, a.test, experiments.Prior{LogE: st.CarriedLogE, Metrics: st.PeriodPrior})
	// The controller reads the allocation of its (running) state at the
	// step; otherwise the configured weights are served.
	a.alloc = exp.Allocation()
	if a.step >= 0 {
		a.alloc = exp.AllocationFor(experiments.State{Status: experiments.StatusRunning, Step: a.step})
	}
	n := len(exp.Variants)
	a.split = a.alloc.Split(n)
	if len(st.Split) == n {
		a.split = append([]float64(nil), st.Split...)
	}
	return a
}

// input is the stats input of a snapshot exactly as the controller builds
// it (experiments.RolloutInput) for the report's policy.
func (a *analysis) input(snap experiments.Snapshot) stats.Input {
	in := experiments.RolloutInput(a.exp, snap, a.alloc, a.policy)
	in.ExpectedSplit = a.split
	return in
}

// summaries is one Summary per variant of metric name.
func (a *analysis) summaries(st map[experiments.VariantMetric]experiments.Summary, name string) []stats.Summary {
	ss := make([]stats.Summary, len(a.exp.Variants))
	for v := range ss {
		ss[v] = st[experiments.VariantMetric{Variant: v, Metric: name}]
	}
	return ss
}

// lifts is every candidate's lift over the base on metric m (indexed by
// variant; the base's is empty), with its anytime-valid interval and the
// p-value of "no difference". The numbers come from stats.Decide itself,
// asked to judge m as the primary metric at the policy's alpha, method,
// N* and tau, on an input that passes every rule before the primary
// (equal user counts, one user minimum, no guardrails, no judge, no
// segments): so the report has no second copy of the sequential tests,
// and a metric the decision judges shows the decision's interval.
func (a *analysis) lifts(ss []stats.Summary, m stats.Metric) []stats.MetricResult {
	p := a.policy
	p.Mode, p.Primary, p.Guardrails, p.Judge, p.MinUsers = stats.FullMode, m, nil, nil, 1
	users := make([]float64, len(ss))
	for i := range users {
		users[i] = 1
	}
	// The split matters to a bounded metric's test (issue 11), which
	// is centred by the design's known traffic share.
	d := stats.Decide(stats.Input{Users: users, ExpectedSplit: a.split, Metrics: map[string][]stats.Summary{m.Name: ss}}, p)
	out := make([]stats.MetricResult, len(ss))
	for _, vr := range d.Variants {
		for _, mr := range vr.Metrics {
			if mr.Role == RolePrimary && vr.Variant < len(out) {
				out[vr.Variant] = mr
			}
		}
	}
	return out
}

// recordedDecision is the decision behind an ended experiment's last
// transition, when the controller made it (nil for an operator's
// command, or while the experiment runs).
func recordedDecision(status string, transitions []ReportTransition) *stats.Decision {
	if !isEnded(status) {
		return nil
	}
	for i := len(transitions) - 1; i >= 0; i-- {
		if t := transitions[i]; t.To == status {
			return t.Decision
		}
	}
	return nil
}

// BuildReport computes an experiment's report from its config, live
// status, audit trail, cumulative statistics of the current period and
// that period's hourly deltas (in hour order). It is pure: now is only
// recorded as the generation time.
//
// The decision it presents is the rollout controller's: for an
// experiment the controller ended, the decision recorded with that
// transition; otherwise stats.Decide with the controller's policy and
// input for the current step.
func BuildReport(exp *experiments.Experiment, status ReportStatus, transitions []ReportTransition, snap experiments.Snapshot, hourly []experiments.HourSummaries, now time.Time) Report {
	if inShadowPeriod(status.Status, transitions) && len(status.Split) != len(exp.Variants) {
		status.Split = shadowSplit(len(exp.Variants)) // the base served everyone
	}
	a := newAnalysis(exp, status)
	n := len(exp.Variants)
	in := a.input(snap)
	var d stats.Decision
	if rd := recordedDecision(status.Status, transitions); rd != nil {
		d = *rd
	} else {
		d = stats.Decide(in, a.policy)
	}

	r := Report{
		Experiment:  exp.ID,
		Description: exp.Description,
		GeneratedAt: now.UTC(),
		Status:      status.Status,
		Ended:       isEnded(status.Status),
		EndedAt:     status.Ended,
		Step:        status.Step,
		Period:      status.Period,
		Started:     status.Started,
		Decision:    d,
		Transitions: []ReportTransition{},
		Hourly:      []ReportHour{},
	}
	if r.Period == 0 {
		r.Period = exp.PhaseOrOne()
	}
	r.Step = 0
	if exp.Rollout != nil {
		r.Steps = len(experiments.RolloutSteps(exp))
		if status.Step >= 0 {
			r.Step = experiments.StepNumber(exp.StepIndex(status.Step))
		}
	}
	p := a.policy
	r.Policy = ReportPolicy{
		Mode:       p.Mode,
		Primary:    p.Primary.Name,
		Better:     string(describe(exp, p.Primary.Name).Better),
		Method:     p.Method,
		Alpha:      orDefault(p.Alpha, stats.DefaultAlpha),
		MinUsers:   orDefault(p.MinUsers, stats.DefaultMinUsers),
		MaxUsers:   p.MaxUsers,
		SRMAlpha:   orDefault(p.SRMAlpha, stats.DefaultSRMAlpha),
		Guardrails: []ReportGuardrail{},
	}
	r.Policy.Confidence = 1 - r.Policy.Alpha
	if exp.Rollout != nil {
		r.Policy.AlphaSpent = exp.AlphaSpent(a.test)
	}
	for _, g := range p.Guardrails {
		r.Policy.Guardrails = append(r.Policy.Guardrails, ReportGuardrail{Metric: g.Name, Margin: g.Margin, Relative: g.Relative, Better: string(describe(exp, g.Name).Better)})
	}
	r.Policy.Judge = reportJudgeGuardrail(p)

	// Traffic and SRM.
	total := 0.0
	for _, u := range in.Users {
		total += u
	}
	splitSum := 0.0
	for _, w := range a.split {
		if w > 0 {
			splitSum += w
		}
	}
	r.SRM = ReportSRM{Expected: make([]float64, n), Observed: make([]float64, n), PValue: 1, ChiSquarePValue: 1, Alpha: r.Policy.SRMAlpha, Status: "ok"}
	for v := range n {
		rv := ReportVariant{Index: v, Name: exp.Variants[v].Name, Model: exp.Variants[v].Model, Users: in.Users[v]}
		if splitSum > 0 && a.split[v] > 0 {
			rv.ExpectedShare = a.split[v] / splitSum
		}
		if total > 0 {
			rv.ObservedShare = in.Users[v] / total
		}
		r.SRM.Expected[v], r.SRM.Observed[v] = rv.ExpectedShare, rv.ObservedShare
		r.Variants = append(r.Variants, rv)
	}
	if d.SRM != nil {
		r.SRM.PValue, r.SRM.ChiSquarePValue = d.SRM.AnytimePValue, d.SRM.PValue
	}
	switch {
	case d.Verdict == stats.HaltSRM:
		r.SRM.Status = "mismatch"
	case total == 0 || hasReason(d, stats.ReasonInvalidSplit):
		r.SRM.Status = "not_checked"
	}

	// The metrics, the ETA and the verdict read the cohort the decision
	// reads (rollout.cohort: with "new", the users first exposed in this
	// period); money and the hourly series stay over every active user.
	cohort, sums := experiments.AnalysisCohort(exp, snap)
	r.Cohort = a.cohortSection(&r, snap, cohort)
	r.Metrics = a.metrics(sums, d)
	days := observedDays(&r, hourly)
	r.Money = a.money(&r, snap, days)
	r.TimeToDecision = a.eta(&r, sums, in, days)
	r.Verdict = a.verdict(&r, in, sums)
	r.Judge = a.judgeSection(status.Status, transitions, snap)
	a.rampJudgeSection(r.Judge, d)
	if r.Judge != nil {
		r.Judge.Humans = a.judgeHumans(snap, r.Judge.Policy.Alpha)
	}
	if v, ok := judgeVerdict(&r, transitions); ok {
		r.Verdict = v // the judge gate, not Decide, rules the shadow stage
	}
	r.Verdict.Sentence = outcome(&r) + r.Verdict.Sentence

	for _, t := range transitions {
		if t.Decision != nil {
			t.Verdict = t.Decision.Verdict
			t.Decision = nil
		}
		t.Judge = nil
		r.Transitions = append(r.Transitions, t)
	}
	r.Hourly = a.hourly(hourly, r.GeneratedAt)
	r.Segments = a.segments(d)
	r.Glossary = glossary()
	return r
}

func orDefault(x, def float64) float64 {
	if x == 0 {
		return def
	}
	return x
}

func isEnded(status string) bool {
	switch status {
	case "promoted", "rolled_back", "stopped":
		return true
	}
	return false
}

func hasReason(d stats.Decision, code stats.ReasonCode) bool {
	for _, r := range d.Reasons {
		if r.Code == code {
			return true
		}
	}
	return false
}

// metricOrder lists the primary, the guardrails, then every other metric
// with data: built-ins in their documented order, then custom ones by name.
func (a *analysis) metricOrder(st map[experiments.VariantMetric]experiments.Summary) []string {
	seen := map[string]bool{experiments.MetricRequests: true}
	var out []string
	add := func(m string) {
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	add(a.policy.Primary.Name)
	for _, g := range a.policy.Guardrails {
		add(g.Name)
	}
	has := map[string]bool{}
	for vm := range st {
		if vm.Variant < len(a.exp.Variants) {
			has[vm.Metric] = true
		}
	}
	for _, m := range experiments.BuiltinMetrics() {
		if has[m.Name] {
			add(m.Name)
		}
	}
	var custom []string
	for m := range has {
		if !seen[m] {
			custom = append(custom, m)
		}
	}
	sort.Strings(custom)
	for _, m := range custom {
		add(m)
	}
	return out
}

func (a *analysis) metrics(st map[experiments.VariantMetric]experiments.Summary, d stats.Decision) []ReportMetric {
	var out []ReportMetric
	guards := map[string]stats.Guardrail{}
	for _, g := range a.policy.Guardrails {
		guards[g.Name] = g
	}
	for _, name := range a.metricOrder(st) {
		info := describe(a.exp, name)
		m := ReportMetric{Name: name, Label: info.Label, Unit: info.Unit, Role: RoleSecondary, Better: string(info.Better)}
		spec := experiments.MetricSpec(a.exp, name, false)
		g, isGuard := guards[name]
		switch {
		case name == a.policy.Primary.Name:
			m.Role, spec = RolePrimary, a.policy.Primary
		case isGuard:
			m.Role, spec = RoleGuardrail, g.Metric
			m.Margin, m.MarginRelative = fptr(g.Margin), g.Relative
		}
		ss := a.summaries(st, name)
		spec.Relative = false
		abs := a.lifts(ss, spec)
		spec.Relative = true
		rel := a.lifts(ss, spec)
		for v := range a.exp.Variants {
			s := ss[v]
			row := ReportRow{Variant: v, Name: a.exp.Variants[v].Name, Users: s.N, Mean: fptr(stats.Ratio.Estimate(s).Value), Status: RowControl}
			if v > 0 {
				row.Status = RowNoData
				// A bounded test's interval can be open on one side early
				// on (issue 11): no interval, no lift shown yet.
				if abs[v].Valid && abs[v].CILow != nil && abs[v].CIHigh != nil {
					row.AbsLift, row.AbsCILow, row.AbsCIHigh = abs[v].Lift, abs[v].CILow, abs[v].CIHigh
				}
				if rel[v].Valid && rel[v].CILow != nil && rel[v].CIHigh != nil {
					row.RelLift, row.RelCILow, row.RelCIHigh = rel[v].Lift, rel[v].CILow, rel[v].CIHigh
				}
				// The p-value of "no difference" is the same test on
				// either scale up to the delta method; report the one the
				// metric is judged on.
				judged := abs[v]
				if m.Role == RolePrimary || (m.Role == RoleGuardrail && g.Relative) {
					judged = rel[v]
				}
				if judged.Valid {
					row.PValue = judged.PValue
					row.VarianceRemoved, row.ExtraUsers = judged.VarianceRemoved, judged.ExtraUsers
					row.Status = ciStatus(judged, info.Better)
					if row.Status != RowInconclusive {
						row.Change = row.Status
					}
				}
				row.RelReadable = row.RelCILow != nil && row.RelCIHigh != nil && *row.RelCIHigh-*row.RelCILow <= 1
				if mr := decisionMetric(d, v, name, m.Role); mr != nil {
					switch {
					case m.Role == RoleGuardrail && mr.Valid:
						row.MarginPValue = mr.PValue
						switch {
						case mr.Harmful:
							row.Status = RowHarmful
						case mr.NonInferior:
							row.Status = RowNonInferior
						default:
							row.Status = RowInconclusive
						}
					case m.Role == RolePrimary && mr.Valid:
						switch {
						case mr.Better:
							row.Status = RowBetter
						case mr.Worse:
							row.Status = RowWorse
						case mr.NonInferior: // cost_saving judges quality by non-inferiority (issue 15)
							row.Status = RowNonInferior
						case mr.Harmful:
							row.Status = RowHarmful
						default:
							row.Status = RowInconclusive
						}
					}
				} else if m.Role != RoleSecondary && row.Status != RowNoData && !(m.Role == RolePrimary && a.policy.Mode == stats.RampMode) {
					// No decision yet (too few users, SRM): not judged. (At
					// a ramp step the primary is not judged at all; its
					// row reads like a secondary metric's.)
					row.Status = RowInconclusive
				}
			}
			m.Rows = append(m.Rows, row)
		}
		out = append(out, m)
	}
	return out
}

// ciStatus reads the CI of a lift: entirely above or below zero, or not.
func ciStatus(mr stats.MetricResult, better experiments.Direction) string {
	up := mr.CILow != nil && *mr.CILow > 0
	down := mr.CIHigh != nil && *mr.CIHigh < 0
	switch {
	case !up && !down:
		return RowInconclusive
	case better == experiments.NoDirection:
		if up {
			return RowHigher
		}
		return RowLower
	case (better == experiments.HigherIsBetter) == up:
		return RowBetter
	default:
		return RowWorse
	}
}

func decisionMetric(d stats.Decision, variant int, metric, role string) *stats.MetricResult {
	for i := range d.Variants {
		if d.Variants[i].Variant != variant {
			continue
		}
		for j := range d.Variants[i].Metrics {
			mr := &d.Variants[i].Metrics[j]
			if mr.Metric == metric && mr.Role == role {
				return mr
			}
		}
	}
	return nil
}

// hourly computes the cumulative series behind the charts: at the end of
// each hour, the users per variant, the controller's verdict on the data
// so far, and each candidate's relative lift on the primary metric with
// its anytime-valid CI (the confidence sequence), once that verdict got
// past the minimum users.
func (a *analysis) hourly(hours []experiments.HourSummaries, now time.Time) []ReportHour {
	out := make([]ReportHour, 0, len(hours))
	cum := map[experiments.VariantMetric]experiments.Summary{}
	n := len(a.exp.Variants)
	for _, h := range hours {
		for vm, s := range h.Stats {
			cum[vm] = cum[vm].Add(s)
		}
		in := a.input(experiments.Snapshot{Stats: cum})
		d := stats.Decide(in, a.policy)
		rh := ReportHour{Hour: h.Hour.UTC(), AsOf: hourAsOf(h.Hour, now), Users: in.Users, Verdict: d.Verdict, Lift: make([]ReportPoint, 0, n-1)}
		var lift []stats.MetricResult
		if d.Verdict != stats.HaltSRM && !hasReason(d, stats.ReasonMinUsers) && !hasReason(d, stats.ReasonNoVariants) {
			lift = a.lifts(a.summaries(cum, a.policy.Primary.Name), a.policy.Primary)
		}
		for v := 1; v < n; v++ {
			p := ReportPoint{Variant: v}
			if lift != nil && lift[v].Valid {
				p.Lift, p.CILow, p.CIHigh = lift[v].Lift, lift[v].CILow, lift[v].CIHigh
			}
			rh.Lift = append(rh.Lift, p)
		}
		out = append(out, rh)
	}
	return out
}

// fptr returns a pointer to x, or nil when x is NaN or infinite.
func fptr(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}
