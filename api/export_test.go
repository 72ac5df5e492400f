package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/recorder"
)

// exportEnv is the feedback API and the export over one recorder and
// memstore, with two experiments: "texts" opts in to feedback_text,
// "plain" does not.
type exportEnv struct {
	store *memstore.Store
	rec   *recorder.Recorder
	r     *gin.Engine
	now   time.Time
}

func newExportEnv(t *testing.T) *exportEnv {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	texts := testExperiment()
	texts.ID, texts.FeedbackText, texts.FeedbackTextRetention = "texts", true, experiments.Duration(24*time.Hour)
	plain := testExperiment()
	plain.ID = "plain"
	lookup := func(id string) *experiments.Experiment {
		switch id {
		case texts.ID:
			return texts
		case plain.ID:
			return plain
		}
		return nil
	}
	env := &exportEnv{store: memstore.New(), now: now}
	env.rec = recorder.New(env.store, experiments.Recording{FlushInterval: experiments.Duration(time.Millisecond)})
	env.r = gin.New()
	NewFeedback(signer, env.rec, lookup, WithFeedbackClock(func() time.Time { return now })).Register(env.r)
	NewFeedbackExport(env.store, lookup).Register(env.r)
	return env
}

func (e *exportEnv) send(t *testing.T, exp, rid string, variant int, body string) FeedbackResult {
	t.Helper()
	tok := signer.Issue(experiments.Token{Experiment: exp, Phase: 1, Variant: variant, Unit: signer.KeyUnit("u-" + rid),
		Analysed: true, RequestID: rid, Segments: experiments.SegmentValues{N: 1, V: [4]uint8{2}}}, e.now)
	req := httptest.NewRequest(http.MethodPost, "/v1/feedback", strings.NewReader(body))
	req.Header.Set("X-Abgate-Token", tok)
	w := httptest.NewRecorder()
	e.r.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("feedback: %d %s", w.Code, w.Body)
	}
	var res FeedbackResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func (e *exportEnv) export(t *testing.T, exp, query string) []ExportRecord {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/experiments/"+exp+"/feedback.jsonl"+query, nil)
	w := httptest.NewRecorder()
	e.r.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("export: %d %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") {
		t.Errorf("content type %q", ct)
	}
	var out []ExportRecord
	sc := bufio.NewScanner(w.Body)
	for sc.Scan() {
		var r ExportRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// TestFeedbackExportRoundTrip: feedback sent through the API comes back
// from the export with its request id, variant, time, value and text.
func TestFeedbackExportRoundTrip(t *testing.T) {
	env := newExportEnv(t)
	res := env.send(t, "texts", "req-1", 1, `{"event_id":"e1","signals":{"correction":1,"rating":2},"correction_text":"The refund window is 30 days.","comment":"wrong policy"}`)
	if !res.TextStored {
		t.Error("text not stored for an opted-in experiment")
	}
	env.send(t, "texts", "req-2", 0, `{"signals":{"thumbs":"up"}}`)
	env.send(t, "texts", "req-1", 1, `{"event_id":"e1","signals":{"correction":1,"rating":2},"correction_text":"The refund window is 30 days."}`) // retry
	if err := env.rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := env.export(t, "texts", "")
	if len(got) != 3 {
		t.Fatalf("%d records, want 3 (the retry counted once): %+v", len(got), got)
	}
	byKey := map[string]ExportRecord{}
	for _, r := range got {
		byKey[r.RequestID+"/"+r.Metric] = r
	}
	c := byKey["req-1/correction"]
	if c.Variant != "ft" || c.VariantIndex != 1 || c.Value != 1 || !strings.HasSuffix(c.EventID, ":e1/correction") || !c.At.Equal(env.now) ||
		c.CorrectionText != "The refund window is 30 days." || c.Comment != "wrong policy" || c.Experiment != "texts" {
		t.Errorf("correction record %+v", c)
	}
	if r := byKey["req-1/rating"]; r.Value != 2 || r.CorrectionText != "" {
		t.Errorf("rating record %+v (text goes with the correction only)", r)
	}
	if r := byKey["req-2/thumbs"]; r.Variant != "base" || r.Value != 1 {
		t.Errorf("thumbs record %+v", r)
	}
	if only := env.export(t, "texts", "?metric=rating,thumbs"); len(only) != 2 {
		t.Errorf("metric filter: %+v", only)
	}
	if later := env.export(t, "texts", "?since="+env.now.Add(time.Second).Format(time.RFC3339)); len(later) != 0 {
		t.Errorf("since filter: %+v", later)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/v1/experiments/nope/feedback.jsonl", nil)
	w := httptest.NewRecorder()
	env.r.ServeHTTP(w, req)
	if w.Code != http.StatusNotFound {
		t.Errorf("unknown experiment: %d", w.Code)
	}
}

// TestFeedbackTextNotStoredWithoutOptIn: an experiment without
// feedback_text keeps the signal but never the text, anywhere in the
// store.
func TestFeedbackTextNotStoredWithoutOptIn(t *testing.T) {
	env := newExportEnv(t)
	res := env.send(t, "plain", "req-9", 1, `{"signals":{"correction":1},"correction_text":"secret customer data","comment":"also secret"}`)
	if res.TextStored || res.Accepted != 1 {
		t.Errorf("result %+v", res)
	}
	if err := env.rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs, err := env.store.FeedbackRecords(context.Background(), "plain", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Metric != "correction" {
		t.Fatalf("records %+v", recs)
	}
	if recs[0].Comment != "" || recs[0].CorrectionText != "" {
		t.Errorf("text stored without opt-in: %+v", recs[0])
	}
	// The segments of the token reached the statistics.
	snap, _ := env.store.Summaries(context.Background(), "plain", 1)
	if s := snap.Segments[experiments.SegmentKey{Variant: 1, Metric: "correction", Dimension: 0, Value: 2}]; s.N != 1 {
		t.Errorf("segment statistics of the feedback: %+v", snap.Segments)
	}
}

// TestFeedbackTextRetention: stored text disappears from the store when
// its retention ends.
func TestFeedbackTextRetention(t *testing.T) {
	now := time.Now().UTC()
	clock := now
	st := memstore.New(memstore.WithClock(func() time.Time { return clock }))
	rec := experiments.FeedbackRecord{RequestID: "r", Metric: "correction", Value: 1, At: now, CorrectionText: "x", Expires: now.Add(time.Hour)}
	if _, err := st.Apply(context.Background(), &experiments.Batch{ID: "b", Experiment: "e", Phase: 1, Records: []experiments.FeedbackRecord{rec}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.FeedbackRecords(context.Background(), "e", time.Time{}, 0); len(got) != 1 {
		t.Fatalf("before retention: %+v", got)
	}
	clock = now.Add(2 * time.Hour)
	if got, _ := st.FeedbackRecords(context.Background(), "e", time.Time{}, 0); len(got) != 0 {
		t.Errorf("text kept past its retention: %+v", got)
	}
}
