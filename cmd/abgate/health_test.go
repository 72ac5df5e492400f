package main

import (
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

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
		cfg := serveConfig(t, "http://127.0.0.1:9", func(c *experiments.Config) {
			c.Redis.Addrs = []string{dead}
			c.Server.ReadyRequiresStore = strict
		})
		a, urls, stop := startServe(t, cfg)
		url := urls[0]
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
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDrainDelay: once shutdown begins, /readyz answers 503 "draining"
// while the listener still accepts, for server.drain_delay.
func TestDrainDelay(t *testing.T) {
	cfg := serveConfig(t, "http://127.0.0.1:9", func(c *experiments.Config) { c.Server.DrainDelay = experiments.Duration(400 * time.Millisecond) })
	_, urls, stop := startServe(t, cfg)
	url := urls[0]
	waitReady(t, url)
	if code, body := readyz(t, url); code != 200 || body["status"] != "ready" || body["store"] != "memory" {
		t.Fatalf("before shutdown: %d %v", code, body)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	sawDraining := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !sawDraining; time.Sleep(10 * time.Millisecond) {
		code, body := readyz(t, url)
		sawDraining = code == http.StatusServiceUnavailable && body["status"] == "draining"
	}
	if !sawDraining {
		t.Error("never saw 503 draining while the listener still accepted")
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
