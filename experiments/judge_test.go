package experiments_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
)

// judgeYAML is minimalYAML with a second upstream, a judge and a shadow
// stage; extra is appended to the judge block.
func judgeYAML(judge, shadow string) string {
	return `
upstreams:
  - name: up
    url: http://127.0.0.1:8000
  - name: judges
    url: https://judge.example.com/
experiments:
  - id: exp
    variants:
      - {name: base, upstream: up, model: m0}
      - {name: cand, upstream: up, model: m1, weight: 50}
` + judge + shadow + `
routes:
  - {alias: chat, experiment: exp}
`
}

func TestJudgeDefaults(t *testing.T) {
	t.Parallel()
	c, err := experiments.Parse([]byte(judgeYAML("    judge: {upstream: judges, model: gpt-judge}\n", "    shadow: {}\n")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	j, s := c.Experiments[0].Judge, c.Experiments[0].Shadow
	if *j.BothOrdersShare != 0.1 || *j.NonInferiorityMargin != 0.05 || j.SuperiorityMargin != 0 ||
		j.PositionBiasLimit != 0.1 || j.Alpha != 0.05 || j.MaxConcurrency != 4 || j.RatePerSecond != 2 ||
		j.Burst != 4 || j.MaxTokens != 64 || j.Timeout.String() != "30s" || j.PrivateHeader != "X-Abgate-Private" ||
		j.RetainPrompts || j.RetainPromptsFor != 0 || j.Ramp != experiments.JudgeRampWatch {
		t.Errorf("judge defaults: %+v", j)
	}
	if s.Percent != 10 || s.MaxPerUser != 1 || s.MinUsers != 30 || s.MaxUsers != 0 || s.QueueSize != 256 {
		t.Errorf("shadow defaults: %+v", s)
	}
	// Explicit zeros stay zero where zero is meaningful.
	c, err = experiments.Parse([]byte(judgeYAML("    judge: {upstream: judges, model: j, both_orders_share: 0, non_inferiority_margin: 0}\n", "")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if j := c.Experiments[0].Judge; *j.BothOrdersShare != 0 || *j.NonInferiorityMargin != 0 {
		t.Errorf("explicit zeros: %+v", j)
	}
	// No judge, no shadow: nothing changes.
	c, err = experiments.Parse([]byte(minimalYAML), noEnv)
	if err != nil || c.Experiments[0].Judge != nil || c.Experiments[0].Shadow != nil {
		t.Errorf("minimal config: %v %+v", err, c.Experiments[0])
	}
}

func TestJudgeValidation(t *testing.T) {
	t.Parallel()
	const j = "    judge:\n      upstream: judges\n      model: gpt-judge\n"
	cases := []struct {
		name, judge, shadow, field, reason string
	}{
		{"judges itself by upstream", "    judge: {upstream: up, model: m1}\n", "", "experiments[0].judge.model", `variant "cand"'s own model`},
		{"judges itself by url", "    judge: {url: 'HTTP://127.0.0.1:8000/', model: m0}\n", "", "experiments[0].judge.model", `variant "base"'s own model`},
		{"same model elsewhere is fine", "    judge: {upstream: judges, model: m1}\n", "", "", ""},
		{"other model on the same upstream is fine", "    judge: {upstream: up, model: judge-model}\n", "", "", ""},
		{"no endpoint", "    judge: {model: x}\n", "", "experiments[0].judge", "needs upstream or url"},
		{"both endpoints", "    judge: {upstream: judges, url: 'http://x', model: x}\n", "", "experiments[0].judge", "either upstream or url"},
		{"unknown upstream", "    judge: {upstream: nope, model: x}\n", "", "experiments[0].judge.upstream", "no upstream"},
		{"bad url", "    judge: {url: 'ftp://x', model: x}\n", "", "experiments[0].judge.url", "http"},
		{"key with upstream", "    judge: {upstream: judges, model: x, api_key: k}\n", "", "experiments[0].judge.api_key", "only with url"},
		{"no model", "    judge: {upstream: judges}\n", "", "experiments[0].judge.model", "required"},
		{"share", j + "      both_orders_share: 1.5\n", "", "experiments[0].judge.both_orders_share", "between 0 and 1"},
		{"bias limit", j + "      position_bias_limit: 0.6\n", "", "experiments[0].judge.position_bias_limit", "(0, 0.5)"},
		{"ni margin", j + "      non_inferiority_margin: 0.5\n", "", "experiments[0].judge.non_inferiority_margin", "[0, 0.5)"},
		{"sup margin", j + "      superiority_margin: -0.1\n", "", "experiments[0].judge.superiority_margin", "[0, 0.5)"},
		{"alpha", j + "      alpha: 1.5\n", "", "experiments[0].judge.alpha", "(0, 1)"},
		{"concurrency", j + "      max_concurrency: -1\n", "", "experiments[0].judge.max_concurrency", "at least 1"},
		{"rate", j + "      rate_per_second: -2\n", "", "experiments[0].judge.rate_per_second", "positive"},
		{"max tokens", j + "      max_tokens: 100000\n", "", "experiments[0].judge.max_tokens", "between 1 and 4096"},
		{"price", j + "      prompt_price_per_1k: -1\n", "", "experiments[0].judge.prompt_price_per_1k", "non-negative"},
		{"budget without price", j + "      budget_per_day: 10\n", "", "experiments[0].judge", "needs prompt_price_per_1k"},
		{"hour above day", j + "      prompt_price_per_1k: 0.01\n      budget_per_hour: 5\n      budget_per_day: 1\n", "", "experiments[0].judge.budget_per_hour", "must not exceed"},
		{"private header", j + "      private_header: 'bad header'\n", "", "experiments[0].judge.private_header", "header name"},
		{"retention without retain", j + "      retain_prompts_for: 3d\n", "", "experiments[0].judge.retain_prompts_for", "retain_prompts is off"},
		{"retention too long", j + "      retain_prompts: true\n      retain_prompts_for: 200d\n", "", "experiments[0].judge.retain_prompts_for", "at most"},
		{"rubric parse", j + "      rubric: '{{.Prompt'\n", "", "experiments[0].judge.rubric", "text/template"},
		{"rubric field", j + "      rubric: '{{.Prompt}} {{.A}} {{.B}} {{.Secret}}'\n", "", "experiments[0].judge.rubric", "field other than"},
		{"rubric without B", j + "      rubric: '{{.Prompt}} {{.A}}'\n", "", "experiments[0].judge.rubric", "{{.B}}"},
		{"rubric ok", j + "      rubric: 'Q: {{.Prompt}} 1: {{.A}} 2: {{.B}} {{.Criteria}}'\n", "", "", ""},
		{"human metric unknown", j + "      human_metric: nope\n", "", "experiments[0].judge.human_metric", "no built-in or declared metric"},
		{"human metric from requests", j + "      human_metric: latency_ms\n", "", "experiments[0].judge.human_metric", "must be a feedback metric"},
		{"human metric the judge's", j + "      human_metric: judge_served\n", "", "experiments[0].judge.human_metric", "must be a feedback metric"},
		{"human metric rating", j + "      human_metric: rating\n", "", "", ""},
		{"shadow without judge", "", "    shadow: {}\n", "experiments[0].shadow", "needs a judge"},
		{"shadow percent", j, "    shadow: {percent: 100.5}\n", "experiments[0].shadow.percent", "0.01 and 100"},
		{"shadow max users", j, "    shadow: {min_users: 50, max_users: 10}\n", "experiments[0].shadow.max_users", "at least min_users"},
		{"shadow max per user", j, "    shadow: {max_per_user: -1}\n", "experiments[0].shadow.max_per_user", "at least 1"},
		{"ramp value", j + "      ramp: block\n", "", "experiments[0].judge.ramp", `"watch" or "guardrail"`},
		{"ramp guardrail without live judging", j + "      ramp: guardrail\n", "    shadow: {}\n", "experiments[0].judge.ramp", "shadow.live_percent above 0"},
		{"ramp guardrail with live judging", j + "      ramp: guardrail\n", "    shadow: {live_percent: 20}\n", "", ""},
		{"shadow ok", j, "    shadow: {percent: 2.5, max_per_user: 3, min_users: 100, max_users: 5000, max_duration: 48h}\n", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := experiments.Parse([]byte(judgeYAML(tc.judge, tc.shadow)), noEnv)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var ve experiments.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			for _, fe := range ve {
				if fe.Field == tc.field && strings.Contains(fe.Reason, tc.reason) {
					return
				}
			}
			t.Errorf("want %s: …%s…, got:\n%v", tc.field, tc.reason, err)
		})
	}
}

// TestJudgePairs: the joint sums asked for are the human metric's with
// judge_served, only with a live judge and a bounded feedback metric;
// an unbounded declared metric is refused as human_metric.
func TestJudgePairs(t *testing.T) {
	t.Parallel()
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		name    string
		e       experiments.Experiment
		want    string
		wantCut float64
	}{
		{"primary thumbs", experiments.Experiment{Primary: "thumbs", Judge: &experiments.Judge{}, Shadow: &experiments.Shadow{LivePercent: 5}}, "thumbs", 0.5},
		{"human metric rating", experiments.Experiment{Primary: "thumbs", Judge: &experiments.Judge{HumanMetric: "rating"}, Shadow: &experiments.Shadow{LivePercent: 5}}, "rating", 3},
		{"declared bounded", experiments.Experiment{Primary: "csat", Metrics: []experiments.Metric{{Name: "csat", Kind: experiments.MetricContinuous, Min: f(0), Max: f(10)}},
			Judge: &experiments.Judge{}, Shadow: &experiments.Shadow{LivePercent: 5}}, "csat", 5},
		{"declared unbounded", experiments.Experiment{Primary: "csat", Metrics: []experiments.Metric{{Name: "csat", Kind: experiments.MetricContinuous}},
			Judge: &experiments.Judge{}, Shadow: &experiments.Shadow{LivePercent: 5}}, "", 0},
		{"primary latency", experiments.Experiment{Primary: "latency_ms", Judge: &experiments.Judge{}, Shadow: &experiments.Shadow{LivePercent: 5}}, "", 0},
		{"no live judge", experiments.Experiment{Primary: "thumbs", Judge: &experiments.Judge{}, Shadow: &experiments.Shadow{}}, "", 0},
		{"no judge", experiments.Experiment{Primary: "thumbs"}, "", 0},
	} {
		got := tc.e.JudgePairs()
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s: pairs %+v, want none", tc.name, got)
		case tc.want != "" && (len(got) != 1 || got[0].Human != tc.want || got[0].Judge != experiments.MetricJudgeServed || got[0].Cut != tc.wantCut):
			t.Errorf("%s: pairs %+v, want %s/judge_served cut %v", tc.name, got, tc.want, tc.wantCut)
		}
	}
}

func TestJudgeKeyNeverEchoed(t *testing.T) {
	t.Parallel()
	y := judgeYAML("    judge: {url: 'http://j', model: x, api_key: \"sk-secret\\nvalue\"}\n", "")
	_, err := experiments.Parse([]byte(y), noEnv)
	if err == nil || strings.Contains(err.Error(), "sk-secret") {
		t.Errorf("error %v", err)
	}
}
