package api

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"net/url"
	"strings"
	"sync"

	"github.com/abgate/abgate/stats"
)

//go:embed web/*.tmpl
var webFS embed.FS

// pageTemplates are parsed on the first page served, not at start-up:
// parsing them in the package's init allocated 170 KB and ran the
// template parser in every process, including the many replicas that
// never render a page (idle RSS, docs/deploy.md "Memory"). A broken
// template still fails the tests that render each page.
var pageTemplates = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("").Funcs(template.FuncMap{
		"add": func(a, b float64) float64 { return a + b },
		"sub": func(a, b float64) float64 { return a - b },
		"statusClass": func(s string) string {
			switch s {
			case RowBetter, RowNonInferior, "ok", "running", "promoted", DriftStable, string(stats.JudgePass):
				return "good"
			case RowWorse, RowHarmful, "mismatch", "rolled_back", "HARMED", DriftDrifted, string(stats.JudgeStopWorse):
				return "bad"
			case "paused", "not checked":
				return "warn"
			}
			return "neutral"
		},
	}).ParseFS(webFS, "web/*.tmpl"))
})

// refreshSeconds is how often a running experiment's page reloads.
const refreshSeconds = 30

type pageData struct {
	R            Report
	Status       string
	Generated    string
	Refresh      int // 0: no refresh (the experiment has ended)
	IndexURL     string
	JSONURL      string
	VerdictClass string
	Decision     string
	Control      string
	Confidence   string
	Metrics      []metricView
	LiftChart    *chart
	TrafficChart *chart
	Hours        []hourView
	SRMStatus    string
	SRMLine      string
	Variants     []variantView
	PolicyLine   string
	Transitions  []transitionView
	Segments     []segmentRowView
	SegmentsNote string
	Drift        *driftView
	Judge        *judgeView
}

type driftView struct {
	Note     string
	Features []driftRowView
}

type driftRowView struct {
	Variant, Feature, RefCount, Count, PSI, P, Status string
}

type hourView struct {
	Hour    string
	Users   []string
	Lifts   []string
	Verdict string
}

type variantView struct {
	Name, Model, Users, Expected, Observed, Color string
}

type transitionView struct {
	Seq                       int64
	At, Actor, Change, Detail string
}

// verdictClass colours the verdict box.
func verdictClass(kind string) string {
	switch kind {
	case VerdictPromote:
		return "good"
	case VerdictHarm, VerdictWorse, VerdictSRM, VerdictSegmentHarm:
		return "bad"
	case VerdictInconclusve, VerdictGuardrails, VerdictTooFew, VerdictFutility:
		return "warn"
	}
	return ""
}

// renderPage writes the HTML report. base is the URL prefix the routes
// are mounted under ("" at the root).
func renderPage(w io.Writer, r Report, base string) error {
	d := pageData{
		R:            r,
		Status:       r.statusLine(),
		Generated:    fmtTime(r.GeneratedAt),
		IndexURL:     base + "/reports",
		JSONURL:      base + "/api/v1/experiments/" + url.PathEscape(r.Experiment) + "/report",
		VerdictClass: verdictClass(r.Verdict.Kind),
		Decision:     r.decisionLine(),
		Control:      r.controlName(),
		Confidence:   fmtConfidence(r.Policy.Confidence),
		Metrics:      r.metricViews(),
		LiftChart:    liftChart(&r),
		TrafficChart: trafficChart(&r),
		SRMStatus:    strings.ReplaceAll(r.SRM.Status, "_", " "),
		SRMLine:      r.srmLine(),
		PolicyLine:   r.policyLine(),
		Judge:        r.Judge.view(),
	}
	if !r.Ended {
		d.Refresh = refreshSeconds
	}
	for _, h := range r.sampledHours(72) {
		users, lifts := r.hourCells(h)
		d.Hours = append(d.Hours, hourView{Hour: fmtHour(h), Users: users, Lifts: lifts, Verdict: string(h.Verdict)})
	}
	for _, v := range r.Variants {
		d.Variants = append(d.Variants, variantView{Name: v.Name, Model: v.Model, Users: fmtCount(v.Users), Expected: fmtShareCell(v.ExpectedShare), Observed: fmtShareCell(v.ObservedShare), Color: colorOf(v.Index)})
	}
	for _, t := range r.Transitions {
		change, detail := t.summary()
		d.Transitions = append(d.Transitions, transitionView{Seq: t.Seq, At: fmtTime(t.At), Actor: t.Actor, Change: change, Detail: detail})
	}
	if len(r.Segments) > 0 {
		d.Segments, d.SegmentsNote = r.segmentViews(), r.segmentsNote()
	}
	if dr := r.Drift; dr != nil {
		d.Drift = &driftView{Note: fmt.Sprintf("Window %s to %s against the reference %s to %s; drifted when PSI ≥ %s and chi-square p < %s.",
			fmtTime(dr.Window.From), fmtTime(dr.Window.To), fmtTime(dr.Reference.From), fmtTime(dr.Reference.To), fmtPSI(dr.PSIThreshold), fmtP(dr.Alpha))}
		for _, f := range dr.Features {
			d.Drift.Features = append(d.Drift.Features, driftRowView{Variant: f.Variant, Feature: f.Feature,
				RefCount: fmtCount(float64(f.RefCount)), Count: fmtCount(float64(f.Count)), PSI: fmtPSI(f.PSI), P: fmtP(f.PValue), Status: f.Status})
		}
	}
	return pageTemplates().ExecuteTemplate(w, "report.html.tmpl", d)
}

type indexRow struct {
	ID, Description, URL, Status, Verdict string
}

type indexData struct {
	Generated string
	Refresh   int
	Rows      []indexRow
}

func renderIndex(w io.Writer, d indexData) error {
	d.Refresh = refreshSeconds
	return pageTemplates().ExecuteTemplate(w, "index.html.tmpl", d)
}
