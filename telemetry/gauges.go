package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/abgate/abgate/experiments"
)

// RegisterLeader reports abgate.controller.leader: 1 while fence() says
// this replica holds the controller's lease (a fence above 0), else 0.
func RegisterLeader(mp metric.MeterProvider, fence func() int64) error {
	m := mp.Meter("github.com/abgate/abgate/telemetry")
	_, err := m.Int64ObservableGauge(MetricLeader,
		metric.WithDescription("1 on the replica whose rollout controller holds the lease, else 0."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			if fence() > 0 {
				o.Observe(1)
			} else {
				o.Observe(0)
			}
			return nil
		}))
	return err
}

// Notifier receives lifecycle transitions (rollout.Notifier).
type Notifier interface {
	Notify(experiments.Transition, experiments.State)
}

type countingNotifier struct {
	next    Notifier
	counter metric.Int64Counter
}

// CountTransitions counts every transition this replica commits in
// abgate.controller.transitions, by experiment and action (advance,
// promote, rollback, ...; the controller's and operators' alike), then
// passes it to next (nil: none).
func CountTransitions(next Notifier, mp metric.MeterProvider) (Notifier, error) {
	c, err := mp.Meter("github.com/abgate/abgate/telemetry").Int64Counter(MetricTransitions,
		metric.WithUnit("{transition}"), metric.WithDescription("Lifecycle transitions committed by this replica, by action."))
	if err != nil {
		return nil, err
	}
	return &countingNotifier{next: next, counter: c}, nil
}

func (n *countingNotifier) Notify(t experiments.Transition, s experiments.State) {
	n.counter.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String(AttrExperiment, t.Experiment), attribute.String(AttrAction, string(t.Action))))
	if n.next != nil {
		n.next.Notify(t, s)
	}
}

// CountAlerts counts every alert in abgate.drift.alerts by experiment and
// feature (label names them), then passes it to next (nil: none).
func CountAlerts[A any](next func(context.Context, A), mp metric.MeterProvider, label func(A) (experiment, feature string)) (func(context.Context, A), error) {
	c, err := mp.Meter("github.com/abgate/abgate/telemetry").Int64Counter(MetricDriftAlerts,
		metric.WithUnit("{alert}"), metric.WithDescription("Drift alerts raised, by experiment and feature."))
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, a A) {
		exp, feat := label(a)
		c.Add(ctx, 1, metric.WithAttributes(attribute.String(AttrExperiment, exp), attribute.String(AttrFeature, feat)))
		if next != nil {
			next(ctx, a)
		}
	}, nil
}
