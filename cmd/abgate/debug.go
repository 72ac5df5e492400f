package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// startDebug serves net/http/pprof on the loopback address in
// ABGATE_DEBUG_ADDR (e.g. 127.0.0.1:6060), for heap and goroutine
// profiles of a running gateway (bench/run.sh's many-streams scenario
// reads them). Unset, nothing listens. It is an environment variable, not
// a config field, because it is an operator's diagnostic, never part of
// a deployment's config; it refuses anything but loopback, since the
// profiles show request data. The handlers are mounted on their own mux:
// the package's init also registers them on http.DefaultServeMux, which
// abgate never serves.
func startDebug(log *slog.Logger) {
	addr := os.Getenv("ABGATE_DEBUG_ADDR")
	if addr == "" {
		return
	}
	if err := requireLoopback(addr); err != nil {
		log.Warn("ABGATE_DEBUG_ADDR ignored", "err", err)
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Warn("ABGATE_DEBUG_ADDR: cannot listen", "err", err)
		return
	}
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("pprof listening", "addr", ln.Addr().String())
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // a diagnostic; it ends with the process
}
