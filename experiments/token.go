package experiments

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
	"time"
)

// Token errors. Feedback presenting a bad token gets a 4xx that names
// which of these it was.
var (
	// ErrTokenInvalid: malformed, or the signature does not match (forged
	// or signed with another secret).
	ErrTokenInvalid = errors.New("invalid assignment token")
	// ErrTokenExpired: the signature is good but the token is too old.
	ErrTokenExpired = errors.New("assignment token expired")
)

// Token is what X-Abgate-Token carries: which variant really served which
// unit, for which request, so later feedback is attributed to it and can't
// be forged. The unit travels as its keyed hash, never raw.
type Token struct {
	Experiment string
	Phase      int
	Variant    int
	Unit       UnitKey
	Analysed   bool
	RequestID  string
	Expires    time.Time
	// Segments are the request's segment values, so feedback is
	// attributed to the same segments (issue #7).
	Segments SegmentValues
}

// Token versions. Version 1 has no segments; version 2 appends, after
// the unit, a byte N and N segment value indexes. Issue writes version 1
// when the token has no segments, so tokens of experiments without
// segments are unchanged, and Verify accepts both.
const (
	tokenVersion   = 1
	tokenVersionV2 = 2
	tokenSigLen    = 16 // truncated HMAC-SHA256: 128 bits is ample for a MAC
	tokenFixed     = 1 + 8 + 4 + 1 + 1 + 16
)

// Signer issues and verifies tokens and derives unit keys. Both keys are
// derived from one secret with distinct labels, so a token's signature
// can never be replayed as a unit key or the other way round. It is safe
// for concurrent use.
type Signer struct {
	ttl      time.Duration
	tokenMAC sync.Pool // of *macState (HMAC, token key)
	unitMAC  sync.Pool // of *macState (HMAC, unit key)
}

// macState is a pooled HMAC with its scratch space. A slice of a local
// array passed to a hash.Hash method escapes (the call is through an
// interface), so "stack" buffers were heap allocations on every call;
// buffers owned by the pooled object are allocated once.
type macState struct {
	h   hash.Hash
	buf []byte // payload / raw token
	enc []byte // base64 form
	sum [sha256.Size]byte
}

// maxPooledScratch keeps one huge input from pinning memory in the pool.
const maxPooledScratch = 4 << 10

func putMAC(p *sync.Pool, m *macState) {
	if cap(m.buf) > maxPooledScratch || cap(m.enc) > maxPooledScratch {
		m.buf, m.enc = nil, nil
	}
	p.Put(m)
}

// NewSigner returns a Signer keyed by secret whose tokens live for ttl.
func NewSigner(secret []byte, ttl time.Duration) *Signer {
	tokenKey := derive(secret, "abgate token v1")
	unitKey := derive(secret, "abgate unit v1")
	s := &Signer{ttl: ttl}
	s.tokenMAC.New = func() any {
		return &macState{h: hmac.New(sha256.New, tokenKey), buf: make([]byte, 0, tokenFixed+1+MaxSegmentDimensions+2+2*255+tokenSigLen)}
	}
	s.unitMAC.New = func() any { return &macState{h: hmac.New(sha256.New, unitKey), buf: make([]byte, 0, 256)} }
	return s
}

func derive(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// KeyUnit returns the keyed hash of a unit id. It does not allocate.
func (s *Signer) KeyUnit(unit string) UnitKey {
	m := s.unitMAC.Get().(*macState)
	m.h.Reset()
	m.buf = append(m.buf[:0], unit...)
	m.h.Write(m.buf)
	var k UnitKey
	copy(k[:], m.h.Sum(m.sum[:0]))
	putMAC(&s.unitMAC, m)
	return k
}

// Issue signs t. A zero Expires is set to now + the signer's TTL. The
// returned string is its only allocation.
func (s *Signer) Issue(t Token, now time.Time) string {
	if t.Expires.IsZero() {
		t.Expires = now.Add(s.ttl)
	}
	exp, rid := clip(t.Experiment), clip(t.RequestID)
	m := s.tokenMAC.Get().(*macState)
	b := m.buf[:0]
	segs := t.Segments
	if segs.N > MaxSegmentDimensions {
		segs.N = MaxSegmentDimensions
	}
	if segs.N > 0 {
		b = append(b, tokenVersionV2)
	} else {
		b = append(b, tokenVersion)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(t.Expires.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(t.Phase))
	b = append(b, byte(t.Variant))
	if t.Analysed {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = append(b, t.Unit[:]...)
	if segs.N > 0 {
		b = append(b, segs.N)
		b = append(b, segs.V[:segs.N]...)
	}
	b = append(b, byte(len(exp)))
	b = append(b, exp...)
	b = append(b, byte(len(rid)))
	b = append(b, rid...)
	b = append(b, m.sign(b)...)
	m.buf = b
	m.enc = base64.RawURLEncoding.AppendEncode(m.enc[:0], b)
	out := string(m.enc)
	putMAC(&s.tokenMAC, m)
	return out
}

// clip keeps a length-prefixed field within one byte of length; ids are
// validated far shorter than that, so this only guards the encoding.
func clip(s string) string {
	if len(s) > 255 {
		return s[:255]
	}
	return s
}

// sign returns the truncated MAC of payload; it aliases m.sum.
func (m *macState) sign(payload []byte) []byte {
	m.h.Reset()
	m.h.Write(payload)
	return m.h.Sum(m.sum[:0])[:tokenSigLen]
}

// tokenEncoding is strict: the spare bits of the last character must be
// zero, so a token has exactly one spelling (a lenient decoder accepts up
// to 16 spellings of one token).
var tokenEncoding = base64.RawURLEncoding.Strict()

// Verify checks a token's signature and expiry at time now.
func (s *Signer) Verify(tok string, now time.Time) (Token, error) {
	if len(tok) > tokenEncoding.EncodedLen(tokenFixed+1+MaxSegmentDimensions+2+2*255+tokenSigLen) {
		return Token{}, ErrTokenInvalid
	}
	m := s.tokenMAC.Get().(*macState)
	defer putMAC(&s.tokenMAC, m)
	m.enc = append(m.enc[:0], tok...)
	raw, err := tokenEncoding.AppendDecode(m.buf[:0], m.enc)
	if err != nil || len(raw) < tokenFixed+2+tokenSigLen {
		return Token{}, ErrTokenInvalid
	}
	m.buf = raw
	payload, sig := raw[:len(raw)-tokenSigLen], raw[len(raw)-tokenSigLen:]
	if !hmac.Equal(sig, m.sign(payload)) {
		return Token{}, ErrTokenInvalid
	}
	if payload[0] != tokenVersion && payload[0] != tokenVersionV2 {
		return Token{}, ErrTokenInvalid
	}
	var t Token
	t.Expires = time.Unix(int64(binary.BigEndian.Uint64(payload[1:9])), 0)
	t.Phase = int(binary.BigEndian.Uint32(payload[9:13]))
	t.Variant = int(payload[13])
	t.Analysed = payload[14] == 1
	copy(t.Unit[:], payload[15:31])
	rest := payload[tokenFixed:]
	if payload[0] == tokenVersionV2 {
		if len(rest) < 1 || rest[0] == 0 || rest[0] > MaxSegmentDimensions || len(rest) < 1+int(rest[0]) {
			return Token{}, ErrTokenInvalid
		}
		t.Segments.N = rest[0]
		copy(t.Segments.V[:], rest[1:1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
	}
	exp, rest, ok := lenPrefixed(rest)
	if !ok {
		return Token{}, ErrTokenInvalid
	}
	rid, rest, ok := lenPrefixed(rest)
	if !ok || len(rest) != 0 {
		return Token{}, ErrTokenInvalid
	}
	t.Experiment, t.RequestID = exp, rid
	if !now.Before(t.Expires) {
		return t, ErrTokenExpired
	}
	return t, nil
}

func lenPrefixed(b []byte) (string, []byte, bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, false
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], true
}
