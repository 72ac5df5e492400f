package experiments

import (
	"strings"
	"testing"
)

func TestValidateMoney(t *testing.T) {
	t.Parallel()
	four := 4.0
	for _, tc := range []struct {
		name string
		exp  Experiment
		want string // a field path, "" for valid
	}{
		{"binary signal", Experiment{Success: &Success{Metric: MetricTaskCompleted}}, ""},
		{"no reformulation", Experiment{Success: &Success{Metric: MetricReformulated}}, ""},
		{"rating at least 4", Experiment{Success: &Success{Metric: MetricRating, AtLeast: &four}}, ""},
		{"rating without threshold", Experiment{Success: &Success{Metric: MetricRating}}, "x.success.at_least"},
		{"request metric", Experiment{Success: &Success{Metric: MetricError}}, "x.success.metric"},
		{"unknown", Experiment{Success: &Success{Metric: "nope"}}, "x.success.metric"},
		{"empty", Experiment{Success: &Success{}}, "x.success.metric"},
		{"primary without signal", Experiment{Primary: MetricCostPerSuccess}, "x.success"},
		{"guardrail without signal", Experiment{Rollout: &Rollout{Guardrails: []Guardrail{{Metric: MetricCostPerSuccess}}}}, "x.success"},
		{"currency", Experiment{Report: &ReportConfig{Currency: "EUR", DetectableEffect: 0.02}}, ""},
		{"bad currency", Experiment{Report: &ReportConfig{Currency: "usd"}}, "x.report.currency"},
		{"bad effect", Experiment{Report: &ReportConfig{DetectableEffect: -1}}, "x.report.detectable_effect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := validateMoney(&tc.exp, "x")
			switch {
			case tc.want == "" && len(errs) > 0:
				t.Errorf("errors %v, want none", errs)
			case tc.want != "" && (len(errs) != 1 || errs[0].Field != tc.want || strings.TrimSpace(errs[0].Reason) == ""):
				t.Errorf("errors %v, want one on %s", errs, tc.want)
			}
		})
	}
}

func TestSuccessValue(t *testing.T) {
	t.Parallel()
	four := 4.0
	for _, tc := range []struct {
		s      Success
		metric string
		x      float64
		want   float64
		ok     bool
	}{
		{Success{Metric: MetricThumbs}, MetricThumbs, 1, 1, true},
		{Success{Metric: MetricThumbs}, MetricThumbs, 0, 0, true},
		{Success{Metric: MetricReformulated}, MetricReformulated, 0, 1, true},
		{Success{Metric: MetricReformulated}, MetricReformulated, 1, 0, true},
		{Success{Metric: MetricRating, AtLeast: &four}, MetricRating, 5, 1, true},
		{Success{Metric: MetricRating, AtLeast: &four}, MetricRating, 3, 0, true},
		{Success{Metric: MetricThumbs}, MetricRating, 5, 0, false},
	} {
		e := &Experiment{Success: &tc.s}
		if got, ok := e.SuccessValue(tc.metric, tc.x); got != tc.want || ok != tc.ok {
			t.Errorf("%+v %s=%g: %g %v, want %g %v", tc.s, tc.metric, tc.x, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMoneyDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		r        *ReportConfig
		cur, sym string
	}{
		{nil, "USD", "$"},
		{&ReportConfig{Currency: "EUR"}, "EUR", "€"},
		{&ReportConfig{Currency: "CHF"}, "CHF", "CHF "},
		{&ReportConfig{Currency: "CHF", Symbol: "Fr."}, "CHF", "Fr."},
	} {
		if c, s := (&Experiment{Report: tc.r}).Money(); c != tc.cur || s != tc.sym {
			t.Errorf("%+v: %q %q", tc.r, c, s)
		}
	}
}
