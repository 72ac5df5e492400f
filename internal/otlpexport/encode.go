package otlpexport

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Field numbers of opentelemetry-proto (collector/trace/v1, trace/v1,
// common/v1, resource/v1).
const (
	// ExportTraceServiceRequest
	fRequestResourceSpans = 1
	// ResourceSpans
	fResourceSpansResource  = 1
	fResourceSpansScopes    = 2
	fResourceSpansSchemaURL = 3
	// Resource
	fResourceAttributes = 1
	// ScopeSpans
	fScopeSpansScope     = 1
	fScopeSpansSpans     = 2
	fScopeSpansSchemaURL = 3
	// InstrumentationScope
	fScopeName       = 1
	fScopeVersion    = 2
	fScopeAttributes = 3
	// Span
	fSpanTraceID         = 1
	fSpanSpanID          = 2
	fSpanTraceState      = 3
	fSpanParentSpanID    = 4
	fSpanName            = 5
	fSpanKind            = 6
	fSpanStart           = 7
	fSpanEnd             = 8
	fSpanAttributes      = 9
	fSpanDroppedAttrs    = 10
	fSpanEvents          = 11
	fSpanDroppedEvents   = 12
	fSpanLinks           = 13
	fSpanDroppedLinks    = 14
	fSpanStatus          = 15
	fSpanFlags           = 16
	fEventTime           = 1
	fEventName           = 2
	fEventAttributes     = 3
	fEventDroppedAttrs   = 4
	fLinkTraceID         = 1
	fLinkSpanID          = 2
	fLinkAttributes      = 4
	fLinkDroppedAttrs    = 5
	fLinkFlags           = 6
	fStatusMessage       = 2
	fStatusCode          = 3
	fKeyValueKey         = 1
	fKeyValueValue       = 2
	fAnyString           = 1
	fAnyBool             = 2
	fAnyInt              = 3
	fAnyDouble           = 4
	fAnyArray            = 5
	fAnyKvlist           = 6
	fAnyBytes            = 7
	fArrayValues         = 1
	fKeyValueListValues  = 1
	flagsHasIsRemote     = 0x100 // SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
	flagsIsRemote        = 0x200 // SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
	maxNestedLengthBytes = 5     // a uint32 length as a varint
)

// group is one (resource, scope) pair of a batch, in order of first
// appearance.
type group struct {
	res      *resource.Resource
	resKey   attribute.Distinct
	resIndex int // index of the first group with this resource
	scope    instrumentation.Scope
}

// encoder builds ExportTraceServiceRequest messages into a buffer it
// reuses from one export to the next. Not safe for concurrent use.
type encoder struct {
	buf    []byte
	groups []group
	of     []int32 // of[i]: the group of span i
}

// encode returns the request for spans (valid until the next call):
// spans grouped by resource, then by instrumentation scope, each in order
// of first appearance (the official exporter orders resources by map
// iteration, i.e. randomly; scopes and spans as here).
func (e *encoder) encode(spans []sdktrace.ReadOnlySpan) []byte {
	e.groups = e.groups[:0]
	e.of = e.of[:0]
	for _, s := range spans {
		if s == nil {
			e.of = append(e.of, -1)
			continue
		}
		e.of = append(e.of, int32(e.groupOf(s)))
	}
	b := e.buf[:0]
	for gi := range e.groups {
		g := &e.groups[gi]
		if g.resIndex != gi {
			continue // encoded with its resource's first group
		}
		b = protowire.AppendTag(b, fRequestResourceSpans, protowire.BytesType)
		rs := len(b)
		b = openMessage(b)
		if g.res != nil {
			b = protowire.AppendTag(b, fResourceSpansResource, protowire.BytesType)
			r := len(b)
			b = openMessage(b)
			for it := g.res.Iter(); it.Next(); {
				b = appendKeyValue(b, fResourceAttributes, it.Attribute())
			}
			b = closeMessage(b, r)
		}
		for si := gi; si < len(e.groups); si++ {
			if e.groups[si].resIndex != gi {
				continue
			}
			b = e.appendScopeSpans(b, si, spans)
		}
		if g.res != nil {
			b = appendString(b, fResourceSpansSchemaURL, g.res.SchemaURL())
		}
		b = closeMessage(b, rs)
	}
	e.buf = b
	return b
}

func (e *encoder) groupOf(s sdktrace.ReadOnlySpan) int {
	res := s.Resource()
	scope := s.InstrumentationScope()
	var key attribute.Distinct
	if res != nil {
		key = res.Equivalent()
	}
	resIndex := -1
	for i := range e.groups {
		g := &e.groups[i]
		if g.res != res && (g.res == nil || res == nil || g.resKey != key) {
			continue
		}
		if resIndex < 0 {
			resIndex = g.resIndex
		}
		if g.scope == scope {
			return i
		}
	}
	if resIndex < 0 {
		resIndex = len(e.groups)
	}
	e.groups = append(e.groups, group{res: res, resKey: key, resIndex: resIndex, scope: scope})
	return len(e.groups) - 1
}

func (e *encoder) appendScopeSpans(b []byte, gi int, spans []sdktrace.ReadOnlySpan) []byte {
	scope := &e.groups[gi].scope
	b = protowire.AppendTag(b, fResourceSpansScopes, protowire.BytesType)
	ss := len(b)
	b = openMessage(b)
	if *scope != (instrumentation.Scope{}) {
		b = protowire.AppendTag(b, fScopeSpansScope, protowire.BytesType)
		sc := len(b)
		b = openMessage(b)
		b = appendString(b, fScopeName, scope.Name)
		b = appendString(b, fScopeVersion, scope.Version)
		for it := scope.Attributes.Iter(); it.Next(); {
			b = appendKeyValue(b, fScopeAttributes, it.Attribute())
		}
		b = closeMessage(b, sc)
	}
	for i, s := range spans {
		if int(e.of[i]) == gi {
			b = appendSpan(b, s)
		}
	}
	b = appendString(b, fScopeSpansSchemaURL, scope.SchemaURL)
	return closeMessage(b, ss)
}

func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	b = protowire.AppendTag(b, fScopeSpansSpans, protowire.BytesType)
	m := len(b)
	b = openMessage(b)
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = protowire.AppendTag(b, fSpanTraceID, protowire.BytesType)
	b = protowire.AppendBytes(b, tid[:])
	b = protowire.AppendTag(b, fSpanSpanID, protowire.BytesType)
	b = protowire.AppendBytes(b, sid[:])
	if ts := sc.TraceState(); ts.Len() > 0 {
		b = appendString(b, fSpanTraceState, ts.String())
	}
	parent := s.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		b = protowire.AppendTag(b, fSpanParentSpanID, protowire.BytesType)
		b = protowire.AppendBytes(b, psid[:])
	}
	b = appendString(b, fSpanName, s.Name())
	b = appendVarint(b, fSpanKind, spanKind(s.SpanKind()))
	b = appendFixed64(b, fSpanStart, unixNano(s.StartTime().UnixNano()))
	b = appendFixed64(b, fSpanEnd, unixNano(s.EndTime().UnixNano()))
	for _, kv := range s.Attributes() {
		b = appendKeyValue(b, fSpanAttributes, kv)
	}
	b = appendVarint(b, fSpanDroppedAttrs, clampUint32(s.DroppedAttributes()))
	for _, ev := range s.Events() {
		b = protowire.AppendTag(b, fSpanEvents, protowire.BytesType)
		em := len(b)
		b = openMessage(b)
		b = appendFixed64(b, fEventTime, unixNano(ev.Time.UnixNano()))
		b = appendString(b, fEventName, ev.Name)
		for _, kv := range ev.Attributes {
			b = appendKeyValue(b, fEventAttributes, kv)
		}
		b = appendVarint(b, fEventDroppedAttrs, clampUint32(ev.DroppedAttributeCount))
		b = closeMessage(b, em)
	}
	b = appendVarint(b, fSpanDroppedEvents, clampUint32(s.DroppedEvents()))
	for _, l := range s.Links() {
		b = protowire.AppendTag(b, fSpanLinks, protowire.BytesType)
		lm := len(b)
		b = openMessage(b)
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		b = protowire.AppendTag(b, fLinkTraceID, protowire.BytesType)
		b = protowire.AppendBytes(b, ltid[:])
		b = protowire.AppendTag(b, fLinkSpanID, protowire.BytesType)
		b = protowire.AppendBytes(b, lsid[:])
		// The official tracetransform leaves a link's trace_state(3)
		// out; so does this encoder, to send the same message.
		for _, kv := range l.Attributes {
			b = appendKeyValue(b, fLinkAttributes, kv)
		}
		b = appendVarint(b, fLinkDroppedAttrs, clampUint32(l.DroppedAttributeCount))
		b = appendFixed32(b, fLinkFlags, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
		b = closeMessage(b, lm)
	}
	b = appendVarint(b, fSpanDroppedLinks, clampUint32(s.DroppedLinks()))
	// The official exporter always sets a Status message, empty or not.
	st := s.Status()
	b = protowire.AppendTag(b, fSpanStatus, protowire.BytesType)
	stm := len(b)
	b = openMessage(b)
	b = appendString(b, fStatusMessage, st.Description)
	b = appendVarint(b, fStatusCode, statusCode(st.Code))
	b = closeMessage(b, stm)
	b = appendFixed32(b, fSpanFlags, spanFlags(sc.TraceFlags(), parent))
	return closeMessage(b, m)
}

// spanFlags is what tracetransform's buildSpanFlagsWith sets: the W3C
// trace flags, "has is-remote", and "is remote" when the parent (for a
// span) or the linked context (for a link) is remote.
func spanFlags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	f := uint32(tf) | flagsHasIsRemote
	if parent.IsRemote() {
		f |= flagsIsRemote
	}
	return f
}

func spanKind(k trace.SpanKind) uint64 {
	switch k {
	case trace.SpanKindInternal:
		return 1
	case trace.SpanKindServer:
		return 2
	case trace.SpanKindClient:
		return 3
	case trace.SpanKindProducer:
		return 4
	case trace.SpanKindConsumer:
		return 5
	}
	return 0
}

func statusCode(c codes.Code) uint64 {
	switch c {
	case codes.Ok:
		return 1
	case codes.Error:
		return 2
	}
	return 0
}

func unixNano(n int64) uint64 { return uint64(max(0, n)) }

func clampUint32(v int) uint64 {
	if v < 0 {
		return 0
	}
	return uint64(min(int64(v), math.MaxUint32))
}

// appendKeyValue appends a KeyValue as field num. The value message is
// always present, as tracetransform always sets it.
func appendKeyValue(b []byte, num protowire.Number, kv attribute.KeyValue) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	m := len(b)
	b = openMessage(b)
	b = appendString(b, fKeyValueKey, string(kv.Key))
	b = appendAnyValue(b, fKeyValueValue, kv.Value)
	return closeMessage(b, m)
}

// appendAnyValue appends an AnyValue as field num, as tracetransform's
// Value builds it. The value is a oneof: a set member is encoded even when
// it holds its zero value.
func appendAnyValue(b []byte, num protowire.Number, v attribute.Value) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	m := len(b)
	b = openMessage(b)
	switch v.Type() {
	case attribute.EMPTY:
	case attribute.BOOL:
		b = protowire.AppendTag(b, fAnyBool, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = protowire.AppendTag(b, fAnyInt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = protowire.AppendTag(b, fAnyDouble, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		b = protowire.AppendTag(b, fAnyString, protowire.BytesType)
		b = protowire.AppendString(b, v.AsString())
	case attribute.BYTESLICE:
		b = protowire.AppendTag(b, fAnyBytes, protowire.BytesType)
		b = protowire.AppendBytes(b, v.AsByteSlice())
	case attribute.BOOLSLICE:
		b = appendArray(b, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		b = appendArray(b, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		b = appendArray(b, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		b = appendArray(b, v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		b = appendArray(b, v.AsSlice(), func(x attribute.Value) attribute.Value { return x })
	case attribute.MAP:
		b = protowire.AppendTag(b, fAnyKvlist, protowire.BytesType)
		l := len(b)
		b = openMessage(b)
		for _, kv := range v.AsMap() {
			b = appendKeyValue(b, fKeyValueListValues, kv)
		}
		b = closeMessage(b, l)
	default:
		b = protowire.AppendTag(b, fAnyString, protowire.BytesType)
		b = protowire.AppendString(b, "INVALID")
	}
	return closeMessage(b, m)
}

// appendArray appends an array value of xs, each made a Value by value.
func appendArray[T any](b []byte, xs []T, value func(T) attribute.Value) []byte {
	a := openArray(&b)
	for _, x := range xs {
		b = appendAnyValue(b, fArrayValues, value(x))
	}
	return closeMessage(b, a)
}

func openArray(b *[]byte) int {
	*b = protowire.AppendTag(*b, fAnyArray, protowire.BytesType)
	a := len(*b)
	*b = openMessage(*b)
	return a
}

// openMessage reserves one byte for the length of a nested message that
// starts at len(b); closeMessage(b, start) writes the length there,
// moving the message up when its length needs more than one byte. A
// span's fields move once or twice (a few hundred bytes); nothing is
// allocated once the buffer has grown to a batch's size.
func openMessage(b []byte) []byte { return append(b, 0) }

func closeMessage(b []byte, start int) []byte {
	n := len(b) - start - 1
	if n < 0x80 {
		b[start] = byte(n)
		return b
	}
	extra := protowire.SizeVarint(uint64(n)) - 1
	var pad [maxNestedLengthBytes]byte
	b = append(b, pad[:extra]...)
	copy(b[start+1+extra:], b[start+1:start+1+n])
	protowire.AppendVarint(b[:start], uint64(n))
	return b
}

// appendString, appendVarint, appendFixed64 and appendFixed32 append a
// proto3 scalar field, omitted when zero.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendFixed64(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

func appendFixed32(b []byte, num protowire.Number, v uint32) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, v)
}
