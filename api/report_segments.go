package api

import (
	"fmt"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// ReportSegment is one candidate in one segment value: the lift on the
// primary metric and the guardrails within the segment, with intervals at
// the segment level (alpha split over segments × metrics × candidates,
// see docs/segments.md), and whether the segment is harmed.
type ReportSegment struct {
	Dimension string  `json:"dimension"`
	Value     string  `json:"value"`
	Variant   string  `json:"variant"`
	Users     float64 `json:"users"` // smallest per-variant user count of the segment
	// Status: "harmed" (significantly worse: blocks promotion), "ok"
	// (tested, no harm shown) or "too_few_users" (not tested).
	Status  string              `json:"status"`
	Metrics []ReportSegmentCell `json:"metrics"`
}

// ReportSegmentCell is one metric of a segment row.
type ReportSegmentCell struct {
	Metric   string   `json:"metric"`
	Role     string   `json:"role"` // primary or guardrail
	Relative bool     `json:"relative"`
	Lift     *float64 `json:"lift,omitempty"`
	CILow    *float64 `json:"ci_low,omitempty"`
	CIHigh   *float64 `json:"ci_high,omitempty"`
	Alpha    float64  `json:"alpha"`
	Harmed   bool     `json:"harmed"`
}

// Segment row statuses.
const (
	SegmentHarmed = "harmed"
	SegmentOK     = "ok"
	SegmentTooFew = "too_few_users"
)

func (a *analysis) segments(d stats.Decision) []ReportSegment {
	if len(d.Segments) == 0 {
		return nil
	}
	out := make([]ReportSegment, 0, len(d.Segments))
	for _, sr := range d.Segments {
		rs := ReportSegment{
			Dimension: sr.Dimension, Value: sr.Value, Variant: a.exp.Variants[sr.Variant].Name,
			Users: sr.Users, Status: SegmentTooFew, Metrics: []ReportSegmentCell{},
		}
		switch {
		case sr.Harmed:
			rs.Status = SegmentHarmed
		case sr.Tested:
			rs.Status = SegmentOK
		}
		for _, m := range sr.Metrics {
			rs.Metrics = append(rs.Metrics, ReportSegmentCell{
				Metric: m.Metric, Role: m.Role, Relative: m.Relative,
				Lift: m.Lift, CILow: m.CILow, CIHigh: m.CIHigh, Alpha: m.Alpha,
				Harmed: (m.Role == "primary" && m.Worse) || m.Harmful,
			})
		}
		out = append(out, rs)
	}
	return out
}

// firstSegmentHarm returns the first harmed segment of the decision, if
// the decision's reasons name one.
func firstSegmentHarm(d stats.Decision) *stats.SegmentResult {
	for _, r := range d.Reasons {
		if r.Code != stats.ReasonSegmentHarm || r.Segment == nil || r.Variant == nil {
			continue
		}
		for i := range d.Segments {
			sr := &d.Segments[i]
			if sr.Variant == *r.Variant && sr.Dimension == r.Segment.Dimension && sr.Value == r.Segment.Value {
				return sr
			}
		}
	}
	return nil
}

// segmentHarmPhrase: "thumbs-up rate -12.0% (anytime-valid 95% CI …)".
func segmentHarmPhrase(exp *experiments.Experiment, sr *stats.SegmentResult) string {
	for _, m := range sr.Metrics {
		if !((m.Role == "primary" && m.Worse) || m.Harmful) || m.Lift == nil || m.CILow == nil || m.CIHigh == nil {
			continue
		}
		info := describe(exp, m.Metric)
		if m.Relative {
			return fmt.Sprintf("%s %s, anytime-valid segment-level CI %s to %s", info.Noun, fmtSignedPct(*m.Lift), fmtSignedPct(*m.CILow), fmtSignedPct(*m.CIHigh))
		}
		return fmt.Sprintf("%s %s, anytime-valid segment-level CI %s to %s", info.Noun, fmtLift(info.Unit, false, *m.Lift), fmtLift(info.Unit, false, *m.CILow), fmtLift(info.Unit, false, *m.CIHigh))
	}
	return "see the segment table"
}
