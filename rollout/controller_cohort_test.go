package rollout_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/storetest"
)

// feedUnits writes one request (2% errors) for each unit of each arm in
// the current period, with the recorder's Covariates when cov (what it
// sends for cohort "new": the first-exposure record).
func (f *ctlFixture) feedUnits(t *testing.T, cov bool, arms ...[]int) {
	t.Helper()
	ctx := context.Background()
	st := f.state(t)
	f.batch++
	b := &experiments.Batch{ID: fmt.Sprint("c", f.batch), Experiment: "ctl", Phase: st.Period}
	if cov {
		b.Covariates = experiments.NewCovariates(&f.e)
	}
	for v, units := range arms {
		for i, u := range units {
			k := storetest.Unit(u)
			b.Deltas = append(b.Deltas,
				experiments.Delta{Variant: v, Unit: k, Metric: experiments.MetricRequests, DX: 1, DY: 1},
				experiments.Delta{Variant: v, Unit: k, Metric: experiments.MetricError, DX: float64(boolInt(i%50 == 0)), DY: 1})
		}
	}
	if _, err := f.stats.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
}

func span(lo, hi int) []int {
	out := make([]int, 0, hi-lo)
	for u := lo; u < hi; u++ {
		out = append(out, u)
	}
	return out
}

// TestControllerCohort: at the second step the candidate's users came back
// far more often than the control's (an engagement effect): 12 000
// returning users against 6 000, while the 4 000 users first exposed in
// the step split 2 000 / 2 000 as the 50% step should. With cohort "new"
// (the default) the controller decides on the newly exposed users and
// does not halt; with "all" the same data halt the step on the SRM check.
// Without the first-exposure record, "new" falls back to every active
// user and says so in the recommendation.
func TestControllerCohort(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cohort   string
		cov      bool
		halt     bool
		fallback bool
	}{
		{"", true, false, false},
		{experiments.CohortAll, true, true, false},
		{"", false, true, true},
	} {
		t.Run(fmt.Sprintf("cohort %q, record %v", tc.cohort, tc.cov), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newCtlFixture(t)
			f.e.Rollout.Cohort = tc.cohort
			f.cfg.Experiments[0] = f.e
			if _, err := f.lc.Start(ctx, "ctl", "api:t", ""); err != nil {
				t.Fatal(err)
			}
			// Step 1 (10%): units 0..17 999 on the control, 18 000..19 999
			// on the candidate.
			f.feedUnits(t, tc.cov, span(0, 18000), span(18000, 20000))
			f.clock.Add(11 * time.Minute)
			f.ctl.Tick(ctx)
			if s := f.state(t); s.Step != 1 {
				rec, _ := f.lc.LatestDecision(ctx, "ctl")
				t.Fatalf("step 1 did not advance: %+v; %s", s, rec.Note)
			}
			// Step 2 (50%): returning 6 000 control users and 12 000 on the
			// candidate (its own 2 000 and 10 000 moved from the control's
			// range), and 2 000 new users per arm.
			f.feedUnits(t, tc.cov, append(span(0, 6000), span(30000, 32000)...), append(span(8000, 20000), span(32000, 34000)...))
			f.clock.Add(time.Minute)
			f.ctl.Tick(ctx)
			rec, err := f.lc.LatestDecision(ctx, "ctl")
			if err != nil {
				t.Fatal(err)
			}
			halted := rec.Decision.Verdict == "halt_srm"
			if halted != tc.halt {
				t.Errorf("verdict %s (users %v), want a halt: %v", rec.Decision.Verdict, rec.Decision.SRM, tc.halt)
			}
			if got := strings.Contains(rec.Note, "cohort new: the store has no first-exposure sums"); got != tc.fallback {
				t.Errorf("note %q: fallback mentioned %v, want %v", rec.Note, got, tc.fallback)
			}
		})
	}
}
