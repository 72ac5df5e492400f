package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/abgate/abgate/experiments"
)

var (
	_ experiments.Definitions = (*Definitions)(nil)
	_ experiments.ChangeFeed  = (*Definitions)(nil)
)

// Definitions is the in-memory experiments.Definitions for a single
// process, with the same contracts as redisstore.Definitions (see
// storetest.RunDefinitions). Values are kept encoded, so callers can't
// alias them. The zero value is not usable; call NewDefinitions.
type Definitions struct {
	mu   sync.Mutex
	defs map[string][]byte // id -> StoredExperiment JSON
	vers map[string]int64
	subs map[chan string]struct{}
}

// NewDefinitions returns an empty store.
func NewDefinitions() *Definitions {
	return &Definitions{defs: make(map[string][]byte), vers: make(map[string]int64), subs: make(map[chan string]struct{})}
}

// Get implements experiments.Definitions.
func (d *Definitions) Get(_ context.Context, id string) (experiments.StoredExperiment, error) {
	d.mu.Lock()
	b, ok := d.defs[id]
	d.mu.Unlock()
	var s experiments.StoredExperiment
	if !ok {
		return s, fmt.Errorf("experiment definition %q: %w", id, experiments.ErrNotFound)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode experiment definition %q: %w", id, err)
	}
	return s, nil
}

// List implements experiments.Definitions.
func (d *Definitions) List(_ context.Context) ([]experiments.StoredExperiment, error) {
	d.mu.Lock()
	ids := make([]string, 0, len(d.defs))
	for id := range d.defs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	raw := make([][]byte, len(ids))
	for i, id := range ids {
		raw[i] = d.defs[id]
	}
	d.mu.Unlock()
	out := make([]experiments.StoredExperiment, len(raw))
	for i, b := range raw {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			return nil, fmt.Errorf("decode experiment definition %q: %w", ids[i], err)
		}
	}
	return out, nil
}

// Put implements experiments.Definitions.
func (d *Definitions) Put(_ context.Context, prev int64, s experiments.StoredExperiment) error {
	id := s.ID()
	if id == "" || strings.ContainsAny(id, "{}") || s.Version != prev+1 {
		return fmt.Errorf("put experiment definition %q: version %d after %d: inconsistent", id, s.Version, prev)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode experiment definition %q: %w", id, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur := d.vers[id]; cur != prev {
		return fmt.Errorf("put experiment definition %q at version %d (stored %d): %w", id, prev, cur, experiments.ErrConflict)
	}
	d.defs[id], d.vers[id] = b, s.Version
	for ch := range d.subs {
		select {
		case ch <- id:
		default: // a slow subscriber misses it; the catalog polls as well
		}
	}
	return nil
}

// Subscribe implements experiments.ChangeFeed: the id of every Put.
func (d *Definitions) Subscribe(ctx context.Context) (<-chan string, error) {
	ch := make(chan string, 64)
	d.mu.Lock()
	d.subs[ch] = struct{}{}
	d.mu.Unlock()
	go func() {
		<-ctx.Done()
		d.mu.Lock()
		delete(d.subs, ch)
		close(ch)
		d.mu.Unlock()
	}()
	return ch, nil
}
