package api

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
