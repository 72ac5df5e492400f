package api

// ReportTerm is one glossary entry: a term a report uses, explained for
// a non-statistician. ID is its anchor on the page ("g-" + ID).
type ReportTerm struct {
	ID         string `json:"id"`
	Term       string `json:"term"`
	Definition string `json:"definition"`
}

// Glossary anchors, linked from the page.
const (
	termLift        = "lift"
	termCI          = "confidence-interval"
	termPValue      = "p-value"
	termSignificant = "significant"
	termPrimary     = "primary-metric"
	termGuardrail   = "guardrail"
	termNonInferior = "non-inferior"
	termSRM         = "sample-ratio"
	termCostPerSucc = "cost-per-success"
	termMoney       = "money"
	termETA         = "time-to-decision"
)

var glossaryTerms = []ReportTerm{
	{termLift, "lift", "How much the candidate changes a metric compared with the base model: relative (+4% means 4% more than the base) or absolute, in the metric's own unit (+2 pp means two percentage points). The relative lift is shown only when the base is measured precisely enough for a percentage to mean something; otherwise only the absolute lift is."},
	{termCI, "confidence interval (anytime-valid)", "The range of lifts that are consistent with the data, at the report's confidence (95% unless configured). \"Anytime-valid\" means it stays correct however often the report is looked at, so checking every hour does not cause false alarms. It narrows as users arrive."},
	{termPValue, "p-value", "How surprising the data would be if the candidate made no difference. Small means the difference is real: below 0.05 at 95% confidence. Shown as \"< 0.001\" when tiny."},
	{termSignificant, "significant change", "A change whose confidence interval lies entirely on one side of zero: the data rule out \"no difference\". Each metric is tested on its own, so among many secondary metrics an occasional false alarm is expected."},
	{termPrimary, "primary metric", "The one metric that decides promotion (for example the thumbs-up rate). The candidate is promoted when it is significantly better on it and every guardrail holds."},
	{termGuardrail, "guardrail", "A metric that must not get worse by more than an allowed margin (for example latency at most 10% worse). A candidate that is significantly worse beyond the margin is rolled back."},
	{termNonInferior, "non-inferior", "Shown not to be worse than the base by more than the guardrail's margin. It may still be somewhat worse within the margin: the verdict names such changes."},
	{termSRM, "sample ratio check", "Checks that users are split between the variants as configured. A mismatch means the assignment or the logging is broken and the numbers can't be trusted."},
	{termCostPerSucc, "cost per success", "Spend divided by successful outcomes (a thumbs up, a completed task, no reformulation: the configured success signal), per user. A cheaper model that fails more often can cost more per success."},
	{termMoney, "money at current traffic", "The cost per request difference times the requests a day seen so far, per day and per month (30.4 days). Its interval comes from the cost's confidence interval; changes in traffic are not included."},
	{termETA, "time to decision", "When the test is expected to have enough users to detect the planned effect (report.detectable_effect, 5% by default) with 80% probability, at the traffic seen so far. It is planned from the design, not from the lift observed so far."},
}

// glossary is the report's glossary: every term, in a fixed order.
func glossary() []ReportTerm {
	return append([]ReportTerm(nil), glossaryTerms...)
}
