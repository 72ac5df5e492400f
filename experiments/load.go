package experiments

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// ErrInvalidConfig matches (errors.Is) every error Load and Parse return
// for a bad config: YAML syntax, unknown fields, wrong types, unset
// environment variables and failed validation (a ValidationError).
var ErrInvalidConfig = errors.New("invalid config")

// MaxConfigBytes caps the size of a config file.
const MaxConfigBytes = 8 << 20

// Load reads the YAML config at path, expands ${NAME} references from
// the process environment, applies defaults and validates it (see Parse).
// It does not require server.token_secret; call ValidateForServe before
// serving with it.
func Load(path string) (*Config, error) { return load(path, false) }

// LoadForServe is Load with ValidateForServe's checks reported in the
// same list as every other problem.
func LoadForServe(path string) (*Config, error) { return load(path, true) }

func load(path string, serve bool) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	c, err := parse(data, os.LookupEnv, serve)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a YAML config, expands ${NAME} references with lookupEnv
// (nil means no variable is set), applies SetDefaults and runs Validate.
//
// Every problem is reported at once as a ValidationError whose entries
// name the field: unknown keys (typos), values of the wrong type,
// unset variables and invalid values. Errors never contain a value taken
// from the environment, nor any secret.
//
// Expansion works on the decoded YAML tree, on the values of string
// fields only, so a variable's value is always one plain string and can
// never add YAML structure. "$${" is a literal "${"; a "$" not followed
// by "{" is literal. Expansion is not recursive.
func Parse(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	return parse(data, lookupEnv, false)
}

// ParseForServe is Parse with ValidateForServe's checks: what serve would
// say of a config held in memory (a Helm-rendered ConfigMap, a compose
// file's config), as LoadForServe says it of a file.
func ParseForServe(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	return parse(data, lookupEnv, true)
}

func parse(data []byte, lookupEnv func(string) (string, bool), serve bool) (*Config, error) {
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalidConfig, MaxConfigBytes)
	}
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty document", ErrInvalidConfig)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		return nil, fmt.Errorf("%w: more than one YAML document", ErrInvalidConfig)
	}

	d := &cfgDecoder{env: lookupEnv, budget: 64*cfgCountNodes(&root, 0) + 4096}
	var c Config
	d.decode(&root, reflect.ValueOf(&c).Elem(), "", 0)
	if d.exhausted {
		return nil, fmt.Errorf("%w: too many alias expansions or too deeply nested", ErrInvalidConfig)
	}
	c.SetDefaults()
	errs := d.errs
	for _, fe := range c.validate(serve) {
		if !errs.covers(fe.Field) {
			errs = append(errs, fe)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &c, nil
}

// MarshalYAML writes the config so that Parse reads it back equal: "${"
// in string values is escaped as "$${". Secrets are written as
// "[redacted]" (see Secret.MarshalText): a marshalled config is safe to
// log, and is not a way to copy secrets.
func (c Config) MarshalYAML() (any, error) {
	type plain Config // without this method
	var n yaml.Node
	if err := n.Encode((*plain)(&c)); err != nil {
		return nil, err
	}
	cfgEscapeValues(&n)
	return &n, nil
}

// cfgEscapeValues escapes "${" in string scalars that are values (not
// mapping keys, which Parse does not expand).
func cfgEscapeValues(n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			cfgEscapeValues(c)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			cfgEscapeValues(n.Content[i])
		}
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" && strings.Contains(n.Value, "${") {
			n.Value = strings.ReplaceAll(n.Value, "${", "$${")
		}
	}
}

// cfgMaxDepth bounds nesting (the schema is 5 levels deep; merge keys
// and aliases add a few).
const cfgMaxDepth = 64

// cfgDecoder decodes a YAML node tree into the config structs. yaml's own
// Node.Decode can't report unknown keys with their path (KnownFields only
// applies to Decoder and gives a line number), can't expand variables per
// field, and stops at the first error, so the config walks the tree
// itself and leaves only scalars to yaml.
type cfgDecoder struct {
	env       func(string) (string, bool)
	errs      ValidationError
	budget    int // decode steps left; aliases can't blow up the work
	exhausted bool
}

func (d *cfgDecoder) fail(path, reason string) {
	if path == "" {
		path = "config"
	}
	d.errs = append(d.errs, FieldError{Field: path, Reason: reason})
}

func cfgCountNodes(n *yaml.Node, depth int) int {
	if n == nil || depth > cfgMaxDepth {
		return 1
	}
	c := 1
	for _, k := range n.Content {
		c += cfgCountNodes(k, depth+1)
	}
	return c
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *cfgDecoder) decode(n *yaml.Node, v reflect.Value, path string, depth int) {
	d.budget--
	if d.budget < 0 || depth > cfgMaxDepth {
		d.exhausted = true
		return
	}
	for i := 0; n.Kind == yaml.AliasNode || n.Kind == yaml.DocumentNode; i++ {
		switch {
		case i > cfgMaxDepth:
			d.exhausted = true
			return
		case n.Kind == yaml.AliasNode && n.Alias != nil:
			n = n.Alias
		case n.Kind == yaml.DocumentNode && len(n.Content) == 1:
			n = n.Content[0]
		default:
			d.fail(path, "malformed YAML node")
			return
		}
	}
	isNull := n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"

	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.fail(path, err.Error())
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path, depth+1)
		v.Set(p)
	case reflect.Struct:
		if isNull {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(path, "must be a mapping")
			return
		}
		d.structFields(n, v, path, depth, make(map[string]bool))
	case reflect.Slice:
		if isNull {
			v.SetZero()
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(path, "must be a list")
			return
		}
		if len(n.Content) == 0 {
			v.SetZero()
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), path+"["+strconv.Itoa(i)+"]", depth+1)
		}
		v.Set(s)
	case reflect.Map:
		if isNull {
			v.SetZero()
			return
		}
		if n.Kind != yaml.MappingNode || v.Type().Key().Kind() != reflect.String {
			d.fail(path, "must be a mapping")
			return
		}
		if len(n.Content) == 0 {
			v.SetZero()
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.fail(path, "keys must be strings")
				continue
			}
			key := reflect.ValueOf(k.Value).Convert(v.Type().Key())
			if m.MapIndex(key).IsValid() {
				d.fail(cfgJoin(path, k.Value), "duplicate key")
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, e, cfgJoin(path, k.Value), depth+1)
			m.SetMapIndex(key, e)
		}
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(path, "must be a string")
			return
		}
		switch n.ShortTag() {
		case "!!null":
			v.SetString("")
			return
		case "!!binary":
			var s string
			if err := n.Decode(&s); err != nil {
				d.fail(path, "invalid !!binary value")
				return
			}
			v.SetString(s) // explicit binary data is not expanded
			return
		}
		s, err := cfgExpand(n.Value, d.env)
		if err != nil {
			d.fail(path, err.Error())
		}
		v.SetString(s)
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode {
			d.fail(path, "must be "+cfgKindName(v.Kind()))
			return
		}
		// yaml's TypeError quotes the value; the field path and the
		// expected type are enough, and never leak anything.
		p := reflect.New(v.Type())
		if err := n.Decode(p.Interface()); err != nil {
			d.fail(path, "must be "+cfgKindName(v.Kind()))
			return
		}
		v.Set(p.Elem())
	default:
		d.fail(path, "unsupported field type "+v.Type().String())
	}
}

// structFields decodes mapping n into struct v. Merge keys ("<<") are
// applied first so explicit keys override them, as in YAML 1.1.
func (d *cfgDecoder) structFields(n *yaml.Node, v reflect.Value, path string, depth int, seen map[string]bool) {
	d.budget -= len(n.Content)
	if d.budget < 0 || depth > cfgMaxDepth {
		d.exhausted = true
		return
	}
	fields := cfgFieldsOf(v.Type())
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !(k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge")) {
			continue
		}
		for _, m := range cfgMergeSources(val) {
			for m.Kind == yaml.AliasNode && m.Alias != nil && depth < cfgMaxDepth {
				m, depth = m.Alias, depth+1
			}
			if m.Kind != yaml.MappingNode {
				d.fail(path, "merge key (<<) must refer to a mapping")
				continue
			}
			d.structFields(m, v, path, depth+1, make(map[string]bool))
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge") {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(path, "keys must be strings")
			continue
		}
		fp := cfgJoin(path, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			d.fail(fp, "unknown field"+cfgSuggest(k.Value, fields))
			continue
		}
		if seen[k.Value] {
			d.fail(fp, "duplicate key")
			continue
		}
		seen[k.Value] = true
		d.decode(val, v.Field(idx), fp, depth+1)
	}
}

func cfgMergeSources(val *yaml.Node) []*yaml.Node {
	if val.Kind == yaml.SequenceNode {
		return val.Content
	}
	return []*yaml.Node{val}
}

// cfgJoin appends a key to a field path; a key that isn't a plain name
// (empty, spaces, dots, very long) is quoted so the path stays readable.
func cfgJoin(path, key string) string {
	if !cfgPlainKey(key) {
		if len(key) > 64 {
			key = key[:64] + "…"
		}
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func cfgPlainKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func cfgKindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return "an integer"
	}
}

var cfgFieldCache sync.Map // reflect.Type → map[string]int

// cfgFieldsOf maps a struct's yaml keys to field indexes.
func cfgFieldsOf(t reflect.Type) map[string]int {
	if m, ok := cfgFieldCache.Load(t); ok {
		return m.(map[string]int)
	}
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = i
	}
	cfgFieldCache.Store(t, m)
	return m
}

// cfgSuggest names the closest known key for a likely typo.
func cfgSuggest(key string, fields map[string]int) string {
	best, bestD := "", 3
	for name := range fields {
		if d := cfgEditDistance(key, name); d < bestD || d == bestD && best != "" && name < best {
			best, bestD = name, d
		}
	}
	if best == "" || len(key) > 64 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func cfgEditDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// cfgExpand replaces ${NAME} references in s. The error names unset
// variables but never a value.
func cfgExpand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	var missing []string
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return s, errors.New(`unterminated "${" (write "$${" for a literal "${")`)
			}
			name := s[i+2 : i+2+end]
			// ${NAME:-default}: the default when NAME is unset or empty,
			// as in the shell and compose files.
			name, def, hasDef := strings.Cut(name, ":-")
			if !cfgValidEnvName(name) {
				// The name is not quoted back: in a secret field it would be
				// part of the secret.
				return s, errors.New(`invalid "${NAME}" reference: NAME must be letters, digits and _ (write "$${" for a literal "${")`)
			}
			val, ok := lookup(name)
			switch {
			case hasDef && val == "":
				val = def
			case !ok:
				missing = append(missing, name)
			}
			b.WriteString(val)
			i += 2 + end + 1
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	switch len(missing) {
	case 0:
	case 1:
		return "", fmt.Errorf("environment variable %s is not set", missing[0])
	default:
		return "", fmt.Errorf("environment variables %s are not set", strings.Join(missing, ", "))
	}
	return b.String(), nil
}

func cfgValidEnvName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
