// Command slices reads a Go execution trace (runtime/trace, e.g. from
// /debug/pprof/trace of a running abgate) and lists the goroutine run
// slices longer than -min, grouped by the function the goroutine started
// in, longest total first. On a proxy pinned to one core every such slice
// is time in which no request goroutine ran: the tail of an open-loop run
// at moderate load comes from them (bench/README.md, issue "Live streams
// at scale"). It then follows each HTTP/1.1 request the server served
// (requests.go): its time in the process and what the slowest 1% waited
// on. bench/run.sh runs it with TRACE_SLICES=1.
//
//	go run ./bench/slices -min 300us trace.out
package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"golang.org/x/exp/trace"
)

func main() {
	minDur := flag.Duration("min", 300*time.Microsecond, "list run slices at least this long")
	top := flag.Int("top", 10, "also list the longest slices, this many")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: slices [-min 300us] [-top 10] TRACE")
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	if err := run(f, os.Stdout, *minDur, *top); err != nil {
		fmt.Fprintln(os.Stderr, "slices:", err)
		os.Exit(1)
	}
}

type slice struct {
	dur   time.Duration
	start string // the goroutine's start function
}

func run(r io.Reader, w io.Writer, minDur time.Duration, top int) error {
	tr, err := trace.NewReader(r)
	if err != nil {
		return err
	}
	since := map[trace.GoID]trace.Time{}
	startFn := map[trace.GoID]string{}
	var all []slice
	var first, last trace.Time
	var busy time.Duration
	rq := newRequests()
	for {
		ev, err := tr.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if first == 0 {
			first = ev.Time()
		}
		last = ev.Time()
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		rq.transition(ev.Time(), st)
		g := st.Resource.Goroutine()
		from, to := st.Goroutine()
		if _, ok := startFn[g]; !ok {
			// The outermost frame of the first stack seen is where the
			// goroutine started.
			for fr := range st.Stack.Frames() {
				startFn[g] = fr.Func
			}
		}
		switch {
		case to == trace.GoRunning:
			since[g] = ev.Time()
		case from == trace.GoRunning:
			t0, ok := since[g]
			if !ok {
				continue
			}
			delete(since, g)
			d := ev.Time().Sub(t0)
			busy += d
			if d >= minDur {
				all = append(all, slice{d, cmp.Or(startFn[g], "(unknown)")})
			}
		}
	}
	span := last.Sub(first)
	fmt.Fprintf(w, "trace of %v: goroutines ran %v (%.0f%%); %d slices of %v or more\n\n",
		span.Round(time.Millisecond), busy.Round(time.Millisecond), 100*busy.Seconds()/max(span.Seconds(), 1e-9), len(all), minDur)
	type group struct {
		start      string
		n          int
		total, max time.Duration
	}
	by := map[string]*group{}
	for _, s := range all {
		g := by[s.start]
		if g == nil {
			g = &group{start: s.start}
			by[s.start] = g
		}
		g.n++
		g.total += s.dur
		g.max = max(g.max, s.dur)
	}
	groups := make([]*group, 0, len(by))
	for _, g := range by {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b *group) int { return cmp.Compare(b.total, a.total) })
	fmt.Fprintln(w, "| goroutine started in | slices | total | mean | longest |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, g := range groups {
		fmt.Fprintf(w, "| `%s` | %d | %v | %v | %v |\n", g.start, g.n, g.total.Round(time.Microsecond),
			(g.total / time.Duration(g.n)).Round(time.Microsecond), g.max.Round(time.Microsecond))
	}
	slices.SortFunc(all, func(a, b slice) int { return cmp.Compare(b.dur, a.dur) })
	fmt.Fprintf(w, "\nlongest %d:\n", min(top, len(all)))
	for _, s := range all[:min(top, len(all))] {
		fmt.Fprintf(w, "  %v  %s\n", s.dur.Round(time.Microsecond), s.start)
	}
	rq.report(w)
	return nil
}
