package e2e

import (
	"math"
	"testing"

	"github.com/abgate/abgate/experiments"
)

// A/A: base and candidate are the same model. Over many seeded runs the
// controller must (almost) never promote: at most the sequential test's
// false-positive rate. The light default runs aaRuns (aa_light_test.go);
// go test -tags simulation -run AA ./e2e/ runs 400.
func TestAANotPromoted(t *testing.T) {
	t.Parallel()
	r := defaultRollout()
	r.MaxUsers = 3000 // end each run by futility once both arms reach it
	counts := map[experiments.Status]int{}
	ends := map[experiments.Action]int{}
	for seed := uint64(1); seed <= aaRuns; seed++ {
		o := scenario{arms: []arm{baseArm, baseArm}, rollout: r, usersPerTick: 2000, maxTicks: 60, seed: 1000 + seed}.run(t)
		counts[o.state.Status]++
		ends[o.history[len(o.history)-1].Action]++
		if o.state.Status == experiments.StatusPromoted {
			t.Logf("seed %d promoted (a false positive)\n%s", 1000+seed, o)
		}
	}
	// Promotion needs the one-sided "better" half of a two-sided alpha =
	// 0.05 test: expect at most 2.5%. Allow alpha plus three standard errors.
	alpha := r.Alpha
	limit := float64(aaRuns)*alpha + 3*math.Sqrt(float64(aaRuns)*alpha*(1-alpha))
	if float64(counts[experiments.StatusPromoted]) > limit {
		t.Errorf("promoted %d of %d A/A runs, above %.1f", counts[experiments.StatusPromoted], aaRuns, limit)
	}
	if counts[experiments.StatusRunning] > 0 {
		t.Errorf("%d runs neither ended nor hit futility", counts[experiments.StatusRunning])
	}
	if ends[experiments.ActionHaltSRM] > 0 {
		t.Errorf("%d A/A runs halted on SRM with an intact split", ends[experiments.ActionHaltSRM])
	}
	t.Logf("A/A outcomes over %d runs: %v; last actions %v", aaRuns, counts, ends)
}
