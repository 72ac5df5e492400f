package experiments

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// day is the unit of the "d" suffix. Days are always 24 hours: config
// durations are spans (TTLs, retention), not calendar dates.
const day = 24 * time.Hour

// errDuration is deliberately generic: a duration error names the field
// (see FieldError) but never repeats the value.
var errDuration = errors.New(`must be a duration such as "250ms", "5s", "36h" or "7d"`)

// ParseDuration parses a Go duration ("250ms", "1h30m") that may start
// with a whole or fractional number of days ("7d", "1.5d", "1d12h").
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	neg := false
	rest := s
	if strings.HasPrefix(rest, "-") {
		neg, rest = true, rest[1:]
	} else if strings.HasPrefix(rest, "+") {
		rest = rest[1:]
	}
	var days float64
	if i := strings.IndexByte(rest, 'd'); i >= 0 {
		num := rest[:i]
		if num == "" || strings.ContainsAny(num, "eE+-_xXpP") {
			return 0, errDuration
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, errDuration
		}
		days, rest = f, rest[i+1:]
		if strings.IndexByte(rest, 'd') >= 0 {
			return 0, errDuration
		}
	}
	var d time.Duration
	if rest != "" {
		if rest[0] == '-' || rest[0] == '+' {
			return 0, errDuration
		}
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return 0, errDuration
		}
	} else if days == 0 && !strings.Contains(s, "d") {
		return 0, errDuration // empty string
	}
	total := float64(d) + days*float64(day)
	if total >= math.MaxInt64 {
		return 0, errDuration
	}
	out := d + time.Duration(days*float64(day))
	if out < d { // overflow
		return 0, errDuration
	}
	if neg {
		out = -out
	}
	return Duration(out), nil
}

// String formats d as ParseDuration reads it: whole days as "7d",
// anything else as time.Duration does ("36h0m0s", "250ms").
func (d Duration) String() string {
	td := time.Duration(d)
	if td != 0 && td%day == 0 {
		return strconv.FormatInt(int64(td/day), 10) + "d"
	}
	return td.String()
}

// UnmarshalYAML reads a duration string (see ParseDuration). Bare numbers
// are rejected: "100" could mean milliseconds or seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errDuration
	}
	if n.ShortTag() == "!!null" {
		*d = 0
		return nil
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes the form String gives, so a config round-trips.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText and UnmarshalText make Duration work with encoding/json and
// flag.TextVar the same way.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText: see ParseDuration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText keeps a secret out of any encoding (YAML, JSON, slog's
// handlers): it encodes as String does, "[redacted]" or "".
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
