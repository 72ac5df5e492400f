package stats

import (
	"fmt"
	"math"
)

// ReasonSegmentHarm: a candidate is significantly worse than the control
// in one segment (on the primary metric, or beyond a guardrail's margin),
// so it is not promoted even if it wins on average. The Reason names the
// segment.
const ReasonSegmentHarm ReasonCode = "segment_harm"

// DefaultSegmentMinUsers is the users per variant (on a metric) a segment
// needs before it is tested.
const DefaultSegmentMinUsers = 50

// Segment is one value of one segment dimension (e.g. language = de): the
// same per-variant summaries as Input.Metrics, over the users seen in
// that value.
type Segment struct {
	Dimension string               `json:"dimension"`
	Value     string               `json:"value"`
	Metrics   map[string][]Summary `json:"metrics"`
}

// SegmentRef names a segment in a Reason.
type SegmentRef struct {
	Dimension string `json:"dimension"`
	Value     string `json:"value"`
}

// SegmentResult is one candidate's results in one segment.
type SegmentResult struct {
	Dimension string `json:"dimension"`
	Value     string `json:"value"`
	Variant   int    `json:"variant"`
	// Users is the smallest per-variant user count over the tested
	// metrics (of the primary when there is one).
	Users float64 `json:"users"`
	// Tested is false when the segment has fewer than SegmentMinUsers
	// users per variant on every metric: nothing was concluded.
	Tested  bool           `json:"tested"`
	Harmed  bool           `json:"harmed"`
	Metrics []MetricResult `json:"metrics"`
}

// segmentTests is the number of hypotheses the segment analysis corrects
// for: every segment × (primary + guardrails) × candidate. Segments count
// as the declared values (Policy.SegmentValues, each dimension's values
// plus its "other" bucket) or, if more, the segments in Input.Segments,
// tested or not (too few users), so the level depends neither on which
// segments have enough data yet nor on which values have been observed:
// counting only observed values let the divisor start small and grow,
// and an early look then ran at up to ~2.9α for ten declared values.
func segmentTests(in Input, p Policy, k int) int {
	metrics := len(p.Guardrails)
	if p.Mode != RampMode {
		metrics++
	}
	return max(1, max(p.SegmentValues, len(in.Segments))*metrics*k)
}

// evalSegments tests every candidate in every segment for harm: on the
// primary metric, significantly worse than the control (the two-sided
// interval of the lift lies on the harmful side of 0); on a guardrail,
// harmful beyond its margin. Each test runs at alpha/m (Bonferroni, m =
// segmentTests), with the same anytime-valid test as the overall
// analysis, so the chance that any segment of a candidate that harms no
// segment is ever flagged, however often the experiment is looked at,
// is at most alpha. (Holm's step-down would flag the same first segment:
// its first step is Bonferroni's threshold, and one flag is enough to
// refuse a promotion; Bonferroni keeps every interval shown consistent
// with its flag.) Group sequential designs use the confidence sequence
// for segments, as segments have no planned looks.
//
// It returns the results and, per candidate (index j), the first harmed
// segment or nil.
func evalSegments(in Input, p Policy, k int, alpha float64, ec evalCtx) ([]SegmentResult, []*SegmentResult) {
	if len(in.Segments) == 0 {
		return nil, nil
	}
	if ec.method == GroupSequentialMethod {
		ec.method, ec.design, ec.look = ConfidenceSequenceMethod, nil, -1
	}
	minUsers := orDefault(p.SegmentMinUsers, DefaultSegmentMinUsers)
	as := alpha / float64(segmentTests(in, p, k))
	var out []SegmentResult
	for j := 1; j <= k; j++ {
		for _, sg := range in.Segments {
			sin := Input{Metrics: sg.Metrics}
			sr := SegmentResult{Dimension: sg.Dimension, Value: sg.Value, Variant: j, Users: math.Inf(1), Metrics: []MetricResult{}}
			try := func(m Metric, role string, margin float64) {
				ss := sg.Metrics[m.Name]
				if len(ss) <= j || ss[0].N < minUsers || ss[j].N < minUsers {
					if len(ss) > j {
						sr.Users = math.Min(sr.Users, math.Min(ss[0].N, ss[j].N))
					} else {
						sr.Users = 0
					}
					return
				}
				sr.Users = math.Min(sr.Users, math.Min(ss[0].N, ss[j].N))
				mr, bad := evalMetric(sin, m, j, role, margin, as, ec)
				if bad != "" {
					return
				}
				sr.Tested = true
				sr.Metrics = append(sr.Metrics, mr)
				if (role == "primary" && mr.Worse) || mr.Harmful {
					sr.Harmed = true
				}
			}
			if p.Mode != RampMode && p.Primary.Name != "" {
				try(p.Primary, "primary", 0)
			}
			for _, g := range p.Guardrails {
				try(g.Metric, "guardrail", g.Margin)
			}
			if math.IsInf(sr.Users, 1) {
				sr.Users = 0
			}
			out = append(out, sr)
		}
	}
	first := make([]*SegmentResult, k+1)
	for i := range out {
		if sr := &out[i]; sr.Harmed && first[sr.Variant] == nil {
			first[sr.Variant] = sr
		}
	}
	return out, first
}

// segmentHarmReason explains sr.
func segmentHarmReason(sr *SegmentResult) Reason {
	metric := ""
	for _, m := range sr.Metrics {
		if (m.Role == "primary" && m.Worse) || m.Harmful {
			metric = m.Metric
			break
		}
	}
	return Reason{
		Code: ReasonSegmentHarm, Metric: metric, Variant: ip(sr.Variant),
		Segment: &SegmentRef{Dimension: sr.Dimension, Value: sr.Value},
		Message: fmt.Sprintf("variant %d is significantly worse on %s for %s = %s; not promoted", sr.Variant, metric, sr.Dimension, sr.Value),
	}
}
