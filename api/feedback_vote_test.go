package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/recorder"
)

// voteServer is the feedback API in front of a real recorder and store.
func voteServer(t *testing.T, limits FeedbackLimits, now func() time.Time) (*gin.Engine, *recorder.Recorder, *memstore.Store) {
	t.Helper()
	exp := testExperiment()
	exp.Metrics = append(exp.Metrics, experiments.Metric{Name: "copies", Kind: experiments.MetricCount, MaxPerResponse: 3})
	st := memstore.New()
	rec := recorder.New(st, experiments.Recording{FlushInterval: experiments.Duration(5 * time.Millisecond)})
	t.Cleanup(func() { _ = rec.Close(context.Background()) })
	f := NewFeedback(signer, rec, func(id string) *experiments.Experiment {
		if id == exp.ID {
			return exp
		}
		return nil
	}, WithFeedbackClock(now), WithFeedbackLimits(limits))
	r := gin.New()
	f.Register(r)
	return r, rec, st
}

func userStats(t *testing.T, rec *recorder.Recorder, st *memstore.Store, metric string) experiments.Summary {
	t.Helper()
	if err := rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap, err := st.Summaries(context.Background(), "exp1", 1)
	if err != nil {
		t.Fatal(err)
	}
	return snap.Stats[experiments.VariantMetric{Variant: 1, Metric: metric}]
}

// TestFeedbackFloodOneVote is the issue's measurement turned into a test:
// one response's token posts 3,000 thumbs with distinct event ids (all
// "up" after a first "down"). Without rate limits every post is answered
// 200, and the user's statistics still move by exactly one vote: the
// first.
func TestFeedbackFloodOneVote(t *testing.T) {
	t.Parallel()
	r, rec, st := voteServer(t, FeedbackLimits{}, func() time.Time { return t0 })
	tok := token("exp1", 1, true, t0)
	for i := 0; i < 3000; i++ {
		v := "up"
		if i == 0 {
			v = "down"
		}
		w := do(r, "/v1/feedback", fmt.Sprintf(`{"event_id":"flood-%d","signals":{"thumbs":%q}}`, i, v),
			map[string]string{"X-Abgate-Token": tok})
		if w.Code != http.StatusOK {
			t.Fatalf("post %d: status %d: %s", i, w.Code, w.Body)
		}
	}
	got := userStats(t, rec, st, experiments.MetricThumbs)
	want := experiments.Summary{N: 1, SumX: 0, SumX2: 0, SumY: 1, SumY2: 1, SumXY: 0}
	if got != want {
		t.Fatalf("thumbs after a 3,000-post flood: %+v, want one vote (the first, down): %+v", got, want)
	}
	if s := rec.Stats(); s.DuplicateEvents != 2999 {
		t.Errorf("recorder counted %d duplicate events, want 2999", s.DuplicateEvents)
	}
}

// TestFeedbackCountCap: a count metric counts at most max_per_response
// events per response, whatever their event ids; another response of the
// same user has its own room.
func TestFeedbackCountCap(t *testing.T) {
	t.Parallel()
	r, rec, st := voteServer(t, FeedbackLimits{}, func() time.Time { return t0 })
	tok := token("exp1", 1, true, t0)
	other := signer.Issue(experiments.Token{Experiment: "exp1", Phase: 1, Variant: 1, Unit: signer.KeyUnit("user-1"),
		Analysed: true, RequestID: "req-2"}, t0)
	for i := 0; i < 50; i++ {
		for j, tk := range []string{tok, other} {
			// Event ids are unique per user (docs/api.md).
			if w := do(r, "/v1/feedback", fmt.Sprintf(`{"event_id":"c-%d-%d","signals":{"copies":1}}`, j, i),
				map[string]string{"X-Abgate-Token": tk}); w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	}
	// One user, two responses, 3 each: x = 6, y = 6.
	if got := userStats(t, rec, st, "copies"); got.N != 1 || got.SumX != 6 || got.SumY != 6 {
		t.Fatalf("copies: %+v, want one user with Σx = Σy = 6", got)
	}
}

// TestFeedbackRateLimit: past the per-token burst the API answers 429
// with Retry-After and an OpenAI-style body; the bucket refills with
// time; another response of the same user has its own bucket until the
// per-unit one runs dry.
func TestFeedbackRateLimit(t *testing.T) {
	t.Parallel()
	now := t0
	lim := FeedbackLimits{PerToken: Rate{Burst: 3, PerSecond: 0.5}, PerUnit: Rate{Burst: 5, PerSecond: 1}}
	r, _, _ := voteServer(t, lim, func() time.Time { return now })
	post := func(rid string) *httpResult {
		tk := signer.Issue(experiments.Token{Experiment: "exp1", Phase: 1, Variant: 1, Unit: signer.KeyUnit("user-1"),
			Analysed: true, RequestID: rid}, t0)
		w := do(r, "/v1/feedback", `{"signals":{"thumbs":"up"}}`, map[string]string{"X-Abgate-Token": tk})
		return &httpResult{w.Code, w.Header().Get("Retry-After"), w.Body.String()}
	}
	for i := 0; i < 3; i++ {
		if res := post("a"); res.code != 200 {
			t.Fatalf("post %d: %+v", i, res)
		}
	}
	res := post("a")
	if res.code != http.StatusTooManyRequests || res.retry != "2" || !contains(res.body, `"code":"rate_limit_exceeded"`) {
		t.Fatalf("4th post for one token: %+v; want 429, Retry-After 2, rate_limit_exceeded", res)
	}
	// Another response: 2 more pass the unit's burst of 5, then 429.
	for i := 0; i < 2; i++ {
		if res := post("b"); res.code != 200 {
			t.Fatalf("post b%d: %+v", i, res)
		}
	}
	if res := post("b"); res.code != http.StatusTooManyRequests || res.retry != "1" {
		t.Fatalf("past the unit's burst: %+v; want 429, Retry-After 1", res)
	}
	now = now.Add(2 * time.Second)
	if res := post("a"); res.code != 200 {
		t.Fatalf("after 2s: %+v, want 200", res)
	}
}

type httpResult struct {
	code  int
	retry string
	body  string
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
