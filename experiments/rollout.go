package experiments

import (
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"time"

	"github.com/abgate/abgate/stats"
)

// Rollout defaults (docs/rollout.md). The config loader may fill them in
// too; these helpers apply them to whatever is unset, so both agree.
var (
	// DefaultRampPercents are the default steps' candidate shares.
	DefaultRampPercents = []float64{1, 5, 25, 50}
	// DefaultGuardrails: the error rate may not rise by more than 0.5
	// percentage points, mean latency by more than 10%.
	DefaultGuardrails = []Guardrail{
		{Metric: MetricError, Margin: 0.005},
		{Metric: MetricLatencyMS, Margin: 0.10, Relative: true},
	}
)

const (
	// DefaultControllerInterval is Controller.Interval when unset.
	DefaultControllerInterval = 10 * time.Second
	// DefaultLeaseTTL is Controller.LeaseTTL when unset.
	DefaultLeaseTTL = 15 * time.Second
	// DefaultWebhookAttempts is Webhook.MaxAttempts when unset.
	DefaultWebhookAttempts = 5
)

// RolloutSteps returns the experiment's ramp steps with defaults applied
// and every percent capped at 100/candidates; steps that collapse onto the
// previous one after capping are dropped. Nil without a Rollout.
func RolloutSteps(e *Experiment) []RampStep {
	if e.Rollout == nil {
		return nil
	}
	steps := e.Rollout.Steps
	if len(steps) == 0 {
		for _, p := range DefaultRampPercents {
			steps = append(steps, RampStep{Percent: p})
		}
	}
	capPct := 100.0
	if n := len(e.Variants) - 1; n > 0 {
		capPct = float64(MaxShare(n)) * 100 / Buckets
	}
	out := make([]RampStep, 0, len(steps))
	for _, s := range steps {
		s.Percent = math.Min(s.Percent, capPct)
		if len(out) > 0 && out[len(out)-1].Percent >= s.Percent {
			continue
		}
		out = append(out, s)
	}
	return out
}

// MetricSpec is how the policy analyses metric name, on the relative or
// the absolute scale: its estimator, direction and bounds from the
// registry (LookupMetric). Reports analyse the metrics they show with it
// too.
//
// A metric whose per-observation values have known finite bounds (a 0/1
// rate, a rating scale, a capped latency, tokens or cost, a custom
// metric's min and max) gets them as stats.Metric.Bounds: each user's own
// mean lies in the same range, and Decide then uses the bounded test,
// valid at every sample size (docs/statistics.md §2.9, issue 11). A
// relative comparison needs a range that starts at or above 0.
func MetricSpec(e *Experiment, name string, relative bool) stats.Metric {
	info, ok := LookupMetric(e, name)
	if !ok {
		info.Estimator = stats.Ratio // validation refuses unknown metrics
	}
	m := stats.Metric{Name: name, Kind: info.Estimator, Better: info.Better.statsDirection(), Relative: relative}
	if ok && !math.IsInf(info.Min, 0) && !math.IsInf(info.Max, 0) && info.Max > info.Min && (!relative || info.Min >= 0) {
		m.Bounds = &stats.Bounds{Lo: info.Min, Hi: info.Max}
	}
	// The stores keep CUPED's covariate sums, for every metric whose
	// registry entry names a covariate source, when the experiment asks
	// (Batch.Covariates): Mean and Ratio metrics alike. stats.Decide
	// reads them for the kinds it can adjust and ignores them otherwise.
	m.CUPED = ok && e != nil && e.CUPED && info.Covariate != CovariateNone
	return m
}

// DefaultStepDays is Rollout.StepDays when unset: the days a ramp step is
// planned to run when tuning the sequential test to the traffic.
const DefaultStepDays = 7

// plannedUsers is the users per arm the policy's sequential test is
// tuned to at step (stats.PlannedUsers): the expected daily users over
// the step's planned days at the step's candidate share, or, at the last
// step and without steps, over the same days at the allocation's share.
// Zero when the traffic is not configured.
func (e *Experiment) plannedUsers(step int) float64 {
	r := e.Rollout
	if r == nil || !(r.ExpectedDailyUsers > 0) {
		return 0
	}
	days := r.StepDays
	if !(days > 0) {
		days = DefaultStepDays
	}
	share := 0.5
	if steps := RolloutSteps(e); step >= 0 && step < len(steps) {
		share = steps[step].Percent / 100
	}
	if k := len(e.Variants) - 1; k > 1 {
		// The pair of one candidate and the control: the control keeps
		// what the k candidates leave.
		share = share / (share + max(1-float64(k)*share, 0))
	}
	return stats.PlannedUsers(r.ExpectedDailyUsers, share, days)
}

// SegmentValueCount is the number of segment values the experiment
// declares, each dimension's values plus its "other": the divisor of the
// segment harm tests' level (stats.Policy.SegmentValues), fixed before
// any value is seen.
func (e *Experiment) SegmentValueCount() int {
	n := 0
	for _, s := range e.Segments {
		n += len(s.Values) + 1
	}
	return n
}

// StepIndex is the ramp step a state's Step is judged at: Step clamped to
// the rollout's steps, or -1 without a rollout (Policy(-1) is the full
// decision). The controller and the reports both use it.
func (e *Experiment) StepIndex(step int) int {
	n := len(RolloutSteps(e))
	if n == 0 {
		return -1
	}
	return min(max(step, 0), n-1)
}

// Policy is the experiment's stats policy: the one the rollout
// controller obeys and the reports show, so the two never disagree. The
// primary metric is judged on its relative lift (the "+4.1%" people
// read), at the rollout's alpha, method and user bounds, with its
// guardrails (DefaultGuardrails when it declares none). At a ramp step
// before the last only the guardrails decide (stats.RampMode); a step < 0,
// the last step, or an experiment without a rollout gives the full
// decision.
func (e *Experiment) Policy(step int) stats.Policy {
	p := stats.Policy{
		Mode:    stats.FullMode,
		Primary: MetricSpec(e, orStr(e.Primary, DefaultPrimaryMetric), true),
		Method:  stats.ConfidenceSequenceMethod,
		// Every call the controller makes is one-sided ("harm < margin",
		// "better than the base"); bounded metrics get the
		// nonasymptotic test (MetricSpec). Issue 11.
		OneSided:      true,
		SegmentValues: e.SegmentValueCount(),
	}
	gs := DefaultGuardrails
	if r := e.Rollout; r != nil {
		p.Alpha, p.MinUsers, p.MaxUsers = r.Alpha, float64(r.MinUsers), float64(r.MaxUsers)
		p.Tau, p.MinEvents = r.Tau, r.MinEvents
		switch u := e.plannedUsers(step); {
		case r.NStar > 0:
			p.NStar = r.NStar
		case u > 0:
			p.NStar = stats.NStarFor(u)
		}
		if r.Method != "" {
			p.Method = stats.Method(r.Method)
		}
		if len(r.Guardrails) > 0 {
			gs = r.Guardrails
		}
		if step >= 0 && step < len(RolloutSteps(e))-1 {
			p.Mode = stats.RampMode
		}
		if r.Rule != "" {
			p.Rule, p.QualityMargin, p.CostMargin = stats.Rule(r.Rule), r.QualityMargin, r.CostMargin
			p.CostMetric = MetricSpec(e, e.RuleCostMetric(), true)
		}
	}
	for _, g := range gs {
		p.Guardrails = append(p.Guardrails, stats.Guardrail{Metric: MetricSpec(e, g.Metric, g.Relative), Margin: g.Margin})
	}
	if p.Judge = e.RampJudge(); p.Judge != nil {
		// Shown with the policy; Decide runs the judge at the same level,
		// GuardrailAlpha (= Alpha here) over the candidates. PolicyAt
		// sets the step's test's.
		p.Judge.Policy.Alpha = e.RolloutAlpha() / float64(max(len(e.Variants)-1, 1))
	}
	return p
}

// RolloutAlpha is the rollout's α: rollout.alpha, else stats.DefaultAlpha.
func (e *Experiment) RolloutAlpha() float64 {
	if e.Rollout != nil && e.Rollout.Alpha > 0 {
		return e.Rollout.Alpha
	}
	return stats.DefaultAlpha
}

// TestAlpha is the level of a step's test-th fresh test (State.TestIndex):
// stats.RestartAlpha(RolloutAlpha, test), so the step's restarts, set_step
// and reshuffles together spend at most α (issue 11). A test < 1 counts
// as 1.
func (e *Experiment) TestAlpha(test int) float64 {
	return stats.RestartAlpha(e.RolloutAlpha(), max(test, 1))
}

// AlphaSpent is the α the step's tests 1..test have spent
// (stats.AlphaSpent): at most RolloutAlpha.
func (e *Experiment) AlphaSpent(test int) float64 {
	return stats.AlphaSpent(e.RolloutAlpha(), max(test, 1))
}

// PolicyAt is the policy the controller decides with in a state at step
// (StepIndex), running the step's test-th test: Policy(step) at
// TestAlpha(test), each bounded metric centred (and, with CUPED, given
// its θ) by the prior's MetricPriors, fixed by the period the controller
// closed last, and, with rollout.carry_over, each guardrail's log
// e-values carried from earlier periods (prior.LogE). Without a rollout
// it is Policy(step). Reports call it with the same arguments (PriorOf of
// the same history), so they show what the controller does.
func (e *Experiment) PolicyAt(step, test int, prior Prior) stats.Policy {
	p := e.Policy(step)
	if e.Rollout == nil {
		return p
	}
	p.Alpha = e.TestAlpha(test)
	applyPrior(&p.Primary, prior.Metrics)
	applyPrior(&p.CostMetric, prior.Metrics)
	for i := range p.Guardrails {
		applyPrior(&p.Guardrails[i].Metric, prior.Metrics)
	}
	if p.Judge != nil {
		p.Judge.Policy.Alpha = p.Alpha / float64(max(len(e.Variants)-1, 1))
	}
	if e.Rollout.CarryOver {
		for i := range p.Guardrails {
			if l := prior.LogE[p.Guardrails[i].Name]; len(l) > 0 {
				p.Guardrails[i].PriorLogE = slices.Clone(l)
			}
		}
	}
	return p
}

// CarriedLogE sums, per guardrail metric and candidate (index variant−1),
// the log e-values of the periods the controller closed by advancing into
// the current one, in an unbroken chain: walking the history back from
// the newest transition, each advance adds its decision's exact
// (bounded) guardrail e-values, pause, resume and restore are passed
// over, and anything else (start, set_step, reshuffle, shadow pass, an
// ending) stops the walk, since the periods before it test another
// question or another split of users (docs/statistics.md §2.12).
func CarriedLogE(history []Transition) map[string][]float64 {
	out := map[string][]float64{}
	for i := len(history) - 1; i >= 0; i-- {
		t := history[i]
		switch t.Action {
		case ActionPause, ActionResume, ActionRestore:
			continue
		case ActionAdvance:
		default:
			return out
		}
		if t.Decision == nil {
			continue
		}
		for _, v := range t.Decision.Variants {
			if v.Variant < 1 {
				continue
			}
			for _, m := range v.Metrics {
				if m.Role != "guardrail" || m.Method != "bounded" || m.LogE == nil {
					continue
				}
				l := out[m.Metric]
				for len(l) < v.Variant {
					l = append(l, 0)
				}
				l[v.Variant-1] = stats.CombineLogE(l[v.Variant-1], *m.LogE)
				out[m.Metric] = l
			}
		}
	}
	return out
}

func orStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Rollout cohorts (Rollout.Cohort).
const (
	// CohortNew analyses each period on the users first exposed in it.
	CohortNew = "new"
	// CohortAll analyses each period on every user active in it.
	CohortAll = "all"
)

// CohortOrDefault is rollout.cohort, CohortNew when unset; CohortAll
// without a rollout (nothing ramps, and no first-exposure record is
// asked for).
func (e *Experiment) CohortOrDefault() string {
	if e == nil || e.Rollout == nil {
		return CohortAll
	}
	if e.Rollout.Cohort == "" {
		return CohortNew
	}
	return e.Rollout.Cohort
}

// Cohort is the users a period's decision is analysed on.
type Cohort struct {
	// Configured is the experiment's cohort (CohortOrDefault).
	Configured string
	// Fresh: the analysis reads Snapshot.Fresh, the users first exposed
	// in the period.
	Fresh bool
	// Unavailable: cohort "new" is configured, but the store has kept no
	// first-exposure sums for the period (no batch of it asked for them:
	// data recorded before the setting, or a store that does not keep
	// them), so the analysis falls back to every active user. Reports
	// and the controller's log say so.
	Unavailable bool
}

// AnalysisCohort is the cohort e's decision on snap reads, and its
// statistics: snap.Fresh with cohort "new" whenever the store kept it
// (in the first period of a salt phase it equals snap.Stats), else
// snap.Stats.
func AnalysisCohort(e *Experiment, snap Snapshot) (Cohort, map[VariantMetric]Summary) {
	c := Cohort{Configured: e.CohortOrDefault()}
	if c.Configured != CohortNew {
		return c, snap.Stats
	}
	if len(snap.Fresh) == 0 {
		c.Unavailable = len(snap.Stats) > 0
		return c, snap.Stats
	}
	c.Fresh = true
	return c, snap.Fresh
}

// CohortUsers is, per variant, the users the analysis counts (the
// cohort's) and the users active in the period it leaves out (returning
// from an earlier period of the salt phase; zero unless c.Fresh).
func CohortUsers(e *Experiment, snap Snapshot, c Cohort) (counted, returning []float64) {
	k := len(e.Variants)
	counted, returning = make([]float64, k), make([]float64, k)
	for v := range k {
		vm := VariantMetric{v, MetricRequests}
		all := snap.Stats[vm].N
		counted[v] = all
		if c.Fresh {
			counted[v] = snap.Fresh[vm].N
			returning[v] = max(all-counted[v], 0)
		}
	}
	return counted, returning
}

// RolloutInput turns a period's snapshot into the stats input for policy
// p: users per variant, the expected split of the allocation a and one
// Summary per variant for every metric the policy reads, all over the
// experiment's cohort (AnalysisCohort): with "new", the users first
// exposed in the period. Their split is the allocation's, since who is
// first exposed at a step depends on the hash and the step's share only,
// so the SRM check stays a check of the randomisation even when the arms
// keep their users differently.
func RolloutInput(e *Experiment, snap Snapshot, a *Allocation, p stats.Policy) stats.Input {
	k := len(e.Variants)
	_, sums := AnalysisCohort(e, snap)
	in := stats.Input{Users: make([]float64, k), ExpectedSplit: a.Split(k), Metrics: map[string][]stats.Summary{}}
	for v := range k {
		in.Users[v] = sums[VariantMetric{v, MetricRequests}].N
	}
	add := func(name string) {
		if _, ok := in.Metrics[name]; ok {
			return
		}
		ss := make([]stats.Summary, k)
		for v := range k {
			ss[v] = sums[VariantMetric{v, name}]
		}
		in.Metrics[name] = ss
	}
	if p.Mode != stats.RampMode {
		add(p.Primary.Name)
		if p.Rule != stats.PrimaryRule {
			add(p.CostMetric.Name)
		}
	}
	for _, g := range p.Guardrails {
		add(g.Name)
	}
	if p.Judge != nil {
		in.Judge = make([]stats.JudgeInput, k)
		for v := 1; v < k; v++ {
			// The live judge's paired preference stays over every
			// judged request: both models answer the same request, so
			// who comes back changes which requests are judged, not
			// which arm answers them.
			in.Judge[v] = JudgeInput(snap, v)
		}
	}
	// Per-segment statistics of the same metrics, so Decide refuses to
	// advance or promote a candidate that harms a segment. They stay over
	// every active user whatever the cohort: the stores keep no
	// newly-exposed copy of the segment statistics (it would double the
	// apply script's segment work), so a later step's segment harm call
	// still reads returning users.
	names := slices.Sorted(maps.Keys(in.Metrics))
	in.Segments = SegmentInputs(e, snap, names, k)
	return in
}

// validateRollout checks an experiment's rollout section; path is the
// experiment's YAML path ("experiments[0]"). The lead hooks it into
// Config.validate.
func validateRollout(e *Experiment, path string) []FieldError {
	r := e.Rollout
	if r == nil {
		return nil
	}
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: path + ".rollout" + field, Reason: fmt.Sprintf(format, args...)})
	}
	n := len(e.Variants) - 1
	if n < 1 {
		add("", "needs at least one candidate variant")
	}
	capPct := 100.0
	if n > 0 {
		capPct = float64(MaxShare(n)) * 100 / Buckets
	}
	prev := 0.0
	for i, s := range r.Steps {
		p := fmt.Sprintf(".steps[%d]", i)
		switch {
		case !(s.Percent >= 0.01) || s.Percent > capPct:
			add(p+".percent", "must be in 0.01..%g (100 / candidates)", capPct)
		case s.Percent <= prev:
			add(p+".percent", "must be larger than the previous step's")
		}
		prev = s.Percent
		if s.MinDuration < 0 {
			add(p+".min_duration", "must not be negative")
		}
		if s.MinUsers < 0 {
			add(p+".min_users", "must not be negative")
		}
	}
	for i, g := range r.Guardrails {
		p := fmt.Sprintf(".guardrails[%d]", i)
		switch {
		case !isMetric(e, g.Metric):
			add(p+".metric", "not a built-in or declared metric")
		case !judgeable(e, g.Metric):
			add(p+".metric", "%s", reasonNoDirection)
		}
		if !(g.Margin >= 0) || math.IsInf(g.Margin, 0) {
			add(p+".margin", "must be a finite number >= 0")
		}
	}
	if r.Alpha != 0 && !(r.Alpha > 0 && r.Alpha < 1) {
		add(".alpha", "must be in (0, 1)")
	}
	switch stats.Method(r.Method) {
	case "", stats.ConfidenceSequenceMethod, stats.MSPRTMethod:
	default:
		add(".method", "must be %q or %q", stats.ConfidenceSequenceMethod, stats.MSPRTMethod)
	}
	if r.MinUsers < 0 {
		add(".min_users", "must not be negative")
	}
	switch r.Cohort {
	case "", CohortNew, CohortAll:
	default:
		add(".cohort", "must be %q (the users first exposed in each step) or %q (every active user)", CohortNew, CohortAll)
	}
	for _, f := range []struct {
		field string
		v     float64
	}{{".expected_daily_users", r.ExpectedDailyUsers}, {".step_days", r.StepDays}, {".n_star", r.NStar}, {".tau", r.Tau}, {".min_events", r.MinEvents}} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			add(f.field, "must be a finite number >= 0 (0: default)")
		}
	}
	errs = append(errs, validateRule(e, path)...)
	if r.MaxUsers < 0 || (r.MaxUsers > 0 && r.MaxUsers < r.MinUsers) {
		add(".max_users", "must be 0 (unbounded) or at least min_users")
	}
	if e.Primary != "" && !isMetric(e, e.Primary) {
		errs = append(errs, FieldError{Field: path + ".primary", Reason: "not a built-in or declared metric"})
	}
	return errs
}

// isMetric: name is a built-in or declared metric (not a segment's
// internal name).
func isMetric(e *Experiment, name string) bool {
	info, ok := LookupMetric(e, name)
	return ok && info.Name == name
}

// judgeable: the policy can judge metric name, which needs a direction.
func judgeable(e *Experiment, name string) bool {
	info, _ := LookupMetric(e, name)
	return info.Better != NoDirection
}

const reasonNoDirection = "has no better direction (higher or lower), so it can't be judged"

// validateController checks the controller section.
func validateController(c Controller, path string) []FieldError {
	var errs []FieldError
	if c.Interval < 0 {
		errs = append(errs, FieldError{path + ".interval", "must not be negative"})
	}
	if c.LeaseTTL < 0 {
		errs = append(errs, FieldError{path + ".lease_ttl", "must not be negative"})
	}
	if ttl := time.Duration(c.LeaseTTL); ttl > 0 && ttl < time.Second {
		errs = append(errs, FieldError{path + ".lease_ttl", "must be at least 1s"})
	}
	return errs
}

// validateWebhooks checks the webhooks section ("webhooks").
func validateWebhooks(ws []Webhook, path string) []FieldError {
	var errs []FieldError
	for i, w := range ws {
		p := fmt.Sprintf("%s[%d]", path, i)
		u, err := url.Parse(w.URL)
		if w.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, FieldError{p + ".url", "must be an absolute http(s) URL"})
		}
		if w.Secret == "" {
			errs = append(errs, FieldError{p + ".secret", "required (it signs every delivery)"})
		}
		if w.MaxAttempts < 0 || w.MaxAttempts > 20 {
			errs = append(errs, FieldError{p + ".max_attempts", "must be in 0..20 (0: default 5)"})
		}
	}
	return errs
}
