package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// PlanRequest is what a PM knows before an experiment: the metric's
// current level, the smallest change worth detecting, and the traffic.
// Zero fields take the documented defaults (see PlanDefaults).
type PlanRequest struct {
	// Baseline is the control's mean: a rate in (0,1) (thumbs-up rate),
	// or any positive mean with SD set.
	Baseline float64 `json:"baseline"`
	// SD is the per-user standard deviation of a metric that is not a
	// rate; 0 means Baseline is a rate.
	SD float64 `json:"sd,omitempty"`
	// MDE is the minimum detectable effect, > 0: a fraction of Baseline
	// when Relative (0.05 = 5%), else in metric units.
	MDE      float64 `json:"mde"`
	Relative bool    `json:"relative"`
	Power    float64 `json:"power"`
	Alpha    float64 `json:"alpha"` // two-sided, split over the candidates
	// Method: confidence-sequence (default), msprt or group-sequential.
	Method stats.Method `json:"method"`
	// Looks is the number of planned analyses of a group-sequential
	// design (O'Brien-Fleming spending, equally spaced); default 5.
	Looks int `json:"looks,omitempty"`
	// Variants counts the base and the candidates (default 2).
	Variants int `json:"variants"`
	// DailyUsers is the number of new users a day who reach the model
	// alias; 0 skips the duration.
	DailyUsers float64 `json:"daily_users,omitempty"`
	// Coverage is the percent of those users in the experiment (default 100).
	Coverage float64 `json:"coverage"`
	// Share is each candidate's percent of covered users; 0 means an
	// equal split. The base gets the rest.
	Share float64 `json:"share"`
	// Experiment, when set, plans for that experiment's configured
	// design (ForExperiment): the parameters not given are taken from its
	// current step and policy, and the traffic from the users observed in
	// its current period.
	Experiment string `json:"experiment,omitempty"`
	// NStar is the confidence sequence's tuning (stats.Policy.NStar) of
	// the experiment's policy; 0 takes the default.
	NStar float64 `json:"n_star,omitempty"`
}

// PlanResult answers a PlanRequest. Users are per variant; the sequential
// figure is the most a sequential test needs (it usually stops earlier).
type PlanResult struct {
	Request         PlanRequest `json:"request"` // with defaults filled
	AbsoluteEffect  float64     `json:"absolute_effect"`
	Target          float64     `json:"target"` // baseline + effect
	UsersPerVariant PlanUsers   `json:"users_per_variant"`
	TotalUsers      PlanUsers   `json:"total_users"`
	Inflation       float64     `json:"inflation"` // sequential / fixed
	// DailyUsersSmallest is the daily users of the smallest variant.
	DailyUsersSmallest float64    `json:"daily_users_smallest_variant,omitempty"`
	Days               *PlanUsers `json:"days,omitempty"`
	// Traffic says where DailyUsers came from: "given", "observed" (the
	// experiment's current period) or "configured"
	// (rollout.expected_daily_users); omitted without traffic.
	Traffic string `json:"traffic,omitempty"`
	Summary string `json:"summary"`
}

// PlanUsers holds a figure for the fixed and the sequential design.
type PlanUsers struct {
	Fixed      float64 `json:"fixed"`
	Sequential float64 `json:"sequential"`
}

// ParamError is an invalid planning parameter.
type ParamError struct {
	Param  string
	Reason string
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Reason }

func badParam(p, format string, args ...any) *ParamError {
	return &ParamError{Param: p, Reason: fmt.Sprintf(format, args...)}
}

// PlanDefaults fills the zero fields of req.
func PlanDefaults(req PlanRequest) PlanRequest {
	if req.Power == 0 {
		req.Power = 0.8
	}
	if req.Alpha == 0 {
		req.Alpha = stats.DefaultAlpha
	}
	if req.Method == "" {
		req.Method = stats.ConfidenceSequenceMethod
	}
	if req.Variants == 0 {
		req.Variants = 2
	}
	if req.Coverage == 0 {
		req.Coverage = 100
	}
	if req.Share == 0 {
		req.Share = 100 / float64(req.Variants)
	}
	if req.Method == stats.GroupSequentialMethod && req.Looks == 0 {
		req.Looks = 5
	}
	return req
}

// minStdEffect is the smallest effect, in the metric's per-user standard
// deviations, a plan is computed for.
const minStdEffect = 1e-6

func finiteNum(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// validate checks req (after PlanDefaults), parameter by parameter.
func (req PlanRequest) validate() *ParamError {
	switch {
	case !finiteNum(req.Baseline) || req.Baseline <= 0:
		return badParam("baseline", "must be a number greater than 0 (the control's current rate or mean)")
	case !finiteNum(req.SD) || req.SD < 0:
		return badParam("sd", "must be a number, 0 or more")
	case req.SD == 0 && req.Baseline >= 1:
		return badParam("baseline", "a rate must be between 0 and 1 (0.10 for 10%%); for another metric give its per-user standard deviation as sd")
	case !finiteNum(req.MDE) || req.MDE <= 0:
		return badParam("mde", "must be a number greater than 0 (the smallest change worth detecting, e.g. 0.05)")
	case !finiteNum(req.Power) || req.Power <= 0 || req.Power >= 1:
		return badParam("power", "must be between 0 and 1 (e.g. 0.8)")
	case !finiteNum(req.Alpha) || req.Alpha <= 0 || req.Alpha > 0.5:
		return badParam("alpha", "must be greater than 0 and at most 0.5 (e.g. 0.05)")
	case req.Variants < 2 || req.Variants > 255:
		return badParam("variants", "must be an integer from 2 to 255 (the base and the candidates)")
	case !finiteNum(req.DailyUsers) || req.DailyUsers < 0:
		return badParam("daily_users", "must be a number greater than 0")
	case !finiteNum(req.Coverage) || req.Coverage <= 0 || req.Coverage > 100:
		return badParam("coverage", "must be a percentage greater than 0 and at most 100")
	}
	k := float64(req.Variants - 1)
	if !finiteNum(req.Share) || req.Share <= 0 || req.Share > 100/k+1e-9 {
		return badParam("share", "must be a percentage greater than 0 and at most %s (100 / %d candidates)", strconv.FormatFloat(100/k, 'f', -1, 64), req.Variants-1)
	}
	switch req.Method {
	case stats.ConfidenceSequenceMethod, stats.MSPRTMethod:
	case stats.GroupSequentialMethod:
		if req.Looks < 1 || req.Looks > 20 {
			return badParam("looks", "must be an integer from 1 to 20")
		}
	default:
		return badParam("method", "must be confidence-sequence, msprt or group-sequential")
	}
	// The standardised effect sets the users (about 16/d² per arm); below
	// minStdEffect the plan would need more users than there are people
	// (and the sequential tuning overflows: `abgate plan --mde 1e-300`
	// panicked in stats.ConfSeqRho2).
	sd := req.SD
	if sd == 0 {
		sd = math.Sqrt(req.Baseline * (1 - req.Baseline))
	}
	abs := req.MDE
	if req.Relative {
		abs = req.MDE * req.Baseline
	}
	if d := abs / sd; !(d >= minStdEffect) {
		return badParam("mde", "is too small to plan for: the effect must be at least %g standard deviations of the metric (that already needs about 10^13 users per variant)", minStdEffect)
	}
	if req.SD == 0 {
		target := req.Baseline + req.MDE
		if req.Relative {
			target = req.Baseline * (1 + req.MDE)
		}
		if target >= 1 {
			return badParam("mde", "the baseline plus the effect must stay below 1 for a rate (got %s)", strconv.FormatFloat(target, 'g', 4, 64))
		}
	}
	return nil
}

// MakePlan computes the users per variant, and with DailyUsers the days,
// needed to detect the effect with the given power. It is what
// GET /api/v1/plan and `abgate plan` call. Errors are *ParamError.
func MakePlan(req PlanRequest) (PlanResult, error) {
	req = PlanDefaults(req)
	if e := req.validate(); e != nil {
		return PlanResult{}, e
	}
	k := req.Variants - 1
	var design *stats.Design
	if req.Method == stats.GroupSequentialMethod {
		fr := make([]float64, req.Looks)
		for i := range fr {
			fr[i] = float64(i+1) / float64(req.Looks)
		}
		design = stats.NewDesign(req.Alpha/float64(k), stats.OBrienFleming, fr)
	}
	// Every variant needs the planned users; the base gets what the
	// candidates leave, and the smallest variant sets the pace.
	baseShare := 100 - float64(k)*req.Share
	smallest := math.Min(req.Share, baseShare)
	if baseShare <= 0 {
		smallest = req.Share // the base must keep some traffic; validate caps share at 100/k
	}
	// Days from stats.PlanSchedule: the covered users a day, with the
	// smallest variant at its share (DaysToDecision paces by the smaller
	// side of the pair).
	sch := stats.PlanSchedule(stats.PlanInput{
		BaselineMean: req.Baseline, BaselineSD: req.SD, Lift: req.MDE, Relative: req.Relative,
		Alpha: req.Alpha, Power: req.Power, Candidates: k,
	}, req.Method, 0, req.NStar, design, req.DailyUsers*req.Coverage/100, smallest/100)
	pl := sch.Plan
	if !(pl.Fixed > 0) || !(pl.Sequential > 0) {
		return PlanResult{}, badParam("mde", "cannot plan for this effect: it is too small for the baseline")
	}
	res := PlanResult{
		Request:         req,
		AbsoluteEffect:  req.MDE,
		UsersPerVariant: PlanUsers{Fixed: pl.Fixed, Sequential: pl.Sequential},
		Inflation:       pl.Inflation,
	}
	if req.Relative {
		res.AbsoluteEffect = req.MDE * req.Baseline
	}
	res.AbsoluteEffect = roundSig(res.AbsoluteEffect)
	res.Target = roundSig(req.Baseline + res.AbsoluteEffect)
	res.Inflation = roundSig(res.Inflation)
	totalShare := (float64(k)*req.Share + math.Max(baseShare, 0)) / 100
	users := func(n float64) float64 {
		// The smallest variant sets the pace; total users follow from the split.
		return math.Ceil(n * totalShare / (smallest / 100))
	}
	res.TotalUsers = PlanUsers{Fixed: users(pl.Fixed), Sequential: users(pl.Sequential)}
	if req.DailyUsers > 0 && smallest > 0 {
		perDay := req.DailyUsers * req.Coverage / 100 * smallest / 100
		res.DailyUsersSmallest = perDay
		days := func(d float64) float64 { return math.Ceil(d*10) / 10 }
		res.Days = &PlanUsers{Fixed: days(sch.DaysFixed), Sequential: days(sch.DaysSequential)}
		res.Traffic = "given"
	}
	res.Summary = planSummary(res)
	return res, nil
}

func planSummary(r PlanResult) string {
	q := r.Request
	effect := fmtPct(q.MDE) + " relative change"
	if !q.Relative {
		effect = "change of " + strconv.FormatFloat(q.MDE, 'g', 4, 64)
	}
	s := fmt.Sprintf("To detect a %s from a baseline of %s with %s power at alpha %g, each variant needs about %s users with the %s test (at most; it usually stops earlier), or %s with a single analysis at a fixed end",
		effect, strconv.FormatFloat(q.Baseline, 'g', 4, 64), fmtPct(q.Power), q.Alpha,
		fmtCount(r.UsersPerVariant.Sequential), q.Method, fmtCount(r.UsersPerVariant.Fixed))
	if r.Days != nil {
		s += fmt.Sprintf("; at %s new users a day that is at most %s days (%s days for the fixed design)",
			fmtCount(q.DailyUsers), strconv.FormatFloat(r.Days.Sequential, 'f', -1, 64), strconv.FormatFloat(r.Days.Fixed, 'f', -1, 64))
	}
	return s + "."
}

// planParams are the query parameters GET /api/v1/plan accepts.
var planParams = map[string]bool{
	"baseline": true, "sd": true, "mde": true, "relative": true, "power": true, "alpha": true,
	"method": true, "looks": true, "variants": true, "daily_users": true, "coverage": true, "share": true,
	"experiment": true,
}

// ForExperiment fills the parameters req leaves unset from experiment
// e's configured design in state st, as the controller tests it now
// (Experiment.PolicyAt at the current step and test): alpha (the current
// test's level), method, the variants, each candidate's share at the
// step, the coverage and the policy's N*. Without given daily_users the
// traffic is the observed one (users of the current period per day, when
// over 0: they are covered users already), else
// rollout.expected_daily_users. The answer's Traffic says which.
func ForExperiment(req PlanRequest, e *experiments.Experiment, st ReportStatus, observedDaily float64) (PlanRequest, string) {
	req.Experiment = e.ID
	step := -1
	if st.Step >= 0 {
		step = e.StepIndex(st.Step)
	}
	p := e.PolicyAt(step, st.Test, experiments.Prior{})
	if req.Alpha == 0 && p.Alpha > 0 {
		req.Alpha = p.Alpha
	}
	if req.Method == "" {
		req.Method = p.Method
	}
	if req.Variants == 0 {
		req.Variants = len(e.Variants)
	}
	if steps := experiments.RolloutSteps(e); req.Share == 0 && step >= 0 && step < len(steps) {
		req.Share = steps[step].Percent
	}
	req.NStar = p.NStar
	traffic := ""
	switch {
	case req.DailyUsers > 0:
		traffic = "given"
	case observedDaily > 0:
		req.DailyUsers, req.Coverage, traffic = observedDaily, 100, "observed"
	case e.Rollout != nil && e.Rollout.ExpectedDailyUsers > 0:
		req.DailyUsers, traffic = e.Rollout.ExpectedDailyUsers, "configured"
	}
	if req.Coverage == 0 && e.Coverage != nil {
		req.Coverage = *e.Coverage
	}
	return req, traffic
}

// ParsePlanQuery reads a PlanRequest from URL query parameters named like
// its JSON fields. Errors are *ParamError.
func ParsePlanQuery(q url.Values) (PlanRequest, error) {
	var req PlanRequest
	for name := range q {
		if !planParams[name] {
			return req, badParam(name, "unknown parameter")
		}
	}
	num := func(name string, dst *float64, required bool) *ParamError {
		s := q.Get(name)
		if s == "" {
			if required {
				return badParam(name, "required")
			}
			return nil
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || !finiteNum(v) {
			return badParam(name, "must be a number, got %q", s)
		}
		*dst = v
		return nil
	}
	integer := func(name string, dst *int) *ParamError {
		if s := q.Get(name); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil {
				return badParam(name, "must be an integer, got %q", s)
			}
			*dst = v
		}
		return nil
	}
	for _, e := range []*ParamError{
		num("baseline", &req.Baseline, true),
		num("mde", &req.MDE, true),
		num("sd", &req.SD, false),
		num("power", &req.Power, false),
		num("alpha", &req.Alpha, false),
		num("daily_users", &req.DailyUsers, false),
		num("coverage", &req.Coverage, false),
		num("share", &req.Share, false),
		integer("variants", &req.Variants),
		integer("looks", &req.Looks),
	} {
		if e != nil {
			return req, e
		}
	}
	req.Relative = true
	if s := q.Get("relative"); s != "" {
		v, err := strconv.ParseBool(s)
		if err != nil {
			return req, badParam("relative", "must be true or false, got %q", s)
		}
		req.Relative = v
	}
	req.Method = stats.Method(q.Get("method"))
	req.Experiment = q.Get("experiment")
	// Explicit zeros are errors, not "use the default".
	for _, z := range []struct {
		name string
		zero bool
	}{
		{"power", req.Power == 0}, {"alpha", req.Alpha == 0}, {"daily_users", req.DailyUsers == 0},
		{"coverage", req.Coverage == 0}, {"share", req.Share == 0}, {"variants", req.Variants == 0}, {"looks", req.Looks == 0},
	} {
		if z.zero && q.Get(z.name) != "" {
			return req, badParam(z.name, "must be greater than 0")
		}
	}
	return req, nil
}

func (h *Reports) plan(c *gin.Context) {
	req, err := ParsePlanQuery(c.Request.URL.Query())
	traffic := ""
	if err == nil && req.Experiment != "" {
		exp, ok := h.src.Experiment(req.Experiment)
		if !ok || exp == nil {
			abort(c, newError(http.StatusNotFound, "experiment_not_found", "experiment", fmt.Sprintf("experiment %q not found", req.Experiment)))
			return
		}
		st, daily, oerr := h.observedTraffic(c.Request.Context(), exp)
		if oerr != nil {
			abort(c, newError(http.StatusInternalServerError, "plan_failed", "", oerr.Error()))
			return
		}
		req, traffic = ForExperiment(req, exp, st, daily)
	}
	if err == nil {
		var res PlanResult
		if res, err = MakePlan(req); err == nil {
			if res.Days != nil && traffic != "" {
				res.Traffic = traffic
			}
			c.JSON(http.StatusOK, res)
			return
		}
	}
	var pe *ParamError
	if !errors.As(err, &pe) {
		abort(c, newError(http.StatusInternalServerError, "plan_failed", "", err.Error()))
		return
	}
	abort(c, newError(http.StatusBadRequest, "invalid_parameter", pe.Param, pe.Error()))
}

// observedTraffic is the experiment's state and the users a day its
// current period has seen (0 when the period's start is unknown).
func (h *Reports) observedTraffic(ctx context.Context, e *experiments.Experiment) (ReportStatus, float64, error) {
	st, err := h.src.Status(ctx, e.ID)
	if err != nil {
		return st, 0, fmt.Errorf("status of %q: %w", e.ID, err)
	}
	period := st.Period
	if period == 0 {
		period = e.PhaseOrOne()
	}
	snap, err := h.store.Summaries(ctx, e.ID, period)
	if err != nil {
		return st, 0, fmt.Errorf("statistics of %q: %w", e.ID, err)
	}
	if st.Started.IsZero() {
		return st, 0, nil
	}
	users := 0.0
	for v := range e.Variants {
		users += snap.Stats[experiments.VariantMetric{Variant: v, Metric: experiments.MetricRequests}].N
	}
	// At least an hour, so a period minutes old does not extrapolate.
	days := math.Max(h.now().Sub(st.Started).Hours(), 1) / 24
	return st, users / days, nil
}

// roundSig rounds to 12 significant digits, so 0.1*0.05 prints as 0.005.
func roundSig(x float64) float64 {
	if x == 0 || !finiteNum(x) {
		return x
	}
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 12, 64), 64)
	return v
}
