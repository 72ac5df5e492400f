package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/abgate/abgate/drift"
	"github.com/abgate/abgate/experiments"
)

// Webhook headers.
const (
	// SignatureHeader carries "sha256=" + hex HMAC-SHA256(secret, body).
	SignatureHeader = "X-Abgate-Signature"
	// DeliveryHeader identifies the delivery ("<experiment>/<seq>"); it is
	// the same on every retry, so receivers can drop duplicates.
	DeliveryHeader = "X-Abgate-Delivery"
	// AttemptHeader is the attempt number, from 1.
	AttemptHeader = "X-Abgate-Attempt"
)

// Payload is the JSON body of a webhook delivery.
type Payload struct {
	// Event is "transition" here and "drift" in a DriftPayload, so one
	// receiver can take both.
	Event      string                       `json:"event"`
	Experiment string                       `json:"experiment"`
	Transition experiments.PublicTransition `json:"transition"` // steps counted from 1
	State      experiments.PublicState      `json:"state"`
}

// DriftPayload is the JSON body of a drift alert delivery.
type DriftPayload struct {
	Event      string      `json:"event"` // "drift"
	Experiment string      `json:"experiment"`
	Alert      drift.Alert `json:"alert"`
}

// Sign returns the X-Abgate-Signature value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports whether header is body's signature under
// secret, in constant time.
func VerifySignature(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(header), []byte(Sign(secret, body)))
}

// Option configures a Sender.
type Option func(*Sender)

// WithBackoff sets the retry backoff: minD before the 2nd attempt,
// doubling up to maxD (default 1s .. 1m).
func WithBackoff(minD, maxD time.Duration) Option {
	return func(w *Sender) {
		if minD > 0 && maxD >= minD {
			w.backoffMin, w.backoffMax = minD, maxD
		}
	}
}

// WithQueueSize bounds each receiver's queue (default 1024); past
// it the oldest deliveries are dropped and counted.
func WithQueueSize(n int) Option {
	return func(w *Sender) {
		if n > 0 {
			w.queueSize = n
		}
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(w *Sender) { w.log = l } }

// Stats counts deliveries over all receivers.
type Stats struct {
	Receivers int   // configured receivers
	Delivered int64 // a receiver answered 2xx
	Failed    int64 // gave up after MaxAttempts
	Dropped   int64 // queue full or closed before delivery
	Attempts  int64 // HTTP requests made
}

// Sender delivers every transition to the configured receivers as a
// signed JSON POST. Notify never blocks: each receiver has a bounded
// queue and a worker that delivers in order, retrying a failed delivery
// with exponential backoff up to the receiver's MaxAttempts (the
// Prometheus notifier's pattern: bounded queue, wake-up channel of
// capacity one, counted drops, a timeout per send).
type Sender struct {
	client     *http.Client
	backoffMin time.Duration
	backoffMax time.Duration
	queueSize  int
	log        *slog.Logger

	receivers []*receiver
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closed    atomic.Bool

	delivered, failed, dropped, attempts atomic.Int64
}

type receiver struct {
	hook   experiments.Webhook
	mu     sync.Mutex
	queue  []delivery
	wake   chan struct{}
	stop   chan struct{}
	closed bool
}

type delivery struct {
	id   string
	body []byte
}

// New starts one worker per receiver. Close stops them.
func New(hooks []experiments.Webhook, opts ...Option) *Sender {
	w := &Sender{
		client:     &http.Client{Timeout: 10 * time.Second},
		backoffMin: time.Second,
		backoffMax: time.Minute,
		queueSize:  1024,
		log:        slog.Default(),
	}
	for _, o := range opts {
		o(w)
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	for _, h := range hooks {
		if h.MaxAttempts <= 0 {
			h.MaxAttempts = experiments.DefaultWebhookAttempts
		}
		r := &receiver{hook: h, wake: make(chan struct{}, 1), stop: make(chan struct{})}
		w.receivers = append(w.receivers, r)
		w.wg.Add(1)
		go w.loop(r)
	}
	return w
}

// Notify implements Notifier: it queues the transition for every receiver.
func (w *Sender) Notify(t experiments.Transition, s experiments.State) {
	w.send(t.Experiment+"/"+strconv.FormatInt(t.Seq, 10), t.Experiment,
		Payload{Event: "transition", Experiment: t.Experiment, Transition: t.Public(), State: s.Public()})
}

// NotifyDrift queues a drift alert for every receiver; it is the
// drift.Monitor's alert callback.
func (w *Sender) NotifyDrift(_ context.Context, a drift.Alert) {
	id := a.Experiment + "/drift/" + strconv.Itoa(a.Variant) + "/" + a.Feature + "/" + strconv.FormatInt(a.At.Unix(), 10)
	w.send(id, a.Experiment, DriftPayload{Event: "drift", Experiment: a.Experiment, Alert: a})
}

// send queues one delivery of payload, under the delivery id, for every
// receiver, dropping (and counting) the oldest when a queue is full.
func (w *Sender) send(id, experiment string, payload any) {
	if len(w.receivers) == 0 {
		return
	}
	if w.closed.Load() {
		w.dropped.Add(int64(len(w.receivers)))
		return
	}
	body, err := json.Marshal(payload)
	if err != nil {
		w.log.Error("webhooks: encode payload", "experiment", experiment, "err", err)
		w.dropped.Add(int64(len(w.receivers)))
		return
	}
	d := delivery{id: id, body: body}
	for _, r := range w.receivers {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			w.dropped.Add(1)
			continue
		}
		if len(r.queue) >= w.queueSize {
			r.queue = r.queue[1:]
			w.dropped.Add(1)
		}
		r.queue = append(r.queue, d)
		r.mu.Unlock()
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// Stats returns the delivery counters.
func (w *Sender) Stats() Stats {
	return Stats{Receivers: len(w.receivers), Delivered: w.delivered.Load(), Failed: w.failed.Load(), Dropped: w.dropped.Load(), Attempts: w.attempts.Load()}
}

// Close stops accepting transitions and waits until the queues are
// delivered or ctx ends; then in-flight retries are abandoned and what is
// left is counted as dropped.
func (w *Sender) Close(ctx context.Context) error {
	if !w.closed.CompareAndSwap(false, true) {
		return nil
	}
	for _, r := range w.receivers {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		close(r.stop)
	}
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		w.cancel()
		<-done
		return ctx.Err()
	}
}

func (w *Sender) loop(r *receiver) {
	defer w.wg.Done()
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			closed := r.closed
			r.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-r.wake:
			case <-r.stop:
			}
			continue
		}
		d := r.queue[0]
		r.queue = r.queue[1:]
		r.mu.Unlock()
		if w.ctx.Err() != nil {
			w.dropped.Add(1)
			continue
		}
		w.deliver(r.hook, d)
	}
}

// deliver makes up to hook.MaxAttempts attempts with exponential backoff.
func (w *Sender) deliver(hook experiments.Webhook, d delivery) {
	sig := Sign([]byte(hook.Secret.Reveal()), d.body)
	wait := w.backoffMin
	var lastErr error
	for attempt := 1; attempt <= hook.MaxAttempts; attempt++ {
		if attempt > 1 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-w.ctx.Done():
				t.Stop()
				w.dropped.Add(1)
				return
			}
			wait = min(2*wait, w.backoffMax)
		}
		w.attempts.Add(1)
		if lastErr = w.post(hook.URL, sig, d, attempt); lastErr == nil {
			w.delivered.Add(1)
			return
		}
	}
	w.failed.Add(1)
	w.log.Warn("webhooks: delivery failed", "url", redactURL(hook.URL), "delivery", d.id, "attempts", hook.MaxAttempts, "err", lastErr)
}

func (w *Sender) post(url, sig string, d delivery, attempt int) error {
	req, err := http.NewRequestWithContext(w.ctx, http.MethodPost, url, bytes.NewReader(d.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "abgate-webhooks")
	req.Header.Set(SignatureHeader, sig)
	req.Header.Set(DeliveryHeader, d.id)
	req.Header.Set(AttemptHeader, strconv.Itoa(attempt))
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// redactURL keeps a URL's scheme, host and path for logs (a query may
// carry a token).
func redactURL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i]
	}
	return u
}
