package api

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/rollout"
	"github.com/abgate/abgate/stats"
)

// ctlReport runs one experiment through the rollout controller (in-memory
// stores, simulated time) and builds its report the way cmd/abgate's
// report source does: from the lifecycle's state and history.
type ctlReport struct {
	e     experiments.Experiment
	clock *storetest.Clock
	stats *memstore.Store
	lc    *rollout.Lifecycle
	ctl   *rollout.Controller
	batch int
}

func newCtlReport(t *testing.T, e experiments.Experiment) *ctlReport {
	t.Helper()
	f := &ctlReport{e: e, clock: storetest.NewClock(), stats: memstore.New()}
	cfg := &experiments.Config{Experiments: []experiments.Experiment{e}}
	lcs := memstore.NewLifecycle(memstore.WithLifecycleClock(f.clock.Now))
	f.lc = rollout.NewLifecycle(lcs, cfg, rollout.WithClock(f.clock.Now))
	f.ctl = rollout.NewController(f.lc, f.stats, lcs, experiments.Controller{},
		rollout.WithClock(f.clock.Now), rollout.WithHolderID("t"), rollout.WithLogger(slog.New(slog.DiscardHandler)))
	if _, err := f.lc.Start(context.Background(), e.ID, "api:t", ""); err != nil {
		t.Fatal(err)
	}
	if e.Shadow != nil { // an operator passes the shadow stage: ramp step 1
		if _, err := f.lc.ShadowPass(context.Background(), e.ID, "api:t", ""); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// group is users of one variant (in one segment value) behaving alike.
type group struct {
	variant, users int
	thumbs, errs   float64 // probabilities
	lang           uint8   // segment value index (0: none)
	// judged is how many of the group's users the live judge compared
	// (once each), preferring the candidate's answer with probability
	// judgeWin.
	judged   int
	judgeWin float64
}

// feed records the groups' users in the current period: one request and
// one thumbs each.
func (f *ctlReport) feed(t *testing.T, groups ...group) {
	t.Helper()
	ctx := context.Background()
	st, err := f.lc.State(ctx, f.e.ID)
	if err != nil {
		t.Fatal(err)
	}
	f.batch++
	rng := rand.New(rand.NewPCG(uint64(f.batch), 5))
	b := &experiments.Batch{ID: fmt.Sprint("b", f.batch), Experiment: f.e.ID, Phase: st.Period}
	unit := uint64(f.batch) << 32
	for _, g := range groups {
		var seg experiments.SegmentValues
		if len(f.e.Segments) > 0 {
			seg = experiments.SegmentValues{N: 1, V: [4]uint8{g.lang}}
		}
		for i := range g.users {
			unit++
			var k experiments.UnitKey
			binary.BigEndian.PutUint64(k[:], unit)
			add := func(m string, x float64) {
				b.Deltas = append(b.Deltas, experiments.Delta{Variant: g.variant, Unit: k, Metric: m, DX: x, DY: 1, Segments: seg})
			}
			add(experiments.MetricRequests, 1)
			add(experiments.MetricError, bern(rng, g.errs))
			add(experiments.MetricThumbs, bern(rng, g.thumbs))
			if i < g.judged {
				add(experiments.MetricJudgeScore, bern(rng, g.judgeWin))
			}
		}
	}
	if _, err := f.stats.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
}

// report is the report now, from the lifecycle as cmd/abgate reads it.
func (f *ctlReport) report(t *testing.T) Report {
	t.Helper()
	ctx := context.Background()
	st, err := f.lc.State(ctx, f.e.ID)
	if err != nil {
		t.Fatal(err)
	}
	rs := ReportStatus{Status: string(st.Status), Step: st.Step, Period: st.Period, Started: st.StepStarted}
	switch st.Status {
	case experiments.StatusPromoted, experiments.StatusRolledBack, experiments.StatusStopped:
		rs.Ended = st.UpdatedAt
	case experiments.StatusRunning, experiments.StatusPaused:
		rs.Split = f.e.AllocationFor(st).Split(len(f.e.Variants))
	}
	hist, err := f.lc.History(ctx, f.e.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The controller's policy inputs from the history, as cmd/abgate's
	// report source reads them.
	prior := experiments.PriorOf(hist)
	rs.Test, rs.PeriodPrior = st.TestIndex(), prior.Metrics
	if f.e.Rollout.CarryOver {
		rs.CarriedLogE = prior.LogE
	}
	trans := ReportTransitions(hist)
	snap, err := f.stats.Summaries(ctx, f.e.ID, st.Period)
	if err != nil {
		t.Fatal(err)
	}
	return BuildReport(&f.e, rs, trans, snap, nil, f.clock.Now())
}

func codes(d stats.Decision) []string {
	var out []string
	for _, r := range d.Reasons {
		if !slices.Contains(out, string(r.Code)) {
			out = append(out, string(r.Code))
		}
	}
	slices.Sort(out)
	return out
}

func decisionJSON(t *testing.T, d stats.Decision) string {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReportSaysWhatTheControllerDecides drives every kind of decision
// through the rollout controller and checks the report: built just before
// the controller's evaluation it reaches the same verdict with the same
// reason codes (same policy, same input), and once the controller has
// ended the experiment it presents the decision recorded with that
// transition, even when later data would say otherwise.
func TestReportSaysWhatTheControllerDecides(t *testing.T) {
	t.Parallel()
	base := func(steps ...float64) experiments.Experiment {
		e := storetest.RolloutExperiment("x", 1, steps...)
		e.Rollout.Guardrails = []experiments.Guardrail{{Metric: experiments.MetricError, Margin: 0.02}}
		e.Rollout.MinUsers = 100
		return e
	}
	even := func(n int, thumbs0, thumbs1, err0, err1 float64) []group {
		return []group{{variant: 0, users: n, thumbs: thumbs0, errs: err0}, {variant: 1, users: n, thumbs: thumbs1, errs: err1}}
	}
	for _, tc := range []struct {
		name     string
		exp      experiments.Experiment
		groups   []group
		verdict  stats.Verdict
		code     stats.ReasonCode // one reason the decision must carry
		kind     string           // the report's verdict kind
		status   experiments.Status
		later    []group // data arriving after the controller ended it
		sentence string  // the ended report's sentence starts so
	}{
		{name: "promote", exp: base(50), groups: even(4000, 0.5, 0.6, 0.01, 0.01),
			verdict: stats.Promote, code: stats.ReasonBestCandidate, kind: VerdictPromote, status: experiments.StatusPromoted,
			later: even(20000, 0.5, 0.3, 0.01, 0.2), sentence: "Promoted"},
		{name: "rollback", exp: base(50), groups: even(4000, 0.5, 0.5, 0.01, 0.12),
			verdict: stats.Rollback, code: stats.ReasonGuardrailHarm, kind: VerdictHarm, status: experiments.StatusRolledBack,
			later: even(20000, 0.5, 0.7, 0.01, 0.01), sentence: "Rolled back"},
		{name: "continue", exp: base(50), groups: even(1000, 0.5, 0.5, 0.01, 0.01),
			verdict: stats.Continue, code: stats.ReasonPrimaryPending, kind: VerdictInconclusve, status: experiments.StatusRunning},
		{name: "stop_futility", exp: func() experiments.Experiment { e := base(50); e.Rollout.MaxUsers = 1000; return e }(),
			groups:  even(1000, 0.5, 0.5, 0.01, 0.01),
			verdict: stats.StopFutility, code: stats.ReasonMaxUsers, kind: VerdictFutility, status: experiments.StatusStopped,
			later: even(20000, 0.5, 0.7, 0.01, 0.01), sentence: "Stopped"},
		{name: "halt_srm", exp: base(50),
			groups:  []group{{variant: 0, users: 3000, thumbs: 0.5, errs: 0.01}, {variant: 1, users: 1000, thumbs: 0.5, errs: 0.01}},
			verdict: stats.HaltSRM, code: stats.ReasonSRM, kind: VerdictSRM, status: experiments.StatusStopped,
			later: even(20000, 0.5, 0.7, 0.01, 0.01), sentence: "Stopped"},
		{name: "advance", exp: base(10, 50),
			groups:  []group{{variant: 0, users: 18000, thumbs: 0.5, errs: 0.01}, {variant: 1, users: 2000, thumbs: 0.5, errs: 0.01}},
			verdict: stats.Advance, code: stats.ReasonGuardrailOK, kind: VerdictAdvance, status: experiments.StatusRunning},
		{name: "segment harm", exp: func() experiments.Experiment {
			e := base(50)
			e.Segments = []experiments.Segment{{Name: "language", Header: "X-Lang", Values: []string{"en", "de"}}}
			return e
		}(),
			groups: []group{
				{variant: 0, users: 4500, thumbs: 0.5, errs: 0.01, lang: 1}, {variant: 0, users: 1500, thumbs: 0.5, errs: 0.01, lang: 2},
				{variant: 1, users: 4500, thumbs: 0.65, errs: 0.01, lang: 1}, {variant: 1, users: 1500, thumbs: 0.35, errs: 0.01, lang: 2},
			},
			verdict: stats.Continue, code: stats.ReasonSegmentHarm, kind: VerdictSegmentHarm, status: experiments.StatusRunning},
		{name: "judge rollback", exp: func() experiments.Experiment {
			e := base(10, 50)
			e.Judge = &experiments.Judge{URL: "http://judge.invalid", Model: "judge", Ramp: experiments.JudgeRampWatch}
			e.Shadow = &experiments.Shadow{MinUsers: 30, MaxPerUser: 1, LivePercent: 10}
			return e
		}(),
			groups: []group{{variant: 0, users: 18000, thumbs: 0.5, errs: 0.01}, {variant: 1, users: 2000, thumbs: 0.5, errs: 0.01, judged: 300, judgeWin: 0.25}},
			// The metric guardrail holds; the judge alone rolls back.
			verdict: stats.Rollback, code: stats.ReasonJudgeWorse, kind: VerdictHarm, status: experiments.StatusRolledBack,
			later: []group{{variant: 0, users: 18000, thumbs: 0.5, errs: 0.01}, {variant: 1, users: 2000, thumbs: 0.5, errs: 0.01, judged: 2000, judgeWin: 0.9}}, sentence: "Rolled back"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newCtlReport(t, tc.exp)
			f.feed(t, tc.groups...)
			before := f.report(t)

			f.clock.Add(time.Minute)
			f.ctl.Tick(ctx)
			rec, err := f.lc.LatestDecision(ctx, f.e.ID)
			if err != nil || rec.Decision == nil {
				t.Fatalf("no controller decision: %+v, %v", rec, err)
			}
			ctl := *rec.Decision
			if ctl.Verdict != tc.verdict || !slices.Contains(codes(ctl), string(tc.code)) {
				t.Fatalf("controller: %s %v, want %s with %s (the scenario is wrong)", ctl.Verdict, codes(ctl), tc.verdict, tc.code)
			}
			if before.Decision.Verdict != ctl.Verdict || !slices.Equal(codes(before.Decision), codes(ctl)) {
				t.Errorf("report before the evaluation: %s %v; controller: %s %v",
					before.Decision.Verdict, codes(before.Decision), ctl.Verdict, codes(ctl))
			}
			if before.Verdict.Kind != tc.kind {
				t.Errorf("report verdict %s (%s), want %s", before.Verdict.Kind, before.Verdict.Sentence, tc.kind)
			}
			if tc.code == stats.ReasonJudgeWorse {
				if !strings.Contains(before.Verdict.Sentence, "live judge") || before.Policy.Judge == nil {
					t.Errorf("a judge rollback's report: policy %+v, sentence %q", before.Policy.Judge, before.Verdict.Sentence)
				}
				// The judge section shows the decision's judge result.
				j := before.Judge
				if j == nil || len(j.Candidates) != 1 {
					t.Fatalf("judge section %+v", j)
				}
				got, _ := json.Marshal(j.Candidates[0].Decision)
				want, _ := json.Marshal(ctl.Variants[0].Judge)
				if string(got) != string(want) {
					t.Errorf("judge section shows\n%s\nnot the controller's judge result\n%s", got, want)
				}
				if s := j.Candidates[0].Sentence; !strings.HasPrefix(s, "At this ramp step the live judge") || !strings.HasSuffix(s, "worse than the base; roll back.") {
					t.Errorf("judge section sentence %q", s)
				}
				if pl := before.policyLine(); !strings.Contains(pl, "live judge (watch): roll back below a 45.0% win rate, at alpha 0.045") {
					t.Errorf("policy line %q", pl)
				}
			}

			st, _ := f.lc.State(ctx, f.e.ID)
			if st.Status != tc.status {
				t.Fatalf("state after the evaluation: %s, want %s", st.Status, tc.status)
			}
			if len(tc.later) > 0 {
				f.feed(t, tc.later...)
			}
			after := f.report(t)
			if tc.verdict == stats.Advance {
				// A new step, a new period: nothing to present yet, and the
				// policy is now the full one of the last step.
				if after.Step != 2 || after.Policy.Mode != stats.FullMode || after.Verdict.Kind != VerdictNoData { // step 2 of 2, counted from 1
					t.Errorf("after advancing: step %d, mode %s, verdict %s", after.Step, after.Policy.Mode, after.Verdict.Kind)
				}
				return
			}
			if got, want := decisionJSON(t, after.Decision), decisionJSON(t, ctl); got != want {
				t.Errorf("report after the controller acted presents\n%s\nnot the controller's decision\n%s", got, want)
			}
			if after.Verdict.Kind != tc.kind {
				t.Errorf("report verdict after: %s (%s), want %s", after.Verdict.Kind, after.Verdict.Sentence, tc.kind)
			}
			if tc.sentence != "" && (!after.Ended || !strings.HasPrefix(after.Verdict.Sentence, tc.sentence)) {
				t.Errorf("ended report: ended %v, sentence %q; want it to open with %q", after.Ended, after.Verdict.Sentence, tc.sentence)
			}
		})
	}
}

// TestReportUsesThePeriodPrior: the controller closes a ramp period by
// advancing and stores the period's centres (experiments.PeriodPrior)
// with the transition; in the next period the controller and the report
// both centre the bounded tests with them (experiments.PriorOf of the
// same history), and reach the same decision, to the last digit.
func TestReportUsesThePeriodPrior(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := storetest.RolloutExperiment("x", 1, 10, 50)
	e.Rollout.Guardrails = []experiments.Guardrail{{Metric: experiments.MetricError, Margin: 0.02}}
	e.Rollout.MinUsers = 100
	f := newCtlReport(t, e)
	f.feed(t, group{variant: 0, users: 18000, thumbs: 0.5, errs: 0.01}, group{variant: 1, users: 2000, thumbs: 0.5, errs: 0.01})
	f.clock.Add(time.Minute)
	f.ctl.Tick(ctx)
	hist, err := f.lc.History(ctx, e.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := hist[len(hist)-1]
	if last.Action != experiments.ActionAdvance {
		t.Fatalf("last transition %s, want advance", last.Action)
	}
	for _, m := range []string{experiments.MetricThumbs, experiments.MetricError} {
		mp, ok := last.Prior[m]
		if !ok || !(mp.Center > 0 && mp.Center < 1) {
			t.Fatalf("advance's prior of %s: %+v (all: %+v)", m, mp, last.Prior)
		}
	}

	f.feed(t, even2(3000, 0.5, 0.56, 0.01, 0.01)...)
	before := f.report(t)
	f.clock.Add(time.Minute)
	f.ctl.Tick(ctx)
	rec, err := f.lc.LatestDecision(ctx, e.ID)
	if err != nil || rec.Decision == nil {
		t.Fatalf("no controller decision: %+v, %v", rec, err)
	}
	if got, want := decisionJSON(t, before.Decision), decisionJSON(t, *rec.Decision); got != want {
		t.Errorf("report presents\n%s\nnot the controller's decision\n%s", got, want)
	}
	// Without the prior the decision differs (the centre is used).
	plain := e.PolicyAt(1, 1, experiments.Prior{})
	snap, _ := f.stats.Summaries(ctx, e.ID, hist[len(hist)-1].Period)
	d := stats.Decide(experiments.RolloutInput(&e, snap, e.AllocationFor(experiments.State{Status: experiments.StatusRunning, Step: 1}), plain), plain)
	if decisionJSON(t, d) == decisionJSON(t, *rec.Decision) {
		t.Error("the decision without the prior is the same: the centre is not used")
	}
}

func even2(n int, thumbs0, thumbs1, err0, err1 float64) []group {
	return []group{{variant: 0, users: n, thumbs: thumbs0, errs: err0}, {variant: 1, users: n, thumbs: thumbs1, errs: err1}}
}
