package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// testDrift: drift histogram increments add up per hour, across phases
// and batches, and a retried batch counts once.
func testDrift(t *testing.T, s experiments.Store) {
	dr, ok := s.(experiments.DriftReader)
	if !ok {
		t.Skip("store does not implement DriftReader")
	}
	exp := NewID("drift")
	h0 := experiments.HourOf(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	b1 := &experiments.Batch{ID: BatchID(), Experiment: exp, Phase: 1, Hist: []experiments.HistDelta{
		{Variant: 0, Feature: experiments.DriftPromptTokens, Hour: h0, Bin: 7, N: 3},
		{Variant: 1, Feature: experiments.DriftPromptTokens, Hour: h0, Bin: 7, N: 2},
		{Variant: 1, Feature: experiments.DriftError, Hour: h0 + 1, Bin: 1, N: 1},
	}}
	b2 := &experiments.Batch{ID: BatchID(), Experiment: exp, Phase: 2, Hist: []experiments.HistDelta{
		{Variant: 0, Feature: experiments.DriftPromptTokens, Hour: h0, Bin: 7, N: 4},
	}}
	apply(t, s, b1, b2, b1) // b1 retried
	hs, err := dr.DriftHistograms(context.Background(), exp, h0.Time(), (h0 + 2).Time())
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || !hs[0].Hour.Equal(h0.Time()) {
		t.Fatalf("hours %+v", hs)
	}
	if n := hs[0].Counts[experiments.HistKey{Variant: 0, Feature: experiments.DriftPromptTokens, Bin: 7}]; n != 7 {
		t.Errorf("variant 0 prompt bin 7 = %d, want 7", n)
	}
	if n := hs[0].Counts[experiments.HistKey{Variant: 1, Feature: experiments.DriftPromptTokens, Bin: 7}]; n != 2 {
		t.Errorf("variant 1 prompt bin 7 = %d, want 2", n)
	}
	if n := hs[1].Counts[experiments.HistKey{Variant: 1, Feature: experiments.DriftError, Bin: 1}]; n != 1 {
		t.Errorf("errors = %d, want 1", n)
	}
	if hs, _ := dr.DriftHistograms(context.Background(), exp, (h0 + 1).Time(), (h0 + 2).Time()); len(hs) != 1 {
		t.Errorf("window of one hour: %d hours", len(hs))
	}
}

// testFeedbackLog: records round-trip, a repeated event is exported once,
// and records past their expiry (free text past its retention) are gone.
func testFeedbackLog(t *testing.T, s experiments.Store) {
	fl, ok := s.(experiments.FeedbackLog)
	if !ok {
		t.Skip("store does not implement FeedbackLog")
	}
	exp := NewID("fblog")
	// Stores may run on an injected clock: live records expire far in
	// the future, the expired one long ago.
	now := time.Now().UTC().Truncate(time.Millisecond)
	live := now.AddDate(20, 0, 0)
	r1 := experiments.FeedbackRecord{RequestID: "r1", EventID: "e1/rating", Variant: 1, Metric: experiments.MetricRating, Value: 4, At: now.Add(-time.Minute), Expires: live}
	r2 := experiments.FeedbackRecord{RequestID: "r2", Variant: 0, Metric: experiments.MetricCorrection, Value: 1, At: now, CorrectionText: "it is 42", Expires: live}
	gone := experiments.FeedbackRecord{RequestID: "r3", Metric: experiments.MetricCorrection, Value: 1, At: now.Add(-2 * time.Hour), Comment: "old",
		Expires: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)}
	retry := r1
	retry.At = now.Add(-30 * time.Second)
	apply(t, s, &experiments.Batch{ID: BatchID(), Experiment: exp, Phase: 1, Records: []experiments.FeedbackRecord{r1, gone}},
		&experiments.Batch{ID: BatchID(), Experiment: exp, Phase: 1, Records: []experiments.FeedbackRecord{retry, r2}})
	got, err := fl.FeedbackRecords(context.Background(), exp, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].RequestID != "r1" || got[1].RequestID != "r2" || got[1].CorrectionText != "it is 42" || got[0].Value != 4 {
		t.Fatalf("records %+v", got)
	}
	if !got[0].At.Equal(r1.At) {
		t.Errorf("at %v, want %v", got[0].At, r1.At)
	}
	if got, _ := fl.FeedbackRecords(context.Background(), exp, now.Add(-10*time.Second), 0); len(got) != 1 {
		t.Errorf("since filter: %+v", got)
	}
	// An export that resumes after r1 (since between r1 and its retry)
	// must not hand out the retried event a second time.
	if got, _ := fl.FeedbackRecords(context.Background(), exp, now.Add(-45*time.Second), 0); len(got) != 1 || got[0].RequestID != "r2" {
		t.Errorf("since between an event and its retry: %+v, want only r2", got)
	}
}
