package api

import (
	"fmt"
	"strings"

	"github.com/abgate/abgate/experiments"
)

// ReportCohort says which users the period's verdict is analysed on
// (rollout.cohort, docs/statistics.md §2.12). With "new" a ramp step is
// analysed on the users first exposed in it; the users returning from
// earlier steps are counted apart, per arm, because whether they come
// back is itself an outcome of the arm they were served by.
type ReportCohort struct {
	// Cohort is the configured cohort: "new" or "all".
	Cohort string `json:"cohort"`
	// FirstExposedOnly: the verdict reads only the users first exposed in
	// this period (false with "all", or when Unavailable).
	FirstExposedOnly bool `json:"first_exposed_only"`
	// Unavailable: "new" is configured but the store has no
	// first-exposure sums for the period, so the verdict reads every
	// active user.
	Unavailable bool `json:"unavailable,omitempty"`
	// Users per variant in the verdict; Returning per variant, the active
	// users returning from earlier periods of the salt phase, left out of
	// it (zeros unless FirstExposedOnly).
	Users     []float64 `json:"users"`
	Returning []float64 `json:"returning"`
	// Sentence says it in words.
	Sentence string `json:"sentence"`
}

// cohortSection is the report's cohort section, nil without a rollout.
func (a *analysis) cohortSection(r *Report, snap experiments.Snapshot, c experiments.Cohort) *ReportCohort {
	if a.exp.Rollout == nil {
		return nil
	}
	users, returning := experiments.CohortUsers(a.exp, snap, c)
	out := &ReportCohort{Cohort: c.Configured, FirstExposedOnly: c.Fresh, Unavailable: c.Unavailable, Users: users, Returning: returning}
	total, back := 0.0, 0.0
	for v := range users {
		total += users[v]
		back += returning[v]
	}
	step := "This period"
	if r.Step > 0 {
		step = fmt.Sprintf("Step %d", r.Step)
	}
	switch {
	case c.Fresh && back == 0:
		// The first period of a salt phase, or nobody came back yet.
		out.Sentence = fmt.Sprintf("%s is analysed on the %s users first exposed in it; no user has returned from an earlier step.", step, fmtCount(total))
	case c.Fresh:
		out.Sentence = fmt.Sprintf("%s is analysed on the %s users first exposed in it; %s users returning from earlier steps are not in the verdict",
			step, fmtCount(total), fmtCount(back))
		var per []string
		for v, n := range returning {
			per = append(per, fmt.Sprintf("%s %s", a.exp.Variants[v].Name, fmtCount(n)))
		}
		out.Sentence += fmt.Sprintf(" (%s: whether users come back is itself an outcome of the arm).", strings.Join(per, ", "))
	case c.Unavailable:
		out.Sentence = fmt.Sprintf("%s is analysed on all %s active users: rollout.cohort is new, but the store has no first-exposure record for this period (data recorded without it), so users returning from earlier steps are in the verdict.",
			step, fmtCount(total))
	default:
		out.Sentence = fmt.Sprintf("%s is analysed on all %s active users, including users returning from earlier steps (rollout.cohort: all).", step, fmtCount(total))
	}
	return out
}

// ReportIntegrity says how far a report's data can be trusted: how many
// of the experiment's recorded events this replica's recorder dropped
// (the store was down past the pending limit; feedback is never
// dropped, see docs/recording.md) and whether its lifecycle state
// vanished from the store. Counts are this replica's since it started.
type ReportIntegrity struct {
	// Accepted and Dropped count the experiment's events the recorder
	// took and lost; DroppedShare is Dropped / Accepted.
	Accepted     int64   `json:"accepted"`
	Dropped      int64   `json:"dropped"`
	DroppedShare float64 `json:"dropped_share"`
	// StateLost: the experiment's lifecycle state disappeared from the
	// store while it was known (docs/rollout.md, "Store loss"); the
	// replica serves its last known allocation until the state is
	// restored.
	StateLost bool `json:"state_lost,omitempty"`
}

// IntegritySource gives an experiment's ReportIntegrity (cmd/abgate
// combines the recorder's counts and the lifecycle watcher's flag).
type IntegritySource interface {
	Integrity(experiment string) ReportIntegrity
}

// WithReportsIntegrity adds the integrity section to full reports.
func WithReportsIntegrity(s IntegritySource) ReportsOption {
	return func(h *Reports) { h.integrity = s }
}

// addIntegrity sets r.Integrity from h's source, if it has one.
func (h *Reports) addIntegrity(r *Report, full bool) {
	if !full || h.integrity == nil {
		return
	}
	in := h.integrity.Integrity(r.Experiment)
	r.Integrity = &in
}
