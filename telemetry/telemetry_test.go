package telemetry_test

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/telemetry"
)

type sink struct{ n int }

func (s *sink) Observe(experiments.Outcome) { s.n++ }

type fakeNotifier struct{ n int }

func (f *fakeNotifier) Notify(experiments.Transition, experiments.State) { f.n++ }

// instruments registers abgate's instruments on mp, as cmd wires them:
// the outcome counters in front of a sink, the leader gauge (fence 7),
// and the transition and drift-alert counters in front of fakes.
type instruments struct {
	outcomes *telemetry.Outcomes
	sink     *sink
	notified *fakeNotifier
	notifier telemetry.Notifier
	alert    func(context.Context, string)
	alerts   int
}

func register(t *testing.T, mp *sdkmetric.MeterProvider) *instruments {
	t.Helper()
	cfg := &experiments.Config{Experiments: []experiments.Experiment{{ID: "exp", Variants: []experiments.Variant{
		{Name: "base", Model: "gpt-base"}, {Name: "ft", Model: "ft:gpt-x"},
	}}}}
	in := &instruments{sink: &sink{}, notified: &fakeNotifier{}}
	var err error
	if in.outcomes, err = telemetry.NewOutcomes(in.sink, mp, func() *experiments.Config { return cfg }); err != nil {
		t.Fatal(err)
	}
	if err := telemetry.RegisterLeader(mp, func() int64 { return 7 }); err != nil {
		t.Fatal(err)
	}
	if in.notifier, err = telemetry.CountTransitions(in.notified, mp); err != nil {
		t.Fatal(err)
	}
	if in.alert, err = telemetry.CountAlerts(func(context.Context, string) { in.alerts++ }, mp, func(a string) (string, string) { return "exp", a }); err != nil {
		t.Fatal(err)
	}
	return in
}

// scrape serves /metrics after three outcomes, a transition and an alert.
func scrape(t *testing.T) string {
	t.Helper()
	reader, handler, err := telemetry.Prometheus()
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	in := register(t, mp)
	in.outcomes.Observe(experiments.Outcome{Experiment: "exp", Variant: 0, Unit: experiments.UnitKey{1}, Latency: 800 * time.Millisecond, TTFB: 200 * time.Millisecond, PromptTokens: 120, CompletionTokens: 40, Cost: 0.002})
	in.outcomes.Observe(experiments.Outcome{Experiment: "exp", Variant: 1, Latency: 30 * time.Second, Error: true, Fallback: true})
	in.outcomes.Observe(experiments.Outcome{Experiment: "gone", Variant: 3, Latency: time.Second})
	in.notifier.Notify(experiments.Transition{Experiment: "exp", Action: experiments.ActionAdvance}, experiments.State{})
	in.alert(context.Background(), "prompt_tokens")
	if in.sink.n != 3 || in.notified.n != 1 || in.alerts != 1 {
		t.Fatalf("passed on %d outcomes, %d transitions, %d alerts; want 3, 1, 1", in.sink.n, in.notified.n, in.alerts)
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

func TestExposition(t *testing.T) {
	t.Parallel()
	body := scrape(t)
	for _, want := range []string{
		`gen_ai_client_operation_duration_seconds_bucket{abgate_experiment="exp",abgate_variant="base",gen_ai_request_model="gpt-base",le="0.64"} 0`,
		`gen_ai_client_operation_duration_seconds_count{abgate_experiment="exp",abgate_variant="ft",error_type="upstream",gen_ai_request_model="ft:gpt-x"} 1`,
		`gen_ai_server_time_to_first_token_seconds_count{abgate_experiment="exp",abgate_variant="base",gen_ai_request_model="gpt-base"} 1`,
		`gen_ai_client_token_usage_sum{abgate_experiment="exp",abgate_variant="base",gen_ai_request_model="gpt-base",gen_ai_token_type="input"} 120`,
		`abgate_requests_total{abgate_experiment="exp",abgate_variant="ft",gen_ai_request_model="ft:gpt-x"} 1`,
		`abgate_errors_total{abgate_experiment="exp",abgate_variant="ft",gen_ai_request_model="ft:gpt-x"} 1`,
		`abgate_fallbacks_total{abgate_experiment="exp",abgate_variant="ft",gen_ai_request_model="ft:gpt-x"} 1`,
		`abgate_cost_total{abgate_experiment="exp",abgate_variant="base",gen_ai_request_model="gpt-base"} 0.002`,
		`abgate_requests_total{abgate_experiment="gone",abgate_variant="unknown",gen_ai_request_model="unknown"} 1`,
		`abgate_controller_leader 1`,
		`abgate_controller_transitions_total{abgate_action="advance",abgate_experiment="exp"} 1`,
		`abgate_drift_alerts_total{abgate_drift_feature="prompt_tokens",abgate_experiment="exp"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	if strings.Contains(body, "unit") && strings.Contains(body, "user") {
		t.Errorf("a user id label leaked:\n%s", body)
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", body)
	}
}

// TestPromtool: Prometheus's own linter accepts the exposition. CI installs
// promtool (Debian's prometheus package); set ABGATE_REQUIRE_PROMTOOL=1 to
// make its absence a failure.
func TestPromtool(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("ABGATE_REQUIRE_PROMTOOL") == "1" {
			t.Fatal("promtool is not installed and ABGATE_REQUIRE_PROMTOOL=1 (apt-get install -y prometheus)")
		}
		t.Skip("promtool is not installed")
	}
	body := scrape(t)
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out.String())
	}
}

func BenchmarkObserve(b *testing.B) {
	reader, _, err := telemetry.Prometheus()
	if err != nil {
		b.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg := &experiments.Config{Experiments: []experiments.Experiment{{ID: "exp", Variants: []experiments.Variant{{Name: "base"}, {Name: "ft"}}}}}
	o, _ := telemetry.NewOutcomes(nil, mp, func() *experiments.Config { return cfg })
	out := experiments.Outcome{Experiment: "exp", Variant: 1, Latency: time.Second, TTFB: 100 * time.Millisecond, PromptTokens: 100, CompletionTokens: 50, Cost: 0.001}
	b.ReportAllocs()
	for b.Loop() {
		o.Observe(out)
	}
}
