// Package stats implements the statistics behind abgate's experiment
// decisions: always-valid (sequential) tests that keep their error rates
// under continuous monitoring, group sequential designs, fixed-horizon
// reference tests, sample-ratio-mismatch checks, guardrail
// (non-inferiority) tests, sample-size planning and a single Decide
// function that turns an experiment's sufficient statistics and policy
// into a machine-readable Decision.
//
// The package is pure math: it imports only the standard library and
// gonum, returns no errors, does no I/O and never reads the clock. It
// panics only on programmer error (for example alpha outside (0,1));
// degenerate data (no users, zero variance, an empty arm) produces
// Continue and NaN-free results.
//
// The confidence sequence, mSPRT and their one-sided versions are
// asymptotic (CLT at the user level); BoundedTest is valid at every
// sample size for metrics with a known per-user range, computed from the
// per-arm sums the store keeps.
//
// See docs/statistics.md for formulas, defaults and references.
package stats
