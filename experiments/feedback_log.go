package experiments

import (
	"context"
	"time"
)

// Feedback log defaults.
const (
	// DefaultFeedbackLogRetention is how long a feedback record without
	// text is kept for export.
	DefaultFeedbackLogRetention = 90 * 24 * time.Hour
	// DefaultFeedbackLogMax bounds the records kept per experiment; past
	// it the records closest to expiry (the oldest) are dropped.
	DefaultFeedbackLogMax = 100_000
	// MaxFeedbackText bounds one free-text payload, in bytes.
	MaxFeedbackText = 4 << 10
)

// FeedbackRecord is one feedback event as exported for retraining
// (GET /api/v1/experiments/{id}/feedback.jsonl): who (the response's
// request id and variant), what (metric and value), when, and, only for
// experiments with feedback_text, the free text.
type FeedbackRecord struct {
	RequestID string    `json:"request_id"`
	EventID   string    `json:"event_id,omitempty"`
	Variant   int       `json:"variant"`
	Metric    string    `json:"metric"`
	Value     float64   `json:"value"`
	At        time.Time `json:"at"`
	// Comment and CorrectionText are the free text, present only for
	// experiments with feedback_text, until their retention ends.
	Comment        string `json:"comment,omitempty"`
	CorrectionText string `json:"correction_text,omitempty"`
	// Expires is when the store deletes the record: At plus the
	// experiment's feedback_text_retention for a record with text, plus
	// the store's log retention otherwise.
	Expires time.Time `json:"expires"`
}

// FeedbackLog reads the bounded per-experiment feedback log. memstore and
// redisstore implement it next to Store.
type FeedbackLog interface {
	// FeedbackRecords returns the live records with At >= since, oldest
	// first, at most limit (0: no limit).
	FeedbackRecords(ctx context.Context, experiment string, since time.Time, limit int) ([]FeedbackRecord, error)
}

// Record turns feedback into its log record, or false when it is not
// logged: only feedback with a request id is (the API always sets one).
func (f *Feedback) Record() (FeedbackRecord, bool) {
	if f.RequestID == "" {
		return FeedbackRecord{}, false
	}
	r := FeedbackRecord{
		RequestID: f.RequestID, EventID: f.EventID, Variant: f.Variant,
		Metric: f.Metric, Value: f.Value, At: f.At,
		Comment: f.Comment, CorrectionText: f.CorrectionText, Expires: f.TextExpires,
	}
	if (r.Comment == "" && r.CorrectionText == "") || r.Expires.IsZero() {
		// No text, or text without a retention (never stored): the record
		// lives as long as the store keeps records.
		r.Comment, r.CorrectionText = "", ""
		r.Expires = time.Time{}
	}
	return r, true
}

// DedupRecords keeps the first record of each non-empty EventID (a
// retried feedback event is logged again but counted once), in place.
func DedupRecords(rs []FeedbackRecord) []FeedbackRecord {
	seen := make(map[string]struct{})
	out := rs[:0]
	for _, r := range rs {
		if r.EventID != "" {
			if _, dup := seen[r.EventID]; dup {
				continue
			}
			seen[r.EventID] = struct{}{}
		}
		out = append(out, r)
	}
	return out
}
