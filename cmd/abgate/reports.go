package main

import (
	"context"
	"sort"

	"github.com/abgate/abgate/api"
	"github.com/abgate/abgate/experiments"
)

// reportSource adapts the process's config and lifecycle to what the
// reports read. Experiments with a rollout have a lifecycle state; the
// others run with their configured weights for as long as they are
// configured.
type reportSource struct{ a *app }

var _ api.ReportSource = reportSource{}

func (s reportSource) Experiment(id string) (*experiments.Experiment, bool) {
	e := s.a.cfg.Load().Experiment(id)
	return e, e != nil
}

func (s reportSource) Experiments() []*experiments.Experiment {
	cfg := s.a.cfg.Load()
	out := make([]*experiments.Experiment, 0, len(cfg.Experiments))
	for i := range cfg.Experiments {
		out = append(out, &cfg.Experiments[i])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s reportSource) Status(ctx context.Context, id string) (api.ReportStatus, error) {
	e := s.a.cfg.Load().Experiment(id)
	if e == nil {
		return api.ReportStatus{}, experiments.ErrNotFound
	}
	lc := s.a.lifecycle
	if lc == nil || e.Rollout == nil {
		return api.ReportStatus{Status: string(experiments.StatusRunning), Step: -1, Period: e.PhaseOrOne()}, nil
	}
	st, err := lc.State(ctx, id)
	if err != nil {
		return api.ReportStatus{}, err
	}
	rs := api.ReportStatus{Status: string(st.Status), Step: st.Step, Period: st.Period, Started: st.StepStarted, Test: st.TestIndex()}
	// The controller's policy inputs from the history (PriorOf).
	ts, err := lc.History(ctx, id, 0)
	if err != nil {
		return api.ReportStatus{}, err
	}
	prior := experiments.PriorOf(ts)
	rs.PeriodPrior = prior.Metrics
	if e.Rollout.CarryOver {
		rs.CarriedLogE = prior.LogE
	}
	switch st.Status {
	case experiments.StatusPromoted, experiments.StatusRolledBack, experiments.StatusStopped:
		rs.Ended = st.UpdatedAt
	}
	if st.Status == experiments.StatusRunning || st.Status == experiments.StatusPaused {
		rs.Split = e.AllocationFor(st).Split(len(e.Variants))
	}
	return rs, nil
}

func (s reportSource) Transitions(ctx context.Context, id string) ([]api.ReportTransition, error) {
	if s.a.lifecycle == nil {
		return nil, nil
	}
	ts, err := s.a.lifecycle.History(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	return api.ReportTransitions(ts), nil
}

// shadowSpend adapts the shadow replay's counts to the reports' judge
// section (api.WithReportsShadow).
func (a *app) shadowSpend(exp string) (api.ShadowSpend, bool) {
	if a.shadow == nil {
		return api.ShadowSpend{}, false
	}
	st, ok := a.shadow.Stats(exp)
	if !ok {
		return api.ShadowSpend{}, false
	}
	return api.ShadowSpend{
		Replayed: st.Replayed, Judged: st.Judged,
		Dropped:    st.DroppedFull + st.ReplayFailed + st.JudgeFailed + st.RecordFailed,
		ReplayCost: st.ReplayCost, JudgeCost: st.JudgeCost,
	}, true
}
