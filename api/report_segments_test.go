package api

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/drift"
	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
)

func segmentExperiment() *experiments.Experiment {
	e := reportExperiment()
	e.ID = "support-bot-segments"
	e.Segments = []experiments.Segment{{Name: "language", BodyField: "language", Values: []string{"en", "de", "fr"}}}
	return e
}

// segmentSim fills a memstore with users split over languages (en 50%,
// de 20%, fr 25%, other 5%); thumbs[v][lang] is the thumbs-up rate of
// variant v in language index lang (0 = other).
func segmentSim(t testing.TB, exp *experiments.Experiment, users int, thumbs [2][4]float64) *memstore.Store {
	t.Helper()
	st := memstore.New()
	rng := rand.New(rand.NewPCG(11, 3))
	shares := []float64{0.05, 0.5, 0.2, 0.25}
	hour := experiments.HourOf(reportT0)
	b := &experiments.Batch{ID: "seg", Experiment: exp.ID, Phase: 1}
	for u := range users {
		var key experiments.UnitKey
		binary.BigEndian.PutUint64(key[:], uint64(u+1))
		v := u % 2
		lang := pick(rng, shares)
		seg := experiments.SegmentValues{N: 1, V: [4]uint8{uint8(lang)}}
		add := func(metric string, x float64) {
			b.Deltas = append(b.Deltas, experiments.Delta{Variant: v, Unit: key, Metric: metric, Hour: hour, DX: x, DY: 1, Segments: seg})
		}
		for range 1 + rng.IntN(3) {
			add(experiments.MetricRequests, 1)
			add(experiments.MetricLatencyMS, 800*(0.8+0.4*rng.Float64()))
			add(experiments.MetricError, bern(rng, 0.004))
			add(experiments.MetricThumbs, bern(rng, thumbs[v][lang]))
		}
	}
	if _, err := st.Apply(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return st
}

func segmentReport(t testing.TB, thumbs [2][4]float64) Report {
	t.Helper()
	exp := segmentExperiment()
	st := segmentSim(t, exp, 60000, thumbs)
	snap, err := st.Summaries(context.Background(), exp.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	return BuildReport(exp, fixtureStatus(), nil, snap, nil, reportT0.Add(72*time.Hour))
}

// TestReportSegmentHarm: the fine-tuned model is better overall but worse
// for German; the report flags language=de, the verdict refuses to
// promote and says why. With no harmed language it recommends promoting.
func TestReportSegmentHarm(t *testing.T) {
	harmed := segmentReport(t, [2][4]float64{{0.5, 0.5, 0.5, 0.5}, {0.5, 0.58, 0.38, 0.58}})
	if harmed.Verdict.Kind != VerdictSegmentHarm || harmed.Decision.Verdict == "promote" {
		t.Fatalf("verdict %s (%s): %s", harmed.Verdict.Kind, harmed.Decision.Verdict, harmed.Verdict.Sentence)
	}
	if !strings.Contains(harmed.Verdict.Sentence, "language = de") {
		t.Errorf("verdict does not name the segment: %s", harmed.Verdict.Sentence)
	}
	for _, s := range harmed.Segments {
		want := SegmentOK
		if s.Value == "de" && s.Variant == "fine-tuned" {
			want = SegmentHarmed
		}
		if s.Status != want {
			t.Errorf("segment %s=%s: status %s, want %s", s.Dimension, s.Value, s.Status, want)
		}
	}
	fine := segmentReport(t, [2][4]float64{{0.5, 0.5, 0.5, 0.5}, {0.54, 0.54, 0.54, 0.54}})
	if fine.Verdict.Kind != VerdictPromote {
		t.Errorf("no harmed segment: verdict %s: %s", fine.Verdict.Kind, fine.Verdict.Sentence)
	}
}

// TestReportSegmentsGolden pins the segment and drift sections of the
// text and markdown reports.
func TestReportSegmentsGolden(t *testing.T) {
	r := segmentReport(t, [2][4]float64{{0.5, 0.5, 0.5, 0.5}, {0.5, 0.58, 0.38, 0.58}})
	ref := make([]int64, experiments.DriftBins)
	cur := make([]int64, experiments.DriftBins)
	for b := 10; b < 20; b++ {
		ref[b] = int64(100 * (b - 9))
		cur[b+2] = int64(40 * (b - 9))
	}
	win := drift.TimeRange{From: reportT0.Add(66 * time.Hour), To: reportT0.Add(72 * time.Hour)}
	refR := drift.TimeRange{From: reportT0, To: reportT0.Add(48 * time.Hour)}
	var results []drift.Result
	for v := range 2 {
		for _, f := range []string{experiments.DriftPromptTokens, experiments.DriftLatencyMS} {
			c := cur
			if f == experiments.DriftLatencyMS {
				c = ref
			}
			res := drift.Compare(ref, c, drift.DefaultDriftPSI, drift.DefaultDriftAlpha, drift.DefaultDriftMinCount)
			res.Experiment, res.Variant, res.Feature, res.Reference, res.Window = r.Experiment, v, f, refR, win
			results = append(results, res)
		}
	}
	r.AddDrift(segmentExperiment(), results, drift.DefaultDriftPSI, drift.DefaultDriftAlpha)
	for _, tc := range []struct {
		file   string
		render func(*bytes.Buffer, Report) error
	}{
		{"report_segments.txt.golden", func(b *bytes.Buffer, r Report) error { return RenderText(b, r) }},
		{"report_segments.md.golden", func(b *bytes.Buffer, r Report) error { return RenderMarkdown(b, r) }},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.render(&b, r); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, b.Bytes())
		})
	}
	var page bytes.Buffer
	if err := renderPage(&page, r, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="segments-h"`, "language=de", `id="drift-h"`, "prompt_tokens", "HARMED", "drifted"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	_ = fmt.Sprint()
}
