// Command report turns the raw measurements of bench/run.sh (one JSON
// object a line) into the markdown summary it prints, and a JSON summary.
//
//	report -raw results/<run>/raw.jsonl -json results/<run>/summary.json
//
// Every figure is the median over rounds. "Added" latencies and TTFB
// deltas are medians of per-round differences against the direct run of
// the same round (rounds are interleaved, so pairing them cancels some of
// the machine's drift); ratios are ratios of the medians.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// record is one line of raw.jsonl.
type record struct {
	Round  int    `json:"round"`
	Target string `json:"target"`
	Kind   string `json:"kind"` // wrk, rate, stream, skip
	// kind wrk
	RPS          float64 `json:"rps"`
	Requests     float64 `json:"requests"`
	Errors       float64 `json:"errors"`
	ProxyCPUUs   float64 `json:"proxy_cpu_us_per_req"`
	ProxyUtil    float64 `json:"proxy_util"`
	UpstreamCPU  float64 `json:"upstream_cpu_us_per_req"`
	WrkP50us     float64 `json:"wrk_p50_us"`
	WrkP99us     float64 `json:"wrk_p99_us"`
	LoadAvg1     float64 `json:"loadavg1"`
	SkipReason   string  `json:"reason"`
	LoadgenProbe *lg     `json:"result"`
}

// lg is the loadgen output (the fields used here).
type lg struct {
	Rate       float64 `json:"rate"`
	Sent       float64 `json:"sent"`
	OK         float64 `json:"ok"`
	Errors     float64 `json:"errors"`
	Dropped    float64 `json:"dropped"`
	MissingHdr float64 `json:"missing_header"`
	P50us      float64 `json:"p50_us"`
	P90us      float64 `json:"p90_us"`
	P99us      float64 `json:"p99_us"`
	TotalP50us float64 `json:"total_p50_us"`
	FirstError string  `json:"first_error"`
	// kind hold-N (loadgen -hold)
	Streams       float64 `json:"streams"`
	LiveAtSample  float64 `json:"live_at_sample"`
	TTFBP50us     float64 `json:"ttfb_p50_us"`
	TTFBP99us     float64 `json:"ttfb_p99_us"`
	RSSIdleKiB    float64 `json:"rss_idle_kib"`
	RSSLiveKiB    float64 `json:"rss_live_kib"`
	GoroutinesLiv float64 `json:"goroutines_live"`
	HeapIdleB     float64 `json:"heap_inuse_idle_bytes"`
	HeapLiveB     float64 `json:"heap_inuse_live_bytes"`
	StackIdleB    float64 `json:"stack_inuse_idle_bytes"`
	StackLiveB    float64 `json:"stack_inuse_live_bytes"`
}

// holdSummary is one target at one many-streams level.
type holdSummary struct {
	Streams    int   `json:"streams"`
	Live       *stat `json:"live_at_sample,omitempty"`
	RSSIdleMiB *stat `json:"rss_idle_mib,omitempty"`
	RSSLiveMiB *stat `json:"rss_live_mib,omitempty"`
	// above idle, divided by the live streams
	KiBPerStream      *stat   `json:"rss_kib_per_stream,omitempty"`
	HeapKiBPerStream  *stat   `json:"heap_kib_per_stream,omitempty"`
	StackKiBPerStream *stat   `json:"stack_kib_per_stream,omitempty"`
	GoroutinesPer     *stat   `json:"goroutines_per_stream,omitempty"`
	TTFBP50us         *stat   `json:"ttfb_p50_us,omitempty"`
	TTFBP99us         *stat   `json:"ttfb_p99_us,omitempty"`
	AddedTTFBP50us    *stat   `json:"added_ttfb_p50_us,omitempty"`
	AddedTTFBP99us    *stat   `json:"added_ttfb_p99_us,omitempty"`
	Errors            float64 `json:"errors"`
	FirstError        string  `json:"first_error,omitempty"`
}

type stat struct {
	Median float64   `json:"median"`
	Rounds []float64 `json:"rounds"`
}

func newStat(v []float64) *stat {
	if len(v) == 0 {
		return nil
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return &stat{Median: m, Rounds: v}
}

func (s *stat) med() float64 {
	if s == nil {
		return math.NaN()
	}
	return s.Median
}

type targetSummary struct {
	Skipped string `json:"skipped,omitempty"`
	// max throughput (wrk)
	RPS         *stat   `json:"rps,omitempty"`
	ProxyCPUUs  *stat   `json:"proxy_cpu_us_per_req,omitempty"`
	ProxyUtil   *stat   `json:"proxy_core_util,omitempty"`
	UpstreamCPU *stat   `json:"upstream_cpu_us_per_req,omitempty"`
	WrkP50us    *stat   `json:"wrk_p50_us,omitempty"`
	WrkP99us    *stat   `json:"wrk_p99_us,omitempty"`
	WrkErrors   float64 `json:"wrk_errors"`
	LoadAvg1    *stat   `json:"loadavg1,omitempty"`
	// fixed rate
	RateP50us     *stat   `json:"rate_p50_us,omitempty"`
	RateP90us     *stat   `json:"rate_p90_us,omitempty"`
	AddedP90us    *stat   `json:"added_p90_us,omitempty"`
	RateP99us     *stat   `json:"rate_p99_us,omitempty"`
	AddedP50us    *stat   `json:"added_p50_us,omitempty"`
	AddedP99us    *stat   `json:"added_p99_us,omitempty"`
	RateErrors    float64 `json:"rate_errors"`
	RateDropped   float64 `json:"rate_dropped"`
	MissingHeader float64 `json:"missing_header"`
	// stream
	TTFBP50us      *stat   `json:"ttfb_p50_us,omitempty"`
	TTFBP99us      *stat   `json:"ttfb_p99_us,omitempty"`
	TTFBDeltaP50us *stat   `json:"ttfb_delta_p50_us,omitempty"`
	TTFBDeltaP99us *stat   `json:"ttfb_delta_p99_us,omitempty"`
	StreamTotalP50 *stat   `json:"stream_total_p50_us,omitempty"`
	StreamErrors   float64 `json:"stream_errors"`
	FirstError     string  `json:"first_error,omitempty"`
	// many live streams, by level
	Hold map[int]*holdSummary `json:"hold,omitempty"`
}

type summary struct {
	Rate       float64                   `json:"rate"`
	StreamRate float64                   `json:"stream_rate"`
	Targets    map[string]*targetSummary `json:"targets"`
	HoldLevels []int                     `json:"hold_levels,omitempty"`
	Ratios     map[string]float64        `json:"ratios_abgate_vs_minproxy,omitempty"`
	// Paired compares two targets round by round (each round measures
	// them minutes apart, in rotating order) and takes the median over
	// rounds: on a machine whose speed drifts between rounds, steadier
	// than the ratio of the two targets' medians.
	Paired map[string]*stat `json:"paired,omitempty"`
	Aims   map[string]bool  `json:"aims_met,omitempty"`
	// Shadow compares abgate with a shadow stage active (abgate-shadow)
	// to abgate with none, in the same run (issue 14: the shadow never
	// adds latency to the user's request).
	Shadow map[string]float64 `json:"shadow_on_vs_off,omitempty"`
}

var order = []string{"direct", "minproxy", "bare", "nginx", "abgate", "abgate-base", "abgate-h2c", "abgate-shadow"}

func main() {
	raw := flag.String("raw", "", "raw.jsonl written by run.sh")
	jsonOut := flag.String("json", "", "where to write the JSON summary (optional)")
	flag.Parse()
	f, err := os.Open(*raw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			fmt.Fprintf(os.Stderr, "report: bad line %q: %v\n", line, err)
			continue
		}
		recs = append(recs, r)
	}
	s := summarize(recs)
	printMarkdown(os.Stdout, s)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(s, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
	}
}

func summarize(recs []record) *summary {
	s := &summary{Targets: map[string]*targetSummary{}}
	// per target, per kind, per round
	byKey := map[string]map[int]record{}
	key := func(t, k string) string { return t + "/" + k }
	for _, r := range recs {
		if r.Kind == "skip" {
			ts := s.Targets[r.Target]
			if ts == nil {
				ts = &targetSummary{}
				s.Targets[r.Target] = ts
			}
			ts.Skipped = r.SkipReason
			continue
		}
		m := byKey[key(r.Target, r.Kind)]
		if m == nil {
			m = map[int]record{}
			byKey[key(r.Target, r.Kind)] = m
		}
		m[r.Round] = r
		if r.LoadgenProbe != nil {
			switch r.Kind {
			case "rate":
				s.Rate = r.LoadgenProbe.Rate
			case "stream":
				s.StreamRate = r.LoadgenProbe.Rate
			}
		}
	}
	var levels []int
	for k := range byKey {
		var lvl int
		if _, err := fmt.Sscanf(k[strings.IndexByte(k, '/')+1:], "hold-%d", &lvl); err == nil && !slices.Contains(levels, lvl) {
			levels = append(levels, lvl)
		}
	}
	slices.Sort(levels)
	s.HoldLevels = levels
	collect := func(t, k string, f func(record) (float64, bool)) []float64 {
		var v []float64
		m := byKey[key(t, k)]
		rounds := make([]int, 0, len(m))
		for r := range m {
			rounds = append(rounds, r)
		}
		slices.Sort(rounds)
		for _, r := range rounds {
			if x, ok := f(m[r]); ok {
				v = append(v, x)
			}
		}
		return v
	}
	// byRound: op(a's value, b's value) for every round that measured
	// both, in round order.
	byRound := func(a, b, k string, f func(record) (float64, bool), op func(x, y float64) float64) []float64 {
		var v []float64
		ma, mb := byKey[key(a, k)], byKey[key(b, k)]
		rounds := make([]int, 0, len(ma))
		for r := range ma {
			rounds = append(rounds, r)
		}
		slices.Sort(rounds)
		for _, r := range rounds {
			rb, ok := mb[r]
			if !ok {
				continue
			}
			x, ok1 := f(ma[r])
			y, ok2 := f(rb)
			if ok1 && ok2 {
				v = append(v, op(x, y))
			}
		}
		return v
	}
	// paired difference against direct of the same round
	paired := func(t, k string, f func(record) (float64, bool)) []float64 {
		return byRound(t, "direct", k, f, func(x, y float64) float64 { return x - y })
	}
	lgf := func(g func(*lg) float64) func(record) (float64, bool) {
		return func(r record) (float64, bool) {
			if r.LoadgenProbe == nil || r.LoadgenProbe.OK == 0 {
				return 0, false
			}
			return g(r.LoadgenProbe), true
		}
	}
	pos := func(g func(record) float64) func(record) (float64, bool) {
		return func(r record) (float64, bool) { x := g(r); return x, x > 0 }
	}
	for _, t := range order {
		ts := s.Targets[t]
		if ts == nil {
			ts = &targetSummary{}
		}
		ts.RPS = newStat(collect(t, "wrk", pos(func(r record) float64 { return r.RPS })))
		ts.ProxyCPUUs = newStat(collect(t, "wrk", pos(func(r record) float64 { return r.ProxyCPUUs })))
		ts.ProxyUtil = newStat(collect(t, "wrk", pos(func(r record) float64 { return r.ProxyUtil })))
		ts.UpstreamCPU = newStat(collect(t, "wrk", pos(func(r record) float64 { return r.UpstreamCPU })))
		ts.WrkP50us = newStat(collect(t, "wrk", pos(func(r record) float64 { return r.WrkP50us })))
		ts.WrkP99us = newStat(collect(t, "wrk", pos(func(r record) float64 { return r.WrkP99us })))
		ts.LoadAvg1 = newStat(collect(t, "wrk", pos(func(r record) float64 { return r.LoadAvg1 })))
		for _, r := range byKey[key(t, "wrk")] {
			ts.WrkErrors += r.Errors
		}
		ts.RateP50us = newStat(collect(t, "rate", lgf(func(g *lg) float64 { return g.P50us })))
		ts.RateP90us = newStat(collect(t, "rate", lgf(func(g *lg) float64 { return g.P90us })))
		ts.RateP99us = newStat(collect(t, "rate", lgf(func(g *lg) float64 { return g.P99us })))
		ts.TTFBP50us = newStat(collect(t, "stream", lgf(func(g *lg) float64 { return g.P50us })))
		ts.TTFBP99us = newStat(collect(t, "stream", lgf(func(g *lg) float64 { return g.P99us })))
		ts.StreamTotalP50 = newStat(collect(t, "stream", lgf(func(g *lg) float64 { return g.TotalP50us })))
		if t != "direct" {
			ts.AddedP50us = newStat(paired(t, "rate", lgf(func(g *lg) float64 { return g.P50us })))
			ts.AddedP90us = newStat(paired(t, "rate", lgf(func(g *lg) float64 { return g.P90us })))
			ts.AddedP99us = newStat(paired(t, "rate", lgf(func(g *lg) float64 { return g.P99us })))
			ts.TTFBDeltaP50us = newStat(paired(t, "stream", lgf(func(g *lg) float64 { return g.P50us })))
			ts.TTFBDeltaP99us = newStat(paired(t, "stream", lgf(func(g *lg) float64 { return g.P99us })))
		}
		for _, k := range []string{"rate", "stream"} {
			for _, r := range byKey[key(t, k)] {
				if r.LoadgenProbe == nil {
					continue
				}
				g := r.LoadgenProbe
				if k == "rate" {
					ts.RateErrors += g.Errors
					ts.RateDropped += g.Dropped
				} else {
					ts.StreamErrors += g.Errors
				}
				ts.MissingHeader += g.MissingHdr
				if ts.FirstError == "" && g.FirstError != "" {
					ts.FirstError = g.FirstError
				}
			}
		}
		for _, level := range levels {
			k := fmt.Sprintf("hold-%d", level)
			if len(byKey[key(t, k)]) == 0 {
				continue
			}
			per := func(g func(*lg) float64) func(record) (float64, bool) {
				return lgf(func(x *lg) float64 { return g(x) / max(x.LiveAtSample, 1) })
			}
			h := &holdSummary{Streams: level}
			h.Live = newStat(collect(t, k, lgf(func(g *lg) float64 { return g.LiveAtSample })))
			h.TTFBP50us = newStat(collect(t, k, lgf(func(g *lg) float64 { return g.TTFBP50us })))
			h.TTFBP99us = newStat(collect(t, k, lgf(func(g *lg) float64 { return g.TTFBP99us })))
			if t != "direct" {
				h.AddedTTFBP50us = newStat(paired(t, k, lgf(func(g *lg) float64 { return g.TTFBP50us })))
				h.AddedTTFBP99us = newStat(paired(t, k, lgf(func(g *lg) float64 { return g.TTFBP99us })))
				h.RSSIdleMiB = newStat(collect(t, k, lgf(func(g *lg) float64 { return g.RSSIdleKiB / 1024 })))
				h.RSSLiveMiB = newStat(collect(t, k, lgf(func(g *lg) float64 { return g.RSSLiveKiB / 1024 })))
				h.KiBPerStream = newStat(collect(t, k, per(func(g *lg) float64 { return g.RSSLiveKiB - g.RSSIdleKiB })))
				if t != "nginx" {
					h.HeapKiBPerStream = newStat(collect(t, k, per(func(g *lg) float64 { return (g.HeapLiveB - g.HeapIdleB) / 1024 })))
					h.StackKiBPerStream = newStat(collect(t, k, per(func(g *lg) float64 { return (g.StackLiveB - g.StackIdleB) / 1024 })))
					h.GoroutinesPer = newStat(collect(t, k, per(func(g *lg) float64 { return g.GoroutinesLiv })))
				}
			}
			for _, r := range byKey[key(t, k)] {
				if r.LoadgenProbe != nil {
					h.Errors += r.LoadgenProbe.Errors
					if h.FirstError == "" {
						h.FirstError = r.LoadgenProbe.FirstError
					}
				}
			}
			if ts.Hold == nil {
				ts.Hold = map[int]*holdSummary{}
			}
			ts.Hold[level] = h
		}
		if ts.Skipped != "" || ts.RPS != nil || ts.RateP50us != nil || ts.TTFBP50us != nil || ts.Hold != nil {
			s.Targets[t] = ts
		}
	}
	a, m := s.Targets["abgate"], s.Targets["minproxy"]
	if a != nil && m != nil && a.RPS != nil && m.RPS != nil {
		s.Ratios = map[string]float64{
			"throughput":      a.RPS.med() / m.RPS.med(),
			"cpu_per_request": a.ProxyCPUUs.med() / m.ProxyCPUUs.med(),
		}
		s.Aims = map[string]bool{
			"throughput_at_least_0.95x":     s.Ratios["throughput"] >= 0.95,
			"cpu_per_request_at_most_1.10x": s.Ratios["cpu_per_request"] <= 1.10,
		}
		if a.AddedP50us != nil && m.AddedP50us != nil {
			s.Ratios["added_p50_us_minus_minproxy"] = a.AddedP50us.med() - m.AddedP50us.med()
			s.Ratios["added_p90_us_minus_minproxy"] = a.AddedP90us.med() - m.AddedP90us.med()
			s.Ratios["added_p99_us_minus_minproxy"] = a.AddedP99us.med() - m.AddedP99us.med()
			s.Ratios["added_p90"] = a.AddedP90us.med() / m.AddedP90us.med()
			s.Ratios["added_p99"] = a.AddedP99us.med() / m.AddedP99us.med()
			s.Aims["added_p90_no_worse"] = s.Ratios["added_p90_us_minus_minproxy"] <= 0
			s.Aims["added_p99_no_worse"] = s.Ratios["added_p99_us_minus_minproxy"] <= 0
			s.Aims["added_p90_p99_no_worse"] = s.Aims["added_p90_no_worse"] && s.Aims["added_p99_no_worse"]
		}
		if b := s.Targets["bare"]; b != nil && b.ProxyCPUUs != nil {
			s.Ratios["cpu_per_request_vs_bare"] = a.ProxyCPUUs.med() / b.ProxyCPUUs.med()
			s.Aims["cpu_per_request_vs_bare_at_most_1.0x"] = s.Ratios["cpu_per_request_vs_bare"] <= 1.0
		}
	}
	cpu := pos(func(r record) float64 { return r.ProxyCPUUs })
	p99 := lgf(func(g *lg) float64 { return g.P99us })
	ratio := func(x, y float64) float64 { return x / y }
	diff := func(x, y float64) float64 { return x - y }
	s.Paired = map[string]*stat{}
	for name, p := range map[string]*stat{
		"cpu_per_request_abgate_vs_bare":        newStat(byRound("abgate", "bare", "wrk", cpu, ratio)),
		"cpu_per_request_abgate_vs_minproxy":    newStat(byRound("abgate", "minproxy", "wrk", cpu, ratio)),
		"p99_us_abgate_minus_minproxy":          newStat(byRound("abgate", "minproxy", "rate", p99, diff)),
		"cpu_per_request_abgate_vs_abgate-base": newStat(byRound("abgate", "abgate-base", "wrk", cpu, ratio)),
		"p99_us_abgate_minus_abgate-base":       newStat(byRound("abgate", "abgate-base", "rate", p99, diff)),
		"p90_us_abgate_minus_minproxy":          newStat(byRound("abgate", "minproxy", "rate", lgf(func(g *lg) float64 { return g.P90us }), diff)),
		"p90_us_abgate_minus_abgate-base":       newStat(byRound("abgate", "abgate-base", "rate", lgf(func(g *lg) float64 { return g.P90us }), diff)),
	} {
		if p != nil {
			s.Paired[name] = p
		}
	}
	if len(s.Paired) == 0 {
		s.Paired = nil
	}
	if a, m := s.Targets["abgate"], s.Targets["minproxy"]; a != nil && m != nil && a.RPS != nil && m.RPS != nil {
		if a.TTFBDeltaP50us != nil && m.TTFBDeltaP50us != nil {
			s.Ratios["ttfb_delta_p50_us_minus_minproxy"] = a.TTFBDeltaP50us.med() - m.TTFBDeltaP50us.med()
			s.Ratios["ttfb_delta_p99_us_minus_minproxy"] = a.TTFBDeltaP99us.med() - m.TTFBDeltaP99us.med()
		}
	}
	if on, off := s.Targets["abgate-shadow"], s.Targets["abgate"]; on != nil && off != nil {
		s.Shadow = map[string]float64{}
		if on.ProxyCPUUs != nil && off.ProxyCPUUs != nil {
			s.Shadow["cpu_per_request"] = on.ProxyCPUUs.med() / off.ProxyCPUUs.med()
			s.Shadow["cpu_us_per_request_on"] = on.ProxyCPUUs.med()
			s.Shadow["cpu_us_per_request_off"] = off.ProxyCPUUs.med()
		}
		if on.AddedP50us != nil && off.AddedP50us != nil {
			for _, q := range []struct {
				name    string
				on, off *stat
			}{{"p50", on.AddedP50us, off.AddedP50us}, {"p90", on.AddedP90us, off.AddedP90us}, {"p99", on.AddedP99us, off.AddedP99us}} {
				s.Shadow["added_"+q.name+"_us_on"] = q.on.med()
				s.Shadow["added_"+q.name+"_us_off"] = q.off.med()
				s.Shadow["added_"+q.name] = q.on.med() / q.off.med()
			}
		}
		if len(s.Shadow) == 0 {
			s.Shadow = nil
		}
	}
	if a, m := s.Targets["abgate"], s.Targets["minproxy"]; a != nil && m != nil {
		if s.Ratios == nil {
			s.Ratios = map[string]float64{}
			s.Aims = map[string]bool{}
		}
		for _, level := range levels {
			for _, t := range []string{"abgate", "abgate-h2c"} {
				x := s.Targets[t]
				if x == nil || x.Hold[level] == nil || m.Hold[level] == nil {
					continue
				}
				h, mh := x.Hold[level], m.Hold[level]
				s.Ratios[fmt.Sprintf("%s_kib_per_stream_%d", t, level)] = h.KiBPerStream.med() / mh.KiBPerStream.med()
				s.Ratios[fmt.Sprintf("%s_rss_idle_%d", t, level)] = h.RSSIdleMiB.med() / mh.RSSIdleMiB.med()
				s.Aims[fmt.Sprintf("%s_at_most_50_kib_per_stream_%d", t, level)] = h.KiBPerStream.med() <= 50
				s.Aims[fmt.Sprintf("%s_idle_at_most_25_mib_%d", t, level)] = h.RSSIdleMiB.med() <= 25
			}
		}
	}
	return s
}

func num(x float64, prec int) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.*f", prec, x)
}

func sgn(x float64, prec int) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%+.*f", prec, x)
}

func ms(us float64) string {
	if math.IsNaN(us) {
		return "–"
	}
	return fmt.Sprintf("%.2f ms", us/1000)
}

func printMarkdown(w io.Writer, s *summary) {
	rounds := 0
	for _, t := range s.Targets {
		if t.RPS != nil && len(t.RPS.Rounds) > rounds {
			rounds = len(t.RPS.Rounds)
		}
	}
	fmt.Fprintf(w, "Medians over %d round(s). Proxy CPU is its own process's utime+stime over the wrk run divided by the requests wrk completed; for `direct` there is no proxy.\n\n", rounds)
	fmt.Fprintln(w, "### Max throughput (wrk -t1 -c64, proxy on its own core)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | req/s | proxy CPU µs/req | proxy core util | req/s at 100% core | upstream CPU µs/req | wrk p50 | wrk p99 | errors | load avg |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, name := range order {
		t := s.Targets[name]
		if t == nil {
			continue
		}
		if t.Skipped != "" && t.RPS == nil {
			fmt.Fprintf(w, "| %s | skipped: %s | | | | | | | | |\n", name, t.Skipped)
			continue
		}
		if t.RPS == nil {
			continue
		}
		util := "–"
		if t.ProxyUtil != nil {
			util = fmt.Sprintf("%.0f%%", 100*t.ProxyUtil.med())
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %s |\n", name, num(t.RPS.med(), 0), num(t.ProxyCPUUs.med(), 1), util,
			num(1e6/t.ProxyCPUUs.med(), 0),
			num(t.UpstreamCPU.med(), 1), ms(t.WrkP50us.med()), ms(t.WrkP99us.med()), t.WrkErrors, num(t.LoadAvg1.med(), 1))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "### Fixed rate (%.0f req/s open loop, latency of the whole response)\n\n", s.Rate)
	fmt.Fprintln(w, "| target | p50 | p90 | p99 | added p50 | added p90 | added p99 | errors | dropped |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, name := range order {
		t := s.Targets[name]
		if t == nil || t.RateP50us == nil {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s µs | %s µs | %s µs | %.0f | %.0f |\n", name, ms(t.RateP50us.med()), ms(t.RateP90us.med()), ms(t.RateP99us.med()),
			sgn(t.AddedP50us.med(), 0), sgn(t.AddedP90us.med(), 0), sgn(t.AddedP99us.med(), 0), t.RateErrors, t.RateDropped)
	}
	fmt.Fprintln(w)
	if !slices.ContainsFunc(order, func(n string) bool { return s.Targets[n] != nil && s.Targets[n].TTFBP50us != nil }) {
		goto hold // no ttfb scenario in this run
	}
	fmt.Fprintf(w, "### Stream time to first byte (%.0f streams/s, first SSE chunk)\n\n", s.StreamRate)
	fmt.Fprintln(w, "| target | TTFB p50 | TTFB p99 | Δ p50 vs direct | Δ p99 vs direct | whole stream p50 | errors |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, name := range order {
		t := s.Targets[name]
		if t == nil || t.TTFBP50us == nil {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s µs | %s µs | %s | %.0f |\n", name, ms(t.TTFBP50us.med()), ms(t.TTFBP99us.med()),
			sgn(t.TTFBDeltaP50us.med(), 0), sgn(t.TTFBDeltaP99us.med(), 0), ms(t.StreamTotalP50.med()), t.StreamErrors)
	}
	fmt.Fprintln(w)
hold:
	for _, level := range s.HoldLevels {
		fmt.Fprintf(w, "### %d live streams at once (RSS of the proxy process; heap, stacks and goroutines from its pprof)\n\n", level)
		fmt.Fprintln(w, "| target | live at sample | RSS idle | RSS live | KiB/stream above idle | × minproxy | heap KiB/stream | stacks KiB/stream | goroutines/stream | TTFB p50 | added TTFB p50 / p99 | errors |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		var base *holdSummary
		if m := s.Targets["minproxy"]; m != nil {
			base = m.Hold[level]
		}
		for _, name := range order {
			t := s.Targets[name]
			if t == nil || t.Hold[level] == nil {
				continue
			}
			h := t.Hold[level]
			ratio := "–"
			if base != nil && h.KiBPerStream != nil {
				ratio = fmt.Sprintf("%.2fx", h.KiBPerStream.med()/base.KiBPerStream.med())
			}
			mib := func(x *stat) string {
				if x == nil {
					return "–"
				}
				return fmt.Sprintf("%.1f MiB", x.med())
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s µs | %.0f |\n", name, num(h.Live.med(), 0),
				mib(h.RSSIdleMiB), mib(h.RSSLiveMiB), num(h.KiBPerStream.med(), 1), ratio, num(h.HeapKiBPerStream.med(), 1),
				num(h.StackKiBPerStream.med(), 1), num(h.GoroutinesPer.med(), 2), ms(h.TTFBP50us.med()),
				sgn(h.AddedTTFBP50us.med(), 0), sgn(h.AddedTTFBP99us.med(), 0), h.Errors)
		}
		fmt.Fprintln(w)
	}
	printShadow(w, s)
	if s.Ratios == nil {
		fmt.Fprintln(w, "### abgate vs minproxy: no ratios (abgate or minproxy not measured)")
		return
	}
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**NOT met**"
	}
	fmt.Fprintln(w, "### abgate vs minproxy")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| measure | value | aim |")
	fmt.Fprintln(w, "|---|---:|---|")
	if _, ok := s.Ratios["throughput"]; ok {
		fmt.Fprintf(w, "| throughput abgate/minproxy | %.3fx | ≥ 0.95x: %s |\n", s.Ratios["throughput"], mark(s.Aims["throughput_at_least_0.95x"]))
		fmt.Fprintf(w, "| CPU per request abgate/minproxy | %.3fx | ≤ 1.10x: %s |\n", s.Ratios["cpu_per_request"], mark(s.Aims["cpu_per_request_at_most_1.10x"]))
		fmt.Fprintf(w, "| capacity abgate/minproxy (req/s at 100%% core = 1e6 / CPU µs) | %.3fx | ≥ 0.95x: %s |\n",
			1/s.Ratios["cpu_per_request"], mark(1/s.Ratios["cpu_per_request"] >= 0.95))
	}
	if v, ok := s.Ratios["cpu_per_request_vs_bare"]; ok {
		fmt.Fprintf(w, "| CPU per request abgate/bare ReverseProxy | %.3fx | ≤ 1.0x: %s |\n", v, mark(s.Aims["cpu_per_request_vs_bare_at_most_1.0x"]))
	}
	if v, ok := s.Ratios["added_p50_us_minus_minproxy"]; ok {
		fmt.Fprintf(w, "| added p50 abgate − minproxy | %+.0f µs | |\n", v)
		fmt.Fprintf(w, "| added p90 abgate − minproxy | %+.0f µs (%.2fx) | ≤ 0: %s |\n", s.Ratios["added_p90_us_minus_minproxy"], s.Ratios["added_p90"], mark(s.Aims["added_p90_no_worse"]))
		fmt.Fprintf(w, "| added p99 abgate − minproxy | %+.0f µs (%.2fx) | ≤ 0: %s |\n", s.Ratios["added_p99_us_minus_minproxy"], s.Ratios["added_p99"], mark(s.Aims["added_p99_no_worse"]))
	}
	printPaired(w, s, mark)
	for _, level := range s.HoldLevels {
		for _, t := range []string{"abgate", "abgate-h2c"} {
			if v, ok := s.Ratios[fmt.Sprintf("%s_kib_per_stream_%d", t, level)]; ok {
				kib := s.Targets[t].Hold[level].KiBPerStream.med()
				fmt.Fprintf(w, "| %s KiB per live stream at %d, × minproxy | %.1f KiB (%.2fx) | ≤ 50 KiB: %s |\n", t, level, kib, v, mark(s.Aims[fmt.Sprintf("%s_at_most_50_kib_per_stream_%d", t, level)]))
				idle := s.Targets[t].Hold[level].RSSIdleMiB.med()
				fmt.Fprintf(w, "| %s idle RSS (before %d), × minproxy | %.1f MiB (%.2fx) | ≤ 25 MiB: %s |\n", t, level, idle, s.Ratios[fmt.Sprintf("%s_rss_idle_%d", t, level)], mark(s.Aims[fmt.Sprintf("%s_idle_at_most_25_mib_%d", t, level)]))
			}
		}
	}
	if v, ok := s.Ratios["ttfb_delta_p50_us_minus_minproxy"]; ok {
		fmt.Fprintf(w, "| TTFB p50 abgate − minproxy | %+.0f µs | |\n", v)
		fmt.Fprintf(w, "| TTFB p99 abgate − minproxy | %+.0f µs | |\n", s.Ratios["ttfb_delta_p99_us_minus_minproxy"])
	}
	if a, m := s.Targets["abgate"], s.Targets["minproxy"]; a.ProxyUtil != nil && m.ProxyUtil != nil && (a.ProxyUtil.med() < 0.9 || m.ProxyUtil.med() < 0.9) {
		fmt.Fprintf(w, "\nNote: the proxies got %.0f%% (abgate) and %.0f%% (minproxy) of their core: the machine was busy, so raw req/s reflects the CPU share each got more than the proxy; CPU µs/req and capacity are the figures to compare.\n",
			100*a.ProxyUtil.med(), 100*m.ProxyUtil.med())
	}
	if a := s.Targets["abgate"]; a != nil && a.MissingHeader > 0 {
		fmt.Fprintf(w, "\nWarning: %.0f abgate responses lacked the X-Abgate-Variant header.\n", a.MissingHeader)
	}
}

// printPaired adds the round-by-round comparisons to the aims table: the
// median over rounds of each round's ratio or difference, and the rounds.
func printPaired(w io.Writer, s *summary, mark func(bool) string) {
	rounds := func(p *stat, f func(float64) string) string {
		parts := make([]string, len(p.Rounds))
		for i, x := range p.Rounds {
			parts[i] = f(x)
		}
		return strings.Join(parts, ", ")
	}
	x := func(v float64) string { return fmt.Sprintf("%.3fx", v) }
	us := func(v float64) string { return fmt.Sprintf("%+.0f µs", v) }
	for _, row := range []struct {
		key, label, aim string
		f               func(float64) string
		ok              func(float64) bool
	}{
		{"cpu_per_request_abgate_vs_bare", "CPU per request abgate/bare, round by round", "≤ 1.0x", x, func(v float64) bool { return v <= 1 }},
		{"cpu_per_request_abgate_vs_minproxy", "CPU per request abgate/minproxy, round by round", "≤ 1.10x", x, func(v float64) bool { return v <= 1.1 }},
		{"p90_us_abgate_minus_minproxy", "p90 at the fixed rate abgate − minproxy, round by round", "≤ 0", us, func(v float64) bool { return v <= 0 }},
		{"p99_us_abgate_minus_minproxy", "p99 at the fixed rate abgate − minproxy, round by round", "≤ 0", us, func(v float64) bool { return v <= 0 }},
		{"cpu_per_request_abgate_vs_abgate-base", "CPU per request abgate/abgate-base (BASELINE_BIN), round by round", "", x, nil},
		{"p90_us_abgate_minus_abgate-base", "p90 abgate − abgate-base, round by round", "", us, nil},
		{"p99_us_abgate_minus_abgate-base", "p99 abgate − abgate-base, round by round", "", us, nil},
	} {
		p := s.Paired[row.key]
		if p == nil {
			continue
		}
		aim := ""
		if row.ok != nil {
			aim = row.aim + ": " + mark(row.ok(p.Median))
		}
		fmt.Fprintf(w, "| %s (median of %d: %s) | %s | %s |\n", row.label, len(p.Rounds), rounds(p, row.f), row.f(p.Median), aim)
	}
}

// printShadow is the shadow scenario's table: abgate with a shadow stage
// active against abgate without, in the same run.
func printShadow(w io.Writer, s *summary) {
	if s.Shadow == nil {
		return
	}
	fmt.Fprintln(w, "### Shadow on vs off (abgate-shadow / abgate, same run)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| measure | shadow on | shadow off | on / off |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	if v, ok := s.Shadow["cpu_per_request"]; ok {
		fmt.Fprintf(w, "| proxy CPU per request | %.1f µs | %.1f µs | %.2fx |\n", s.Shadow["cpu_us_per_request_on"], s.Shadow["cpu_us_per_request_off"], v)
	}
	for _, q := range []string{"p50", "p90", "p99"} {
		if v, ok := s.Shadow["added_"+q]; ok {
			fmt.Fprintf(w, "| added %s at %.0f req/s | %+.0f µs | %+.0f µs | %.2fx |\n", q, s.Rate, s.Shadow["added_"+q+"_us_on"], s.Shadow["added_"+q+"_us_off"], v)
		}
	}
	fmt.Fprintln(w)
}
