package experiments_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/storetest"
)

func fieldsOf(err error) map[string]string {
	var ve experiments.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	m := make(map[string]string)
	for _, fe := range ve {
		m[fe.Field] = fe.Reason
	}
	return m
}

func TestDecodeDefinition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		fields []string // fields of the ValidationError; nil: success
		err    bool     // a non-field error (syntax)
	}{
		{"minimal", `{"id":"x","variants":[{"name":"a"}],"routes":["r1"]}`, nil, false},
		{"yaml accepted", "id: x\nroutes: [r1]\n", nil, false},
		{"unknown field", `{"id":"x","variantz":[]}`, []string{"variantz"}, false},
		{"unknown nested", `{"id":"x","variants":[{"name":"a","wieght":3}]}`, []string{"variants[0].wieght"}, false},
		{"wrong type", `{"id":"x","holdout":"ten"}`, []string{"holdout"}, false},
		{"quoted number", `{"variants":[{"weight":"10"}]}`, []string{"variants[0].weight"}, false},
		{"routes not a list", `{"id":"x","routes":"r1"}`, []string{"routes"}, false},
		{"route not a string", `{"id":"x","routes":[{"a":1}]}`, []string{"routes[0]"}, false},
		{"bad duration", `{"rollout":{"steps":[{"percent":5,"min_duration":"soon"}]}}`, []string{"rollout.steps[0].min_duration"}, false},
		{"not an object", `[1,2]`, []string{"definition"}, false},
		{"syntax", `{"id":`, nil, true},
		{"empty", ``, nil, true},
		{"two documents", "id: a\n---\nid: b\n", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := experiments.DecodeDefinition([]byte(tc.body))
			switch {
			case tc.fields == nil && !tc.err:
				if err != nil {
					t.Fatalf("error: %v", err)
				}
			case tc.err:
				if err == nil || !errors.Is(err, experiments.ErrInvalidConfig) {
					t.Fatalf("error = %v, want ErrInvalidConfig", err)
				}
			default:
				got := fieldsOf(err)
				if len(got) != len(tc.fields) {
					t.Fatalf("fields = %v, want %v (err %v)", got, tc.fields, err)
				}
				for _, f := range tc.fields {
					if _, ok := got[f]; !ok {
						t.Fatalf("fields = %v, want %v", got, tc.fields)
					}
				}
			}
		})
	}
}

func TestDecodeDefinitionNeverExpandsEnv(t *testing.T) {
	t.Setenv("ABGATE_DEF_SECRET", "leak")
	d, err := experiments.DecodeDefinition([]byte(`{"id":"x","description":"${ABGATE_DEF_SECRET} $${x}"}`))
	if err != nil {
		t.Fatal(err)
	}
	if d.Experiment.Description != "${ABGATE_DEF_SECRET} $${x}" {
		t.Fatalf("description = %q, want it literal", d.Experiment.Description)
	}
	// And it survives a round trip.
	b, _ := json.Marshal(d)
	back, err := experiments.DecodeDefinition(b)
	if err != nil || back.Experiment.Description != d.Experiment.Description {
		t.Fatalf("round trip: %q, %v", back.Experiment.Description, err)
	}
}

func TestDefinitionJSONRoundTrip(t *testing.T) {
	t.Parallel()
	cov, lo, hi, yes := 40.0, 0.0, 10.0, false
	d := experiments.Definition{
		Experiment: experiments.Experiment{
			ID: "rt", Description: "d", Salt: "s", HashVersion: 1, Phase: 2, Coverage: &cov, Holdout: 1.5, Fallback: true,
			Variants: []experiments.Variant{
				{Name: "base", Upstream: "up", Model: "m0", Allowlist: []string{"u1"}, PromptPrice: 0.5},
				{Name: "cand", Upstream: "up", Model: "m1", Weight: 12.25, CompletionPrice: 2},
			},
			Metrics: []experiments.Metric{{Name: "score", Kind: experiments.MetricContinuous, Min: &lo, Max: &hi, HigherIsBetter: &yes}},
			Primary: "score",
			Rollout: &experiments.Rollout{
				Steps:      []experiments.RampStep{{Percent: 1, MinDuration: experiments.Duration(36 * time.Hour), MinUsers: 10}},
				Guardrails: []experiments.Guardrail{{Metric: "error", Margin: 0.005}},
				Alpha:      0.05, Method: "msprt", MinUsers: 5, MaxUsers: 9, Manual: true,
			},
		},
		Routes: []string{"a/b@v1", "c"},
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"id":"rt"`, `"prompt_price_per_1k":0.5`, `"min_duration":"36h0m0s"`, `"weight":12.25`, `"routes":["a/b@v1","c"]`, `"higher_is_better":false`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
	if i, j := strings.Index(string(b), `"id"`), strings.Index(string(b), `"variants"`); i < 0 || j < i {
		t.Errorf("fields not in config order:\n%s", b)
	}
	var back experiments.Definition
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("decode: %v\n%s", err, b)
	}
	if !reflect.DeepEqual(back, d) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, d)
	}
}

func TestDefinitionJSONOmitsZeroFields(t *testing.T) {
	t.Parallel()
	zero, no := 0.0, false
	d := experiments.Definition{Experiment: experiments.Experiment{
		ID: "z", Coverage: &zero,
		Variants: []experiments.Variant{{Name: "base"}},
		Metrics:  []experiments.Metric{{Name: "m", Min: &zero, HigherIsBetter: &no}},
	}}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"z","variants":[{"name":"base"}],"coverage":0,"metrics":[{"name":"m","min":0,"higher_is_better":false}],"routes":[]}`
	if string(b) != want {
		t.Fatalf("JSON = %s\nwant  %s", b, want)
	}
}

func TestValidateDefinition(t *testing.T) {
	t.Parallel()
	file := storetest.DefinitionsFile(t)
	tests := []struct {
		name   string
		edit   func(d *experiments.Definition)
		fields map[string]string // field -> substring of the reason
	}{
		{"valid", func(*experiments.Definition) {}, nil},
		{"undeclared upstream", func(d *experiments.Definition) { d.Experiment.Variants[1].Upstream = "elsewhere" },
			map[string]string{"variants[1].upstream": "no upstream"}},
		{"bad weight", func(d *experiments.Definition) { d.Experiment.Variants[1].Weight = 101 },
			map[string]string{"variants[1].weight": "between"}},
		{"bad id", func(d *experiments.Definition) { d.Experiment.ID = "no spaces" }, map[string]string{"id": "characters", "salt": "characters"}},
		{"one variant", func(d *experiments.Definition) { d.Experiment.Variants = d.Experiment.Variants[:1] },
			map[string]string{"variants": "candidate", "rollout": "candidate"}},
		{"alias of the file", func(d *experiments.Definition) { d.Routes = []string{"ok", "file-alias"} },
			map[string]string{"routes[1]": `"file-exp"`}},
		{"duplicate alias", func(d *experiments.Definition) { d.Routes = []string{"x", "x"} },
			map[string]string{"routes[1]": "duplicate"}},
		{"invalid alias", func(d *experiments.Definition) { d.Routes = []string{"has space"} },
			map[string]string{"routes[0]": "characters"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := storetest.Definition("new-exp", "new-alias")
			tc.edit(&d)
			err := experiments.ValidateDefinition(file, d)
			if tc.fields == nil {
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				return
			}
			got := fieldsOf(err)
			if len(got) != len(tc.fields) {
				t.Fatalf("fields = %v, want %v", got, tc.fields)
			}
			for f, sub := range tc.fields {
				if !strings.Contains(got[f], sub) {
					t.Fatalf("fields = %v, want %s containing %q", got, f, sub)
				}
			}
		})
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	file := storetest.DefinitionsFile(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := storetest.Stored(storetest.Definition("a", "alias-a"), 1, t0)
	b := storetest.Stored(storetest.Definition("b", "alias-b1", "alias-b2"), 3, t0.Add(time.Hour))

	cfg, err := experiments.Merge(file, []experiments.StoredExperiment{b, a})
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	var ids []string
	for _, e := range cfg.Experiments {
		ids = append(ids, e.ID)
	}
	if want := []string{"file-exp", "a", "b"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("experiments = %v, want %v", ids, want)
	}
	if e, ok := cfg.RouteFor("alias-b2"); !ok || e.ID != "b" {
		t.Fatalf("alias-b2 routes to %v", e)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("merged config invalid: %v", err)
	}
	e := cfg.Experiment("a")
	if e.Salt != "a" || e.Phase != 1 || e.Coverage == nil || len(e.Rollout.Steps) == 0 {
		t.Fatalf("defaults not applied: %+v", e)
	}
	if a.Definition.Experiment.Rollout.Steps != nil || a.Definition.Experiment.Salt != "" {
		t.Fatal("Merge changed the stored definition")
	}
	if len(file.Experiments) != 1 || len(file.Routes) != 1 {
		t.Fatal("Merge changed the file config")
	}

	for _, tc := range []struct {
		name string
		defs []experiments.StoredExperiment
		want string
	}{
		{"id of the file", []experiments.StoredExperiment{storetest.Stored(storetest.Definition("file-exp", "zz"), 1, t0)}, "config file"},
		{"alias of the file", []experiments.StoredExperiment{storetest.Stored(storetest.Definition("c", "file-alias"), 1, t0)}, "already routes"},
		{"alias of another", []experiments.StoredExperiment{a, storetest.Stored(storetest.Definition("c", "alias-a"), 1, t0.Add(time.Minute))}, `"c"`},
		{"invalid", []experiments.StoredExperiment{storetest.Stored(experiments.Definition{Experiment: experiments.Experiment{ID: "c"}}, 1, t0)}, "variants"},
	} {
		if _, err := experiments.Merge(file, tc.defs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Merge error = %v, want it to mention %s", tc.name, err, tc.want)
		}
	}
}
