package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/webhook"
)

// receiver is a webhook endpoint that checks signatures, can fail its
// first requests, and records what it accepted.
type receiver struct {
	secret []byte
	mu     sync.Mutex
	fail   int
	bad    int            // requests with an invalid signature
	tries  map[string]int // delivery id -> requests
	got    map[string]int // delivery id -> accepted deliveries
	body   map[string]webhook.Payload
	order  []string
}

func newReceiver(t *testing.T, secret string, fail int) (*receiver, string) {
	r := &receiver{secret: []byte(secret), fail: fail, tries: map[string]int{}, got: map[string]int{}, body: map[string]webhook.Payload{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv.URL
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	id := req.Header.Get(webhook.DeliveryHeader)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tries[id]++
	if !webhook.VerifySignature(r.secret, b, req.Header.Get(webhook.SignatureHeader)) {
		r.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.fail > 0 {
		r.fail--
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	var p webhook.Payload
	if err := json.Unmarshal(b, &p); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.got[id]++
	r.body[id] = p
	r.order = append(r.order, id)
}

// checkDeliveries asserts r accepted every transition of hist exactly
// once, with a valid signature and the transition and state it describes.
func (r *receiver) checkDeliveries(t *testing.T, name string, hist []experiments.Transition) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bad != 0 {
		t.Errorf("%s: %d requests with a bad signature", name, r.bad)
	}
	if len(r.got) != len(hist) {
		t.Errorf("%s: %d deliveries for %d transitions: %v", name, len(r.got), len(hist), r.order)
	}
	for _, tr := range hist {
		id := tr.Experiment + "/" + itoa(tr.Seq)
		if r.got[id] != 1 {
			t.Errorf("%s: transition %s delivered %d times", name, id, r.got[id])
			continue
		}
		p := r.body[id]
		if p.Transition.Action != tr.Action || p.Transition.Seq != tr.Seq || p.State.Version != tr.Seq || p.State.Status != tr.To {
			t.Errorf("%s: payload of %s = %+v", name, id, p)
		}
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// Webhook receivers see every transition of a rollout exactly once with a
// valid signature; one that fails twice gets the first on its 3rd attempt.
func TestWebhooksSeeEveryTransition(t *testing.T) {
	t.Parallel()
	good, goodURL := newReceiver(t, "s-good", 0)
	flaky, flakyURL := newReceiver(t, "s-flaky", 2)
	wh := webhook.New([]experiments.Webhook{
		{URL: goodURL, Secret: "s-good", MaxAttempts: 5},
		{URL: flakyURL, Secret: "s-flaky", MaxAttempts: 3},
	}, webhook.WithBackoff(10*time.Millisecond, 50*time.Millisecond), webhook.WithLogger(quiet))
	o := scenario{arms: []arm{baseArm, betterArm}, rollout: defaultRollout(), usersPerTick: 2000, maxTicks: 120, seed: 7, notifier: wh}.run(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := wh.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if o.state.Status != experiments.StatusPromoted || len(o.history) != 4 {
		t.Fatalf("scenario did not promote\n%s", o)
	}
	good.checkDeliveries(t, "good", o.history)
	flaky.checkDeliveries(t, "flaky", o.history)
	first := o.history[0].Experiment + "/1"
	if flaky.tries[first] != 3 {
		t.Errorf("flaky receiver: %d attempts for the first transition, want 3", flaky.tries[first])
	}
	if st := wh.Stats(); st.Delivered != 8 || st.Failed != 0 || st.Dropped != 0 {
		t.Errorf("webhook stats %+v", st)
	}
}
