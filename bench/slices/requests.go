package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// requests follows each HTTP/1.1 request a net/http server goroutine
// serves, from the moment the network poller makes the goroutine
// runnable with the request's bytes to the write of the response to the
// client, and splits that time into running, waiting to run, and blocked
// (by what). The time before the poller notices the bytes and after the
// write is not in the trace; the load generator's latency includes it.
type requests struct {
	gs   map[trace.GoID]*reqG
	done []*request
}

type request struct {
	start, wrote  trace.Time
	run, runnable time.Duration
	blocked       map[string]time.Duration
}

type reqG struct {
	cur   *request
	since trace.Time
	why   string // what the goroutine is blocked on; idle between requests
}

const idle = "idle"

func newRequests() *requests { return &requests{gs: map[trace.GoID]*reqG{}} }

func (rq *requests) transition(now trace.Time, st trace.StateTransition) {
	g := st.Resource.Goroutine()
	from, to := st.Goroutine()
	s := rq.gs[g]
	if s == nil {
		s = &reqG{}
		rq.gs[g] = s
	}
	if q := s.cur; q != nil && s.since != 0 {
		d := now.Sub(s.since)
		switch from {
		case trace.GoRunning:
			q.run += d
		case trace.GoRunnable:
			q.runnable += d
		case trace.GoWaiting:
			q.blocked[s.why] += d
		}
	}
	s.since = now
	switch {
	case to == trace.GoSyscall && s.cur != nil:
		for fr := range st.Stack.Frames() {
			if fr.Func == "net/http.checkConnErrorWriter.Write" { // the response to the client
				s.cur.wrote = now
				rq.done = append(rq.done, s.cur)
				s.cur = nil
				break
			}
		}
	case to == trace.GoWaiting:
		var fns []string
		for fr := range st.Stack.Frames() {
			fns = append(fns, fr.Func)
		}
		if len(fns) == 0 {
			return // a state the trace starts with and does not explain
		}
		// A server goroutine waits for its connection's next request in
		// conn.serve's Peek.
		if i := slices.Index(fns, "net/http.(*conn).serve"); st.Reason == "network" && i > 0 && fns[i-1] == "bufio.(*Reader).Peek" {
			s.cur = nil // a request without a response write (an error, a hijack) is dropped
			s.why = idle
			return
		}
		s.why = st.Reason
		for _, fn := range fns {
			if !strings.HasPrefix(fn, "runtime.") && !strings.HasPrefix(fn, "internal/") && !strings.HasPrefix(fn, "sync.") {
				s.why = st.Reason + " in " + fn
				break
			}
		}
	case from == trace.GoWaiting && s.why == idle:
		s.cur = &request{start: now, blocked: map[string]time.Duration{}}
		s.why = ""
	}
}

func (rq *requests) report(w io.Writer) {
	done := rq.done
	if len(done) < 100 {
		fmt.Fprintf(w, "\n%d requests followed: too few to report\n", len(done))
		return
	}
	dur := func(q *request) time.Duration { return q.wrote.Sub(q.start) }
	slices.SortFunc(done, func(a, b *request) int { return cmp.Compare(dur(a), dur(b)) })
	at := func(p float64) time.Duration { return dur(done[min(len(done)-1, int(p*float64(len(done))))]) }
	r := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
	fmt.Fprintf(w, "\n%d requests, in the process from the poller's notice to the response write: p50 %v, p90 %v, p99 %v, p99.9 %v\n\n",
		len(done), r(at(0.5)), r(at(0.9)), r(at(0.99)), r(at(0.999)))
	fmt.Fprintln(w, "| mean per request | all | slowest 1% |")
	fmt.Fprintln(w, "|---|---:|---:|")
	slow := done[len(done)*99/100:]
	type part struct {
		name      string
		all, slow time.Duration
	}
	parts := map[string]*part{}
	add := func(name string, d time.Duration, isSlow bool, n int) {
		p := parts[name]
		if p == nil {
			p = &part{name: name}
			parts[name] = p
		}
		if isSlow {
			p.slow += d / time.Duration(n)
		} else {
			p.all += d / time.Duration(n)
		}
	}
	for _, set := range []struct {
		qs   []*request
		slow bool
	}{{done, false}, {slow, true}} {
		for _, q := range set.qs {
			add("total", dur(q), set.slow, len(set.qs))
			add("running", q.run, set.slow, len(set.qs))
			add("runnable (waiting for the core)", q.runnable, set.slow, len(set.qs))
			for why, d := range q.blocked {
				add("blocked: "+why, d, set.slow, len(set.qs))
			}
		}
	}
	list := make([]*part, 0, len(parts))
	for _, p := range parts {
		if p.all >= time.Microsecond || p.slow >= 10*time.Microsecond {
			list = append(list, p)
		}
	}
	slices.SortFunc(list, func(a, b *part) int { return cmp.Compare(b.slow, a.slow) })
	for _, p := range list {
		fmt.Fprintf(w, "| %s | %v | %v |\n", p.name, r(p.all), r(p.slow))
	}
}
