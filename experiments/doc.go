// Package experiments is abgate's vocabulary: what every other package
// speaks, and nothing that runs on its own.
//
// It owns:
//   - the config schema (Config, Experiment, Variant, Metric, Rollout, ...),
//     its loading (Load, Parse) and validation (Validate, with FieldError
//     naming field and reason), and stored experiment definitions;
//   - assignment: the murmur3 bucketing of a unit into a variant (Assign,
//     Allocation), pure and allocation-free;
//   - response tokens (Signer), which attribute feedback to a response;
//   - outcomes and feedback (Outcome, Feedback), the metric registry
//     (metrics.go: each metric's kind, direction, bounds, unit and label)
//     and the policy the controller and the reports decide with
//     (Experiment.Policy, RolloutInput);
//   - the store interfaces (Store, LifecycleStore, Leaser, ChangeFeed,
//     Definitions, DriftReader, FeedbackLog) that memstore and redisstore
//     implement;
//   - the lifecycle state machine (Next): which transitions are legal.
//
// The long-running services built on it live elsewhere: recorder (outcomes
// and feedback into the Store), rollout (the lifecycle service, the
// controller, the watcher and the catalog), drift (the drift monitor) and
// webhook (delivery). experiments imports only stats among abgate's
// packages, and neither net/http nor OpenTelemetry (see deps_test.go).
package experiments
