package gateway

import (
	"bytes"
	"io"
	"net/http"

	"github.com/abgate/abgate/experiments"
)

// This file is the gateway's side of the shadow stage (issue 14): for an
// experiment whose allocation is in shadow, a sampled request's body and
// the base's answer are copied, after the answer went to the client, and
// offered to the replay (package shadow) without blocking. During a ramp
// step, a request a candidate serves may be offered the same way for the
// live judge (shadow.live_percent), and so may one the base serves: the
// replay then asks the other model(s).
// Nothing changes what the client gets.

// Shadower is the shadow replay, as the gateway sees it.
type Shadower interface {
	// Sample reports whether the request of unit, with headers hdr, to
	// experiment (allocation salt) is to be replayed: the unit's shadow
	// hash is within the stage's share (live: a candidate serves it
	// during a ramp step, and the live judge's share) and the request
	// does not carry the private header. It runs on the request path:
	// fast, no I/O.
	Sample(experiment, salt, unit string, live bool, hdr http.Header) bool
	// Offer hands a sample to the replay without blocking; it returns
	// false when the sample was dropped (queue full, user capped).
	Offer(experiments.ShadowSample) bool
}

// WithShadow replays sampled requests of experiments in shadow to s. Nil
// (the default) replays nothing.
func WithShadow(s Shadower) Option { return func(h *Handler) { h.shadow = s } }

// Bounds of what is copied for a replay: larger requests or answers are
// not replayed (a truncated answer would be judged unfairly).
const (
	maxShadowBody   = 256 << 10
	maxShadowAnswer = 256 << 10
)

// answerTap copies what the client receives of a sampled response, up to
// maxShadowAnswer bytes.
type answerTap struct {
	live bool // a ramp step's live judge, not the shadow stage
	rc   io.ReadCloser
	buf  []byte
	over bool
}

// shadowTap returns a tap when the request is to be replayed: the
// experiment's allocation is in shadow, or splits traffic (a ramp step:
// the live judge, whichever arm v serves the request, so each arm has a
// judge score of its own answers; the base's for analysed users only),
// and the shadower samples it.
func (h *Handler) shadowTap(a *experiments.Allocation, exp, unit string, v int, analysed bool, r *http.Request) *answerTap {
	// A base-served request is judged only for an analysed user: the base
	// also serves the holdout and users outside the coverage, whose judge
	// scores would join the base arm's judged users without being in it.
	live := !a.Shadow && a.Serve < 0 && (v > 0 || v == 0 && analysed)
	if h.shadow == nil || !(a.Shadow || live) || unit == "" || !h.shadow.Sample(exp, a.Salt, unit, live, r.Header) {
		return nil
	}
	return &answerTap{live: live}
}

// wrap puts the tap between the proxy and body; a nil tap returns body.
func (t *answerTap) wrap(body io.ReadCloser) io.ReadCloser {
	if t == nil {
		return body
	}
	t.rc = body
	return t
}

func (t *answerTap) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if n > 0 && !t.over {
		if len(t.buf)+n > maxShadowAnswer {
			t.over, t.buf = true, nil
		} else {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	return n, err
}

func (t *answerTap) Close() error { return t.rc.Close() }

// offerShadow runs in finish, after the answer was sent: a sampled
// request the base answered in full, with a 2xx, is offered to the
// replay. It copies the request body (finish releases the pooled buffer
// next) and never blocks.
func (h *Handler) offerShadow(x *exchange) {
	t := x.tap
	m := &x.meter
	if t == nil || t.over || x.failed || x.fallback || m.readErr || x.client.Err() != nil ||
		x.status < 200 || x.status > 299 || (m.stream && !m.completed) || len(x.body) > maxShadowBody || len(t.buf) == 0 {
		return
	}
	h.shadow.Offer(experiments.ShadowSample{
		Experiment: x.exp.id, Variant: x.serving.idx, Live: t.live, Period: x.period, Unit: x.key, Path: x.in.URL.Path,
		Body: bytes.Clone(x.body), Answer: t.buf, Stream: m.stream, At: x.start,
	})
}
