package experiments_test

import (
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
)

// TestValidateMaxPerResponse: the per-response cap is for count metrics
// only, within 1..MaxEventCap (0 takes the default, 1).
func TestValidateMaxPerResponse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind experiments.MetricKind
		n    int
		want string // "" valid
	}{
		{experiments.MetricCount, 0, ""},
		{experiments.MetricCount, 5, ""},
		{experiments.MetricCount, experiments.MaxEventCap, ""},
		{experiments.MetricCount, -1, "must be between 1 and 1000"},
		{experiments.MetricCount, experiments.MaxEventCap + 1, "must be between 1 and 1000"},
		{experiments.MetricBinary, 2, "only count metrics"},
	} {
		c := mustParse(t, minimalYAML, noEnv)
		c.Experiments[0].Metrics = append(c.Experiments[0].Metrics,
			experiments.Metric{Name: "copies", Kind: tc.kind, MaxPerResponse: tc.n})
		c.SetDefaults()
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %d: %v", tc.kind, tc.n, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "experiments[0].metrics[0].max_per_response") ||
			!strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s %d: %v; want max_per_response: %s", tc.kind, tc.n, err, tc.want)
		}
	}
}
