package experiments

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Experiments come from two places: the config file, which is read-only
// at runtime, and the admin API, which stores them in Definitions. Merge
// builds the config a replica serves from both (issue #6).

// Sources of an experiment.
const (
	SourceConfig = "config" // the config file; read-only through the API
	SourceAPI    = "api"    // created through the admin API, kept in Definitions
)

// MaxDefinitionBytes caps the encoded size of one definition.
const MaxDefinitionBytes = 1 << 20

// Definition is an experiment created through the admin API together with
// the model aliases routed to it. Its JSON has the same field names as the
// YAML config (snake_case) plus "routes": ["alias", ...].
type Definition struct {
	Experiment Experiment
	Routes     []string
}

// StoredExperiment is a Definition as Definitions keeps it.
type StoredExperiment struct {
	Definition Definition `json:"definition"`
	// Version is 1 when created and grows by one with every Put.
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// UpdatedBy is the actor of the last Put ("api:<token name>").
	UpdatedBy string `json:"updated_by"`
}

// ID is the experiment's id.
func (s StoredExperiment) ID() string { return s.Definition.Experiment.ID }

// Definitions keeps the experiments created through the admin API, shared
// by every replica. memstore.Definitions and redisstore.Definitions
// implement it (storetest.RunDefinitions is their conformance suite); both
// also implement ChangeFeed, announcing the id of every Put, and Catalog
// polls List as a fallback.
type Definitions interface {
	// Get returns the stored experiment, or ErrNotFound.
	Get(ctx context.Context, id string) (StoredExperiment, error)
	// List returns every stored experiment, ordered by id.
	List(ctx context.Context) ([]StoredExperiment, error)
	// Put stores d if the stored version of d's experiment is still prev
	// (0: nothing stored yet) and returns ErrConflict without writing
	// otherwise. d.Version must be prev+1.
	Put(ctx context.Context, prev int64, d StoredExperiment) error
}

// DecodeDefinition reads a definition from JSON (YAML, a superset, is
// accepted too). Unknown fields, values of the wrong type and duplicate
// keys are reported together as a ValidationError whose fields are paths
// in the document ("variants[1].weight", "routes[0]"). ${NAME} is not
// expanded: a definition from the API never reads the environment. The
// definition is not validated against a config; see ValidateDefinition.
func DecodeDefinition(data []byte) (Definition, error) {
	var d Definition
	if len(data) > MaxDefinitionBytes {
		return d, fmt.Errorf("%w: definition larger than %d bytes", ErrInvalidConfig, MaxDefinitionBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return d, fmt.Errorf("%w: empty document", ErrInvalidConfig)
		}
		return d, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return d, fmt.Errorf("%w: more than one document", ErrInvalidConfig)
	}
	n := &root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return d, ValidationError{{Field: "definition", Reason: "must be an object"}}
	}
	// Values are literal: escaping "${" makes the decoder's expansion a
	// no-op (it turns "$${" back into "${").
	cfgEscapeValues(n)
	dc := &cfgDecoder{env: func(string) (string, bool) { return "", false }, budget: 64*cfgCountNodes(n, 0) + 4096}

	// routes is the one key that is not an Experiment field.
	exp := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	var routes *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == "routes" {
			if routes != nil {
				dc.fail("routes", "duplicate key")
			}
			routes = n.Content[i+1]
			continue
		}
		exp.Content = append(exp.Content, n.Content[i], n.Content[i+1])
	}
	dc.decode(exp, reflect.ValueOf(&d.Experiment).Elem(), "", 0)
	if routes != nil {
		dc.decode(routes, reflect.ValueOf(&d.Routes).Elem(), "routes", 0)
	}
	if dc.exhausted {
		return Definition{}, fmt.Errorf("%w: too many alias expansions or too deeply nested", ErrInvalidConfig)
	}
	if len(dc.errs) > 0 {
		return Definition{}, dc.errs
	}
	return d, nil
}

// MarshalJSON writes the definition with the config's field names, in the
// config's field order, then "routes". Fields at their zero value are
// left out (nil pointers too; a pointer to a zero value is kept), so a
// definition names only what it sets and a replica that doesn't know a
// newer field can still read definitions that don't use it.
func (d Definition) MarshalJSON() ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(&d.Experiment); err != nil {
		return nil, fmt.Errorf("encode experiment %q: %w", d.Experiment.ID, err)
	}
	pruneZero(&n, reflect.ValueOf(d.Experiment))
	var b bytes.Buffer
	if err := nodeJSON(&b, &n); err != nil {
		return nil, fmt.Errorf("encode experiment %q: %w", d.Experiment.ID, err)
	}
	// Replace the closing brace with the routes.
	out := b.Bytes()
	out = out[:len(out)-1]
	if len(out) > 1 {
		out = append(out, ',')
	}
	routes := d.Routes
	if routes == nil {
		routes = []string{}
	}
	rj, err := json.Marshal(routes)
	if err != nil {
		return nil, err
	}
	out = append(out, `"routes":`...)
	out = append(out, rj...)
	return append(out, '}'), nil
}

// UnmarshalJSON is DecodeDefinition.
func (d *Definition) UnmarshalJSON(b []byte) error {
	v, err := DecodeDefinition(b)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// pruneZero drops the keys of n whose field in v (the value n encodes) is
// zero: a non-pointer zero value, a nil pointer, an empty slice or map.
func pruneZero(n *yaml.Node, v reflect.Value) {
	for n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch {
	case v.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := cfgFieldsOf(v.Type())
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			idx, ok := fields[n.Content[i].Value]
			if ok {
				fv := v.Field(idx)
				switch fv.Kind() {
				case reflect.Pointer, reflect.Interface:
					ok = !fv.IsNil()
				case reflect.Slice, reflect.Map:
					ok = fv.Len() > 0
				default:
					ok = !fv.IsZero()
				}
				if !ok {
					continue
				}
				pruneZero(n.Content[i+1], fv)
			}
			kept = append(kept, n.Content[i], n.Content[i+1])
		}
		n.Content = kept
	case v.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode && v.Len() == len(n.Content):
		for i, c := range n.Content {
			pruneZero(c, v.Index(i))
		}
	}
}

// nodeJSON writes an encoded YAML tree as JSON, keeping mapping order.
func nodeJSON(b *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return errors.New("empty document")
		}
		return nodeJSON(b, n.Content[0])
	case yaml.AliasNode:
		return nodeJSON(b, n.Alias)
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(n.Content[i].Value)
			b.Write(k)
			b.WriteByte(':')
			if err := nodeJSON(b, n.Content[i+1]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := nodeJSON(b, c); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			b.WriteString("null")
		case "!!bool":
			var v bool
			if err := n.Decode(&v); err != nil {
				return err
			}
			b.WriteString(strconv.FormatBool(v))
		case "!!int", "!!float":
			var v float64
			if err := n.Decode(&v); err != nil {
				return err
			}
			j, err := json.Marshal(v) // fails on NaN and ±Inf
			if err != nil {
				return err
			}
			b.Write(j)
		default:
			j, _ := json.Marshal(n.Value)
			b.Write(j)
		}
	default:
		return fmt.Errorf("unexpected YAML node kind %d", n.Kind)
	}
	return nil
}

// cloneExperiment deep-copies e through its encoding, so defaults applied
// to the copy never reach a stored value.
func cloneExperiment(e Experiment) (Experiment, error) {
	var n yaml.Node
	if err := n.Encode(&e); err != nil {
		return Experiment{}, err
	}
	var out Experiment
	dc := &cfgDecoder{env: func(string) (string, bool) { return "", false }, budget: 64*cfgCountNodes(&n, 0) + 4096}
	cfgEscapeValues(&n)
	dc.decode(&n, reflect.ValueOf(&out).Elem(), "", 0)
	if len(dc.errs) > 0 || dc.exhausted {
		return Experiment{}, fmt.Errorf("copy experiment %q: %w", e.ID, dc.errs)
	}
	return out, nil
}

// ValidateDefinition checks that d can join base, the config a replica
// serves (usually Catalog.Config): the experiment must be valid with
// defaults applied, use only base's upstreams, and its route aliases must
// be valid, distinct and not routed elsewhere. An experiment of base with
// d's id is replaced, with its routes (an update). It returns a
// ValidationError whose fields are paths in the definition ("id",
// "variants[0].upstream", "routes[1]"), or nil.
func ValidateDefinition(base *Config, d Definition) error {
	_, err := MergeDefinition(base, d)
	return err
}

// MergeDefinition is ValidateDefinition that also returns the result: a
// copy of base with d's experiment added (or replacing the one of the
// same id, with its routes), defaults applied to a copy of it. base is
// not modified.
func MergeDefinition(base *Config, d Definition) (*Config, error) {
	id := d.Experiment.ID
	var errs ValidationError
	seen := make(map[string]int, len(d.Routes))
	for i, alias := range d.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if !cfgValidAlias(alias) {
			errs = append(errs, FieldError{f, "must be 1-128 characters of A-Z a-z 0-9 . _ : / @ -"})
			continue
		}
		if j, dup := seen[alias]; dup {
			errs = append(errs, FieldError{f, fmt.Sprintf("duplicate of routes[%d]", j)})
			continue
		}
		seen[alias] = i
		for _, r := range base.Routes {
			if r.Alias == alias && r.Experiment != id {
				errs = append(errs, FieldError{f, fmt.Sprintf("already routes to experiment %q", r.Experiment)})
			}
		}
	}

	e, err := cloneExperiment(d.Experiment)
	if err != nil {
		return nil, err
	}
	tmp := Config{Experiments: []Experiment{e}}
	tmp.SetDefaults()
	e = tmp.Experiments[0]

	merged := *base
	merged.Experiments = make([]Experiment, 0, len(base.Experiments)+1)
	for _, x := range base.Experiments {
		if x.ID != id {
			merged.Experiments = append(merged.Experiments, x)
		}
	}
	idx := len(merged.Experiments)
	merged.Experiments = append(merged.Experiments, e)
	merged.Routes = make([]Route, 0, len(base.Routes)+len(d.Routes))
	for _, r := range base.Routes {
		if r.Experiment != id {
			merged.Routes = append(merged.Routes, r)
		}
	}
	for _, alias := range d.Routes {
		merged.Routes = append(merged.Routes, Route{Alias: alias, Experiment: id})
	}

	prefix := fmt.Sprintf("experiments[%d]", idx)
	for _, fe := range merged.validate(false) {
		switch {
		case fe.Field == prefix:
			fe.Field = "definition"
		case strings.HasPrefix(fe.Field, prefix+"."):
			fe.Field = strings.TrimPrefix(fe.Field, prefix+".")
		default:
			continue // another experiment's or a route's: reported above, or not d's doing
		}
		errs = append(errs, fe)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &merged, nil
}

// Merge builds the config to serve from the file's config and the stored
// definitions: the file's experiments and routes, then each stored one
// with its routes, defaults applied. A stored experiment whose id or
// route alias collides with the file or with another stored one, or that
// is invalid with the file's upstreams, fails the merge. file is not
// modified; the result shares its unchanged parts.
func Merge(file *Config, defs []StoredExperiment) (*Config, error) {
	cfg, skipped := MergeLenient(file, defs)
	if len(skipped) > 0 {
		ids := slices.Sorted(maps.Keys(skipped))
		errs := make([]error, len(ids))
		for i, id := range ids {
			errs[i] = skipped[id]
		}
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// MergeLenient is Merge that leaves out the stored experiments that can't
// join (returning why) instead of failing. Catalog uses it: a definition
// broken by a config change, or two definitions racing for one alias,
// must not stop a replica from serving the others. Definitions are
// considered oldest first, so the older of two colliding ones wins.
// skipped maps the id of each left-out definition to the reason.
func MergeLenient(file *Config, defs []StoredExperiment) (cfg *Config, skipped map[string]error) {
	ordered := slices.Clone(defs)
	slices.SortStableFunc(ordered, func(a, b StoredExperiment) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID(), b.ID())
	})
	merged := *file
	merged.Experiments = slices.Clip(file.Experiments)
	merged.Routes = slices.Clip(file.Routes)
	skipped = make(map[string]error)
	have := make(map[string]string, len(file.Experiments)+len(defs))
	for _, e := range file.Experiments {
		have[e.ID] = "the config file"
	}
	for _, d := range ordered {
		id := d.ID()
		if src, dup := have[id]; dup {
			skipped[id] = fmt.Errorf("stored experiment %q: id already defined in %s", id, src)
			continue
		}
		next, err := MergeDefinition(&merged, d.Definition)
		if err != nil {
			skipped[id] = fmt.Errorf("stored experiment %q: %w", id, err)
			continue
		}
		have[id] = "another stored experiment"
		merged = *next
	}
	return &merged, skipped
}
