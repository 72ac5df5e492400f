package experiments

import (
	"encoding/hex"
	"time"
)

// UnitKey is the keyed hash of a unit id (see KeyUnit). Raw unit ids are
// never stored or sent to the store: statistics are kept per UnitKey.
type UnitKey [16]byte

// Outcome is what the gateway measures itself on one proxied request. It
// is a plain value so enqueueing it allocates nothing.
type Outcome struct {
	Experiment string
	Phase      int
	Variant    int // index into the experiment's variants; 0 is the base
	Unit       UnitKey
	// Analysed is false for units that were not randomized (no unit id,
	// allowlisted, outside coverage, holdout, serve-all): they are counted
	// for operations but kept out of the experiment's statistics.
	Analysed bool
	// Segments is the request's value in each of the experiment's
	// segment dimensions (issue #7). It sits after Analysed, in what
	// would be padding, so it costs no bytes.
	Segments SegmentValues
	At       time.Time // when the request arrived

	Status  int           // HTTP status sent to the client (0 if none)
	Latency time.Duration // arrival to last byte (or abort)
	TTFB    time.Duration // arrival to first body byte (first SSE chunk)
	MaxGap  time.Duration // streams: largest gap between chunks
	Stream  bool          // the response was an event stream
	// StreamAborted: a stream ended before its final event ([DONE] or a
	// finish_reason), by the client leaving or the upstream failing.
	StreamAborted bool
	// Error: 5xx from the upstream, timeout, or connection error.
	Error bool
	// Fallback: the candidate failed before a byte and the base served
	// the request; the outcome still counts for Variant (intent-to-treat).
	Fallback bool
	// UsageMissing: the upstream reported no token usage for a response
	// it served (a stream without a usage event, a body without "usage").
	// The tokens and cost are then unknown, not zero, and are left out
	// of the token and cost metrics instead of pulling them toward zero
	// (issue "Decision integrity"). The zero value means known, so
	// Outcomes built before this field existed keep their meaning. It
	// sits with the other bools, in what would be padding.
	UsageMissing bool
	PromptTokens int
	// CachedTokens is the part of PromptTokens the upstream served from
	// its prompt cache (usage.prompt_tokens_details.cached_tokens, or
	// input_tokens_details for the Responses API; 0 when not reported),
	// priced at the variant's cached prompt price.
	CachedTokens     int
	CompletionTokens int
	Cost             float64 // from the variant's prices
}

// Feedback is one signal an application sends back about a response,
// attributed through the response's X-Abgate-Token.
type Feedback struct {
	Experiment string
	Phase      int
	Variant    int
	Unit       UnitKey
	RequestID  string
	// EventID makes retries idempotent: a repeated id is counted once.
	// Empty means no de-duplication.
	EventID string
	// PerResponse is how many events of Metric count for the response
	// RequestID names (a count metric's max_per_response); 0 means 1.
	// Whatever their event ids, later ones are ignored: one response,
	// one vote (see Vote).
	PerResponse int
	Metric      string
	Value       float64
	At          time.Time
	// Segments are the response's segments, from its token, so feedback
	// lands in the same segments as the request.
	Segments SegmentValues
	// Comment and CorrectionText are free text for the feedback log
	// (export for retraining); the feedback API sets them only when the
	// experiment opts in with feedback_text. They never enter the
	// statistics.
	Comment        string
	CorrectionText string
	// TextExpires is when stored text must be gone (At plus the
	// experiment's feedback_text_retention); text without it is dropped.
	TextExpires time.Time
}

// Recordable reports whether a store can keep o: a batch holding an
// outcome without an experiment, with too many segment dimensions or with
// a non-finite cost is refused whole (ErrInvalidBatch, see Batch.Validate),
// so the recorder leaves such an outcome out instead.
func (o *Outcome) Recordable() bool {
	return o.Experiment != "" && o.Segments.N <= MaxSegmentDimensions && finite(o.Cost)
}

// Vote returns the group a feedback event counts in and how many events
// of it count: one response (unit and request id) and metric, at most
// max(1, PerResponse) events, the first ones to reach the store
// (docs/api.md, "One response, one vote"). Feedback without a request id
// has no group (cap 0): only its event id de-duplicates it.
func (f *Feedback) Vote() (group string, capN int) {
	if f.RequestID == "" {
		return "", 0
	}
	return "v:" + hex.EncodeToString(f.Unit[:8]) + ":" + f.RequestID + "/" + f.Metric, max(1, f.PerResponse)
}
