package experiments

import (
	"strconv"
	"time"

	"github.com/abgate/abgate/stats"
)

// This file holds what the shadow stage adds to the vocabulary: where
// Start leads, the judge gate's policy, and the feedback group that caps
// judged comparisons per user (docs/rollout.md, "Shadow stage").

// startStatus is where ActionStart leads: shadow when the experiment has
// a shadow block (no user sees a candidate until the judge passes it),
// running otherwise.
func (e *Experiment) startStatus() Status {
	if e.Shadow != nil && e.Judge != nil {
		return StatusShadow
	}
	return StatusRunning
}

// JudgePolicy is the shadow judge gate's policy from the experiment's
// judge and shadow blocks (defaults applied): the one the controller
// obeys and the reports show. Zero without a judge.
func (e *Experiment) JudgePolicy() stats.JudgePolicy {
	j := e.Judge
	if j == nil {
		return stats.JudgePolicy{}
	}
	p := stats.JudgePolicy{
		Alpha: j.Alpha, SuperiorityMargin: j.SuperiorityMargin, RequireSuperiority: j.RequireSuperiority,
		PositionBiasLimit: j.PositionBiasLimit, NonInferiorityMargin: DefaultJudgeNonInferiority,
		MaxPerUser: DefaultShadowMaxPerUser, MinUsers: DefaultShadowMinUsers,
	}
	if j.NonInferiorityMargin != nil {
		p.NonInferiorityMargin = *j.NonInferiorityMargin
	}
	if s := e.Shadow; s != nil {
		p.MaxPerUser, p.MinUsers = float64(max(s.MaxPerUser, 1)), float64(max(s.MinUsers, 1))
		p.MaxUsers, p.MinBothOrders = float64(s.MaxUsers), float64(s.MinBothOrders)
	}
	return p
}

// RampJudge is the live judge guardrail of the rollout's steps
// (stats.Policy.Judge): the gate's policy with the ramp's question,
// non-inferiority, and judge.ramp's Require. Nil without live judging
// (shadow.live_percent 0) or without a rollout.
func (e *Experiment) RampJudge() *stats.JudgeGuardrail {
	if e.Rollout == nil || e.Judge == nil || e.Shadow == nil || !(e.Shadow.LivePercent > 0) {
		return nil
	}
	p := e.JudgePolicy()
	p.MaxUsers, p.RequireSuperiority = 0, false
	return &stats.JudgeGuardrail{Policy: p, Require: e.Judge.Ramp == JudgeRampGuardrail}
}

// JudgeInput is one candidate's judge data in a period's snapshot: its
// judge_score and judge_first summaries.
func JudgeInput(snap Snapshot, candidate int) stats.JudgeInput {
	return stats.JudgeInput{
		Preference: snap.Stats[VariantMetric{candidate, MetricJudgeScore}],
		FirstShown: snap.Stats[VariantMetric{candidate, MetricJudgeFirst}],
	}
}

// ShadowVoteID is the RequestID judge feedback is recorded under in
// period: with PerResponse = max_per_user, the store counts at most that
// many judged comparisons per user and metric in the period, on every
// replica (Feedback.Vote), which the gate's guarantee needs.
func ShadowVoteID(period int) string {
	return "judge-p" + strconv.Itoa(period)
}

// ShadowSample is one request the base answered, handed by the gateway
// to the shadow replay after the answer went to the client: the request
// body as the client sent it and the answer as the client got it (raw:
// an SSE stream when Stream). The replay keeps it only in memory.
//
// During a ramp step (Shadow.LivePercent, Live) it is a request either
// arm answered: a candidate's goes to the base, the base's to each
// candidate, and the judge's preference for the served answer is the
// user's judge_served on the serving arm.
type ShadowSample struct {
	Experiment string
	// Variant served the answer: 0 in the shadow stage, the candidate
	// for a live judgment during a ramp step.
	Variant int
	// Live: served during a ramp step (the live judge), by the base
	// (Variant 0) or a candidate; false in the shadow stage.
	Live bool
	// Period is the data period of the allocation it was served under:
	// the judge's verdicts are recorded in it.
	Period int
	Unit   UnitKey
	Path   string
	Body   []byte
	Answer []byte
	Stream bool
	At     time.Time
}
