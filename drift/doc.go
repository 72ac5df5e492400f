// Package drift watches each route's traffic for distribution shift: the
// Monitor compares, on an interval, the latest window of the hourly drift
// histograms (kept by the recorder in the store) with a reference window,
// by PSI and a chi-square test, and raises an Alert when a feature starts
// drifting. Alerts leave through a callback (webhooks, wired by cmd).
//
// It reads through experiments.DriftReader and must not import the HTTP
// layers, the recorder, webhook or a store implementation.
package drift
