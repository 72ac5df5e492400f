package experiments_test

import (
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
)

func TestCheckReshuffles(t *testing.T) {
	t.Parallel()
	base := func() *experiments.Config {
		cov := 100.0
		return &experiments.Config{Experiments: []experiments.Experiment{{
			ID: "e", Phase: 1, Coverage: &cov,
			Variants: []experiments.Variant{{Name: "b"}, {Name: "c", Weight: 10}},
		}}}
	}
	tests := []struct {
		name   string
		change func(*experiments.Config)
		bad    bool
	}{
		{"ramp up", func(c *experiments.Config) { c.Experiments[0].Variants[1].Weight = 40 }, false},
		{"ramp down", func(c *experiments.Config) { c.Experiments[0].Variants[1].Weight = 1 }, false},
		{"new experiment", func(c *experiments.Config) {
			c.Experiments = append(c.Experiments, experiments.Experiment{ID: "f", Variants: []experiments.Variant{{Name: "b"}, {Name: "c"}}})
		}, false},
		{"third variant", func(c *experiments.Config) {
			c.Experiments[0].Variants = append(c.Experiments[0].Variants, experiments.Variant{Name: "d", Weight: 5})
		}, true},
		{"third variant in a new phase", func(c *experiments.Config) {
			c.Experiments[0].Variants = append(c.Experiments[0].Variants, experiments.Variant{Name: "d", Weight: 5})
			c.Experiments[0].Phase = 2
		}, false},
		{"new salt", func(c *experiments.Config) { c.Experiments[0].Salt = "other" }, true},
		{"lower coverage", func(c *experiments.Config) { cov := 50.0; c.Experiments[0].Coverage = &cov }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			next := base()
			tc.change(next)
			err := experiments.CheckReshuffles(base(), next)
			if (err != nil) != tc.bad {
				t.Fatalf("err = %v, want error: %v", err, tc.bad)
			}
			if err != nil && !strings.Contains(err.Error(), "experiments[0].phase") {
				t.Errorf("error %q does not name the phase field", err)
			}
		})
	}
}

func TestAllocationSplit(t *testing.T) {
	t.Parallel()
	a := &experiments.Allocation{Shares: []uint16{1000, 2500}, Serve: 2}
	got := a.Split(3)
	if len(got) != 3 || got[0] != 6500 || got[1] != 1000 || got[2] != 2500 {
		t.Errorf("Split(3) = %v, want [6500 1000 2500] (Serve ignored)", got)
	}
}
