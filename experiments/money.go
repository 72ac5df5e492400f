package experiments

import (
	"fmt"
	"math"
	"regexp"
)

// ReportConfig is how an experiment's reports present money and time
// (issue 15). Everything is optional.
type ReportConfig struct {
	// Currency is the ISO 4217 code the variants' prices are in ("USD").
	// Default USD: prices carry no currency of their own.
	Currency string `yaml:"currency"`
	// Symbol is printed before amounts ("$"); default the currency's
	// usual symbol for USD, EUR, GBP and JPY, else the code and a space.
	Symbol string `yaml:"symbol"`
	// DetectableEffect is the smallest relative change of the primary
	// metric worth detecting (0.05 = 5%, the default). The reports plan
	// the time to a decision for it, never from the observed lift.
	DetectableEffect float64 `yaml:"detectable_effect"`
}

// DefaultDetectableEffect is ReportConfig.DetectableEffect when unset.
const DefaultDetectableEffect = 0.05

var currencySymbols = map[string]string{"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}

// Money returns the experiment's currency code and symbol, defaults
// applied.
func (e *Experiment) Money() (currency, symbol string) {
	currency = "USD"
	if e.Report != nil && e.Report.Currency != "" {
		currency = e.Report.Currency
	}
	if e.Report != nil && e.Report.Symbol != "" {
		return currency, e.Report.Symbol
	}
	if s, ok := currencySymbols[currency]; ok {
		return currency, s
	}
	return currency, currency + " "
}

// DetectableEffect is the relative effect the reports plan for.
func (e *Experiment) DetectableEffect() float64 {
	if e.Report != nil && e.Report.DetectableEffect > 0 {
		return e.Report.DetectableEffect
	}
	return DefaultDetectableEffect
}

// Success names the feedback signal that marks an outcome successful, for
// the cost-per-success metric (MetricCostPerSuccess): thumbs up, a
// completed task, a judge pass, or the good value of a lower-is-better
// signal ("no reformulation": reformulated = 0).
type Success struct {
	// Metric is a feedback metric: binary (built-in or declared), or a
	// numeric one with AtLeast.
	Metric string `yaml:"metric"`
	// AtLeast makes a numeric signal a success when value >= AtLeast
	// (rating >= 4). Binary signals leave it unset: a success is their
	// better value (1 when higher is better, 0 when lower is).
	AtLeast *float64 `yaml:"at_least"`
}

// SuccessValue is the number of successes one feedback event of metric
// name with value x counts for e's cost-per-success metric, and whether
// the event is e's success signal at all.
func (e *Experiment) SuccessValue(name string, x float64) (float64, bool) {
	if e == nil || e.Success == nil || e.Success.Metric != name {
		return 0, false
	}
	if t := e.Success.AtLeast; t != nil {
		if x >= *t {
			return 1, true
		}
		return 0, true
	}
	info, _ := LookupMetric(e, name)
	if info.Better == LowerIsBetter {
		return 1 - x, true
	}
	return x, true
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// validateMoney checks an experiment's report and success sections.
func validateMoney(e *Experiment, path string) []FieldError {
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: path + field, Reason: fmt.Sprintf(format, args...)})
	}
	if r := e.Report; r != nil {
		if r.Currency != "" && !currencyCode.MatchString(r.Currency) {
			add(".report.currency", "must be an ISO 4217 code of three capital letters (USD, EUR)")
		}
		if len(r.Symbol) > 8 {
			add(".report.symbol", "must be at most 8 bytes")
		}
		if !(r.DetectableEffect >= 0 && r.DetectableEffect < 10) || math.IsNaN(r.DetectableEffect) {
			add(".report.detectable_effect", "must be a fraction in (0, 10), e.g. 0.05 for 5%% (0: default 0.05)")
		}
	}
	if s := e.Success; s != nil {
		info, ok := LookupMetric(e, s.Metric)
		switch {
		case s.Metric == "":
			add(".success.metric", "required")
		case !ok || info.Name != s.Metric:
			add(".success.metric", "not a built-in metric nor one declared in metrics")
		case info.Source != SourceFeedback:
			add(".success.metric", "must be a feedback metric (the success signal arrives through the feedback API)")
		case s.AtLeast == nil && info.Kind != MetricBinary:
			add(".success.at_least", "required for a metric that is not binary (a success is a value >= at_least)")
		case s.AtLeast != nil && (math.IsNaN(*s.AtLeast) || math.IsInf(*s.AtLeast, 0)):
			add(".success.at_least", "must be a finite number")
		}
	} else if usesMetric(e, MetricCostPerSuccess) {
		add(".success", "required: %s needs a success signal (success.metric)", MetricCostPerSuccess)
	}
	return errs
}

// usesMetric: the experiment judges metric name (primary or guardrail).
func usesMetric(e *Experiment, name string) bool {
	if e.Primary == name {
		return true
	}
	if e.Rollout != nil {
		for _, g := range e.Rollout.Guardrails {
			if g.Metric == name {
				return true
			}
		}
	}
	return false
}
