package otlpexport

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Field numbers of opentelemetry-proto collector/metrics/v1 and
// metrics/v1 (the resource, scope and KeyValue ones are encode.go's).
const (
	// ExportMetricsServiceRequest
	fRequestResourceMetrics = 1
	// ResourceMetrics
	fResourceMetricsResource  = 1
	fResourceMetricsScopes    = 2
	fResourceMetricsSchemaURL = 3
	// ScopeMetrics
	fScopeMetricsScope     = 1
	fScopeMetricsMetrics   = 2
	fScopeMetricsSchemaURL = 3
	// Metric
	fMetricName        = 1
	fMetricDescription = 2
	fMetricUnit        = 3
	fMetricGauge       = 5
	fMetricSum         = 7
	fMetricHistogram   = 9
	fMetricExpHist     = 10
	fMetricSummary     = 11
	// Gauge, Sum, Histogram, ExponentialHistogram, Summary
	fDataPoints  = 1
	fTemporality = 2
	fMonotonic   = 3 // Sum
	// NumberDataPoint
	fNumberAttributes = 7
	fNumberStart      = 2
	fNumberTime       = 3
	fNumberExemplars  = 5
	fNumberAsDouble   = 4
	fNumberAsInt      = 6
	// HistogramDataPoint
	fHistAttributes = 9
	fHistStart      = 2
	fHistTime       = 3
	fHistCount      = 4
	fHistSum        = 5
	fHistCounts     = 6
	fHistBounds     = 7
	fHistExemplars  = 8
	fHistMin        = 11
	fHistMax        = 12
	// ExponentialHistogramDataPoint
	fExpAttributes    = 1
	fExpStart         = 2
	fExpTime          = 3
	fExpCount         = 4
	fExpSum           = 5
	fExpScale         = 6
	fExpZeroCount     = 7
	fExpPositive      = 8
	fExpNegative      = 9
	fExpExemplars     = 11
	fExpMin           = 12
	fExpMax           = 13
	fExpZeroThreshold = 14
	// ExponentialHistogramDataPoint.Buckets
	fBucketsOffset = 1
	fBucketsCounts = 2
	// SummaryDataPoint
	fSummaryAttributes = 7
	fSummaryStart      = 2
	fSummaryTime       = 3
	fSummaryCount      = 4
	fSummarySum        = 5
	fSummaryQuantiles  = 6
	// SummaryDataPoint.ValueAtQuantile
	fQuantileQuantile = 1
	fQuantileValue    = 2
	// Exemplar
	fExemplarAttributes = 7
	fExemplarTime       = 2
	fExemplarAsDouble   = 3
	fExemplarAsInt      = 6
	fExemplarSpanID     = 4
	fExemplarTraceID    = 5
	// AggregationTemporality
	temporalityDelta      = 1
	temporalityCumulative = 2
)

// The official transform's errors, with its words (its errUnknown*
// sentinels are internal).
var (
	errUnknownAggregation = errors.New("unknown aggregation")
	errUnknownTemporality = errors.New("unknown temporality")
)

// metricEncoder builds ExportMetricsServiceRequest messages into a buffer
// it reuses from one export to the next. Not safe for concurrent use.
type metricEncoder struct {
	buf []byte
}

// encode returns the request for rm (valid until the next call), the
// message the official transform builds: every scope, and every metric
// but those it refuses (an unknown aggregation or temporality), which are
// left out and reported in the error, the rest still encoded.
func (e *metricEncoder) encode(rm *metricdata.ResourceMetrics) ([]byte, error) {
	var errs []error
	b := e.buf[:0]
	b = protowire.AppendTag(b, fRequestResourceMetrics, protowire.BytesType)
	rs := len(b)
	b = openMessage(b)
	// The official transform always sets the resource, empty or not.
	b = protowire.AppendTag(b, fResourceMetricsResource, protowire.BytesType)
	r := len(b)
	b = openMessage(b)
	for it := rm.Resource.Iter(); it.Next(); {
		b = appendKeyValue(b, fResourceAttributes, it.Attribute())
	}
	b = closeMessage(b, r)
	for i := range rm.ScopeMetrics {
		sm := &rm.ScopeMetrics[i]
		b = protowire.AppendTag(b, fResourceMetricsScopes, protowire.BytesType)
		ss := len(b)
		b = openMessage(b)
		// So is the scope.
		b = protowire.AppendTag(b, fScopeMetricsScope, protowire.BytesType)
		sc := len(b)
		b = openMessage(b)
		b = appendString(b, fScopeName, sm.Scope.Name)
		b = appendString(b, fScopeVersion, sm.Scope.Version)
		for it := sm.Scope.Attributes.Iter(); it.Next(); {
			b = appendKeyValue(b, fScopeAttributes, it.Attribute())
		}
		b = closeMessage(b, sc)
		for j := range sm.Metrics {
			m := &sm.Metrics[j]
			if err := checkMetric(m.Data); err != nil {
				errs = append(errs, fmt.Errorf("invalid metric (name: %q, description: %q, unit: %q): %w", m.Name, m.Description, m.Unit, err))
				continue
			}
			b = appendMetric(b, m)
		}
		b = appendString(b, fScopeMetricsSchemaURL, sm.Scope.SchemaURL)
		b = closeMessage(b, ss)
	}
	b = appendString(b, fResourceMetricsSchemaURL, rm.Resource.SchemaURL())
	b = closeMessage(b, rs)
	e.buf = b
	if len(errs) > 0 {
		return b, fmt.Errorf("otlpexport: %d metrics left out: %w", len(errs), errors.Join(errs...))
	}
	return b, nil
}

// checkMetric is what the official transform refuses: an aggregation it
// does not know (a pointer to a known one included) or a temporality
// other than delta and cumulative.
func checkMetric(data metricdata.Aggregation) error {
	var t metricdata.Temporality
	switch a := data.(type) {
	case metricdata.Gauge[int64], metricdata.Gauge[float64], metricdata.Summary:
		return nil
	case metricdata.Sum[int64]:
		t = a.Temporality
	case metricdata.Sum[float64]:
		t = a.Temporality
	case metricdata.Histogram[int64]:
		t = a.Temporality
	case metricdata.Histogram[float64]:
		t = a.Temporality
	case metricdata.ExponentialHistogram[int64]:
		t = a.Temporality
	case metricdata.ExponentialHistogram[float64]:
		t = a.Temporality
	default:
		return fmt.Errorf("%w: %T", errUnknownAggregation, data)
	}
	if _, ok := temporality(t); !ok {
		return fmt.Errorf("%w: %s", errUnknownTemporality, t)
	}
	return nil
}

func temporality(t metricdata.Temporality) (uint64, bool) {
	switch t {
	case metricdata.DeltaTemporality:
		return temporalityDelta, true
	case metricdata.CumulativeTemporality:
		return temporalityCumulative, true
	}
	return 0, false
}

// appendMetric appends m, which checkMetric accepted.
func appendMetric(b []byte, m *metricdata.Metrics) []byte {
	b = protowire.AppendTag(b, fScopeMetricsMetrics, protowire.BytesType)
	mm := len(b)
	b = openMessage(b)
	b = appendString(b, fMetricName, m.Name)
	b = appendString(b, fMetricDescription, m.Description)
	b = appendString(b, fMetricUnit, m.Unit)
	switch a := m.Data.(type) {
	case metricdata.Gauge[int64]:
		b = appendGauge(b, a.DataPoints)
	case metricdata.Gauge[float64]:
		b = appendGauge(b, a.DataPoints)
	case metricdata.Sum[int64]:
		b = appendSum(b, a)
	case metricdata.Sum[float64]:
		b = appendSum(b, a)
	case metricdata.Histogram[int64]:
		b = appendHistogram(b, a)
	case metricdata.Histogram[float64]:
		b = appendHistogram(b, a)
	case metricdata.ExponentialHistogram[int64]:
		b = appendExpHistogram(b, a)
	case metricdata.ExponentialHistogram[float64]:
		b = appendExpHistogram(b, a)
	case metricdata.Summary:
		b = appendSummary(b, a)
	}
	return closeMessage(b, mm)
}

// The data message of every aggregation is present, with no data points
// or with many, as in the official transform.

func appendGauge[N int64 | float64](b []byte, dps []metricdata.DataPoint[N]) []byte {
	b = protowire.AppendTag(b, fMetricGauge, protowire.BytesType)
	g := len(b)
	b = openMessage(b)
	b = appendNumberDataPoints(b, dps)
	return closeMessage(b, g)
}

func appendSum[N int64 | float64](b []byte, s metricdata.Sum[N]) []byte {
	t, _ := temporality(s.Temporality)
	b = protowire.AppendTag(b, fMetricSum, protowire.BytesType)
	m := len(b)
	b = openMessage(b)
	b = appendNumberDataPoints(b, s.DataPoints)
	b = appendVarint(b, fTemporality, t)
	if s.IsMonotonic {
		b = appendVarint(b, fMonotonic, 1)
	}
	return closeMessage(b, m)
}

func appendNumberDataPoints[N int64 | float64](b []byte, dps []metricdata.DataPoint[N]) []byte {
	for i := range dps {
		dp := &dps[i]
		b = protowire.AppendTag(b, fDataPoints, protowire.BytesType)
		m := len(b)
		b = openMessage(b)
		b = appendAttributes(b, fNumberAttributes, dp.Attributes)
		b = appendFixed64(b, fNumberStart, unixNano(dp.StartTime.UnixNano()))
		b = appendFixed64(b, fNumberTime, unixNano(dp.Time.UnixNano()))
		b = appendExemplars(b, fNumberExemplars, dp.Exemplars)
		// The value is a oneof: present even when zero.
		b = appendNumber(b, fNumberAsDouble, fNumberAsInt, dp.Value)
		b = closeMessage(b, m)
	}
	return b
}

// appendNumber appends v as an as_double (fixed64) or as_int (sfixed64)
// oneof member, present even when zero.
func appendNumber[N int64 | float64](b []byte, double, integer protowire.Number, v N) []byte {
	var zero N
	if _, isInt := any(zero).(int64); isInt {
		b = protowire.AppendTag(b, integer, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, uint64(int64(v)))
	}
	b = protowire.AppendTag(b, double, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(float64(v)))
}

func appendExemplars[N int64 | float64](b []byte, num protowire.Number, exs []metricdata.Exemplar[N]) []byte {
	for i := range exs {
		ex := &exs[i]
		b = protowire.AppendTag(b, num, protowire.BytesType)
		m := len(b)
		b = openMessage(b)
		for _, kv := range ex.FilteredAttributes {
			b = appendKeyValue(b, fExemplarAttributes, kv)
		}
		b = appendFixed64(b, fExemplarTime, unixNano(ex.Time.UnixNano()))
		b = appendNumber(b, fExemplarAsDouble, fExemplarAsInt, ex.Value)
		b = appendBytes(b, fExemplarSpanID, ex.SpanID)
		b = appendBytes(b, fExemplarTraceID, ex.TraceID)
		b = closeMessage(b, m)
	}
	return b
}

func appendHistogram[N int64 | float64](b []byte, h metricdata.Histogram[N]) []byte {
	t, _ := temporality(h.Temporality)
	b = protowire.AppendTag(b, fMetricHistogram, protowire.BytesType)
	m := len(b)
	b = openMessage(b)
	for i := range h.DataPoints {
		dp := &h.DataPoints[i]
		b = protowire.AppendTag(b, fDataPoints, protowire.BytesType)
		d := len(b)
		b = openMessage(b)
		b = appendAttributes(b, fHistAttributes, dp.Attributes)
		b = appendFixed64(b, fHistStart, unixNano(dp.StartTime.UnixNano()))
		b = appendFixed64(b, fHistTime, unixNano(dp.Time.UnixNano()))
		b = appendFixed64(b, fHistCount, dp.Count)
		// sum, min and max have presence: the official transform always
		// sets the sum, and min and max when they are defined.
		b = appendOptionalDouble(b, fHistSum, float64(dp.Sum))
		b = appendPackedFixed64(b, fHistCounts, dp.BucketCounts)
		b = appendPackedDoubles(b, fHistBounds, dp.Bounds)
		b = appendExemplars(b, fHistExemplars, dp.Exemplars)
		if v, ok := dp.Min.Value(); ok {
			b = appendOptionalDouble(b, fHistMin, float64(v))
		}
		if v, ok := dp.Max.Value(); ok {
			b = appendOptionalDouble(b, fHistMax, float64(v))
		}
		b = closeMessage(b, d)
	}
	b = appendVarint(b, fTemporality, t)
	return closeMessage(b, m)
}

func appendExpHistogram[N int64 | float64](b []byte, h metricdata.ExponentialHistogram[N]) []byte {
	t, _ := temporality(h.Temporality)
	b = protowire.AppendTag(b, fMetricExpHist, protowire.BytesType)
	m := len(b)
	b = openMessage(b)
	for i := range h.DataPoints {
		dp := &h.DataPoints[i]
		b = protowire.AppendTag(b, fDataPoints, protowire.BytesType)
		d := len(b)
		b = openMessage(b)
		b = appendAttributes(b, fExpAttributes, dp.Attributes)
		b = appendFixed64(b, fExpStart, unixNano(dp.StartTime.UnixNano()))
		b = appendFixed64(b, fExpTime, unixNano(dp.Time.UnixNano()))
		b = appendFixed64(b, fExpCount, dp.Count)
		b = appendOptionalDouble(b, fExpSum, float64(dp.Sum))
		b = appendVarint(b, fExpScale, protowire.EncodeZigZag(int64(dp.Scale)))
		b = appendFixed64(b, fExpZeroCount, dp.ZeroCount)
		// Both bucket messages are always set, empty or not.
		b = appendBuckets(b, fExpPositive, dp.PositiveBucket)
		b = appendBuckets(b, fExpNegative, dp.NegativeBucket)
		b = appendExemplars(b, fExpExemplars, dp.Exemplars)
		if v, ok := dp.Min.Value(); ok {
			b = appendOptionalDouble(b, fExpMin, float64(v))
		}
		if v, ok := dp.Max.Value(); ok {
			b = appendOptionalDouble(b, fExpMax, float64(v))
		}
		b = appendDouble(b, fExpZeroThreshold, dp.ZeroThreshold)
		b = closeMessage(b, d)
	}
	b = appendVarint(b, fTemporality, t)
	return closeMessage(b, m)
}

func appendBuckets(b []byte, num protowire.Number, bk metricdata.ExponentialBucket) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	m := len(b)
	b = openMessage(b)
	b = appendVarint(b, fBucketsOffset, protowire.EncodeZigZag(int64(bk.Offset)))
	if len(bk.Counts) > 0 {
		b = protowire.AppendTag(b, fBucketsCounts, protowire.BytesType)
		p := len(b)
		b = openMessage(b)
		for _, c := range bk.Counts {
			b = protowire.AppendVarint(b, c)
		}
		b = closeMessage(b, p)
	}
	return closeMessage(b, m)
}

func appendSummary(b []byte, s metricdata.Summary) []byte {
	b = protowire.AppendTag(b, fMetricSummary, protowire.BytesType)
	m := len(b)
	b = openMessage(b)
	for i := range s.DataPoints {
		dp := &s.DataPoints[i]
		b = protowire.AppendTag(b, fDataPoints, protowire.BytesType)
		d := len(b)
		b = openMessage(b)
		b = appendAttributes(b, fSummaryAttributes, dp.Attributes)
		b = appendFixed64(b, fSummaryStart, unixNano(dp.StartTime.UnixNano()))
		b = appendFixed64(b, fSummaryTime, unixNano(dp.Time.UnixNano()))
		b = appendFixed64(b, fSummaryCount, dp.Count)
		b = appendDouble(b, fSummarySum, dp.Sum)
		for _, q := range dp.QuantileValues {
			b = protowire.AppendTag(b, fSummaryQuantiles, protowire.BytesType)
			qm := len(b)
			b = openMessage(b)
			b = appendDouble(b, fQuantileQuantile, q.Quantile)
			b = appendDouble(b, fQuantileValue, q.Value)
			b = closeMessage(b, qm)
		}
		b = closeMessage(b, d)
	}
	return closeMessage(b, m)
}

func appendAttributes(b []byte, num protowire.Number, s attribute.Set) []byte {
	for it := s.Iter(); it.Next(); {
		b = appendKeyValue(b, num, it.Attribute())
	}
	return b
}

// appendDouble appends a proto3 double without presence, omitted when it
// is +0 (protobuf-go's rule: -0 is sent).
func appendDouble(b []byte, num protowire.Number, v float64) []byte {
	return appendFixed64(b, num, math.Float64bits(v))
}

// appendOptionalDouble appends a double with presence (proto3
// "optional"): always, zero included.
func appendOptionalDouble(b []byte, num protowire.Number, v float64) []byte {
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(v))
}

// appendBytes appends a proto3 bytes field, omitted when empty.
func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// appendPackedFixed64 appends a packed repeated fixed64, omitted when
// empty.
func appendPackedFixed64(b []byte, num protowire.Number, vs []uint64) []byte {
	if len(vs) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(8*len(vs)))
	for _, v := range vs {
		b = protowire.AppendFixed64(b, v)
	}
	return b
}

// appendPackedDoubles appends a packed repeated double, omitted when
// empty.
func appendPackedDoubles(b []byte, num protowire.Number, vs []float64) []byte {
	if len(vs) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(8*len(vs)))
	for _, v := range vs {
		b = protowire.AppendFixed64(b, math.Float64bits(v))
	}
	return b
}
