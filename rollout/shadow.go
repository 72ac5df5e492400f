package rollout

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// ReasonJudgeWorse starts the Reason of the stop that ends a shadow stage
// whose candidate the judge shows worse: no user was exposed to it.
const ReasonJudgeWorse = "candidate worse on the judge"

// evaluateShadow is the controller's rule for an experiment in its
// shadow stage (docs/rollout.md, "Shadow stage"): for each candidate,
// stats.JudgeGate on the period's judge_score and judge_first summaries
// with the experiment's JudgePolicy. Any candidate shown worse stops the
// experiment (no user ever saw a candidate); every candidate passing
// moves it to ramp step 1 (shadow_pass); otherwise it stays in shadow,
// inconclusive included: a position-biased judge, max_users or
// max_duration reached are never favourable, a person decides. The
// decisions go with the transition and the recommendation.
func (c *Controller) evaluateShadow(ctx context.Context, e *experiments.Experiment, s experiments.State, cmd experiments.Command, now time.Time) error {
	snap, err := c.stats.Summaries(ctx, e.ID, s.Period)
	if err != nil {
		return fmt.Errorf("read statistics of %q period %d: %w", e.ID, s.Period, err)
	}
	pol := e.JudgePolicy()
	ds := make([]stats.JudgeDecision, 0, len(e.Variants)-1)
	pass, worse := true, -1
	for v := 1; v < len(e.Variants); v++ {
		d := stats.JudgeGate(experiments.JudgeInput(snap, v), pol)
		ds = append(ds, d)
		pass = pass && d.Verdict == stats.JudgePass
		if d.Verdict == stats.JudgeStopWorse && worse < 0 {
			worse = v
		}
	}
	rec := experiments.Recommendation{Experiment: e.ID, At: now, Step: -1, Period: s.Period, Judge: ds, Fence: cmd.Fence}
	switch {
	case worse > 0:
		rec.Action = experiments.ActionStop
		cmd.Reason = fmt.Sprintf("%s: %s; no user was exposed to it", ReasonJudgeWorse, judgeSummary(e, worse, ds[worse-1]))
	case pass:
		rec.Action = experiments.ActionShadowPass
		var parts []string
		for v := 1; v < len(e.Variants); v++ {
			parts = append(parts, judgeSummary(e, v, ds[v-1]))
		}
		cmd.Reason = "judge gate passed: " + strings.Join(parts, "; ") + "; ramp step 1 begins"
	default:
		rec.Note = "shadow: " + judgeNotes(e, ds)
		if md := time.Duration(e.Shadow.MaxDuration); md > 0 && now.Sub(s.StepStarted) >= md {
			rec.Note = "shadow max_duration reached without a conclusion: a person decides: shadow_pass (POST /api/v1/experiments/" + e.ID + "/shadow_pass) or stop; " + rec.Note
		}
	}
	if rec.Action != "" && !e.Rollout.Manual {
		cmd.Action, cmd.Judge = rec.Action, ds
		for _, d := range ds {
			for _, r := range d.Reasons {
				cmd.Codes = appendOnce(cmd.Codes, string(r.Code))
			}
		}
		rec.Applied, err = c.apply(ctx, cmd)
	} else if rec.Action != "" {
		rec.Note = "manual rollout: recommendation only. " + cmd.Reason
	}
	if perr := c.lc.store.PutRecommendation(ctx, rec); perr != nil && err == nil {
		err = fmt.Errorf("store recommendation of %q: %w", e.ID, perr)
	}
	return err
}

// judgeSummary says one candidate's judge result in a sentence part.
func judgeSummary(e *experiments.Experiment, v int, d stats.JudgeDecision) string {
	s := fmt.Sprintf("%s %s", e.Variants[v].Name, d.Verdict)
	if d.WinRate != nil {
		s += fmt.Sprintf(", judge win rate %.1f%% [%.1f%%, %.1f%%] over %.0f users", 100**d.WinRate, 100*d.WinRateCI.Low, 100*d.WinRateCI.High, d.Users)
	}
	if d.PositionBias != nil {
		s += fmt.Sprintf(", position bias %+.1f points", 100**d.PositionBias)
	}
	return s
}

// judgeNotes explains why the gate waits.
func judgeNotes(e *experiments.Experiment, ds []stats.JudgeDecision) string {
	var parts []string
	for i, d := range ds {
		p := judgeSummary(e, i+1, d)
		var msgs []string
		for _, r := range d.Reasons {
			msgs = append(msgs, r.Message)
		}
		if len(msgs) > 0 {
			p += " (" + strings.Join(msgs, "; ") + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
