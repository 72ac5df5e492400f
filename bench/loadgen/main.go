// Command loadgen is the load harness's open-loop load generator, for
// what wrk can't do: a fixed request rate with per-request latency
// percentiles, and time to first byte of a stream.
//
//	loadgen -url http://127.0.0.1:18081/v1/chat/completions -rate 1000 -duration 10s
//	loadgen -url ... -stream -rate 200 -duration 10s
//	loadgen -url ... -hold 2000 -ramp 2s -pid PID -debug http://127.0.0.1:6060
//
// Requests are sent on a fixed schedule whatever the responses do (open
// loop), each with a random X-User-ID from a fixed pool. Latency is
// measured from the scheduled send time, so a stalled target can't hide
// its queueing (no coordinated omission). Plain mode times the whole
// response (headers and body read); stream mode sends "stream":true and
// times the first SSE "data:" line (TTFB), and the whole stream too.
// The run never issues a request after -duration, and gives in-flight
// requests at most -grace to finish before cancelling them. It prints
// one JSON object on stdout.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Mode        string  `json:"mode"`
	URL         string  `json:"url"`
	Label       string  `json:"label,omitempty"`
	Rate        float64 `json:"rate"`
	DurationS   float64 `json:"duration_s"`
	Scheduled   int64   `json:"scheduled"`
	Sent        int64   `json:"sent"`
	OK          int64   `json:"ok"`
	Errors      int64   `json:"errors"`
	Dropped     int64   `json:"dropped"` // not sent: too many in flight
	MissingHdr  int64   `json:"missing_header,omitempty"`
	AchievedRPS float64 `json:"achieved_rps"`
	// Latency in microseconds: whole response (plain) or first SSE line
	// (stream).
	P50us  float64 `json:"p50_us"`
	P90us  float64 `json:"p90_us"`
	P99us  float64 `json:"p99_us"`
	MaxUs  float64 `json:"max_us"`
	MeanUs float64 `json:"mean_us"`
	// Stream mode only: whole stream, first byte to [DONE].
	TotalP50us float64 `json:"total_p50_us,omitempty"`
	TotalP99us float64 `json:"total_p99_us,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
}

type sample struct {
	lat   time.Duration // plain: whole response; stream: first data line
	total time.Duration // stream: whole stream
}

func main() {
	target := flag.String("url", "http://127.0.0.1:18090/v1/chat/completions", "target URL (loopback)")
	label := flag.String("label", "", "label copied into the JSON output")
	rate := flag.Float64("rate", 1000, "requests per second (open loop)")
	duration := flag.Duration("duration", 10*time.Second, "how long to send requests")
	warmup := flag.Duration("warmup", time.Second, "initial part of -duration whose samples are discarded")
	stream := flag.Bool("stream", false, `send "stream":true and measure time to the first SSE chunk`)
	model := flag.String("model", "bench", "model field of the request body")
	users := flag.Int("users", 10000, "size of the X-User-ID pool")
	maxInflight := flag.Int("max-inflight", 2048, "requests in flight at most; beyond it a scheduled request is dropped and counted")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	grace := flag.Duration("grace", 5*time.Second, "after -duration, how long in-flight requests may finish")
	checkHeader := flag.String("check-header", "", "count responses that lack this header")
	hold := flag.Int("hold", 0, "hold this many streams live at once (spread over -ramp), sample -pid and -debug with all of them live, and report per-stream TTFB; -rate and -duration are then unused")
	ramp := flag.Duration("ramp", 2*time.Second, "-hold: time over which the streams are opened")
	settle := flag.Duration("settle", time.Second, "-hold: wait after the last first chunk before sampling")
	pid := flag.Int("pid", 0, "-hold: the process whose RSS (/proc/PID/status) is sampled")
	debug := flag.String("debug", "", "-hold: base URL of the process's net/http/pprof handlers, for goroutines and heap in use")
	flag.Parse()
	if err := checkLoopback(*target); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	if *rate <= 0 || *duration <= 0 || *users <= 0 || *maxInflight <= 0 {
		fmt.Fprintln(os.Stderr, "loadgen: -rate, -duration, -users and -max-inflight must be positive")
		os.Exit(2)
	}

	if *hold > 0 {
		r := runHold(*target, *label, *hold, *ramp, *settle, *timeout+*grace, *model, *users, *pid, *debug, *checkHeader)
		json.NewEncoder(os.Stdout).Encode(r)
		if r.OK == 0 {
			os.Exit(1)
		}
		return
	}
	if *warmup >= *duration {
		*warmup = 0 // too short a run to throw any of it away
	}

	body := `{"model":` + strconv.Quote(*model) + `,"messages":[{"role":"user","content":"hello"}]}`
	if *stream {
		body = `{"model":` + strconv.Quote(*model) + `,"stream":true,"messages":[{"role":"user","content":"hello"}]}`
	}
	bodyBytes := []byte(body)
	uids := make([]string, *users)
	for i := range uids {
		uids[i] = "user-" + strconv.Itoa(i)
	}

	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        *maxInflight,
		MaxIdleConnsPerHost: *maxInflight,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: tr, Timeout: *timeout}
	defer tr.CloseIdleConnections()

	var (
		mu        sync.Mutex
		samples   = make([]sample, 0, int(*rate*duration.Seconds())+16)
		okN       atomic.Int64
		errN      atomic.Int64
		missN     atomic.Int64
		sentN     atomic.Int64
		dropN     atomic.Int64
		firstErr  atomic.Value
		inflight  = make(chan struct{}, *maxInflight)
		wg        sync.WaitGroup
		scheduled int64
	)
	// Everything in flight is cancelled at duration+grace at the latest.
	ctx, cancel := context.WithTimeout(context.Background(), *duration+*grace)
	defer cancel()

	fail := func(err error) {
		errN.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	one := func(sched time.Time, keep bool) {
		defer func() { <-inflight; wg.Done() }()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, *target, bytes.NewReader(bodyBytes))
		if err != nil {
			fail(err)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-User-ID", uids[rand.IntN(len(uids))])
		if *stream {
			req.Header.Set("Accept", "text/event-stream")
		}
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
		if *checkHeader != "" && resp.Header.Get(*checkHeader) == "" {
			missN.Add(1)
		}
		var s sample
		if *stream {
			data, done, err := readSSE(bufio.NewReader(resp.Body), func() { s.lat = time.Since(sched) })
			if err != nil {
				fail(err)
				return
			}
			if !data || !done {
				fail(errStreamIncomplete)
				return
			}
			s.total = time.Since(sched)
		} else {
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				fail(err)
				return
			}
			s.lat = time.Since(sched)
		}
		okN.Add(1)
		if keep {
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
		}
	}

	interval := time.Duration(float64(time.Second) / *rate)
	start := time.Now()
	end := start.Add(*duration)
	warmEnd := start.Add(*warmup)
	for i := int64(0); ; i++ {
		sched := start.Add(time.Duration(i) * interval)
		if !sched.Before(end) {
			break
		}
		if d := time.Until(sched); d > 0 {
			time.Sleep(d)
		}
		scheduled++
		select {
		case inflight <- struct{}{}:
		default:
			dropN.Add(1)
			continue
		}
		sentN.Add(1)
		wg.Add(1)
		go one(sched, !sched.Before(warmEnd))
	}
	sendSpan := time.Since(start)
	wg.Wait()

	r := result{
		Mode: "plain", URL: *target, Label: *label, Rate: *rate, DurationS: duration.Seconds(),
		Scheduled: scheduled, Sent: sentN.Load(), OK: okN.Load(), Errors: errN.Load(),
		Dropped: dropN.Load(), MissingHdr: missN.Load(),
		AchievedRPS: float64(sentN.Load()) / sendSpan.Seconds(),
	}
	if *stream {
		r.Mode = "stream"
	}
	if v := firstErr.Load(); v != nil {
		r.FirstError = v.(string)
	}
	lat := make([]time.Duration, len(samples))
	tot := make([]time.Duration, len(samples))
	var sum time.Duration
	for i, s := range samples {
		lat[i], tot[i] = s.lat, s.total
		sum += s.lat
	}
	slices.Sort(lat)
	slices.Sort(tot)
	if n := len(lat); n > 0 {
		r.P50us = us(pct(lat, 50))
		r.P90us = us(pct(lat, 90))
		r.P99us = us(pct(lat, 99))
		r.MaxUs = us(lat[n-1])
		r.MeanUs = us(sum / time.Duration(n))
		if *stream {
			r.TotalP50us = us(pct(tot, 50))
			r.TotalP99us = us(pct(tot, 99))
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.Encode(r)
	if r.OK == 0 {
		os.Exit(1)
	}
}

// pct is the nearest-rank percentile of sorted samples.
func pct(sorted []time.Duration, p float64) time.Duration {
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func checkLoopback(raw string) error {
	req, err := http.NewRequest(http.MethodPost, raw, nil)
	if err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	host := req.URL.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-url %q: loopback targets only", raw)
	}
	return nil
}
