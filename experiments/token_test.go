package experiments_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

var (
	tokenSecret = []byte("0123456789abcdef0123456789abcdef")
	tokenNow    = time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
)

func newTestSigner() *experiments.Signer { return experiments.NewSigner(tokenSecret, 7*24*time.Hour) }

func sampleToken(s *experiments.Signer) experiments.Token {
	return experiments.Token{
		Experiment: "support-ft-2026-11",
		Phase:      3,
		Variant:    2,
		Unit:       s.KeyUnit("alice"),
		Analysed:   true,
		RequestID:  "req-7f3a",
	}
}

func TestTokenRoundTrip(t *testing.T) {
	t.Parallel()
	s := newTestSigner()
	tests := []struct {
		name string
		tok  experiments.Token
	}{
		{"typical", sampleToken(s)},
		{"zero-ish", experiments.Token{Experiment: "e"}},
		{"not analysed", experiments.Token{Experiment: "e", Variant: 0, Phase: 1, Unit: s.KeyUnit("")}},
		{"max fields", experiments.Token{Experiment: strings.Repeat("e", 255), Phase: 1<<31 - 1, Variant: 255, RequestID: strings.Repeat("r", 255), Analysed: true}},
		{"explicit expiry", experiments.Token{Experiment: "e", Expires: tokenNow.Add(time.Hour)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			str := s.Issue(tc.tok, tokenNow)
			got, err := s.Verify(str, tokenNow.Add(time.Minute))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := tc.tok
			if want.Expires.IsZero() {
				want.Expires = tokenNow.Add(7 * 24 * time.Hour)
			}
			want.Expires = time.Unix(want.Expires.Unix(), 0) // seconds on the wire
			if !got.Expires.Equal(want.Expires) {
				t.Errorf("Expires = %v, want %v", got.Expires, want.Expires)
			}
			got.Expires, want.Expires = time.Time{}, time.Time{}
			if got != want {
				t.Errorf("Verify = %+v, want %+v", got, want)
			}
			// Canonical: re-issuing what verified gives the same string.
			if again := s.Issue(tc.tok, tokenNow); again != str {
				t.Error("Issue is not deterministic")
			}
		})
	}
}

func TestTokenForgery(t *testing.T) {
	t.Parallel()
	s := newTestSigner()
	str := s.Issue(sampleToken(s), tokenNow)
	raw, err := base64.RawURLEncoding.DecodeString(str)
	if err != nil {
		t.Fatal(err)
	}
	// Every single-bit change anywhere (payload or signature) is rejected.
	for i := range raw {
		for bit := range 8 {
			forged := append([]byte(nil), raw...)
			forged[i] ^= 1 << bit
			if _, err := s.Verify(base64.RawURLEncoding.EncodeToString(forged), tokenNow); !errors.Is(err, experiments.ErrTokenInvalid) {
				t.Fatalf("byte %d bit %d flipped: Verify = %v, want ErrTokenInvalid", i, bit, err)
			}
		}
	}
	other := experiments.NewSigner([]byte("another-secret-another-secret-xx"), time.Hour)
	for name, tok := range map[string]string{
		"empty":          "",
		"not base64":     "!!!!",
		"padded":         str + "==",
		"truncated":      str[:len(str)-4],
		"extended":       str + "AAAA",
		"short":          base64.RawURLEncoding.EncodeToString(raw[:20]),
		"other secret":   other.Issue(sampleToken(other), tokenNow),
		"payload only":   base64.RawURLEncoding.EncodeToString(raw[:len(raw)-16]),
		"signature only": base64.RawURLEncoding.EncodeToString(raw[len(raw)-16:]),
	} {
		if _, err := s.Verify(tok, tokenNow); !errors.Is(err, experiments.ErrTokenInvalid) {
			t.Errorf("%s: Verify = %v, want ErrTokenInvalid", name, err)
		}
	}
}

func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	s := experiments.NewSigner(tokenSecret, time.Hour)
	str := s.Issue(sampleToken(s), tokenNow)
	if _, err := s.Verify(str, tokenNow.Add(time.Hour-time.Second)); err != nil {
		t.Errorf("1s before expiry: %v", err)
	}
	for _, at := range []time.Duration{time.Hour, time.Hour + time.Second, 365 * 24 * time.Hour} {
		got, err := s.Verify(str, tokenNow.Add(at))
		if !errors.Is(err, experiments.ErrTokenExpired) {
			t.Errorf("at +%v: Verify = %v, want ErrTokenExpired", at, err)
		}
		// The claims are still returned (signature was good), e.g. for
		// an error message naming the experiment.
		if got.Experiment != "support-ft-2026-11" {
			t.Errorf("expired token claims = %+v", got)
		}
	}
	// An expired token that was also tampered with is invalid, not expired.
	raw, _ := base64.RawURLEncoding.DecodeString(str)
	raw[len(raw)-1] ^= 1
	if _, err := s.Verify(base64.RawURLEncoding.EncodeToString(raw), tokenNow.Add(2*time.Hour)); !errors.Is(err, experiments.ErrTokenInvalid) {
		t.Errorf("tampered expired token: %v, want ErrTokenInvalid", err)
	}
}

func TestKeyUnit(t *testing.T) {
	t.Parallel()
	s1, s2 := newTestSigner(), newTestSigner()
	other := experiments.NewSigner([]byte("another-secret-another-secret-xx"), time.Hour)
	long := strings.Repeat("u", 1000) // past KeyUnit's stack buffer
	for _, u := range []string{"alice", "", "Zoë", long} {
		k := s1.KeyUnit(u)
		if s1.KeyUnit(u) != k || s2.KeyUnit(u) != k {
			t.Errorf("KeyUnit(%.10q) not deterministic across calls and signers", u)
		}
		if other.KeyUnit(u) == k {
			t.Errorf("KeyUnit(%.10q) equal under another secret", u)
		}
	}
	seen := make(map[experiments.UnitKey]string)
	for _, u := range randomUnits(9, 10000) {
		k := s1.KeyUnit(u)
		if prev, dup := seen[k]; dup && prev != u {
			t.Fatalf("KeyUnit collision: %q and %q", prev, u)
		}
		seen[k] = u
	}
	if s1.KeyUnit(long) == s1.KeyUnit(long[:999]) {
		t.Error("long ids differing in the last byte share a key")
	}
}

// TestSignerConcurrent runs the pooled MACs from many goroutines (run
// with -race).
func TestSignerConcurrent(t *testing.T) {
	t.Parallel()
	s := newTestSigner()
	want := s.KeyUnit("alice")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if s.KeyUnit("alice") != want {
					t.Error("KeyUnit differs under concurrency")
					return
				}
				tok := sampleToken(s)
				tok.Variant = (g + i) % 3
				got, err := s.Verify(s.Issue(tok, tokenNow), tokenNow)
				if err != nil || got.Variant != tok.Variant {
					t.Errorf("concurrent round trip: %+v, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestKeyUnitZeroAllocs(t *testing.T) {
	if raceBuild {
		t.Skip("sync.Pool drops items under -race")
	}
	s := newTestSigner()
	s.KeyUnit("warm the pool")
	if n := testing.AllocsPerRun(1000, func() { s.KeyUnit("user-1234567") }); n != 0 {
		t.Errorf("KeyUnit allocates %.1f times, want 0", n)
	}
	tok := sampleToken(s)
	if n := testing.AllocsPerRun(1000, func() { s.Issue(tok, tokenNow) }); n > 1 {
		t.Errorf("Issue allocates %.1f times, want 1 (the string)", n)
	}
}

func BenchmarkIssue(b *testing.B) {
	s := newTestSigner()
	tok := sampleToken(s)
	b.ReportAllocs()
	for b.Loop() {
		s.Issue(tok, tokenNow)
	}
}

func BenchmarkVerify(b *testing.B) {
	s := newTestSigner()
	str := s.Issue(sampleToken(s), tokenNow)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(str, tokenNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKeyUnit(b *testing.B) {
	s := newTestSigner()
	b.ReportAllocs()
	for b.Loop() {
		s.KeyUnit("user-1234567")
	}
}

func FuzzVerify(f *testing.F) {
	s := newTestSigner()
	f.Add(s.Issue(sampleToken(s), tokenNow))
	f.Add(s.Issue(experiments.Token{}, tokenNow))
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, str string) {
		got, err := s.Verify(str, tokenNow)
		if err != nil {
			if !errors.Is(err, experiments.ErrTokenInvalid) && !errors.Is(err, experiments.ErrTokenExpired) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		// Anything that verifies is exactly what Issue produces for its
		// claims: tokens have one encoding.
		if again := s.Issue(got, tokenNow); again != str {
			t.Fatalf("verified token %q is not canonical (Issue gives %q)", str, again)
		}
	})
}

// TestTokenCanonicalEncoding: base64 without padding leaves 2 or 4 spare
// bits in the last character; a lenient decoder accepts every value of
// them, so one token would have several spellings (a problem for anyone
// de-duplicating by token string).
func TestTokenCanonicalEncoding(t *testing.T) {
	t.Parallel()
	s := newTestSigner()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for _, rid := range []string{"r", "rr"} { // raw lengths ≡ 1 and 2 (mod 3)
		tok := sampleToken(s)
		tok.RequestID = rid
		str := s.Issue(tok, tokenNow)
		last := strings.IndexByte(alphabet, str[len(str)-1])
		for delta := 1; delta < 16; delta++ {
			alt := alphabet[last^delta]
			if alt == str[len(str)-1] {
				continue
			}
			variant := str[:len(str)-1] + string(alt)
			if _, err := s.Verify(variant, tokenNow); err == nil {
				t.Errorf("request id %q: %q verifies as well as %q", rid, variant, str)
				break
			}
		}
	}
}
