package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/drift"
	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/webhook"
)

type hookReceiver struct {
	mu       sync.Mutex
	fail     int // answer 503 to this many requests first
	got      []webhook.Payload
	attempts map[string][]string // delivery id -> attempt headers
	badSig   int
	secret   []byte
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	id := r.Header.Get(webhook.DeliveryHeader)
	if h.attempts == nil {
		h.attempts = map[string][]string{}
	}
	h.attempts[id] = append(h.attempts[id], r.Header.Get(webhook.AttemptHeader))
	if !webhook.VerifySignature(h.secret, body, r.Header.Get(webhook.SignatureHeader)) {
		h.badSig++
	}
	if h.fail > 0 {
		h.fail--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err == nil {
		h.got = append(h.got, p)
	}
}

func TestWebhooksRetryAndSignature(t *testing.T) {
	t.Parallel()
	good := &hookReceiver{secret: []byte("s1")}
	flaky := &hookReceiver{secret: []byte("s2"), fail: 2}
	dead := &hookReceiver{secret: []byte("s3"), fail: 1 << 30}
	var urls []string
	for _, h := range []http.Handler{good, flaky, dead} {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	wh := webhook.New([]experiments.Webhook{
		{URL: urls[0], Secret: "s1"},
		{URL: urls[1], Secret: "s2", MaxAttempts: 3},
		{URL: urls[2], Secret: "s3", MaxAttempts: 2},
	}, webhook.WithBackoff(5*time.Millisecond, 20*time.Millisecond), webhook.WithLogger(slog.New(slog.DiscardHandler)))
	for seq := int64(1); seq <= 3; seq++ {
		wh.Notify(experiments.Transition{Seq: seq, Experiment: "exp", Action: experiments.ActionAdvance},
			experiments.State{Experiment: "exp", Version: seq})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := wh.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]*hookReceiver{"good": good, "flaky": flaky} {
		if len(h.got) != 3 || h.badSig != 0 {
			t.Errorf("%s: %d payloads, %d bad signatures; want 3 and 0", name, len(h.got), h.badSig)
		}
		for i, p := range h.got {
			if p.Transition.Seq != int64(i+1) || p.State.Version != int64(i+1) || p.Experiment != "exp" {
				t.Errorf("%s: payload %d = %+v (out of order?)", name, i, p)
			}
		}
	}
	if a := flaky.attempts["exp/1"]; len(a) != 3 || a[2] != "3" {
		t.Errorf("flaky receiver attempts for exp/1 = %v, want 3 attempts, delivered on the 3rd", a)
	}
	if a := flaky.attempts["exp/2"]; len(a) != 1 {
		t.Errorf("flaky receiver attempts for exp/2 = %v, want 1", a)
	}
	if len(dead.attempts["exp/1"]) != 2 {
		t.Errorf("dead receiver got %d attempts, want MaxAttempts 2", len(dead.attempts["exp/1"]))
	}
	st := wh.Stats()
	if st.Delivered != 6 || st.Failed != 3 || st.Dropped != 0 {
		t.Errorf("stats = %+v, want 6 delivered, 3 failed", st)
	}
	// After Close nothing is sent.
	wh.Notify(experiments.Transition{Seq: 9, Experiment: "exp"}, experiments.State{})
	if st := wh.Stats(); st.Dropped != 3 {
		t.Errorf("dropped after close = %d, want 3", st.Dropped)
	}
}

func TestWebhookNotifyNeverBlocks(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) })
	wh := webhook.New([]experiments.Webhook{{URL: srv.URL, Secret: "s", MaxAttempts: 1}},
		webhook.WithQueueSize(4), webhook.WithLogger(slog.New(slog.DiscardHandler)))
	start := time.Now()
	for seq := int64(1); seq <= 100; seq++ {
		wh.Notify(experiments.Transition{Seq: seq, Experiment: "e"}, experiments.State{})
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Notify blocked for %v", d)
	}
	if st := wh.Stats(); st.Dropped < 90 {
		t.Errorf("dropped %d of 100 with a queue of 4 and a stuck receiver", st.Dropped)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = wh.Close(ctx) // abandons the stuck delivery
}

func TestSignature(t *testing.T) {
	t.Parallel()
	body := []byte(`{"experiment":"x"}`)
	sig := webhook.Sign([]byte("secret"), body)
	// Reference: echo -n '{"experiment":"x"}' | openssl dgst -sha256 -hmac secret
	if want := "sha256=a602c16d58a5b38545e2d90df131b82d9c07f142033737a83624d12c95238e7f"; sig != want {
		t.Fatalf("Sign = %q, want %q (openssl)", sig, want)
	}
	if !webhook.VerifySignature([]byte("secret"), body, sig) {
		t.Fatalf("signature %q does not verify", sig)
	}
	if webhook.VerifySignature([]byte("other"), body, sig) || webhook.VerifySignature([]byte("secret"), append(body, ' '), sig) {
		t.Fatal("signature verified with the wrong secret or body")
	}
}

// TestWebhookDriftAlert: a drift alert reaches receivers signed, marked
// "drift", and apart from transitions ("transition").
func TestWebhookDriftAlert(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []map[string]any
	badSig := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if !webhook.VerifySignature([]byte("s"), body, r.Header.Get(webhook.SignatureHeader)) {
			badSig++
		}
		var m map[string]any
		json.Unmarshal(body, &m)
		bodies = append(bodies, m)
	}))
	defer srv.Close()
	wh := webhook.New([]experiments.Webhook{{URL: srv.URL, Secret: "s"}}, webhook.WithLogger(slog.New(slog.DiscardHandler)))
	at := time.Unix(1_800_000_000, 0).UTC()
	wh.Notify(experiments.Transition{Seq: 1, Experiment: "exp", Action: experiments.ActionStart}, experiments.State{Experiment: "exp"})
	wh.NotifyDrift(context.Background(), drift.Alert{
		Result: drift.Result{Experiment: "exp", Variant: 1, Feature: "prompt_tokens", PSI: 0.31}, At: at})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := wh.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 || badSig != 0 {
		t.Fatalf("%d deliveries, %d bad signatures", len(bodies), badSig)
	}
	if bodies[0]["event"] != "transition" || bodies[1]["event"] != "drift" || bodies[1]["experiment"] != "exp" {
		t.Errorf("events %v / %v", bodies[0]["event"], bodies[1])
	}
	alert, _ := bodies[1]["alert"].(map[string]any)
	if alert["feature"] != "prompt_tokens" || alert["psi"] != 0.31 {
		t.Errorf("drift alert body %v", alert)
	}
}
