package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
)

// serveConfig is a validated serve config: one experiment "e" (base and a
// 50% candidate on upstream) routed as model "a", on a free loopback
// port; edit changes it before defaults and validation.
func serveConfig(t *testing.T, upstream string, edit func(*experiments.Config)) *experiments.Config {
	t.Helper()
	cfg := &experiments.Config{
		Server:    experiments.Server{Listen: "127.0.0.1:0", TokenSecret: experiments.Secret(strings.Repeat("k", 32))},
		Upstreams: []experiments.Upstream{{Name: "up", URL: upstream}},
		Experiments: []experiments.Experiment{{ID: "e", Variants: []experiments.Variant{
			{Name: "base", Upstream: "up", Model: "m"}, {Name: "ft", Upstream: "up", Model: "m2", Weight: 50}}}},
		Routes: []experiments.Route{{Alias: "a", Experiment: "e"}},
	}
	if edit != nil {
		edit(cfg)
	}
	cfg.SetDefaults()
	if err := cfg.ValidateForServe(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startServe runs cfg as serve does and returns the app, the base URL of
// each listener (proxy first), and stop, which begins the shutdown and
// returns run's error. Call stop before the test ends.
func startServe(t *testing.T, cfg *experiments.Config) (*app, []string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := a.listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	var urls []string
	for _, l := range a.listeners {
		urls = append(urls, "http://"+l.Addr().String())
	}
	done := make(chan error, 1)
	go func() { done <- a.run(ctx, io.Discard) }()
	return a, urls, func() error { cancel(); return <-done }
}
