//go:build !simulation

package e2e

const aaRuns = 20
