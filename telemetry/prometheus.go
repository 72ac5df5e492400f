package telemetry

import (
	"cmp"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/abgate/abgate/internal/oaierr"
)

// Prometheus returns a pull reader for a MeterProvider and the /metrics
// handler that serves what it reads, in the Prometheus text format
// (version 0.0.4). Instruments are read only when scraped, so an
// unscraped /metrics costs nothing. Each call has its own reader, so
// tests can run several.
//
// Why not the OpenTelemetry Prometheus exporter: it serves through
// prometheus/client_golang, which links the protobuf runtime, procfs and
// the client's own registry, and their package initialisation alone
// kept 2 MiB of an idle gateway resident (25.9 -> 23.9 MiB, bench
// config, 4 alternating starts each; issue "Live streams at scale").
// The text format is a page of specification
// (https://prometheus.io/docs/instrumenting/exposition_formats/); the
// names and labels come from prometheus/otlptranslator, the library
// that exporter uses, with the same settings (suffixes, underscore
// escaping), so the families, labels and values are the ones it served:
// TestPrometheusEquivalence scrapes both off one MeterProvider. What is
// left out: OpenMetrics (and so exemplars), gzip, and exponential
// histograms, which abgate does not record.
func Prometheus() (sdkmetric.Reader, http.Handler, error) {
	r := sdkmetric.NewManualReader()
	return r, &exposition{
		reader: r,
		names:  otlptranslator.NewMetricNamer("", otlptranslator.UnderscoreEscapingWithSuffixes),
		labels: otlptranslator.LabelNamer{},
	}, nil
}

// exposition serves a ManualReader's collection as Prometheus text.
type exposition struct {
	reader *sdkmetric.ManualReader
	names  otlptranslator.MetricNamer
	labels otlptranslator.LabelNamer

	mu  sync.Mutex // one scrape at a time: rm and buf are reused
	rm  metricdata.ResourceMetrics
	buf []byte
}

func (e *exposition) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// An error with data (an observable callback failed) still serves
	// what was read, as promhttp's ContinueOnError did.
	err := e.reader.Collect(r.Context(), &e.rm)
	if err != nil {
		otel.Handle(err) // logged by the process's error handler
	}
	if err != nil && len(e.rm.ScopeMetrics) == 0 {
		oaierr.Write(w, http.StatusInternalServerError, oaierr.New(oaierr.Server, "metrics_unavailable", "", "reading the metrics failed: "+err.Error()))
		return
	}
	e.buf = e.appendText(e.buf[:0], &e.rm)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(e.buf)))
	_, _ = w.Write(e.buf)
}

// family is one metric name's HELP, TYPE and samples.
type family struct {
	name, help, typ string
	series          []series
}

// series is one set of labels' values: a counter's or gauge's value, or
// a histogram's cumulative buckets, sum and count.
type series struct {
	labels  []label // sorted by name
	value   float64
	bounds  []float64
	buckets []uint64 // cumulative, one per bound
	sum     float64
	count   uint64
}

type label struct{ name, value string }

// appendText writes rm in the text format: families sorted by name, each
// family's series by their labels, as client_golang's registry orders
// them, families without series left out, and target_info for the
// resource.
func (e *exposition) appendText(b []byte, rm *metricdata.ResourceMetrics) []byte {
	byName := map[string]*family{}
	if rm.Resource != nil {
		byName[otlptranslator.TargetInfoMetricName] = &family{
			name: otlptranslator.TargetInfoMetricName, help: "Target metadata", typ: "gauge",
			series: []series{{labels: e.labelsOf(rm.Resource.Set()), value: 1}},
		}
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			typ, naming, ss := e.seriesOf(m.Data)
			if typ == "" {
				continue // exponential histograms: not recorded by abgate
			}
			name, err := e.names.Build(otlptranslator.Metric{Name: m.Name, Unit: m.Unit, Type: naming})
			if err != nil {
				continue
			}
			f := byName[name]
			if f == nil {
				f = &family{name: name, help: m.Description, typ: typ}
				byName[name] = f
			} else if f.typ != typ {
				continue // the exporter dropped a conflicting type too
			}
			f.series = append(f.series, ss...)
		}
	}
	fams := make([]*family, 0, len(byName))
	for _, f := range byName {
		if len(f.series) > 0 {
			fams = append(fams, f)
		}
	}
	slices.SortFunc(fams, func(a, b *family) int { return strings.Compare(a.name, b.name) })
	for _, f := range fams {
		// client_golang's order: fewer labels first, then the values
		// position by position (names sorted within each series).
		slices.SortStableFunc(f.series, func(a, b series) int {
			return cmp.Or(cmp.Compare(len(a.labels), len(b.labels)),
				slices.CompareFunc(a.labels, b.labels, func(x, y label) int { return strings.Compare(x.value, y.value) }))
		})
		b = append(b, "# HELP "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = appendEscaped(b, f.help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = append(b, f.typ...)
		b = append(b, '\n')
		for _, s := range f.series {
			if f.typ != "histogram" {
				b = appendSample(b, f.name, "", s.labels, "", 0, s.value)
				continue
			}
			for i, bound := range s.bounds {
				b = appendSample(b, f.name, "_bucket", s.labels, "le", bound, float64(s.buckets[i]))
			}
			b = appendSample(b, f.name, "_bucket", s.labels, "le", math.Inf(1), float64(s.count))
			b = appendSample(b, f.name, "_sum", s.labels, "", 0, s.sum)
			b = appendSample(b, f.name, "_count", s.labels, "", 0, float64(s.count))
		}
	}
	return b
}

// seriesOf is a metric's Prometheus type, its type for naming (which
// adds _total to counters), as the exporter maps them, and its series;
// "" for what it does not write as text.
func (e *exposition) seriesOf(data metricdata.Aggregation) (string, otlptranslator.MetricType, []series) {
	switch v := data.(type) {
	case metricdata.Histogram[int64]:
		return "histogram", otlptranslator.MetricTypeHistogram, histogramSeries(e, v)
	case metricdata.Histogram[float64]:
		return "histogram", otlptranslator.MetricTypeHistogram, histogramSeries(e, v)
	case metricdata.Sum[int64]:
		typ, naming := sumKind(v.IsMonotonic)
		return typ, naming, pointSeries(e, v.DataPoints)
	case metricdata.Sum[float64]:
		typ, naming := sumKind(v.IsMonotonic)
		return typ, naming, pointSeries(e, v.DataPoints)
	case metricdata.Gauge[int64]:
		return "gauge", otlptranslator.MetricTypeGauge, pointSeries(e, v.DataPoints)
	case metricdata.Gauge[float64]:
		return "gauge", otlptranslator.MetricTypeGauge, pointSeries(e, v.DataPoints)
	}
	return "", otlptranslator.MetricTypeUnknown, nil
}

func sumKind(monotonic bool) (string, otlptranslator.MetricType) {
	if monotonic {
		return "counter", otlptranslator.MetricTypeMonotonicCounter
	}
	return "gauge", otlptranslator.MetricTypeNonMonotonicCounter
}

func pointSeries[N int64 | float64](e *exposition, dps []metricdata.DataPoint[N]) []series {
	out := make([]series, 0, len(dps))
	for _, dp := range dps {
		out = append(out, series{labels: e.labelsOf(&dp.Attributes), value: float64(dp.Value)})
	}
	return out
}

func histogramSeries[N int64 | float64](e *exposition, h metricdata.Histogram[N]) []series {
	out := make([]series, 0, len(h.DataPoints))
	for _, dp := range h.DataPoints {
		s := series{labels: e.labelsOf(&dp.Attributes), bounds: dp.Bounds, sum: float64(dp.Sum), count: dp.Count,
			buckets: make([]uint64, len(dp.Bounds))}
		var cum uint64
		for i := range dp.Bounds {
			cum += dp.BucketCounts[i]
			s.buckets[i] = cum
		}
		out = append(out, s)
	}
	return out
}

// labelsOf turns attributes into labels as the exporter does: names
// escaped to [a-zA-Z0-9_], and attributes whose names collide once
// escaped joined into one label, their values sorted and joined by ";".
func (e *exposition) labelsOf(set *attribute.Set) []label {
	out := make([]label, 0, set.Len())
	for it := set.Iter(); it.Next(); {
		kv := it.Attribute()
		name, err := e.labels.Build(string(kv.Key))
		if err != nil {
			continue
		}
		out = append(out, label{name, kv.Value.String()})
	}
	slices.SortStableFunc(out, func(a, b label) int { return strings.Compare(a.name, b.name) })
	// Collisions are adjacent now.
	for i := 0; i+1 < len(out); {
		j := i + 1
		for j < len(out) && out[j].name == out[i].name {
			j++
		}
		if j > i+1 {
			vals := make([]string, 0, j-i)
			for _, l := range out[i:j] {
				vals = append(vals, l.value)
			}
			slices.Sort(vals)
			out[i].value = strings.Join(vals, ";")
			out = slices.Delete(out, i+1, j)
		}
		i++
	}
	return out
}

// appendSample writes one line: name, labels (and le for a bucket),
// value.
func appendSample(b []byte, name, suffix string, labels []label, extra string, extraValue, value float64) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if len(labels) > 0 || extra != "" {
		b = append(b, '{')
		for i, l := range labels {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, l.name...)
			b = append(b, `="`...)
			b = appendEscaped(b, l.value, true)
			b = append(b, '"')
		}
		if extra != "" {
			if len(labels) > 0 {
				b = append(b, ',')
			}
			b = append(b, extra...)
			b = append(b, `="`...)
			b = appendFloat(b, extraValue)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendFloat(b, value)
	return append(b, '\n')
}

// appendFloat formats as the text format's writer does.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, "-1"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// appendEscaped escapes a backslash and a newline, and in a label value
// a double quote.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}
