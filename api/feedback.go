package api

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/recorder"
)

// FeedbackSink takes accepted feedback; the recorder implements it. It
// must not block: when it can't take more it returns an error, and the
// client is told to retry (503), so nothing accepted is lost.
type FeedbackSink interface {
	Feedback(experiments.Feedback) error
}

// ExperimentLookup finds an experiment by id in the current config; nil
// means unknown.
type ExperimentLookup func(id string) *experiments.Experiment

// Limits on feedback requests.
const (
	maxFeedbackBody = 64 << 10 // one event
	maxBatchBody    = 4 << 20  // a batch
	maxBatchEvents  = 1000
	maxEventIDLen   = 128
)

// Feedback serves POST /v1/feedback and POST /v1/feedback/batch.
type Feedback struct {
	signer *experiments.Signer
	sink   FeedbackSink
	lookup ExperimentLookup
	now    func() time.Time
	limits FeedbackLimits
	// perToken and perUnit are the rate limits' buckets (nil: no limit).
	perToken, perUnit *limiter
}

// FeedbackOption configures a Feedback handler.
type FeedbackOption func(*Feedback)

// WithFeedbackClock replaces time.Now, for tests.
func WithFeedbackClock(now func() time.Time) FeedbackOption {
	return func(f *Feedback) { f.now = now }
}

// WithFeedbackLimits replaces DefaultFeedbackLimits.
func WithFeedbackLimits(l FeedbackLimits) FeedbackOption {
	return func(f *Feedback) { f.limits = l }
}

// NewFeedback returns the feedback handler.
func NewFeedback(signer *experiments.Signer, sink FeedbackSink, lookup ExperimentLookup, opts ...FeedbackOption) *Feedback {
	f := &Feedback{signer: signer, sink: sink, lookup: lookup, now: time.Now, limits: DefaultFeedbackLimits}
	for _, o := range opts {
		o(f)
	}
	f.perToken = newLimiter(f.limits.PerToken, f.limits.MaxKeys)
	f.perUnit = newLimiter(f.limits.PerUnit, f.limits.MaxKeys)
	return f
}

// Register mounts the feedback routes behind the given middleware (the
// feedback role's check, when tokens are configured).
func (f *Feedback) Register(r gin.IRouter, mw ...gin.HandlerFunc) {
	r.POST("/v1/feedback", append(mw, f.one)...)
	r.POST("/v1/feedback/batch", append(mw, f.batch)...)
}

// FeedbackEvent is one feedback request: the token of the response it is
// about (or the X-Abgate-Token header), an optional idempotency key, and
// one or more signals by metric name.
type FeedbackEvent struct {
	Token   string                     `json:"token,omitempty"`
	EventID string                     `json:"event_id,omitempty"`
	Signals map[string]json.RawMessage `json:"signals"`
	// Comment and CorrectionText are free text for the retraining
	// export. They are stored only when the experiment sets
	// feedback_text, for its feedback_text_retention; otherwise they are
	// accepted and discarded (FeedbackResult.TextStored says which).
	Comment        string `json:"comment,omitempty"`
	CorrectionText string `json:"correction_text,omitempty"`
}

// FeedbackResult answers one accepted event.
type FeedbackResult struct {
	Accepted   int    `json:"accepted"`
	Experiment string `json:"experiment"`
	Variant    string `json:"variant"`
	// Analysed is false when the response's unit was not randomized
	// (no unit id, allowlisted, outside coverage…): the feedback is
	// accepted but kept out of the experiment's statistics.
	Analysed bool `json:"analysed"`
	// TextStored is true when the event's comment or correction text was
	// kept for export (the experiment opted in with feedback_text).
	TextStored bool `json:"text_stored,omitempty"`
}

// BatchRequest is the body of POST /v1/feedback/batch.
type BatchRequest struct {
	Events []FeedbackEvent `json:"events"`
}

// BatchResult answers a batch: events are judged one by one, valid ones
// are recorded even when others are rejected.
type BatchResult struct {
	Accepted int             `json:"accepted"`
	Rejected []RejectedEvent `json:"rejected"`
}

// RejectedEvent says why the event at Index was refused.
type RejectedEvent struct {
	Index int         `json:"index"`
	Error errorDetail `json:"error"`
}

func (f *Feedback) one(c *gin.Context) {
	var ev FeedbackEvent
	if e := decodeBody(c, maxFeedbackBody, &ev); e != nil {
		abort(c, e)
		return
	}
	if ev.Token == "" {
		ev.Token = c.GetHeader("X-Abgate-Token")
	}
	var wait time.Duration
	res, e := f.apply(&ev, &wait)
	if e != nil {
		switch e.Status {
		case http.StatusServiceUnavailable:
			c.Header("Retry-After", "1")
		case http.StatusTooManyRequests:
			c.Header("Retry-After", retryAfter(wait))
		}
		abort(c, e)
		return
	}
	c.JSON(http.StatusOK, res)
}

func (f *Feedback) batch(c *gin.Context) {
	var req BatchRequest
	if e := decodeBody(c, maxBatchBody, &req); e != nil {
		abort(c, e)
		return
	}
	if len(req.Events) == 0 {
		abort(c, newError(http.StatusBadRequest, "invalid_value", "events", "events must hold at least one event"))
		return
	}
	if len(req.Events) > maxBatchEvents {
		abort(c, newError(http.StatusRequestEntityTooLarge, "too_many_events", "events",
			fmt.Sprintf("a batch holds at most %d events, got %d", maxBatchEvents, len(req.Events))))
		return
	}
	header := c.GetHeader("X-Abgate-Token")
	out := BatchResult{Rejected: []RejectedEvent{}}
	var limited int
	var maxWait time.Duration
	for i := range req.Events {
		ev := &req.Events[i]
		if ev.Token == "" {
			ev.Token = header
		}
		var wait time.Duration
		res, e := f.apply(ev, &wait)
		if e != nil && e.Status == http.StatusTooManyRequests {
			limited++
			maxWait = max(maxWait, wait)
		}
		if e != nil && e.Status == http.StatusServiceUnavailable {
			// Stop at the first event the recorder can't take: everything
			// before it is recorded, everything after is untouched, and
			// event ids make the client's retry of the whole batch safe.
			c.Header("Retry-After", "1")
			c.JSON(http.StatusServiceUnavailable, gin.H{"accepted": out.Accepted, "rejected": out.Rejected,
				"error": newError(http.StatusServiceUnavailable, "overloaded", "",
					fmt.Sprintf("recorder queue full at event %d; retry the batch with event ids", i)).Detail})
			return
		}
		if e != nil {
			out.Rejected = append(out.Rejected, RejectedEvent{Index: i, Error: e.Detail})
			continue
		}
		out.Accepted += res.Accepted
	}
	status := http.StatusOK
	if out.Accepted == 0 && len(out.Rejected) > 0 {
		status = http.StatusBadRequest
	}
	if limited > 0 {
		// Rate-limited events are rejected like invalid ones, but can be
		// sent again: Retry-After says when the slowest bucket has room.
		c.Header("Retry-After", retryAfter(maxWait))
		if out.Accepted == 0 && limited == len(out.Rejected) {
			status = http.StatusTooManyRequests
		}
	}
	c.JSON(status, out)
}

// apply validates one event fully before recording any of its signals,
// so an event is taken whole or not at all. A rate-limited event gets a
// 429 and *wait says when to retry.
func (f *Feedback) apply(ev *FeedbackEvent, wait *time.Duration) (FeedbackResult, *apiError) {
	if ev.Token == "" {
		return FeedbackResult{}, newError(http.StatusUnauthorized, "missing_token", "token",
			"feedback needs the X-Abgate-Token of the response it is about (header or \"token\" field)")
	}
	now := f.now()
	tok, err := f.signer.Verify(ev.Token, now)
	switch {
	case errors.Is(err, experiments.ErrTokenExpired):
		return FeedbackResult{}, newError(http.StatusUnauthorized, "token_expired", "token",
			fmt.Sprintf("the assignment token expired at %s", tok.Expires.UTC().Format(time.RFC3339)))
	case err != nil:
		return FeedbackResult{}, newError(http.StatusUnauthorized, "invalid_token", "token",
			"the assignment token is malformed or its signature does not match")
	}
	if e := f.rateLimit(&tok, now, wait); e != nil {
		return FeedbackResult{}, e
	}
	exp := f.lookup(tok.Experiment)
	if exp == nil {
		return FeedbackResult{}, newError(http.StatusNotFound, "experiment_not_found", "token",
			fmt.Sprintf("experiment %q of this token is not configured", tok.Experiment))
	}
	if tok.Variant >= len(exp.Variants) {
		return FeedbackResult{}, newError(http.StatusNotFound, "variant_not_found", "token",
			fmt.Sprintf("experiment %q has no variant %d", tok.Experiment, tok.Variant))
	}
	if len(ev.EventID) > maxEventIDLen {
		return FeedbackResult{}, newError(http.StatusBadRequest, "invalid_value", "event_id",
			fmt.Sprintf("event_id is longer than %d bytes", maxEventIDLen))
	}
	for _, tf := range []struct{ field, text string }{{"comment", ev.Comment}, {"correction_text", ev.CorrectionText}} {
		if len(tf.text) > experiments.MaxFeedbackText {
			return FeedbackResult{}, newError(http.StatusBadRequest, "invalid_value", tf.field,
				fmt.Sprintf("%s is longer than %d bytes", tf.field, experiments.MaxFeedbackText))
		}
	}
	if len(ev.Signals) == 0 {
		return FeedbackResult{}, newError(http.StatusBadRequest, "invalid_value", "signals",
			`signals must name at least one metric, e.g. {"thumbs": "up"}`)
	}
	names := make([]string, 0, len(ev.Signals))
	for name := range ev.Signals {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic errors and order
	fbs := make([]experiments.Feedback, 0, len(names))
	for _, name := range names {
		info, ok := experiments.LookupMetric(exp, name)
		if !ok || info.Source != experiments.SourceFeedback || info.Name != name {
			return FeedbackResult{}, newError(http.StatusBadRequest, "unknown_metric", "signals."+name,
				fmt.Sprintf("experiment %q has no feedback metric %q (built-in: %s; custom ones are declared in the config)",
					exp.ID, name, strings.Join(builtinFeedbackNames(), ", ")))
		}
		v, reason := parseSignal(info, ev.Signals[name])
		if reason != "" {
			return FeedbackResult{}, newError(http.StatusBadRequest, "invalid_value", "signals."+name, name+": "+reason)
		}
		fb := experiments.Feedback{
			Experiment: tok.Experiment, Phase: tok.Phase, Variant: tok.Variant, Unit: tok.Unit,
			RequestID: tok.RequestID, Metric: name, Value: v, At: now, Segments: tok.Segments,
			PerResponse: perResponse(exp, name),
		}
		if ev.EventID != "" {
			// Event ids are the client's and need only be unique per user:
			// they are scoped to the token's unit (a retry carries the same
			// token), so two users sending "msg-1" are two events. One
			// event may carry several signals: each is de-duplicated on its
			// own, so a retry that adds a signal still counts it.
			fb.EventID = hex.EncodeToString(tok.Unit[:8]) + ":" + ev.EventID + "/" + name
		}
		fbs = append(fbs, fb)
	}
	res := FeedbackResult{Experiment: exp.ID, Variant: exp.Variants[tok.Variant].Name, Analysed: tok.Analysed}
	// Free text rides on one record of the event (the correction signal
	// when there is one), and only with the experiment's opt-in: without
	// it the text is dropped here and never reaches a store.
	if exp.FeedbackText && (ev.Comment != "" || ev.CorrectionText != "") && len(fbs) > 0 && tok.Analysed {
		i := 0
		for j := range fbs {
			if fbs[j].Metric == experiments.MetricCorrection {
				i = j
			}
		}
		keep := time.Duration(exp.FeedbackTextRetention)
		if keep <= 0 {
			keep = time.Duration(experiments.DefaultFeedbackTextRetention)
		}
		fbs[i].Comment, fbs[i].CorrectionText, fbs[i].TextExpires = ev.Comment, ev.CorrectionText, now.Add(keep)
		res.TextStored = true
	}
	if !tok.Analysed {
		res.Accepted = len(fbs)
		return res, nil
	}
	for i := range fbs {
		if err := f.sink.Feedback(fbs[i]); err != nil {
			if errors.Is(err, recorder.ErrInvalidFeedback) {
				// Validation above makes this unreachable; if the two ever
				// disagree, the client's retry would not help.
				return FeedbackResult{}, newError(http.StatusBadRequest, "invalid_value", "signals."+fbs[i].Metric,
					fmt.Sprintf("%s: the recorder refused this value", fbs[i].Metric))
			}
			if i == 0 {
				return FeedbackResult{}, newError(http.StatusServiceUnavailable, "overloaded", "",
					"the recorder can't take feedback right now; retry with the same event_id")
			}
			// Part of the event got in: with an event id the retry counts
			// only the rest; without one the client could double count.
			return FeedbackResult{}, newError(http.StatusServiceUnavailable, "overloaded", "",
				fmt.Sprintf("recorded %d of %d signals before the recorder filled up; retry with the same event_id", i, len(fbs)))
		}
		res.Accepted++
	}
	return res, nil
}

// rateLimit takes one event from the token's (response's) and the unit's
// buckets; an empty one answers 429 (docs/api.md, "Rate limits").
func (f *Feedback) rateLimit(tok *experiments.Token, now time.Time, wait *time.Duration) *apiError {
	key := tok.RequestID
	if key == "" {
		key = hex.EncodeToString(tok.Unit[:]) // tokens always carry one; be safe
	}
	okTok, wTok := f.perToken.allow(tok.Experiment+"/"+key, now)
	if !okTok {
		*wait = wTok
		return newError(http.StatusTooManyRequests, "rate_limit_exceeded", "token",
			fmt.Sprintf("too much feedback for this response; retry in %s", retryAfter(wTok)+"s"))
	}
	okUnit, wUnit := f.perUnit.allow(tok.Experiment+"/"+hex.EncodeToString(tok.Unit[:]), now)
	if !okUnit {
		*wait = wUnit
		return newError(http.StatusTooManyRequests, "rate_limit_exceeded", "token",
			fmt.Sprintf("too much feedback for this user; retry in %s", retryAfter(wUnit)+"s"))
	}
	return nil
}

// perResponse is how many events of metric count for one response: a
// custom count metric's max_per_response; every other metric takes one
// value per response, the first (docs/api.md, "One response, one vote").
func perResponse(exp *experiments.Experiment, metric string) int {
	if experiments.IsBuiltinMetric(metric) {
		return 0
	}
	for _, m := range exp.Metrics {
		if m.Name == metric && m.Kind == experiments.MetricCount {
			return m.MaxPerResponse
		}
	}
	return 0
}

// decodeBody reads a JSON body of at most limit bytes into v.
func decodeBody(c *gin.Context, limit int64, v any) *apiError {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return newError(http.StatusRequestEntityTooLarge, "body_too_large", "",
				fmt.Sprintf("request body is larger than %d bytes", limit))
		}
		return newError(http.StatusBadRequest, "invalid_json", "", "request body is not valid JSON for this endpoint: "+err.Error())
	}
	if dec.More() {
		return newError(http.StatusBadRequest, "invalid_json", "", "request body holds more than one JSON value")
	}
	return nil
}

// builtinFeedbackNames lists the built-in feedback metrics, for errors.
func builtinFeedbackNames() []string {
	var names []string
	for _, m := range experiments.BuiltinMetrics() {
		if m.Source == experiments.SourceFeedback {
			names = append(names, m.Name)
		}
	}
	sort.Strings(names)
	return names
}

// parseSignal reads a signal's JSON value for metric d (its kind and
// bounds from the registry); reason is empty when it is valid.
func parseSignal(d experiments.MetricInfo, raw json.RawMessage) (v float64, reason string) {
	var x any
	if err := json.Unmarshal(raw, &x); err != nil {
		return 0, "not a JSON value"
	}
	switch t := x.(type) {
	case bool:
		if d.Kind != experiments.MetricBinary {
			return 0, fmt.Sprintf("a %s metric takes a number, not a boolean", d.Kind)
		}
		if t {
			return 1, ""
		}
		return 0, ""
	case string:
		if d.UpDown {
			switch strings.ToLower(t) {
			case "up":
				return 1, ""
			case "down":
				return 0, ""
			}
			return 0, `must be "up", "down", true, false, 1 or 0`
		}
		return 0, fmt.Sprintf("a %s metric takes a number, not a string", d.Kind)
	case float64:
		v = t
	default:
		return 0, "must be a number or a boolean"
	}
	switch d.Kind {
	case experiments.MetricBinary:
		if v != 0 && v != 1 {
			return 0, fmt.Sprintf("a binary metric takes 0 or 1 (or true/false), got %g", v)
		}
	case experiments.MetricCount:
		if v != math.Trunc(v) {
			return 0, fmt.Sprintf("must be a whole number, got %g", v)
		}
	}
	if v < d.Min || v > d.Max {
		return 0, fmt.Sprintf("must be between %g and %g, got %g", d.Min, d.Max, v)
	}
	return v, ""
}
