package recorder_test

import (
	"context"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/recorder"
)

// TestJointSums: for an experiment with a live judge and a human metric,
// the recorder's batches ask the store for the joint sums of the human
// signal and judge_served, so thumbs and judge scores recorded for the
// same user (in either order, in different flushes) meet in them; an
// experiment without a live judge gets none.
func TestJointSums(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	live := &experiments.Experiment{ID: "live", Primary: experiments.MetricThumbs,
		Judge: &experiments.Judge{}, Shadow: &experiments.Shadow{LivePercent: 5}}
	plain := &experiments.Experiment{ID: "plain", Primary: experiments.MetricThumbs, Judge: &experiments.Judge{}, Shadow: &experiments.Shadow{}}
	exps := map[string]*experiments.Experiment{"live": live, "plain": plain}
	store := memstore.New()
	flush := func(fbs ...experiments.Feedback) {
		rec := recorder.New(store, experiments.Recording{BatchSize: 1 << 20, FlushInterval: experiments.Duration(time.Hour)},
			recorder.WithLogger(quiet), recorder.WithClock(func() time.Time { return now }),
			recorder.WithExperiments(func(id string) *experiments.Experiment { return exps[id] }))
		for _, f := range fbs {
			if err := rec.Feedback(f); err != nil {
				t.Fatal(err)
			}
		}
		if err := rec.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	fb := func(exp string, u int, metric string, v float64) experiments.Feedback {
		return experiments.Feedback{Experiment: exp, Phase: 1, Variant: 0, Unit: storetest.Unit(u), Metric: metric, Value: v, At: now}
	}
	for _, exp := range []string{"live", "plain"} {
		flush(fb(exp, 1, experiments.MetricThumbs, 1), fb(exp, 2, experiments.MetricJudgeServed, 0.25), fb(exp, 3, experiments.MetricJudgeServed, 1))
		flush(fb(exp, 1, experiments.MetricJudgeServed, 0.75), fb(exp, 2, experiments.MetricThumbs, 0), fb(exp, 2, experiments.MetricThumbs, 1))
	}
	k := experiments.JointKey{Variant: 0, Human: experiments.MetricThumbs, Judge: experiments.MetricJudgeServed}
	snap, err := store.Summaries(context.Background(), "live", 1)
	if err != nil {
		t.Fatal(err)
	}
	// Users 1 (h 1, f ¾) and 2 (h ½, f ¼) are labelled, user 3 (f 1) is not.
	got := snap.Joint[k]
	want := experiments.JointSummary{}
	want.PPI.Labeled, want.PPI.SumHuman, want.PPI.SumHuman2 = 2, 1.5, 1.25
	want.PPI.SumJudge, want.PPI.SumJudge2, want.PPI.SumHumanJudge = 1, 0.625, 0.75+0.125
	want.PPI.Unlabeled, want.PPI.SumJudgeU, want.PPI.SumJudgeU2 = 1, 1, 1
	want.Agree[1][1], want.Agree[0][0] = 1, 1 // user 1: both good; user 2: h ½ is not above the cut, f ¼ neither
	if got != want {
		t.Errorf("joint sums\n got  %+v\n want %+v", got, want)
	}
	if snap, _ := store.Summaries(context.Background(), "plain", 1); len(snap.Joint) != 0 {
		t.Errorf("an experiment without a live judge got joint sums: %+v", snap.Joint)
	}
}
