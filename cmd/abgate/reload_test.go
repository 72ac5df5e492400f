package main

import (
	"context"
	"errors"
	"log/slog"
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
