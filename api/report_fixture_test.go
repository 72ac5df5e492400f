package api

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/stats"
)

// reportT0 is the start of the fixture experiment's period.
var reportT0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

func reportExperiment() *experiments.Experiment {
	return &experiments.Experiment{
		ID:          "support-bot-ft",
		Description: "Fine-tuned support model against the base model",
		Phase:       1,
		Primary:     "thumbs",
		Variants: []experiments.Variant{
			{Name: "base", Model: "llama-3.1-8b-instruct"},
			{Name: "fine-tuned", Model: "llama-3.1-8b-support-ft", Weight: 50},
		},
		Rollout: &experiments.Rollout{
			Steps: []experiments.RampStep{{Percent: 5}, {Percent: 25}, {Percent: 50}},
		},
	}
}

// arm is how a simulated variant behaves.
type arm struct {
	thumbs    float64 // P(thumbs up) per feedback
	latencyMS float64 // mean latency
	errRate   float64
	costMul   float64 // cost per request relative to the fixture's (0: 1)
}

// simulation fills a memstore with hours of realistic traffic: users
// arrive each hour (more by day than by night), send 1-4 requests, and
// give thumbs feedback on about 60% of them.
type simulation struct {
	exp     *experiments.Experiment
	arms    []arm
	hours   int
	perHour float64 // mean new users per variant per hour
	split   []float64
	seed    uint64
}

func (s simulation) run(t testing.TB) *memstore.Store {
	t.Helper()
	st := memstore.New()
	rng := rand.New(rand.NewPCG(s.seed, 7))
	unit := uint64(0)
	split := s.split
	if split == nil {
		split = make([]float64, len(s.arms))
		for i := range split {
			split[i] = 1 / float64(len(s.arms))
		}
	}
	for h := range s.hours {
		hour := experiments.HourOf(reportT0.Add(time.Duration(h) * time.Hour))
		// Daily cycle: busier in the afternoon.
		rate := s.perHour * float64(len(s.arms)) * (1 + 0.6*math.Sin(2*math.Pi*float64(h%24-9)/24))
		users := int(math.Round(rate * (0.9 + 0.2*rng.Float64())))
		b := &experiments.Batch{ID: fmt.Sprintf("b%d", h), Experiment: s.exp.ID, Phase: 1}
		for range users {
			unit++
			var key experiments.UnitKey
			binary.BigEndian.PutUint64(key[:], unit)
			v := pick(rng, split)
			a := s.arms[v]
			add := func(metric string, x float64) {
				b.Deltas = append(b.Deltas, experiments.Delta{Variant: v, Unit: key, Metric: metric, Hour: hour, DX: x, DY: 1})
			}
			for range 1 + rng.IntN(4) {
				add(experiments.MetricRequests, 1)
				add(experiments.MetricLatencyMS, a.latencyMS*math.Exp(0.35*rng.NormFloat64()-0.06))
				add(experiments.MetricError, bern(rng, a.errRate))
				add(experiments.MetricCost, max(a.costMul, 1)*(0.0004+0.0002*rng.Float64()))
				if rng.Float64() < 0.6 {
					add(experiments.MetricThumbs, bern(rng, a.thumbs))
				}
			}
		}
		if _, err := st.Apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func pick(rng *rand.Rand, split []float64) int {
	u := rng.Float64()
	for i, w := range split {
		if u < w {
			return i
		}
		u -= w
	}
	return len(split) - 1
}

func bern(rng *rand.Rand, p float64) float64 {
	if rng.Float64() < p {
		return 1
	}
	return 0
}

// fixtureStatus is the live state of the fixture experiment: running at
// its last ramp step.
func fixtureStatus() ReportStatus {
	return ReportStatus{Status: "running", Step: 2, Period: 1, Started: reportT0}
}

func fixtureTransitions() []ReportTransition {
	dec := &stats.Decision{Verdict: stats.Advance}
	return []ReportTransition{
		{Seq: 1, At: reportT0.Add(-50 * time.Hour), Actor: "alice@example.com", Action: "start", From: "draft", To: "running", Reason: "kick-off after offline eval"},
		{Seq: 2, At: reportT0.Add(-26 * time.Hour), Actor: "controller", Action: "advance", From: "running", To: "running", Reason: "guardrails non-inferior at 5%", Codes: []string{"guardrail_non_inferior"}, Decision: dec},
		{Seq: 3, At: reportT0, Actor: "controller", Action: "advance", From: "running", To: "running", Reason: "guardrails non-inferior at 25%", Codes: []string{"guardrail_non_inferior"}, Decision: dec},
	}
}

// fixtureReport builds the report of the fixture experiment after three
// days of traffic: the fine-tuned model is better.
func fixtureReport(t testing.TB) Report {
	t.Helper()
	exp := reportExperiment()
	sim := simulation{
		exp:     exp,
		arms:    []arm{{thumbs: 0.55, latencyMS: 820, errRate: 0.004}, {thumbs: 0.585, latencyMS: 790, errRate: 0.004}},
		hours:   72,
		perHour: 150, // the bounded error-rate test (issue 11) needs about 10k users per arm at 0.4% errors
		seed:    1,
	}
	st := sim.run(t)
	now := reportT0.Add(72*time.Hour + 5*time.Minute)
	snap, err := st.Summaries(context.Background(), exp.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	hours, err := st.Hourly(context.Background(), exp.ID, 1, reportT0, now)
	if err != nil {
		t.Fatal(err)
	}
	return BuildReport(exp, fixtureStatus(), fixtureTransitions(), snap, hours, now)
}

// fakeSource is a ReportSource over fixed experiments and states.
type fakeSource struct {
	exps   []*experiments.Experiment
	status map[string]ReportStatus
	trans  map[string][]ReportTransition
	err    error // returned by Status when set
}

func (f *fakeSource) Experiment(id string) (*experiments.Experiment, bool) {
	for _, e := range f.exps {
		if e.ID == id {
			return e, true
		}
	}
	return nil, false
}

func (f *fakeSource) Experiments() []*experiments.Experiment { return f.exps }

func (f *fakeSource) Status(_ context.Context, id string) (ReportStatus, error) {
	if f.err != nil {
		return ReportStatus{}, f.err
	}
	return f.status[id], nil
}

func (f *fakeSource) Transitions(_ context.Context, id string) ([]ReportTransition, error) {
	return f.trans[id], nil
}

// fixtureServer serves the reports of the fixture experiment (with three
// days of data) and of a second experiment that has just started.
func fixtureServer(t testing.TB) (*Reports, *memstore.Store) {
	t.Helper()
	exp := reportExperiment()
	st := simulation{
		exp:     exp,
		arms:    []arm{{thumbs: 0.55, latencyMS: 820, errRate: 0.004}, {thumbs: 0.585, latencyMS: 790, errRate: 0.004}},
		hours:   72,
		perHour: 150, // the bounded error-rate test (issue 11) needs about 10k users per arm at 0.4% errors
		seed:    1,
	}.run(t)
	fresh := &experiments.Experiment{
		ID:          "summaries-v3",
		Description: "Shorter summaries from the v3 prompt",
		Variants:    []experiments.Variant{{Name: "base", Model: "gpt-4o-mini"}, {Name: "v3", Model: "gpt-4o-mini-v3", Weight: 10}},
	}
	src := &fakeSource{
		exps: []*experiments.Experiment{exp, fresh},
		status: map[string]ReportStatus{
			exp.ID:   fixtureStatus(),
			fresh.ID: {Status: "draft", Step: -1},
		},
		trans: map[string][]ReportTransition{exp.ID: fixtureTransitions()},
	}
	now := reportT0.Add(72*time.Hour + 5*time.Minute)
	return NewReports(src, st, WithReportsClock(func() time.Time { return now })), st
}
