package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

func healthConfig(t *testing.T, edit func(*experiments.Config)) *experiments.Config {
	t.Helper()
	cfg := &experiments.Config{
		Server:    experiments.Server{Listen: "127.0.0.1:0", TokenSecret: experiments.Secret(strings.Repeat("k", 32))},
		Upstreams: []experiments.Upstream{{Name: "up", URL: "http://127.0.0.1:9"}},
		Experiments: []experiments.Experiment{{ID: "e", Variants: []experiments.Variant{
			{Name: "base", Upstream: "up", Model: "m"}, {Name: "ft", Upstream: "up", Model: "m2", Weight: 50}}}},
		Routes: []experiments.Route{{Alias: "a", Experiment: "e"}},
	}
	edit(cfg)
	cfg.SetDefaults()
	if err := cfg.ValidateForServe(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func readyz(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// TestReadinessReflectsStoreAndConfig: /readyz names the live config
// version and the store's state; an unreachable Redis makes the replica
// "degraded" but ready (it serves, outcomes buffer), or unready with
// server.ready_requires_store.
func TestReadinessReflectsStoreAndConfig(t *testing.T) {
	// A closed port: nothing answers there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	for _, strict := range []bool{false, true} {
		cfg := healthConfig(t, func(c *experiments.Config) {
			c.Redis.Addrs = []string{dead}
			c.Server.ReadyRequiresStore = strict
		})
		ctx, cancel := context.WithCancel(context.Background())
		a, err := newApp(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.listen(); err != nil {
			t.Fatal(err)
		}
		url := "http://" + a.listeners[0].Addr().String()
		done := make(chan error, 1)
		go func() { done <- a.run(ctx, io.Discard) }()
		var code int
		var body map[string]any
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if code, body = readyz(t, url); body != nil && body["status"] != "starting" {
				break
			}
		}
		want := http.StatusOK
		if strict {
			want = http.StatusServiceUnavailable
		}
		if code != want || body["status"] != "degraded" || body["store"] != "unreachable" || body["config_version"] != a.version.Load() || len(a.version.Load().(string)) != 12 {
			t.Errorf("strict=%v: /readyz %d %v", strict, code, body)
		}
		cancel()
		<-done
	}
}

// TestDrainDelay: once shutdown begins, /readyz answers 503 "draining"
// while the listener still accepts, for server.drain_delay.
func TestDrainDelay(t *testing.T) {
	cfg := healthConfig(t, func(c *experiments.Config) { c.Server.DrainDelay = experiments.Duration(400 * time.Millisecond) })
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.listen(); err != nil {
		t.Fatal(err)
	}
	url := "http://" + a.listeners[0].Addr().String()
	done := make(chan error, 1)
	go func() { done <- a.run(ctx, io.Discard) }()
	waitReady(t, url)
	if code, body := readyz(t, url); code != 200 || body["status"] != "ready" || body["store"] != "memory" {
		t.Fatalf("before shutdown: %d %v", code, body)
	}
	cancel()
	sawDraining := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !sawDraining; time.Sleep(10 * time.Millisecond) {
		code, body := readyz(t, url)
		sawDraining = code == http.StatusServiceUnavailable && body["status"] == "draining"
	}
	if !sawDraining {
		t.Error("never saw 503 draining while the listener still accepted")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
