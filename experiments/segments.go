package experiments

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/abgate/abgate/stats"
)

// Segment limits. They bound the statistics a store keeps per experiment:
// every (variant, metric) gets at most MaxSegmentDimensions ×
// (MaxSegmentValues + 1) segment summaries, whatever the traffic sends.
const (
	// MaxSegmentDimensions is the most segment dimensions an experiment
	// declares.
	MaxSegmentDimensions = 4
	// MaxSegmentValues is the most declared values of one dimension;
	// anything else falls into SegmentOther.
	MaxSegmentValues = 32
	// MaxSegmentBodyFields is the most distinct body_field names over all
	// experiments of a config: the gateway picks them out of the request
	// body in the same pass that finds the model, before it knows the
	// experiment.
	MaxSegmentBodyFields = 8
	// SegmentOther is the value index of everything not declared
	// (including a missing header or field).
	SegmentOther = 0
	// SegmentOtherName names SegmentOther in reports.
	SegmentOtherName = "other"
)

// Segment is one dimension along which an experiment's statistics are
// also kept, e.g. the user's region, language or customer tier. Its value
// comes from a request header or a top-level string field of the request
// body; values outside Values count as "other", so cardinality stays
// bounded (issue #7).
type Segment struct {
	Name string `yaml:"name"`
	// Header names the request header holding the value; BodyField a
	// top-level string field of the JSON body. Exactly one is set.
	Header    string `yaml:"header"`
	BodyField string `yaml:"body_field"`
	// Values lists the values tracked on their own (1..32). Their order
	// gives the value indexes stored with the statistics: append new
	// values at the end, or start a new phase.
	Values []string `yaml:"values"`
}

// Index returns the value index of s: 1 + its position in Values, or
// SegmentOther. Values are matched exactly (case-sensitive). It does not
// allocate.
func (s *Segment) Index(v []byte) uint8 {
	for i, x := range s.Values {
		if x == string(v) {
			return uint8(i + 1)
		}
	}
	return SegmentOther
}

// IndexString is Index for a string value.
func (s *Segment) IndexString(v string) uint8 {
	for i, x := range s.Values {
		if x == v {
			return uint8(i + 1)
		}
	}
	return SegmentOther
}

// ValueName returns the name of value index i ("other" for SegmentOther
// or an index the config no longer declares).
func (s *Segment) ValueName(i int) string {
	if i >= 1 && i <= len(s.Values) {
		return s.Values[i-1]
	}
	return SegmentOtherName
}

// SegmentValues is the segment of one request: for each of the
// experiment's first N dimensions, the value index (SegmentOther or
// 1 + position in Segment.Values). It is a small fixed-size value, so an
// Outcome carrying it still enqueues without allocation.
type SegmentValues struct {
	N uint8 // dimensions set; 0 when the experiment declares none
	V [MaxSegmentDimensions]uint8
}

// Len is how many dimensions are set, never more than V holds.
func (s *SegmentValues) Len() int { return min(int(s.N), MaxSegmentDimensions) }

// SegmentKey names the statistics of one segment value: the Summary of
// Metric for Variant over the requests whose dimension Dimension (index
// into Experiment.Segments) had value index Value.
type SegmentKey struct {
	Variant   int
	Metric    string
	Dimension int
	Value     int
}

// segmentSep separates a metric from its segment in the metric names
// stores use internally for segment statistics ("thumbs@1.3"). Metric
// names can't contain it (see cfgValidID).
const segmentSep = '@'

// SegmentMetric returns the internal metric name under which stores keep
// the statistics of metric within one segment value. A store keeps a
// user's totals per such name, so a user seen in two values of a
// dimension is counted in each, with the observations made in it.
func SegmentMetric(metric string, dim, value int) string {
	var b [80]byte
	out := append(b[:0], metric...)
	out = append(out, segmentSep)
	out = strconv.AppendInt(out, int64(dim), 10)
	out = append(out, '.')
	out = strconv.AppendInt(out, int64(value), 10)
	return string(out)
}

// ParseSegmentMetric splits a name made by SegmentMetric; ok is false
// for an ordinary metric name.
func ParseSegmentMetric(name string) (metric string, dim, value int, ok bool) {
	i := strings.LastIndexByte(name, segmentSep)
	if i < 0 {
		return "", 0, 0, false
	}
	ds, vs, found := strings.Cut(name[i+1:], ".")
	if !found {
		return "", 0, 0, false
	}
	d, err1 := strconv.Atoi(ds)
	v, err2 := strconv.Atoi(vs)
	if err1 != nil || err2 != nil || d < 0 || v < 0 {
		return "", 0, 0, false
	}
	return name[:i], d, v, true
}

// IsSegmentMetric reports whether name is an internal segment metric name.
func IsSegmentMetric(name string) bool { return strings.IndexByte(name, segmentSep) >= 0 }

// ForEachSegment calls fn with the segment metric name of each dimension
// d carries. Stores use it to apply the same change to the segment
// statistics as to the overall ones.
func (d *Delta) ForEachSegment(fn func(dim, value int, metric string)) {
	for i := range d.Segments.Len() {
		v := int(d.Segments.V[i])
		fn(i, v, SegmentMetric(d.Metric, i, v))
	}
}

// SegmentBodyFields returns the distinct body_field names of every
// experiment's segments, in order of first appearance.
func (c *Config) SegmentBodyFields() []string {
	var out []string
	for i := range c.Experiments {
		for _, s := range c.Experiments[i].Segments {
			if s.BodyField != "" && !containsString(out, s.BodyField) {
				out = append(out, s.BodyField)
			}
		}
	}
	return out
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// segments validates an experiment's segment dimensions.
func (v *cfgValidator) segments(e *Experiment, p string) {
	if len(e.Segments) > MaxSegmentDimensions {
		v.add(p+".segments", "at most %d dimensions", MaxSegmentDimensions)
	}
	names := map[string]int{}
	for i := range e.Segments {
		s := &e.Segments[i]
		sp := fmt.Sprintf("%s.segments[%d]", p, i)
		v.id(sp+".name", s.Name)
		if j, dup := names[s.Name]; dup && s.Name != "" {
			v.add(sp+".name", "duplicate of %s.segments[%d].name", p, j)
		} else {
			names[s.Name] = i
		}
		switch {
		case s.Header == "" && s.BodyField == "":
			v.add(sp, "needs header or body_field")
		case s.Header != "" && s.BodyField != "":
			v.add(sp, "set header or body_field, not both")
		case s.Header != "" && !cfgValidHeaderName(s.Header):
			v.add(sp+".header", "must be a valid HTTP header name")
		case s.BodyField != "" && (!cfgValidID(s.BodyField) || strings.EqualFold(s.BodyField, "model")):
			v.add(sp+".body_field", "must be 1-64 characters of A-Z a-z 0-9 . _ : - and not \"model\"")
		}
		switch n := len(s.Values); {
		case n == 0:
			v.add(sp+".values", "list at least one value (others count as %q)", SegmentOtherName)
		case n > MaxSegmentValues:
			v.add(sp+".values", "at most %d values (others count as %q)", MaxSegmentValues, SegmentOtherName)
		}
		seen := map[string]int{}
		for k, val := range s.Values {
			vp := fmt.Sprintf("%s.values[%d]", sp, k)
			switch {
			case val == "" || len(val) > 64 || !cfgPrintable(val):
				v.add(vp, "must be 1-64 printable characters")
			case val == SegmentOtherName:
				v.add(vp, "%q is the bucket of undeclared values; it can't be declared", SegmentOtherName)
			default:
				if j, dup := seen[val]; dup {
					v.add(vp, "duplicate of %s.values[%d]", sp, j)
				} else {
					seen[val] = k
				}
			}
		}
	}
	if e.FeedbackTextRetention < 0 {
		v.add(p+".feedback_text_retention", "must not be negative")
	}
	switch ttl := e.CUPEDHistoryTTL; {
	case ttl != 0 && !e.CUPED:
		v.add(p+".cuped_history_ttl", "needs cuped: true (the history is kept only for CUPED)")
	case ttl != 0 && (ttl < MinCUPEDHistoryTTL || ttl > MaxCUPEDHistoryTTL):
		v.add(p+".cuped_history_ttl", "must be between %v and %v", time.Duration(MinCUPEDHistoryTTL), time.Duration(MaxCUPEDHistoryTTL))
	}
}

// SegmentInputs converts a Snapshot's segment statistics into the
// stats.Segment list of stats.Input.Segments: one entry per declared
// value of each dimension plus its "other" bucket, each with the given
// metrics for variants 0..variants-1 (zero Summaries where there is no
// data). Entries with no data at all are left out.
func SegmentInputs(e *Experiment, snap Snapshot, metrics []string, variants int) []stats.Segment {
	if len(e.Segments) == 0 || len(snap.Segments) == 0 {
		return nil
	}
	var out []stats.Segment
	for d := range e.Segments {
		sg := &e.Segments[d]
		for val := 0; val <= len(sg.Values); val++ {
			seg := stats.Segment{Dimension: sg.Name, Value: sg.ValueName(val), Metrics: map[string][]stats.Summary{}}
			any := false
			for _, m := range metrics {
				if _, done := seg.Metrics[m]; done {
					continue
				}
				ss := make([]stats.Summary, variants)
				for v := range variants {
					s, ok := snap.Segments[SegmentKey{Variant: v, Metric: m, Dimension: d, Value: val}]
					any = any || ok
					ss[v] = s
				}
				seg.Metrics[m] = ss
			}
			if any {
				out = append(out, seg)
			}
		}
	}
	return out
}
