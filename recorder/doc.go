// Package recorder turns what the gateway measures (experiments.Outcome)
// and what applications send back (experiments.Feedback) into per-user
// sufficient statistics in an experiments.Store.
//
// Observe is a non-blocking enqueue for the hot path; a drain loop
// pre-aggregates per (experiment, phase, variant, unit, hour) and a flush
// loop applies batches with ids, so a retry after a lost reply is applied
// once. Failed flushes are retried with backoff in a bounded buffer, and
// every event is accounted: accepted = persisted + dropped + pending (see
// Stats). It also keeps the drift histograms and the feedback log.
//
// It owns the recording pipeline and its OpenTelemetry counters. It must
// not import the HTTP layers (api, gateway), the rollout services, or a
// store implementation: stores are reached through experiments.Store.
package recorder
