package api

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Charts are SVG drawn on the server: no script, no external asset, so a
// report works on a gateway without internet and in any browser.

// chart is one SVG chart's geometry, ready for the template.
type chart struct {
	ID            string
	Title, Desc   string
	Width, Height float64
	Left, Top     float64 // plot area origin
	Right, Bottom float64 // plot area far corner
	YTicks        []tick
	XTicks        []tick
	Zero          *float64 // y of the zero line
	Series        []series
	YLabel        string
	Note          string
}

type tick struct {
	Pos   float64
	Label string
}

type series struct {
	Name  string
	Color string
	Line  []string // polyline point lists, one per unbroken segment
	Band  []string // polygon point lists (confidence band)
	Dot   *point   // last point, labelled
	Label string   // text next to the last point
	// LabelY is the label's baseline, moved apart from other labels.
	LabelY float64
}

type point struct{ X, Y float64 }

// palette: colour-blind-safe, dark enough for text on white (WCAG AA).
var palette = []string{"#4b5563", "#1d4ed8", "#c2410c", "#047857", "#7e22ce", "#a16207"}

func colorOf(variant int) string { return palette[variant%len(palette)] }

const (
	chartW, chartH = 760.0, 300.0
	padL, padR     = 64.0, 120.0
	padT, padB     = 16.0, 40.0
)

func newChart(id, title, desc string) *chart {
	return &chart{ID: id, Title: title, Desc: desc, Width: chartW, Height: chartH, Left: padL, Top: padT, Right: chartW - padR, Bottom: chartH - padB}
}

// timeAxis maps hours to x and returns the ticks.
func (c *chart) timeAxis(from, to time.Time) func(time.Time) float64 {
	span := to.Sub(from)
	if span <= 0 {
		span = time.Hour
	}
	x := func(t time.Time) float64 {
		return c.Left + (c.Right-c.Left)*float64(t.Sub(from))/float64(span)
	}
	step := 24 * time.Hour
	format := "Jan 2"
	switch {
	case span <= 2*time.Hour:
		step, format = 15*time.Minute, "15:04"
	case span <= 12*time.Hour:
		step, format = 2*time.Hour, "15:04"
	case span <= 48*time.Hour:
		step, format = 6*time.Hour, "Jan 2 15h"
	case span > 14*24*time.Hour:
		step = 7 * 24 * time.Hour
	}
	first := from.Truncate(step)
	if first.Before(from) {
		first = first.Add(step)
	}
	for t := first; !t.After(to); t = t.Add(step) {
		c.XTicks = append(c.XTicks, tick{Pos: x(t), Label: t.UTC().Format(format)})
	}
	return x
}

// valueAxis maps [lo, hi] to y with "nice" ticks.
func (c *chart) valueAxis(lo, hi float64, label func(float64) string) func(float64) float64 {
	if !(hi > lo) {
		lo, hi = lo-1, hi+1
	}
	step := niceStep((hi - lo) / 5)
	lo, hi = math.Floor(lo/step)*step, math.Ceil(hi/step)*step
	y := func(v float64) float64 {
		v = math.Max(lo, math.Min(hi, v)) // clip to the plot area
		return c.Bottom - (c.Bottom-c.Top)*(v-lo)/(hi-lo)
	}
	for v := lo; v <= hi+step/2; v += step {
		c.YTicks = append(c.YTicks, tick{Pos: y(v), Label: label(v)})
	}
	if lo < 0 && hi > 0 {
		z := y(0)
		c.Zero = &z
	}
	return y
}

func niceStep(raw float64) float64 {
	if !(raw > 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func pts(ps []point) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatFloat(p.X, 'f', 1, 64))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(p.Y, 'f', 1, 64))
	}
	return b.String()
}

// hourEnd is the time a cumulative hourly point describes: its AsOf
// (now, for the hour under way), or the end of its hour.
func hourEnd(h ReportHour) time.Time {
	if !h.AsOf.IsZero() {
		return h.AsOf
	}
	return h.Hour.Add(time.Hour)
}

// liftChart draws each candidate's relative lift on the primary metric
// over time with its anytime-valid confidence band. The scale follows the
// latest intervals, so the wide early band is clipped at the edges
// instead of flattening the part that matters.
func liftChart(r *Report) *chart {
	c := newChart("lift-chart", "Lift of the "+describeLabel(r)+" over time",
		"Relative lift of each candidate against "+r.controlName()+", with its anytime-valid "+fmtConfidence(r.Policy.Confidence)+" confidence band, computed on all data up to each hour.")
	if len(r.Hourly) == 0 {
		return nil
	}
	lo, hi, any := 0.0, 0.0, false
	for j := range r.Hourly[len(r.Hourly)-1].Lift {
		// The last defined point of each candidate sets the scale.
		for i := len(r.Hourly) - 1; i >= 0; i-- {
			p := r.Hourly[i].Lift[j]
			if p.Lift == nil {
				continue
			}
			w := *p.CIHigh - *p.CILow
			lo, hi = math.Min(lo, *p.CILow-0.75*w), math.Max(hi, *p.CIHigh+0.75*w)
			any = true
			break
		}
	}
	if !any {
		return nil
	}
	x := c.timeAxis(r.Hourly[0].Hour, hourEnd(r.Hourly[len(r.Hourly)-1]))
	y := c.valueAxis(lo, hi, fmtTickPct)
	c.YLabel = "lift"
	c.Note = "The line is the estimated lift; the shaded band is its anytime-valid " + fmtConfidence(r.Policy.Confidence) + " confidence interval, recomputed every hour on all data so far. The candidate is shown better once the band is entirely above the dashed line, worse once it is entirely below. Early on the band is wide and is clipped at the chart's edges."
	for j := range r.Hourly[0].Lift {
		v := r.Hourly[0].Lift[j].Variant
		s := series{Name: r.variantName(v), Color: colorOf(v)}
		var line, upper, lower []point
		flush := func() {
			if len(line) > 0 {
				s.Line = append(s.Line, pts(line))
				band := append(append([]point(nil), upper...), reversed(lower)...)
				s.Band = append(s.Band, pts(band))
			}
			line, upper, lower = nil, nil, nil
		}
		for _, h := range r.Hourly {
			p := h.Lift[j]
			if p.Lift == nil {
				flush()
				continue
			}
			t := x(hourEnd(h))
			line = append(line, point{t, y(*p.Lift)})
			upper = append(upper, point{t, y(*p.CIHigh)})
			lower = append(lower, point{t, y(*p.CILow)})
			s.Dot = &point{t, y(*p.Lift)}
			s.Label = fmt.Sprintf("%s %s", s.Name, fmtSignedPct(*p.Lift))
		}
		flush()
		c.Series = append(c.Series, s)
	}
	spreadLabels(c.Series, 14)
	return c
}

// trafficChart draws the cumulative users of each variant over time.
func trafficChart(r *Report) *chart {
	if len(r.Hourly) == 0 {
		return nil
	}
	c := newChart("traffic-chart", "Users per variant over time",
		"Cumulative users assigned to each variant at the end of each hour, and now for the hour under way.")
	top := 0.0
	for _, h := range r.Hourly {
		for _, u := range h.Users {
			top = math.Max(top, u)
		}
	}
	x := c.timeAxis(r.Hourly[0].Hour, hourEnd(r.Hourly[len(r.Hourly)-1]))
	y := c.valueAxis(0, math.Max(top, 1), fmtCount)
	c.YLabel = "users"
	for v := range r.Variants {
		s := series{Name: r.variantName(v), Color: colorOf(v)}
		// Every line starts at zero users at the start of the first hour
		// with data, so the first minutes already draw a line, not a dot.
		line := []point{{x(r.Hourly[0].Hour), y(0)}}
		for _, h := range r.Hourly {
			if v < len(h.Users) {
				line = append(line, point{x(hourEnd(h)), y(h.Users[v])})
			}
		}
		if len(line) > 1 {
			s.Line = []string{pts(line)}
			last := line[len(line)-1]
			s.Dot = &last
			s.Label = fmt.Sprintf("%s %s", s.Name, fmtCount(r.Hourly[len(r.Hourly)-1].Users[v]))
		}
		c.Series = append(c.Series, s)
	}
	// Labels at the right edge must not overlap: spread them.
	spreadLabels(c.Series, 14)
	return c
}

// spreadLabels moves end labels apart vertically by at least gap.
func spreadLabels(ss []series, gap float64) {
	idx := make([]int, 0, len(ss))
	for i := range ss {
		if ss[i].Dot != nil {
			ss[i].LabelY = ss[i].Dot.Y + 4
			idx = append(idx, i)
		}
	}
	for a := 1; a < len(idx); a++ { // insertion sort by y
		for b := a; b > 0 && ss[idx[b]].LabelY < ss[idx[b-1]].LabelY; b-- {
			idx[b], idx[b-1] = idx[b-1], idx[b]
		}
	}
	prev := math.Inf(-1)
	for _, i := range idx {
		if ss[i].LabelY < prev+gap {
			ss[i].LabelY = prev + gap
		}
		prev = ss[i].LabelY
	}
}

func reversed(ps []point) []point {
	out := make([]point, len(ps))
	for i, p := range ps {
		out[len(ps)-1-i] = p
	}
	return out
}

func (r *Report) variantName(v int) string {
	if v >= 0 && v < len(r.Variants) {
		return r.Variants[v].Name
	}
	return strconv.Itoa(v)
}

func describeLabel(r *Report) string {
	if m := r.metric(r.Policy.Primary); m != nil {
		return m.Label
	}
	return r.Policy.Primary
}

// fmtTickPct labels a percentage axis: "+10%", "0%", "-2.5%".
func fmtTickPct(v float64) string {
	if math.Abs(v) < 1e-12 {
		return "0%"
	}
	s := trimZeros(strconv.FormatFloat(v*100, 'f', 2, 64)) + "%"
	if v > 0 {
		s = "+" + s
	}
	return s
}
