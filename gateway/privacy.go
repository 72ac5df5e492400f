package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"sync"

	"github.com/abgate/abgate/experiments"
)

// privacy is what an upstream learns of the unit id: the unit header and
// the body's unit field each have one (experiments.UpstreamPrivacy).
type privacy uint8

const (
	privacyDrop    privacy = iota // the zero value: nothing leaks by accident
	privacyHash                   // a keyed HMAC of the id
	privacyForward                // the id as the client sent it
)

func parsePrivacy(p, def string) (privacy, error) {
	if p == "" {
		p = def
	}
	switch p {
	case experiments.PrivacyDrop:
		return privacyDrop, nil
	case experiments.PrivacyHash:
		return privacyHash, nil
	case experiments.PrivacyForward:
		return privacyForward, nil
	}
	return 0, fmt.Errorf("unit id policy %q is not forward, hash or drop", p)
}

// unitHashLen is the length of a hashed unit id: 128 bits in hex, as
// wide as the unit keys the statistics use.
const unitHashLen = 32

// unitHasher is one upstream's keyed hash of unit ids. Its key is
// derived from the token secret and the upstream's name, so the same id
// hashes to the same value at one upstream across requests, replicas and
// restarts, to unrelated values at two upstreams (they can't join their
// logs on it), and nobody without the secret can test a guessed id.
// HMAC states are pooled: hmac.New allocates five objects.
type unitHasher struct{ pool sync.Pool }

type unitMACState struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

func newUnitHasher(secret []byte, upstream string) *unitHasher {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("abgate upstream unit v1\x00"))
	m.Write([]byte(upstream))
	key := m.Sum(nil)
	u := &unitHasher{}
	u.pool.New = func() any { return &unitMACState{h: hmac.New(sha256.New, key), buf: make([]byte, 0, 128)} }
	return u
}

// appendHash appends the hex hash of id to dst. Body bytes are written
// to the HMAC as they are (they live on the heap already); a header
// string is copied into the pooled state's buffer first.
func (u *unitHasher) appendHash(dst, id []byte) []byte {
	m := u.pool.Get().(*unitMACState)
	m.h.Reset()
	m.h.Write(id)
	return u.done(dst, m)
}

func (u *unitHasher) appendHashString(dst []byte, id string) []byte {
	m := u.pool.Get().(*unitMACState)
	m.h.Reset()
	m.buf = append(m.buf[:0], id...)
	m.h.Write(m.buf)
	if cap(m.buf) > 4<<10 {
		m.buf = nil // one huge id must not stay pinned in the pool
	}
	return u.done(dst, m)
}

func (u *unitHasher) done(dst []byte, m *unitMACState) []byte {
	sum := m.h.Sum(m.sum[:0])
	dst = hex.AppendEncode(dst, sum[:unitHashLen/2])
	u.pool.Put(m)
	return dst
}

// unitSecret is the key the upstream unit hashes derive from: the token
// secret, so every replica hashes alike. A config built in code may have
// none (tests); the signer's unit key of a fixed label stands in then, a
// secret every replica with the same signer shares too.
func (h *Handler) unitSecret(cfg *experiments.Config) []byte {
	if s := cfg.Server.TokenSecret.Reveal(); s != "" {
		return []byte(s)
	}
	k := h.signer.KeyUnit("\x00abgate upstream unit secret v1\x00")
	return k[:]
}

func (up *upstream) setPrivacy(u *experiments.Upstream, secret []byte) error {
	var err error
	if up.unitHeader, err = parsePrivacy(u.Privacy.UnitHeader, experiments.DefaultPrivacyUnitHeader); err != nil {
		return fmt.Errorf("privacy.unit_header: %w", err)
	}
	if up.unitField, err = parsePrivacy(u.Privacy.UnitField, experiments.DefaultPrivacyUnitField); err != nil {
		return fmt.Errorf("privacy.unit_field: %w", err)
	}
	if up.unitHeader == privacyHash || up.unitField == privacyHash {
		up.unitMAC = newUnitHasher(secret, u.Name)
	}
	return nil
}

// applyHeaderPrivacy rewrites the outbound unit header for up.
func (up *upstream) applyHeaderPrivacy(hdr http.Header, name string) {
	vs, ok := hdr[name]
	if !ok || up.unitHeader == privacyForward {
		return
	}
	if up.unitHeader == privacyDrop || len(vs) == 0 {
		delete(hdr, name)
		return
	}
	// One value: the first is the unit id (see ServeHTTP); more copies
	// would be more ids to hide.
	hdr[name] = []string{string(up.unitMAC.appendHashString(make([]byte, 0, unitHashLen), vs[0]))}
}

// unitEdits appends the edits that apply up's unit field policy to the
// body's unit members. A hashed member keeps its key; its value becomes
// the hash of the decoded string (of the raw JSON text when not a
// string). Hashed values are allocated per attempt: a transport may still
// read an earlier attempt's body (Issue 46866).
func (up *upstream) unitEdits(es []edit, body []byte, units []unitMember) []edit {
	switch up.unitField {
	case privacyForward:
		return es
	case privacyDrop:
		for _, u := range units {
			es = append(es, edit{u.cut, nil})
		}
		return es
	}
	vals := make([]byte, 0, len(units)*(unitHashLen+2))
	for _, u := range units {
		raw := body[u.value.start:u.value.end]
		id := raw
		if raw[0] == '"' {
			id = stringValue(raw)
		}
		at := len(vals)
		vals = append(vals, '"')
		vals = up.unitMAC.appendHash(vals, id)
		vals = append(vals, '"')
		es = append(es, edit{u.value, vals[at:len(vals):len(vals)]})
	}
	return es
}
