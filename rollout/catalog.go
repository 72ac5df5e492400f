package rollout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/abgate/abgate/experiments"
)

// DefaultCatalogPoll is how often a Catalog re-reads Definitions as a
// fallback to the change feed.
const DefaultCatalogPoll = 2 * time.Second

// Catalog is one replica's view of its experiments: the config file's
// merged with the stored Definitions (see Merge). Whenever the merged
// config changes — a Put on any replica, heard through the change feed
// or by polling, or a new file through SetFile — it calls onChange with
// it, one call at a time, so the replica can hand it to the gateway, the
// Lifecycle service and its watchers. A stored experiment that can't join
// the merge (see Skipped) is left out and logged rather than blocking the
// others. onChange runs under the catalog's lock: it must not call back
// into the catalog.
type Catalog struct {
	defs     experiments.Definitions
	onChange func(*experiments.Config)
	poll     time.Duration
	log      *slog.Logger

	mu   sync.Mutex // serialises refreshes and onChange
	file *experiments.Config
	sig  string // what the current view was built from
	view atomic.Pointer[catalogView]
}

type catalogView struct {
	file    *experiments.Config
	cfg     *experiments.Config
	stored  map[string]experiments.StoredExperiment
	skipped map[string]error
}

// NewCatalog returns the catalog of file's experiments and those stored
// in defs. It starts with the file's alone and does not call onChange:
// call Refresh before serving, then Run. onChange may be nil.
func NewCatalog(file *experiments.Config, defs experiments.Definitions, onChange func(*experiments.Config), opts ...Option) *Catalog {
	o := newOptions(opts)
	c := &Catalog{defs: defs, onChange: onChange, poll: cmp.Or(o.poll, DefaultCatalogPoll), log: o.log, file: file}
	c.view.Store(&catalogView{file: file, cfg: file, stored: map[string]experiments.StoredExperiment{}})
	return c
}

// Definitions is the store the catalog reads.
func (c *Catalog) Definitions() experiments.Definitions { return c.defs }

// Config is the merged config, as of the last refresh.
func (c *Catalog) Config() *experiments.Config { return c.view.Load().cfg }

// File is the config file's config the current view was merged from.
func (c *Catalog) File() *experiments.Config { return c.view.Load().file }

// Stored returns the stored definition of id, as of the last refresh.
// It is found even when it was left out of the merge.
func (c *Catalog) Stored(id string) (experiments.StoredExperiment, bool) {
	s, ok := c.view.Load().stored[id]
	return s, ok
}

// StoredList returns the stored experiments of the current view, as the
// last refresh read them.
func (c *Catalog) StoredList() []experiments.StoredExperiment {
	v := c.view.Load()
	out := make([]experiments.StoredExperiment, 0, len(v.stored))
	for _, s := range v.stored {
		out = append(out, s)
	}
	return out
}

// Source says where experiment id comes from: SourceConfig, SourceAPI, or
// "" when the merged config has no such experiment.
func (c *Catalog) Source(id string) string {
	v := c.view.Load()
	if v.cfg.Experiment(id) == nil {
		return ""
	}
	if v.file.Experiment(id) != nil {
		return experiments.SourceConfig
	}
	return experiments.SourceAPI
}

// Skipped maps the id of each stored experiment left out of the merge at
// the last refresh to the reason.
func (c *Catalog) Skipped() map[string]error { return c.view.Load().skipped }

// Problem is why stored experiment id was left out of the merge, or nil.
func (c *Catalog) Problem(id string) error { return c.view.Load().skipped[id] }

// Refresh reads every stored definition and, if anything changed since the
// last refresh, merges and calls onChange. On a read error the current
// view stays.
func (c *Catalog) Refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refreshLocked(ctx, false)
}

// SetFile replaces the config file's config (a reload) and merges again;
// onChange is called even if the stored definitions can't be read (the
// last ones read are used then, and the read error is returned).
func (c *Catalog) SetFile(ctx context.Context, file *experiments.Config) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.file = file
	if err := c.refreshLocked(ctx, true); err != nil {
		c.apply(c.StoredList(), "")
		return err
	}
	return nil
}

func (c *Catalog) refreshLocked(ctx context.Context, force bool) error {
	defs, err := c.defs.List(ctx)
	if err != nil {
		return fmt.Errorf("read experiment definitions: %w", err)
	}
	sig := catalogSig(defs)
	if !force && sig == c.sig {
		return nil
	}
	c.apply(defs, sig)
	return nil
}

// apply merges defs with the file, publishes the view and calls onChange.
func (c *Catalog) apply(defs []experiments.StoredExperiment, sig string) {
	cfg, skipped := experiments.MergeLenient(c.file, defs)
	for id, err := range skipped {
		if prev := c.view.Load().skipped[id]; prev == nil || prev.Error() != err.Error() {
			c.log.Error("experiment definition left out", "experiment", id, "err", err)
		}
	}
	stored := make(map[string]experiments.StoredExperiment, len(defs))
	for _, d := range defs {
		stored[d.ID()] = d
	}
	c.sig = sig
	c.view.Store(&catalogView{file: c.file, cfg: cfg, stored: stored, skipped: skipped})
	if c.onChange != nil {
		c.onChange(cfg)
	}
}

// catalogSig identifies a list of definitions by id and version.
func catalogSig(defs []experiments.StoredExperiment) string {
	parts := make([]string, len(defs))
	for i, d := range defs {
		parts[i] = d.ID() + "@" + strconv.FormatInt(d.Version, 10)
	}
	slices.Sort(parts)
	return "v1|" + strings.Join(parts, ",")
}

// Run refreshes at once, then on every change announcement (when the
// store implements ChangeFeed) and every poll interval, until ctx ends.
func (c *Catalog) Run(ctx context.Context) {
	refresh := func() {
		if err := c.Refresh(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			c.log.Warn("experiment catalog: refresh (keeping the current experiments)", "err", err)
		}
	}
	follow(ctx, c.defs, c.poll, c.log, "experiment catalog", func(string) { refresh() }, refresh)
}
