package gateway

import (
	"bytes"
	"errors"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/abgate/abgate/experiments"
)

// Body scanning errors. Each becomes a 400 with its message.
var (
	errManyUnits      = errors.New("request body repeats the unit id field more than 4 times")
	errMalformed      = errors.New("request body is not a valid JSON object")
	errNoModel        = errors.New(`request body has no "model" field`)
	errModelNotString = errors.New(`"model" must be a string`)
	errDupModel       = errors.New(`request body has more than one "model" field`)
)

// span is a half-open byte range [start, end) of a scanned body.
type span struct{ start, end int }

// bodyFields is what the gateway needs from a request body: the model
// alias and the unit id, both decoded, plus where the model's value sits
// so it can be replaced without touching any other byte.
type bodyFields struct {
	model      []byte // decoded value of the top-level "model" string
	modelValue span   // the raw value, quotes included
	unit       []byte // decoded value of the top-level unit field, if a string
	// extra holds the decoded values of the extra fields asked for
	// (segment body fields), by position; nil when absent or not a string.
	extra [experiments.MaxSegmentBodyFields][]byte

	// stream: the top-level "stream" is the literal true.
	stream bool
	// opts is what the request says about stream_options.
	opts streamOptions
	// closeAt is the index of the top-level object's closing brace.
	closeAt int
	// units are the top-level members of the unit field, in order, so
	// each one can be hashed or dropped (privacy); nUnits counts them.
	units  [maxUnitFields]unitMember
	nUnits int
}

// maxUnitFields bounds how often the unit field may repeat at the top
// level of a body: every copy must be rewritten for privacy, and the
// edits live in fixed arrays.
const maxUnitFields = 4

// unitMember is one top-level member of the unit field.
type unitMember struct {
	value span // the raw value
	// cut removes the whole member and one comma, assuming every unit
	// member is removed: `,"user":"x"` after a kept member, or
	// `"user":"x",` when only unit members precede it.
	cut span
}

// streamOptions locates the top-level "stream_options" value and its
// "include_usage" member, so the gateway can ask the upstream for usage
// without re-encoding the body (see usageEdit).
type streamOptions struct {
	n       int  // how many top-level stream_options members
	value   span // the raw value of the last one
	open    int  // when it is an object: index just past its '{'
	empty   bool // it is the empty object
	nUsage  int  // how many include_usage members in it
	include span // the raw include_usage value
}

// scanBody finds the top-level "model" and unitField string values of a
// JSON object without decoding the rest of it.
//
// Why not encoding/json: a chat request is mostly one or two huge prompt
// strings. Unmarshal copies and unescapes every one of them; even
// Decoder.Token allocates a string per token and validates byte by byte
// (~100-200 MB/s). This scanner only looks at the top-level keys and
// skips every other value; strings are skipped with bytes.IndexByte (SIMD)
// to the next quote, so a 200 KB prompt costs microseconds, and only the
// two values we want are unescaped. It validates structure (brackets,
// literals, numbers, string termination) so a malformed body is a 400,
// but it does not check the escapes or control characters inside
// skipped strings: the upstream's parser does that, and nothing we route
// on depends on them.
//
// The decoded values agree with encoding/json on every valid object
// (FuzzScanBody checks this), with one deliberate difference: a second
// top-level key that equals "model" case-insensitively is an error rather
// than "last one wins", because parsers disagree on which copy counts
// (Go's encoding/json matches struct fields case-insensitively), and the
// model we route on must be the one the upstream reads.
//
// The returned slices alias b unless the value had escapes.
func scanBody(b []byte, unitField string) (bodyFields, error) {
	return scanBodyFields(b, unitField, nil)
}

// scanBodyFields is scanBody that also picks the top-level string values
// of the extra fields (at most MaxSegmentBodyFields; more are ignored),
// in the same pass: segment values cost one key comparison per extra
// field and top-level key, and no decoding of the rest of the body.
func scanBodyFields(b []byte, unitField string, extra []string) (bodyFields, error) {
	var f bodyFields
	if len(extra) > len(f.extra) {
		extra = extra[:len(f.extra)]
	}
	s := objScanner{b: b}
	if !s.open() {
		return f, errMalformed
	}
	models := 0
	exact, isString := false, false
	prevEnd, onlyUnits := -1, true // end of the previous value; only unit members so far
	for {
		key, esc, vs, ve, ok := s.next()
		if !ok {
			break
		}
		if esc {
			key = unquote(key)
		}
		if unitField != "" && string(key) == unitField {
			if f.nUnits == maxUnitFields {
				return bodyFields{}, errManyUnits
			}
			m := &f.units[f.nUnits]
			f.nUnits++
			m.value = span{vs, ve}
			if onlyUnits {
				m.cut = span{s.ks, ve}
				if j := skipWS(b, ve); j < len(b) && b[j] == ',' {
					m.cut.end = j + 1
				}
			} else {
				m.cut = span{prevEnd, ve}
			}
		} else {
			onlyUnits = false
		}
		prevEnd = ve
		switch {
		case string(key) == "stream":
			f.stream = ve-vs == 4 && b[vs] == 't'
		case string(key) == "stream_options":
			f.opts.read(b, vs, ve)
		case len(key) == 5 && equalFoldModel(key):
			models++
			if string(key) != "model" {
				continue
			}
			exact = true
			isString = b[vs] == '"'
			if isString {
				f.modelValue = span{vs, ve}
				f.model = stringValue(b[vs:ve])
			}
		case unitField != "" && string(key) == unitField:
			if b[vs] == '"' {
				f.unit = stringValue(b[vs:ve])
			} else {
				f.unit = nil // last one wins, as in encoding/json
			}
		}
		for i, name := range extra {
			if string(key) == name {
				if b[vs] == '"' {
					f.extra[i] = stringValue(b[vs:ve])
				} else {
					f.extra[i] = nil
				}
			}
		}
	}
	if s.err != nil {
		return bodyFields{}, errMalformed
	}
	f.closeAt = s.i - 1
	if !s.eof() {
		return bodyFields{}, errMalformed
	}
	switch {
	case models > 1:
		return bodyFields{}, errDupModel
	case !exact:
		return bodyFields{}, errNoModel
	case !isString:
		return bodyFields{}, errModelNotString
	}
	return f, nil
}

// read records one top-level stream_options member with value b[vs:ve].
func (o *streamOptions) read(b []byte, vs, ve int) {
	o.n++
	o.value = span{vs, ve}
	o.open, o.empty, o.nUsage = 0, false, 0
	if b[vs] != '{' {
		return
	}
	in := objScanner{b: b[:ve], i: vs}
	in.open()
	o.open = in.i
	o.empty = true
	for {
		key, _, ivs, ive, ok := in.next()
		if !ok {
			return
		}
		o.empty = false
		if string(key) == "include_usage" {
			o.nUsage++
			o.include = span{ivs, ive}
		}
	}
}

// An edit replaces the body bytes at with the bytes of with; an empty
// span inserts.
type edit struct {
	at   span
	with []byte
}

// The bytes usageEdit splices in. They are shared and never modified.
var (
	insertOptions = []byte(`,"stream_options":{"include_usage":true}`)
	optionsObject = []byte(`{"include_usage":true}`)
	insertUsage   = []byte(`"include_usage":true`)
	insertUsageC  = []byte(`"include_usage":true,`)
	literalTrue   = []byte(`true`)
)

// usageEdit is the edit that makes a streamed completion report its
// usage when the client did not ask for it (stream_options.include_usage
// absent, false or null): ok is false when the request is no stream, the
// client asked for usage itself, or stream_options is something the
// gateway does not rewrite (repeated, or not an object or null), which
// the upstream judges as it would have.
func (f *bodyFields) usageEdit(b []byte) (e edit, ok bool) {
	o := &f.opts
	switch {
	case !f.stream || o.n > 1:
		return edit{}, false
	case o.n == 0:
		return edit{span{f.closeAt, f.closeAt}, insertOptions}, true
	case b[o.value.start] == 'n':
		return edit{o.value, optionsObject}, true
	case b[o.value.start] != '{' || o.nUsage > 1:
		return edit{}, false
	case o.nUsage == 0 && o.empty:
		return edit{span{o.open, o.open}, insertUsage}, true
	case o.nUsage == 0:
		return edit{span{o.open, o.open}, insertUsageC}, true
	}
	switch b[o.include.start] {
	case 'f', 'n':
		return edit{o.include, literalTrue}, true
	}
	return edit{}, false // true: the client asked; anything else is the upstream's to reject
}

func equalFoldModel(k []byte) bool {
	const m = "model"
	for i := 0; i < 5; i++ {
		if k[i]|0x20 != m[i] {
			return false
		}
	}
	return true
}

// stringValue decodes a raw JSON string (quotes included).
func stringValue(raw []byte) []byte {
	in := raw[1 : len(raw)-1]
	for _, c := range in {
		if c == '\\' || c >= utf8.RuneSelf {
			return unquote(in)
		}
	}
	return in
}

// maxDepth is encoding/json's nesting limit; deeper bodies are malformed.
const maxDepth = 10000

// objScanner walks the members of one JSON object, skipping values.
type objScanner struct {
	b     []byte
	i     int
	err   error
	first bool // no member read yet
	done  bool
	// nest is a bit stack of the containers open while skipping a value
	// (1 = object, 0 = array), deep enough for encoding/json's limit.
	nest  [maxDepth/64 + 1]uint64
	depth int
	ks    int // where the key of the last member next returned starts
}

func (s *objScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// open consumes the object's '{'.
func (s *objScanner) open() bool {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		s.err = errMalformed
		s.done = true
		return false
	}
	s.i++
	s.first = true
	return true
}

// eof reports whether only whitespace follows the object.
func (s *objScanner) eof() bool {
	s.ws()
	return s.i == len(s.b)
}

// next returns the next member: its raw key (without quotes; esc reports
// backslashes in it) and the byte range of its raw value. ok is false at
// the closing brace or on error (then s.err is set).
func (s *objScanner) next() (key []byte, esc bool, vs, ve int, ok bool) {
	if s.done {
		return nil, false, 0, 0, false
	}
	s.ws()
	if s.i >= len(s.b) {
		return s.fail()
	}
	if s.first {
		s.first = false
		if s.b[s.i] == '}' {
			s.i++
			s.done = true
			return nil, false, 0, 0, false
		}
	} else {
		switch s.b[s.i] {
		case '}':
			s.i++
			s.done = true
			return nil, false, 0, 0, false
		case ',':
			s.i++
			s.ws()
		default:
			return s.fail()
		}
	}
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return s.fail()
	}
	ks := s.i
	s.ks = ks
	end := skipString(s.b, s.i)
	if end < 0 {
		return s.fail()
	}
	key = s.b[ks+1 : end-1]
	kesc := bytes.IndexByte(key, '\\') >= 0
	s.i = end
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return s.fail()
	}
	s.i++
	s.ws()
	vs = s.i
	if !s.skipValue() {
		return s.fail()
	}
	return key, kesc, vs, s.i, true
}

func (s *objScanner) fail() ([]byte, bool, int, int, bool) {
	s.err = errMalformed
	s.done = true
	return nil, false, 0, 0, false
}

// skipString returns the index just past the string starting at b[i]
// (a quote), or -1 if it is unterminated. It jumps from quote to quote
// with IndexByte and counts the backslashes before each: an odd run
// means the quote is escaped.
func skipString(b []byte, i int) int {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		q := j + k
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
}

// skipValue skips one JSON value at s.i, iteratively (no recursion, so
// a deeply nested body can't grow the goroutine stack).
func (s *objScanner) skipValue() bool {
	s.depth = 0
	for {
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		// A value.
		switch c := s.b[s.i]; c {
		case '{':
			if s.depth+2 > maxDepth { // this container's own level
				return false
			}
			s.i++
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == '}' {
				s.i++
				break
			}
			s.push(true)
			if !s.key() {
				return false
			}
			continue
		case '[':
			if s.depth+2 > maxDepth {
				return false
			}
			s.i++
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == ']' {
				s.i++
				break
			}
			s.push(false)
			continue
		case '"':
			end := skipString(s.b, s.i)
			if end < 0 {
				return false
			}
			s.i = end
		case 't':
			if !s.literal("true") {
				return false
			}
		case 'f':
			if !s.literal("false") {
				return false
			}
		case 'n':
			if !s.literal("null") {
				return false
			}
		default:
			if !s.number() {
				return false
			}
		}
		// After a value: close containers or move to the next element.
		for {
			if s.depth == 0 {
				return true
			}
			s.ws()
			if s.i >= len(s.b) {
				return false
			}
			obj := s.top()
			c := s.b[s.i]
			if c == ',' {
				s.i++
				if obj {
					s.ws()
					if !s.key() {
						return false
					}
				}
				break
			}
			if (obj && c == '}') || (!obj && c == ']') {
				s.i++
				s.depth--
				continue
			}
			return false
		}
	}
}

// push opens a container. Its nesting level is depth+2: the top-level
// object and the member's own value count too (encoding/json counts the
// same way); skipValue checks it before calling.
func (s *objScanner) push(obj bool) {
	w, bit := s.depth/64, uint64(1)<<(s.depth%64)
	if obj {
		s.nest[w] |= bit
	} else {
		s.nest[w] &^= bit
	}
	s.depth++
}

func (s *objScanner) top() bool {
	d := s.depth - 1
	return s.nest[d/64]&(1<<(d%64)) != 0
}

// key consumes `"name" :` inside a nested object.
func (s *objScanner) key() bool {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return false
	}
	end := skipString(s.b, s.i)
	if end < 0 {
		return false
	}
	s.i = end
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return false
	}
	s.i++
	return true
}

func (s *objScanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// number checks the JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *objScanner) number() bool {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	s.i = i
	return true
}

// unquote decodes the inside of a JSON string exactly as encoding/json
// does, including its replacement of invalid UTF-8 and lone surrogates
// with U+FFFD. Rare path (escaped or non-ASCII values): it allocates.
func unquote(in []byte) []byte {
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		c := in[i]
		switch {
		case c == '\\':
			if i+1 >= len(in) {
				return append(out, in[i:]...) // malformed; never on valid JSON
			}
			switch e := in[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
				i += 2
			case 'b':
				out = append(out, '\b')
				i += 2
			case 'f':
				out = append(out, '\f')
				i += 2
			case 'n':
				out = append(out, '\n')
				i += 2
			case 'r':
				out = append(out, '\r')
				i += 2
			case 't':
				out = append(out, '\t')
				i += 2
			case 'u':
				r, ok := hex4(in[i+2:])
				if !ok {
					return append(out, in[i:]...)
				}
				i += 6
				if utf16.IsSurrogate(r) {
					r2, ok2 := rune(-1), false
					if i+1 < len(in) && in[i] == '\\' && in[i+1] == 'u' {
						r2, ok2 = hex4(in[i+2:])
					}
					if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
						i += 6
						r = dec
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				out = append(out, in[i:i+2]...)
				i += 2
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, in[i:i+size]...)
			}
			i += size
		}
	}
	return out
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// parseUsage reads token counts from the last "usage" object in b: the
// chat/completions names (prompt_tokens, completion_tokens) and the
// Responses API names (input_tokens, output_tokens). A raw `"usage"`
// followed by ':' can't occur inside a JSON string (its quotes would be
// escaped), so searching bytes is safe enough for a measurement.
func parseUsage(b []byte) (u tokenUsage, ok bool) {
	i := bytes.LastIndex(b, []byte(`"usage"`))
	for i >= 0 {
		s := objScanner{b: b, i: i + len(`"usage"`)}
		s.ws()
		if s.i < len(b) && b[s.i] == ':' {
			s.i++
			if s.open() {
				return usageFields(&s)
			}
		}
		i = bytes.LastIndex(b[:i], []byte(`"usage"`))
	}
	return tokenUsage{}, false
}

// tokenUsage is what a response's "usage" object reports.
type tokenUsage struct {
	prompt, completion int
	// cached is prompt_tokens_details.cached_tokens (chat completions)
	// or input_tokens_details.cached_tokens (Responses API): the prompt
	// tokens served from the upstream's prompt cache.
	cached int
}

func usageFields(s *objScanner) (u tokenUsage, ok bool) {
	for {
		key, _, vs, ve, more := s.next()
		if !more {
			return u, ok
		}
		switch string(key) {
		case "prompt_tokens", "input_tokens":
			u.prompt = atoi(s.b[vs:ve])
			ok = true
		case "completion_tokens", "output_tokens":
			u.completion = atoi(s.b[vs:ve])
			ok = true
		case "prompt_tokens_details", "input_tokens_details":
			d := objScanner{b: s.b[vs:ve]}
			if d.open() {
				for {
					k, _, dvs, dve, more := d.next()
					if !more {
						break
					}
					if string(k) == "cached_tokens" {
						u.cached = atoi(d.b[dvs:dve])
					}
				}
			}
		}
	}
}

// atoi parses a non-negative JSON integer, saturating; anything else is 0.
func atoi(b []byte) int {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0
		}
		if n > 1<<40 {
			return n
		}
		n = n*10 + int(c-'0')
	}
	return n
}
