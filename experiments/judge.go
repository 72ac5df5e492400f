package experiments

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"text/template"
	"time"
)

// Judge configures an experiment's LLM judge: an OpenAI-compatible model
// that compares the base's and a candidate's answers to the same prompt,
// blind and in random order, for the shadow gate (Shadow) and as a live
// metric during a rollout. The judge package is its client; stats.JudgeGate
// reads its verdicts. docs/config.md, "experiments[].judge", is the
// reference.
type Judge struct {
	// Upstream names an entry of upstreams to call (its URL, key, headers
	// and timeouts); URL (with APIKey) is the alternative. Exactly one.
	Upstream string `yaml:"upstream"`
	URL      string `yaml:"url"`
	APIKey   Secret `yaml:"api_key"`
	// Model is the judge model's name. A variant's own model on the same
	// endpoint is refused: a model can't judge itself.
	Model string `yaml:"model"`
	// Rubric replaces the default prompt (a text/template over .Prompt,
	// .A, .B and .Criteria; A and B are the two answers in the order
	// shown). Criteria is inserted into the default rubric.
	Rubric   string `yaml:"rubric"`
	Criteria string `yaml:"criteria"`
	// BothOrdersShare is the share of comparisons also asked with the
	// answers swapped, to measure position bias (0..1, default 0.1).
	BothOrdersShare *float64 `yaml:"both_orders_share"`
	// PositionBiasLimit: a judge shown to prefer the first-shown answer
	// beyond 0.5 ± limit can't pass a candidate (default 0.1).
	PositionBiasLimit float64 `yaml:"position_bias_limit"`
	// NonInferiorityMargin δ: a candidate passes when the judge's win
	// rate is shown above 0.5 − δ (default 0.05). SuperiorityMargin m:
	// superior above 0.5 + m (default 0); RequireSuperiority makes only a
	// superior candidate pass.
	NonInferiorityMargin *float64 `yaml:"non_inferiority_margin"`
	SuperiorityMargin    float64  `yaml:"superiority_margin"`
	RequireSuperiority   bool     `yaml:"require_superiority"`
	// Alpha is the error rate of the judge's sequential test (default 0.05).
	Alpha float64 `yaml:"alpha"`
	// Ramp is what the live judge (shadow.live_percent) does during the
	// ramp steps: JudgeRampWatch (default) rolls a candidate back when
	// the judge shows it worse than the non-inferiority margin;
	// JudgeRampGuardrail also makes every advance and promotion wait for
	// the judge to show it non-inferior. Either way the test runs at the
	// step's guardrail level (Experiment.PolicyAt).
	Ramp string `yaml:"ramp"`
	// MaxConcurrency bounds judge calls in flight (default 4);
	// RatePerSecond and Burst are a token bucket (default 2/s, burst 4).
	MaxConcurrency int     `yaml:"max_concurrency"`
	RatePerSecond  float64 `yaml:"rate_per_second"`
	Burst          int     `yaml:"burst"`
	// MaxTokens caps the judge's answer (default 64: a JSON verdict).
	MaxTokens int `yaml:"max_tokens"`
	// Timeout bounds one judge call (default 30s).
	Timeout Duration `yaml:"timeout"`
	// Prices per 1,000 tokens of the judge, and budgets per hour and per
	// day in the same currency: past a budget, comparisons are refused
	// (0 = no budget).
	PromptPrice     float64 `yaml:"prompt_price_per_1k"`
	CompletionPrice float64 `yaml:"completion_price_per_1k"`
	BudgetPerHour   float64 `yaml:"budget_per_hour"`
	BudgetPerDay    float64 `yaml:"budget_per_day"`
	// PrivateHeader: a request carrying this header (any value) is never
	// sent to the judge nor replayed (default X-Abgate-Private).
	PrivateHeader string `yaml:"private_header"`
	// RetainPrompts keeps judged prompts, answers and verdicts for audit
	// (off by default: only the verdict's score is recorded), for
	// RetainPromptsFor (default 7d, at most 90d).
	RetainPrompts    bool     `yaml:"retain_prompts"`
	RetainPromptsFor Duration `yaml:"retain_prompts_for"`
	// HumanMetric is the human feedback signal the live judge's scores
	// are checked against and corrected by (prediction-powered
	// inference, docs/statistics.md, "Judge vs humans"): a bounded feedback metric,
	// built in or declared. Default: the experiment's primary metric
	// when it is one.
	HumanMetric string `yaml:"human_metric"`
}

// Shadow is the stage before ramp step 1: a hash-sampled share of live
// requests, answered by the base as usual, is replayed to the candidate
// after the base's answer went to the client, and the judge compares the
// two. Users never see the candidate's answer. It needs Judge.
type Shadow struct {
	// Percent of units (by unit hash, so a user is in or out for the whole
	// stage) whose requests are replayed (0.01..100, default 10).
	Percent float64 `yaml:"percent"`
	// MaxPerUser caps judged comparisons per user (default 1): the gate's
	// nonasymptotic guarantee needs the bound.
	MaxPerUser int `yaml:"max_per_user"`
	// MinUsers judged before any verdict (default 30); MaxUsers ends the
	// stage as inconclusive without a conclusion (0 = never).
	MinUsers int `yaml:"min_users"`
	MaxUsers int `yaml:"max_users"`
	// MinBothOrders: a pass waits for this many comparisons asked in both
	// orders (default 0).
	MinBothOrders int `yaml:"min_both_orders"`
	// MaxDuration ends the stage as inconclusive (0 = never).
	MaxDuration Duration `yaml:"max_duration"`
	// QueueSize bounds replays waiting for the candidate and the judge;
	// beyond it, replays are dropped and counted (default 256).
	QueueSize int `yaml:"queue_size"`
	// LivePercent of units (by their own unit hash) whose requests a
	// candidate serves during the ramp steps are judged live: the
	// request is replayed to the base after the candidate's answer went
	// to the client, and the verdict is the user's judge_score on the
	// serving candidate (0..100, default 0: no live judge). Requests the
	// base serves to units in the same share are judged too (replayed to
	// each candidate), recorded only as the base's judge_served, so each
	// arm has a judge score of its own answers (docs/statistics.md,
	// "Judge vs humans"). MaxPerUser caps each user per period (each ramp step is
	// one).
	LivePercent float64 `yaml:"live_percent"`
}

// Judge and shadow defaults (see docs/config.md).
const (
	DefaultJudgeBothOrdersShare   = 0.1
	DefaultJudgePositionBiasLimit = 0.1
	DefaultJudgeNonInferiority    = 0.05
	DefaultJudgeMaxConcurrency    = 4
	DefaultJudgeRatePerSecond     = 2.0
	DefaultJudgeMaxTokens         = 64
	DefaultJudgeTimeout           = Duration(30 * time.Second)
	DefaultJudgePrivateHeader     = "X-Abgate-Private"
	DefaultJudgeRetention         = Duration(7 * 24 * time.Hour)
	MaxJudgeRetention             = Duration(90 * 24 * time.Hour)
	DefaultShadowPercent          = 10.0
	DefaultShadowMaxPerUser       = 1
	DefaultShadowMinUsers         = 30
	DefaultShadowQueueSize        = 256
	MaxJudgeTokens                = 4096
)

// Values of Judge.Ramp.
const (
	// JudgeRampWatch: only harm on the live judge acts (a rollback).
	// The default: judging samples a share of a step's candidate users,
	// so non-inferiority on the judge would often hold a step far longer
	// than the guardrails do (docs/rollout.md).
	JudgeRampWatch = "watch"
	// JudgeRampGuardrail: an advance also needs the judge's
	// non-inferiority.
	JudgeRampGuardrail = "guardrail"
)

// setJudgeDefaults fills an experiment's judge and shadow defaults
// (called by SetDefaults).
func setJudgeDefaults(e *Experiment) {
	if j := e.Judge; j != nil {
		if j.BothOrdersShare == nil {
			s := DefaultJudgeBothOrdersShare
			j.BothOrdersShare = &s
		}
		if j.NonInferiorityMargin == nil {
			m := DefaultJudgeNonInferiority
			j.NonInferiorityMargin = &m
		}
		cfgDefault(&j.PositionBiasLimit, DefaultJudgePositionBiasLimit)
		cfgDefault(&j.Alpha, DefaultRolloutAlpha)
		cfgDefault(&j.Ramp, JudgeRampWatch)
		cfgDefault(&j.MaxConcurrency, DefaultJudgeMaxConcurrency)
		cfgDefault(&j.RatePerSecond, DefaultJudgeRatePerSecond)
		if j.Burst == 0 && j.RatePerSecond > 0 && !math.IsInf(j.RatePerSecond, 0) {
			j.Burst = max(1, int(math.Ceil(2*j.RatePerSecond)))
		}
		cfgDefault(&j.MaxTokens, DefaultJudgeMaxTokens)
		cfgDefault(&j.Timeout, DefaultJudgeTimeout)
		cfgDefault(&j.PrivateHeader, DefaultJudgePrivateHeader)
		if j.RetainPrompts {
			cfgDefault(&j.RetainPromptsFor, DefaultJudgeRetention)
		}
	}
	if s := e.Shadow; s != nil {
		cfgDefault(&s.Percent, DefaultShadowPercent)
		cfgDefault(&s.MaxPerUser, DefaultShadowMaxPerUser)
		cfgDefault(&s.MinUsers, DefaultShadowMinUsers)
		cfgDefault(&s.QueueSize, DefaultShadowQueueSize)
	}
}

// judge validates e.Judge and e.Shadow (called by validate for each
// experiment; p is the experiment's field path).
func (v *cfgValidator) judge(e *Experiment, p string, ups []Upstream) {
	if s := e.Shadow; s != nil {
		sp := p + ".shadow"
		if e.Judge == nil {
			v.add(sp, "needs a judge (experiments[].judge)")
		}
		if !(s.Percent >= 0.01 && s.Percent <= 100) || !cfgTwoDecimals(s.Percent) {
			v.add(sp+".percent", "must be a percentage between 0.01 and 100 in steps of 0.01")
		}
		if s.MaxPerUser < 1 {
			v.add(sp+".max_per_user", "must be at least 1")
		}
		if s.MinUsers < 1 {
			v.add(sp+".min_users", "must be at least 1")
		}
		if s.MaxUsers < 0 || (s.MaxUsers > 0 && s.MaxUsers < s.MinUsers) {
			v.add(sp+".max_users", "must be 0 (never) or at least min_users")
		}
		if s.MinBothOrders < 0 {
			v.add(sp+".min_both_orders", "must not be negative")
		}
		if s.MaxDuration < 0 {
			v.add(sp+".max_duration", "must not be negative")
		}
		if s.QueueSize < 1 {
			v.add(sp+".queue_size", "must be at least 1")
		}
		if !(s.LivePercent >= 0 && s.LivePercent <= 100) || !cfgTwoDecimals(s.LivePercent) {
			v.add(sp+".live_percent", "must be a percentage between 0 and 100 in steps of 0.01")
		}
	}
	j := e.Judge
	if j == nil {
		return
	}
	jp := p + ".judge"
	var endpoint string // the judge's base URL, to compare with the variants'
	switch {
	case j.Upstream != "" && j.URL != "":
		v.add(jp, "give either upstream or url, not both")
	case j.Upstream != "":
		found := false
		for i := range ups {
			if ups[i].Name == j.Upstream {
				found, endpoint = true, ups[i].URL
			}
		}
		if !found {
			v.add(jp+".upstream", "no upstream has this name")
		}
		if j.APIKey != "" {
			v.add(jp+".api_key", "only with url (an upstream brings its own api_key)")
		}
	case j.URL != "":
		v.upstreamURL(jp+".url", j.URL)
		endpoint = j.URL
		if strings.ContainsAny(j.APIKey.Reveal(), "\r\n\x00") {
			v.add(jp+".api_key", "must not contain line breaks or NUL") // never the value
		}
	default:
		v.add(jp, "needs upstream or url")
	}
	switch {
	case j.Model == "":
		v.add(jp+".model", "required")
	case len(j.Model) > 256 || !cfgPrintable(j.Model):
		v.add(jp+".model", "must be at most 256 printable characters")
	default:
		for i := range e.Variants {
			vr := &e.Variants[i]
			if vr.Model != j.Model {
				continue
			}
			same := j.Upstream != "" && vr.Upstream == j.Upstream
			if !same && endpoint != "" {
				for k := range ups {
					if ups[k].Name == vr.Upstream && sameEndpoint(ups[k].URL, endpoint) {
						same = true
					}
				}
			}
			if same {
				v.add(jp+".model", "is variant %q's own model on the same endpoint: a model can't judge itself", vr.Name)
				break
			}
		}
	}
	if j.Rubric != "" {
		if reason := checkRubric(j.Rubric); reason != "" {
			v.add(jp+".rubric", "%s", reason)
		}
	}
	if len(j.Criteria) > 4096 {
		v.add(jp+".criteria", "at most 4096 bytes")
	}
	if s := j.BothOrdersShare; s != nil && !(*s >= 0 && *s <= 1) {
		v.add(jp+".both_orders_share", "must be between 0 and 1")
	}
	if !(j.PositionBiasLimit > 0 && j.PositionBiasLimit < 0.5) {
		v.add(jp+".position_bias_limit", "must be in (0, 0.5)")
	}
	if m := j.NonInferiorityMargin; m != nil && !(*m >= 0 && *m < 0.5) {
		v.add(jp+".non_inferiority_margin", "must be in [0, 0.5) (a win rate below 0.5 − margin is worse)")
	}
	if !(j.SuperiorityMargin >= 0 && j.SuperiorityMargin < 0.5) {
		v.add(jp+".superiority_margin", "must be in [0, 0.5)")
	}
	if !(j.Alpha > 0 && j.Alpha < 1) {
		v.add(jp+".alpha", "must be in (0, 1)")
	}
	switch j.Ramp {
	case JudgeRampWatch:
	case JudgeRampGuardrail:
		if e.Shadow == nil || !(e.Shadow.LivePercent > 0) {
			v.add(jp+".ramp", "guardrail needs live judging (shadow.live_percent above 0): without judge data no step could advance")
		}
	default:
		v.add(jp+".ramp", "must be %q or %q", JudgeRampWatch, JudgeRampGuardrail)
	}
	if j.MaxConcurrency < 1 {
		v.add(jp+".max_concurrency", "must be at least 1")
	}
	if !(j.RatePerSecond > 0) || math.IsInf(j.RatePerSecond, 0) {
		v.add(jp+".rate_per_second", "must be a positive number")
	}
	if j.Burst < 1 {
		v.add(jp+".burst", "must be at least 1")
	}
	if j.MaxTokens < 1 || j.MaxTokens > MaxJudgeTokens {
		v.add(jp+".max_tokens", "must be between 1 and %d", MaxJudgeTokens)
	}
	v.positive(jp+".timeout", j.Timeout)
	v.price(jp+".prompt_price_per_1k", j.PromptPrice)
	v.price(jp+".completion_price_per_1k", j.CompletionPrice)
	v.price(jp+".budget_per_hour", j.BudgetPerHour)
	v.price(jp+".budget_per_day", j.BudgetPerDay)
	if j.BudgetPerHour > 0 && j.BudgetPerDay > 0 && j.BudgetPerHour > j.BudgetPerDay {
		v.add(jp+".budget_per_hour", "must not exceed budget_per_day")
	}
	if (j.BudgetPerHour > 0 || j.BudgetPerDay > 0) && j.PromptPrice == 0 && j.CompletionPrice == 0 {
		v.add(jp, "a budget needs prompt_price_per_1k or completion_price_per_1k (cost is usage × price)")
	}
	if !cfgValidHeaderName(j.PrivateHeader) {
		v.add(jp+".private_header", "must be a valid HTTP header name")
	}
	if j.HumanMetric != "" {
		if m, ok := LookupMetric(e, j.HumanMetric); !ok {
			v.add(jp+".human_metric", "no built-in or declared metric has this name")
		} else if reason := humanMetricOK(m); reason != "" {
			v.add(jp+".human_metric", "%s", reason)
		}
	}
	switch {
	case !j.RetainPrompts && j.RetainPromptsFor != 0:
		v.add(jp+".retain_prompts_for", "set but retain_prompts is off")
	case j.RetainPrompts && !(j.RetainPromptsFor > 0 && j.RetainPromptsFor <= MaxJudgeRetention):
		v.add(jp+".retain_prompts_for", "must be positive and at most %s", MaxJudgeRetention)
	}
}

// humanMetricOK is why m can't be the judge's human signal, or "".
func humanMetricOK(m MetricInfo) string {
	switch {
	case m.Source != SourceFeedback:
		return "must be a feedback metric (a human signal from the feedback API)"
	case math.IsInf(m.Min, 0) || math.IsInf(m.Max, 0):
		return "must be bounded (a declared metric needs min and max)"
	}
	return ""
}

// HumanMetric is the human signal the judge is corrected by: the judge's
// human_metric, else the primary metric when it is a bounded feedback
// metric; ok false when there is none (no judge, or a primary such as
// latency that no person gives).
func (e *Experiment) HumanMetric() (MetricInfo, bool) {
	if e == nil || e.Judge == nil {
		return MetricInfo{}, false
	}
	name := e.Judge.HumanMetric
	if name == "" {
		name = e.Primary
	}
	m, ok := LookupMetric(e, name)
	if !ok || humanMetricOK(m) != "" {
		return MetricInfo{}, false
	}
	return m, true
}

// JudgePairs are the joint sums of the human signal and the judge's
// score of each arm's served answers (judge_served) the recorder asks
// the store to keep (Batch.Joint): one pair for an experiment with a
// live judge (shadow.live_percent > 0) and a human metric, none
// otherwise. Cut is the midpoint of the human metric's range.
func (e *Experiment) JudgePairs() []JointPair {
	if e == nil || e.Shadow == nil || e.Shadow.LivePercent <= 0 {
		return nil
	}
	m, ok := e.HumanMetric()
	if !ok {
		return nil
	}
	return []JointPair{{Human: m.Name, Judge: MetricJudgeServed, Cut: (m.Min + m.Max) / 2}}
}

// sameEndpoint: two base URLs name one endpoint (scheme and host
// case-insensitive, trailing slashes ignored).
func sameEndpoint(a, b string) bool {
	ua, ea := url.Parse(a)
	ub, eb := url.Parse(b)
	if ea != nil || eb != nil {
		return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host) &&
		strings.TrimRight(ua.Path, "/") == strings.TrimRight(ub.Path, "/")
}

// RubricFields are the fields a judge rubric template may use: the user's
// prompt, the answers shown first (A) and second (B), and the configured
// criteria. The judge package executes rubrics with exactly these.
var RubricFields = []string{"Prompt", "A", "B", "Criteria"}

// checkRubric parses a rubric and executes it on markers: it must parse,
// use no other field, and show the prompt and both answers. It returns
// the reason it is refused, or "".
func checkRubric(src string) string {
	t, err := template.New("rubric").Option("missingkey=error").Parse(src)
	if err != nil {
		return "not a valid text/template: " + err.Error()
	}
	data := make(map[string]string, len(RubricFields))
	for _, f := range RubricFields {
		data[f] = "\x00" + f + "\x00"
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return fmt.Sprintf("uses a field other than %s", strings.Join(RubricFields, ", "))
	}
	for _, f := range []string{"Prompt", "A", "B"} {
		if !strings.Contains(b.String(), data[f]) {
			return "must show {{." + f + "}}"
		}
	}
	return ""
}
