package api

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
)

func init() { gin.SetMode(gin.ReleaseMode) }

type sink struct {
	mu   sync.Mutex
	got  []experiments.Feedback
	full int // accept this many, then refuse (-1: never refuse)
}

func (s *sink) Feedback(f experiments.Feedback) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.full >= 0 && len(s.got) >= s.full {
		return errors.New("queue full")
	}
	s.got = append(s.got, f)
	return nil
}

var (
	t0     = time.Unix(1_800_000_000, 0)
	signer = experiments.NewSigner([]byte("feedback-test-secret-0123456789abcdef"), time.Hour)
	maxEsc = 3.0
)

func testExperiment() *experiments.Experiment {
	return &experiments.Experiment{
		ID: "exp1",
		Variants: []experiments.Variant{
			{Name: "base", Model: "m"}, {Name: "ft", Model: "m-ft", Weight: 50},
		},
		Metrics: []experiments.Metric{
			{Name: "escalations", Kind: experiments.MetricCount, Max: &maxEsc},
			{Name: "resolved", Kind: experiments.MetricBinary},
		},
	}
}

func newServer(s *sink) *gin.Engine {
	exp := testExperiment()
	f := NewFeedback(signer, s, func(id string) *experiments.Experiment {
		if id == exp.ID {
			return exp
		}
		return nil
	}, WithFeedbackClock(func() time.Time { return t0 }))
	r := gin.New()
	f.Register(r)
	return r
}

func token(exp string, variant int, analysed bool, issued time.Time) string {
	return signer.Issue(experiments.Token{
		Experiment: exp, Phase: 1, Variant: variant, Unit: signer.KeyUnit("user-1"),
		Analysed: analysed, RequestID: "req-1",
	}, issued)
}

func do(r http.Handler, path, body string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func TestFeedbackOne(t *testing.T) {
	t.Parallel()
	good := token("exp1", 1, true, t0)
	tests := []struct {
		name     string
		body     string
		header   map[string]string
		status   int
		code     string // error code, when status != 200
		recorded int
	}{
		{name: "thumbs up in header", body: `{"signals":{"thumbs":"up"}}`,
			header: map[string]string{"X-Abgate-Token": good}, status: 200, recorded: 1},
		{name: "token in body, several signals", body: `{"token":"` + good + `","event_id":"e1","signals":{"rating":4,"correction":true,"completion_seconds":12.5,"escalations":2,"resolved":0}}`,
			status: 200, recorded: 5},
		{name: "missing token", body: `{"signals":{"thumbs":"up"}}`, status: 401, code: "missing_token"},
		{name: "forged token", body: `{"token":"` + good[:len(good)-2] + `AA","signals":{"thumbs":"up"}}`, status: 401, code: "invalid_token"},
		{name: "expired token", body: `{"token":"` + token("exp1", 1, true, t0.Add(-2*time.Hour)) + `","signals":{"thumbs":"up"}}`, status: 401, code: "token_expired"},
		{name: "unknown experiment", body: `{"token":"` + token("gone", 1, true, t0) + `","signals":{"thumbs":"up"}}`, status: 404, code: "experiment_not_found"},
		{name: "unknown metric", body: `{"token":"` + good + `","signals":{"stars":3}}`, status: 400, code: "unknown_metric"},
		{name: "rating out of range", body: `{"token":"` + good + `","signals":{"rating":6}}`, status: 400, code: "invalid_value"},
		{name: "rating not whole", body: `{"token":"` + good + `","signals":{"rating":3.5}}`, status: 400, code: "invalid_value"},
		{name: "thumbs sideways", body: `{"token":"` + good + `","signals":{"thumbs":"sideways"}}`, status: 400, code: "invalid_value"},
		{name: "binary 2", body: `{"token":"` + good + `","signals":{"correction":2}}`, status: 400, code: "invalid_value"},
		{name: "custom count over max", body: `{"token":"` + good + `","signals":{"escalations":4}}`, status: 400, code: "invalid_value"},
		{name: "negative seconds", body: `{"token":"` + good + `","signals":{"completion_seconds":-1}}`, status: 400, code: "invalid_value"},
		{name: "one bad signal rejects the event", body: `{"token":"` + good + `","signals":{"thumbs":"up","rating":9}}`, status: 400, code: "invalid_value"},
		{name: "no signals", body: `{"token":"` + good + `","signals":{}}`, status: 400, code: "invalid_value"},
		{name: "malformed JSON", body: `{"token":`, status: 400, code: "invalid_json"},
		{name: "unknown field", body: `{"token":"` + good + `","signal":{"thumbs":1}}`, status: 400, code: "invalid_json"},
		{name: "too large", body: `{"token":"` + strings.Repeat("x", maxFeedbackBody) + `"}`, status: 413, code: "body_too_large"},
		{name: "unanalysed unit accepted, not recorded", body: `{"token":"` + token("exp1", 0, false, t0) + `","signals":{"thumbs":"down"}}`, status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &sink{full: -1}
			w := do(newServer(s), "/v1/feedback", tc.body, tc.header)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.code != "" {
				var e errorBody
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code != tc.code || e.Error.Message == "" {
					t.Fatalf("error body %s, want code %q", w.Body, tc.code)
				}
			}
			if len(s.got) != tc.recorded {
				t.Fatalf("recorded %d signals, want %d", len(s.got), tc.recorded)
			}
		})
	}
}

func TestFeedbackAttribution(t *testing.T) {
	t.Parallel()
	s := &sink{full: -1}
	w := do(newServer(s), "/v1/feedback", `{"event_id":"evt-9","signals":{"thumbs":true}}`,
		map[string]string{"X-Abgate-Token": token("exp1", 1, true, t0)})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var res FeedbackResult
	json.Unmarshal(w.Body.Bytes(), &res)
	if res.Variant != "ft" || res.Accepted != 1 || !res.Analysed {
		t.Fatalf("result %+v", res)
	}
	got := s.got[0]
	want := experiments.Feedback{Experiment: "exp1", Phase: 1, Variant: 1, Unit: signer.KeyUnit("user-1"),
		RequestID: "req-1", EventID: unitScope("user-1") + ":evt-9/thumbs", Metric: "thumbs", Value: 1, At: t0}
	if got != want {
		t.Fatalf("recorded %+v, want %+v", got, want)
	}
}

func TestFeedbackQueueFull(t *testing.T) {
	t.Parallel()
	s := &sink{full: 0}
	w := do(newServer(s), "/v1/feedback", `{"signals":{"thumbs":"up"}}`,
		map[string]string{"X-Abgate-Token": token("exp1", 1, true, t0)})
	if w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d retry-after %q: %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}

func TestFeedbackBatch(t *testing.T) {
	t.Parallel()
	good := token("exp1", 1, true, t0)
	body := `{"events":[
		{"token":"` + good + `","event_id":"a","signals":{"thumbs":"up"}},
		{"token":"` + good + `","signals":{"rating":0}},
		{"signals":{"task_completed":true}},
		{"token":"bogus","signals":{"thumbs":"up"}}
	]}`
	s := &sink{full: -1}
	w := do(newServer(s), "/v1/feedback/batch", body, map[string]string{"X-Abgate-Token": good})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var res BatchResult
	json.Unmarshal(w.Body.Bytes(), &res)
	if res.Accepted != 2 || len(res.Rejected) != 2 || res.Rejected[0].Index != 1 || res.Rejected[1].Index != 3 ||
		res.Rejected[1].Error.Code != "invalid_token" {
		t.Fatalf("result %+v", res)
	}
	if len(s.got) != 2 {
		t.Fatalf("recorded %d", len(s.got))
	}

	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"empty batch", `{"events":[]}`, 400},
		{"all rejected", `{"events":[{"signals":{"thumbs":"up"}}]}`, 400},
		{"too many", `{"events":[` + strings.TrimSuffix(strings.Repeat(`{"signals":{}},`, maxBatchEvents+1), ",") + `]}`, 413},
	} {
		if w := do(newServer(&sink{full: -1}), "/v1/feedback/batch", tc.body, nil); w.Code != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, w.Code, tc.status, w.Body)
		}
	}

	// The recorder fills after one event: the batch stops there with 503
	// and says how many got in.
	s = &sink{full: 1}
	w = do(newServer(s), "/v1/feedback/batch", `{"events":[{"signals":{"thumbs":1}},{"signals":{"thumbs":0}}]}`,
		map[string]string{"X-Abgate-Token": good})
	if w.Code != 503 || !strings.Contains(w.Body.String(), `"accepted":1`) {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
}

// unitScope is the prefix that scopes a client's event id to a unit.
func unitScope(unit string) string {
	k := signer.KeyUnit(unit)
	return hex.EncodeToString(k[:8])
}

// TestFeedbackEventIDPerUser: event ids need only be unique per user; two
// users sending the same id are two events, and one user's retry is one.
func TestFeedbackEventIDPerUser(t *testing.T) {
	t.Parallel()
	s := &sink{full: -1}
	r := newServer(s)
	tokenFor := func(user string) string {
		return signer.Issue(experiments.Token{Experiment: "exp1", Phase: 1, Variant: 1, Unit: signer.KeyUnit(user), Analysed: true, RequestID: "r-" + user}, t0)
	}
	for _, user := range []string{"alice", "bob", "alice"} {
		if w := do(r, "/v1/feedback", `{"event_id":"msg-1","signals":{"thumbs":"up"}}`, map[string]string{"X-Abgate-Token": tokenFor(user)}); w.Code != 200 {
			t.Fatalf("%s: %d %s", user, w.Code, w.Body)
		}
	}
	ids := map[string]bool{}
	for _, f := range s.got {
		ids[f.EventID] = true
	}
	// The sink sees all three; the store de-duplicates by id: two ids.
	if len(ids) != 2 {
		t.Fatalf("event ids %v: want one per user", ids)
	}
}
