package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// TestReloadChecksAPIExperiments: a reloaded config file whose experiment
// takes over the id of one created through the API replaces it in the
// merge; if that moves users between variants without a new phase, the
// reload is refused, as for a file experiment (docs/config.md: users are
// never silently re-randomized inside one phase).
func TestReloadChecksAPIExperiments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fileCfg := func(exps ...experiments.Experiment) *experiments.Config {
		cfg := &experiments.Config{
			Server:      experiments.Server{Listen: "127.0.0.1:0", TokenSecret: experiments.Secret(strings.Repeat("k", 32))},
			Upstreams:   []experiments.Upstream{{Name: "up", URL: "http://127.0.0.1:1"}},
			Experiments: exps,
		}
		cfg.SetDefaults()
		if err := cfg.ValidateForServe(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	variants := func(n int) []experiments.Variant {
		vs := []experiments.Variant{{Name: "base", Upstream: "up", Model: "m"}}
		for i := 1; i <= n; i++ {
			vs = append(vs, experiments.Variant{Name: "ft" + string(rune('0'+i)), Upstream: "up", Model: "m", Weight: 10})
		}
		return vs
	}
	a, err := newApp(ctx, fileCfg(experiments.Experiment{ID: "file", Variants: variants(1)}), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.hooks.Close(context.Background())
		_ = a.recorder.Close(context.Background())
	})
	now := time.Now()
	stored := experiments.StoredExperiment{Version: 1, CreatedAt: now, UpdatedAt: now, UpdatedBy: "api:t",
		Definition: experiments.Definition{Experiment: experiments.Experiment{ID: "viaapi", Variants: variants(1)}}}
	if err := a.catalog.Definitions().Put(ctx, 0, stored); err != nil {
		t.Fatal(err)
	}
	if err := a.catalog.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if a.catalog.Source("viaapi") != experiments.SourceAPI {
		t.Fatal("the API experiment is not served")
	}
	// The file now defines "viaapi" with two candidates: the anchors move.
	next := fileCfg(experiments.Experiment{ID: "file", Variants: variants(1)}, experiments.Experiment{ID: "viaapi", Variants: variants(2)})
	err = a.reload(ctx, next)
	var ve experiments.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "experiments[1].phase") {
		t.Fatalf("reload = %v; want the reshuffle of viaapi refused", err)
	}
	if a.catalog.Source("viaapi") != experiments.SourceAPI {
		t.Error("the refused reload was applied")
	}
	// With a new phase it goes through.
	next.Experiments[1].Phase = 2
	if err := a.reload(ctx, next); err != nil {
		t.Fatalf("reload with a new phase: %v", err)
	}
	if a.catalog.Source("viaapi") != experiments.SourceConfig {
		t.Error("the file's experiment does not serve")
	}
}

// TestReloadTellsTheTruth: a reload applies auth, webhook and controller
// changes (open_reads takes effect; a new token works; the old one does
// not), refuses a file that changes a field only a restart applies,
// naming it and changing nothing, and moves the config version.
func TestReloadTellsTheTruth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := func() *experiments.Config {
		cfg := &experiments.Config{
			Server:    experiments.Server{Listen: "127.0.0.1:0", TokenSecret: experiments.Secret(strings.Repeat("k", 32))},
			Upstreams: []experiments.Upstream{{Name: "up", URL: "http://127.0.0.1:1"}},
			Experiments: []experiments.Experiment{{ID: "e", Variants: []experiments.Variant{
				{Name: "base", Upstream: "up", Model: "m"}, {Name: "ft", Upstream: "up", Model: "m2", Weight: 10}}}},
			Auth: experiments.Auth{Tokens: []experiments.AuthToken{{Name: "old", Role: "viewer", Token: "old-viewer-token-0123456789"}}},
		}
		cfg.SetDefaults()
		if err := cfg.ValidateForServe(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	a, err := newApp(ctx, base(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.hooks.Close(context.Background())
		_ = a.recorder.Close(context.Background())
	})
	proxy, _ := a.engines()
	get := func(token string) int {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/experiments", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		proxy.ServeHTTP(w, req)
		return w.Code
	}
	if get("") != http.StatusUnauthorized || get("old-viewer-token-0123456789") != http.StatusOK {
		t.Fatal("before the reload")
	}
	v1 := a.version.Load().(string)

	// A field only a restart applies: refused whole, named.
	moved := base()
	moved.Server.Listen = "127.0.0.1:1"
	moved.Redis.Addrs = []string{"127.0.0.1:6390"}
	moved.Auth.OpenReads = true
	err = a.reload(ctx, moved)
	if err == nil || !strings.Contains(err.Error(), "server.listen") || !strings.Contains(err.Error(), "redis") {
		t.Fatalf("reload with a new listen address: %v", err)
	}
	if get("") != http.StatusUnauthorized || a.version.Load().(string) != v1 {
		t.Fatal("a refused reload changed something")
	}

	// Auth, webhooks and the controller are applied.
	next := base()
	next.Auth = experiments.Auth{OpenReads: true, Tokens: []experiments.AuthToken{{Name: "new", Role: "admin", Token: "new-admin-token-0123456789"}}}
	next.Webhooks = []experiments.Webhook{{URL: "http://127.0.0.1:1/hook", Secret: "s"}}
	next.Controller.Disabled = true
	if err := a.reload(ctx, next); err != nil {
		t.Fatal(err)
	}
	if get("") != http.StatusOK {
		t.Error("open_reads did not take effect")
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/experiments/e/pause", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer old-viewer-token-0123456789")
	w := httptest.NewRecorder()
	proxy.ServeHTTP(w, req)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("the removed token still authenticates: %d", w.Code)
	}
	if st := a.hooks.cur.Load().Stats(); st.Receivers != 1 {
		t.Errorf("webhooks after the reload: %+v", st)
	}
	if a.version.Load().(string) == v1 {
		t.Error("the config version did not change")
	}
}
