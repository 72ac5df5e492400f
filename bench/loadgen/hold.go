package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// holdResult is the output of -hold: many live streams at once, and what
// the process in front of the upstream held for them.
type holdResult struct {
	Mode       string `json:"mode"` // "hold"
	URL        string `json:"url"`
	Label      string `json:"label,omitempty"`
	Streams    int    `json:"streams"`
	OK         int64  `json:"ok"`
	Errors     int64  `json:"errors"`
	MissingHdr int64  `json:"missing_header,omitempty"`
	// Live streams when the sample was taken: started and not finished.
	LiveAtSample int64   `json:"live_at_sample"`
	RampS        float64 `json:"ramp_s"`
	// Time to the first SSE data line of each stream, from its scheduled
	// start, in microseconds.
	TTFBP50us float64 `json:"ttfb_p50_us"`
	TTFBP90us float64 `json:"ttfb_p90_us"`
	TTFBP99us float64 `json:"ttfb_p99_us"`
	TotalP50  float64 `json:"total_p50_us"`
	// The watched process (-pid): RSS before the first stream, with every
	// stream live, and its high-water mark; from -debug (net/http/pprof):
	// goroutines and heap in use at the same moments.
	RSSIdleKiB    int64  `json:"rss_idle_kib,omitempty"`
	RSSLiveKiB    int64  `json:"rss_live_kib,omitempty"`
	RSSPeakKiB    int64  `json:"rss_peak_kib,omitempty"`
	GoroutinesIdl int64  `json:"goroutines_idle,omitempty"`
	GoroutinesLiv int64  `json:"goroutines_live,omitempty"`
	HeapIdleB     int64  `json:"heap_inuse_idle_bytes,omitempty"`
	HeapLiveB     int64  `json:"heap_inuse_live_bytes,omitempty"`
	StackIdleB    int64  `json:"stack_inuse_idle_bytes,omitempty"`
	StackLiveB    int64  `json:"stack_inuse_live_bytes,omitempty"`
	FirstError    string `json:"first_error,omitempty"`
}

// runHold opens n streams spread evenly over ramp, waits until every one
// has delivered its first chunk (or failed), lets the process settle for
// settle, samples it, then waits for every stream to finish.
func runHold(target, label string, n int, ramp, settle, timeout time.Duration, model string, users int, pid int, debug, checkHeader string) holdResult {
	r := holdResult{Mode: "hold", URL: target, Label: label, Streams: n, RampS: ramp.Seconds()}
	body := []byte(`{"model":` + strconv.Quote(model) + `,"stream":true,"messages":[{"role":"user","content":"hello"}]}`)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        n,
		MaxIdleConnsPerHost: n,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	r.RSSIdleKiB, _ = rssKiB(pid, "VmRSS:")
	r.GoroutinesIdl, r.HeapIdleB, r.StackIdleB = debugSample(debug)

	ctx, cancel := context.WithTimeout(context.Background(), ramp+timeout)
	defer cancel()
	var (
		okN, errN, missN, live atomic.Int64
		firstErr               atomic.Value
		started                sync.WaitGroup // first chunk seen or failed
		done                   sync.WaitGroup
		mu                     sync.Mutex
		ttfb                   = make([]time.Duration, 0, n)
		total                  = make([]time.Duration, 0, n)
	)
	fail := func(err error) {
		errN.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	one := func(i int, sched time.Time) {
		defer done.Done()
		first := true
		defer func() {
			if first {
				started.Done()
			}
		}()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			fail(err)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("X-User-ID", "user-"+strconv.Itoa(rand.IntN(users)))
		resp, err := client.Do(req)
		if err != nil {
			fail(err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			io.Copy(io.Discard, resp.Body)
			fail(fmt.Errorf("status %d", resp.StatusCode))
			return
		}
		if checkHeader != "" && resp.Header.Get(checkHeader) == "" {
			missN.Add(1)
		}
		live.Add(1)
		defer live.Add(-1)
		br := bufio.NewReaderSize(resp.Body, 1024)
		var t1 time.Duration
		data, done, err := readSSE(br, func() {
			t1 = time.Since(sched)
			first = false
			started.Done()
		})
		if err != nil {
			fail(err)
			return
		}
		if !data || !done {
			fail(errStreamIncomplete)
			return
		}
		okN.Add(1)
		mu.Lock()
		ttfb = append(ttfb, t1)
		total = append(total, time.Since(sched))
		mu.Unlock()
	}

	started.Add(n)
	done.Add(n)
	start := time.Now()
	for i := 0; i < n; i++ {
		sched := start.Add(time.Duration(int64(ramp) * int64(i) / int64(n)))
		if d := time.Until(sched); d > 0 {
			time.Sleep(d)
		}
		go one(i, sched)
	}
	started.Wait()
	time.Sleep(settle)
	r.LiveAtSample = live.Load()
	r.RSSLiveKiB, _ = rssKiB(pid, "VmRSS:")
	r.GoroutinesLiv, r.HeapLiveB, r.StackLiveB = debugSample(debug)
	done.Wait()
	r.RSSPeakKiB, _ = rssKiB(pid, "VmHWM:")

	r.OK, r.Errors, r.MissingHdr = okN.Load(), errN.Load(), missN.Load()
	if v := firstErr.Load(); v != nil {
		r.FirstError = v.(string)
	}
	slices.Sort(ttfb)
	slices.Sort(total)
	if len(ttfb) > 0 {
		r.TTFBP50us = us(pct(ttfb, 50))
		r.TTFBP90us = us(pct(ttfb, 90))
		r.TTFBP99us = us(pct(ttfb, 99))
		r.TotalP50 = us(pct(total, 50))
	}
	return r
}

// rssKiB reads one "Vm...:  N kB" line of /proc/<pid>/status.
func rssKiB(pid int, field string) (int64, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			f := strings.Fields(l)
			if len(f) >= 2 {
				return strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// debugSample reads the goroutine count, HeapInuse and StackInuse from a
// net/http/pprof endpoint (base like http://127.0.0.1:6060); zeros when
// there is none.
func debugSample(base string) (goroutines, heapInuse, stackInuse int64) {
	if base == "" {
		return 0, 0, 0
	}
	c := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) string {
		resp, err := c.Get(base + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// "goroutine profile: total 123"
	if s := get("/debug/pprof/goroutine?debug=1"); s != "" {
		line, _, _ := strings.Cut(s, "\n")
		if i := strings.LastIndexByte(line, ' '); i >= 0 {
			goroutines, _ = strconv.ParseInt(line[i+1:], 10, 64)
		}
	}
	// The heap profile's debug text ends with runtime.MemStats lines:
	// "# HeapInuse = 123", "# Stack = 456 / 789". gc=1 runs a GC first,
	// so it is the live heap.
	if s := get("/debug/pprof/heap?debug=1&gc=1"); s != "" {
		heapInuse = memStat(s, "# HeapInuse = ")
		stackInuse = memStat(s, "# Stack = ")
	}
	return goroutines, heapInuse, stackInuse
}

// memStat is the first number after key in a heap profile's text.
func memStat(s, key string) int64 {
	i := strings.Index(s, key)
	if i < 0 {
		return 0
	}
	v := strings.Fields(s[i+len(key):])
	if len(v) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(v[0], 10, 64)
	return n
}
