package api

import (
	"fmt"
	"strings"

	"github.com/abgate/abgate/drift"
	"github.com/abgate/abgate/experiments"
)

// ReportDrift is the drift section of a report: each feature of each
// variant in the latest window against the reference window
// (docs/segments.md).
type ReportDrift struct {
	Reference    drift.TimeRange      `json:"reference"`
	Window       drift.TimeRange      `json:"window"`
	PSIThreshold float64              `json:"psi_threshold"`
	Alpha        float64              `json:"alpha"`
	Features     []ReportDriftFeature `json:"features"`
}

// ReportDriftFeature is one (variant, feature) comparison.
type ReportDriftFeature struct {
	Variant  string  `json:"variant"`
	Feature  string  `json:"feature"`
	RefCount int64   `json:"ref_count"`
	Count    int64   `json:"count"`
	PSI      float64 `json:"psi"`
	PValue   float64 `json:"p_value"`
	// Status: "drifted", "stable" or "too_few" (not compared).
	Status string `json:"status"`
}

// Drift statuses.
const (
	DriftDrifted = "drifted"
	DriftStable  = "stable"
	DriftTooFew  = "too_few"
)

// AddDrift adds the drift section from a drift.Monitor's results for this
// experiment (psi and alpha are the monitor's thresholds, shown with it).
func (r *Report) AddDrift(exp *experiments.Experiment, results []drift.Result, psi, alpha float64) {
	if len(results) == 0 {
		return
	}
	d := &ReportDrift{Reference: results[0].Reference, Window: results[0].Window, PSIThreshold: psi, Alpha: alpha, Features: []ReportDriftFeature{}}
	for _, res := range results {
		name := fmt.Sprintf("#%d", res.Variant)
		if res.Variant >= 0 && res.Variant < len(exp.Variants) {
			name = exp.Variants[res.Variant].Name
		}
		f := ReportDriftFeature{Variant: name, Feature: res.Feature, RefCount: res.RefCount, Count: res.Count, PSI: res.PSI, PValue: res.PValue, Status: DriftTooFew}
		switch {
		case res.Drifted:
			f.Status = DriftDrifted
		case res.Compared:
			f.Status = DriftStable
		}
		d.Features = append(d.Features, f)
	}
	r.Drift = d
}

// segmentRowView is a segment row as rendered in text and markdown.
type segmentRowView struct {
	Segment, Variant, Users, Primary, Guardrails, Status string
}

func (r *Report) segmentViews() []segmentRowView {
	var out []segmentRowView
	for _, s := range r.Segments {
		v := segmentRowView{Segment: s.Dimension + "=" + s.Value, Variant: s.Variant, Users: fmtCount(s.Users), Primary: "-", Guardrails: "-", Status: s.Status}
		if s.Status == SegmentHarmed {
			v.Status = "HARMED"
		}
		var gs []string
		for _, m := range s.Metrics {
			cell := "-"
			if m.Lift != nil && m.CILow != nil && m.CIHigh != nil {
				unit := ""
				if rm := r.metric(m.Metric); rm != nil {
					unit = rm.Unit
				}
				if m.Relative {
					cell = fmtSignedPct(*m.Lift) + " (" + fmtSignedPct(*m.CILow) + " to " + fmtSignedPct(*m.CIHigh) + ")"
				} else {
					cell = fmtSignedAbs(unit, *m.Lift) + " (" + fmtSignedAbs(unit, *m.CILow) + " to " + fmtSignedAbs(unit, *m.CIHigh) + ")"
				}
			}
			if m.Role == "primary" {
				v.Primary = cell
				continue
			}
			flag := "ok"
			if m.Harmed {
				flag = "HARMED"
			}
			gs = append(gs, m.Metric+" "+flag)
		}
		if len(gs) > 0 {
			v.Guardrails = strings.Join(gs, ", ")
		}
		out = append(out, v)
	}
	return out
}

// segmentsNote explains the segment table's intervals.
func (r *Report) segmentsNote() string {
	alpha := 0.0
	for _, s := range r.Segments {
		for _, m := range s.Metrics {
			alpha = m.Alpha
			break
		}
		if alpha > 0 {
			break
		}
	}
	if alpha == 0 {
		return "no segment has enough users to be tested yet"
	}
	return fmt.Sprintf("anytime-valid intervals at level %s per test (alpha split over segments, metrics and candidates); HARMED blocks promotion", fmtP(alpha))
}

func fmtPSI(x float64) string { return fmt.Sprintf("%.3f", x) }
