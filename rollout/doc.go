// Package rollout runs the experiment lifecycle: the services that move an
// experiment from draft through its ramp steps to promotion, rollback or
// stop, and that keep every replica's view in step.
//
//   - Lifecycle is the one door for commands (the admin API's and the
//     controller's): it checks them against experiments.Next and commits
//     them by compare-and-set, with who, why and the decision behind them.
//   - Controller is the automated promoter: one leader (a fenced lease)
//     evaluates each running experiment with stats.Decide on the policy of
//     experiments.Experiment.Policy, and acts through the Lifecycle.
//   - Watcher follows lifecycle states and hands each replica its current
//     allocation; Catalog merges the config file with stored definitions.
//
// It reads statistics through experiments' store interfaces and notifies
// through its Notifier interface (webhook plugs in there, wired by cmd).
// It must not import the HTTP layers, the recorder, webhook or a store
// implementation.
package rollout
