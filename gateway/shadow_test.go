package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

// stubShadower samples every unit and keeps what it is offered.
type stubShadower struct {
	mu   sync.Mutex
	got  []experiments.ShadowSample
	keep bool
}

func (s *stubShadower) Sample(_, _, _ string, _ bool, hdr http.Header) bool {
	_, private := hdr["X-Abgate-Private"]
	return !private
}

func (s *stubShadower) Offer(x experiments.ShadowSample) bool {
	if s.keep {
		s.mu.Lock()
		s.got = append(s.got, x)
		s.mu.Unlock()
	}
	return true
}

func shadowHandler(t testing.TB, up string, sh Shadower) *Handler {
	t.Helper()
	cfg := testConfig(up, up)
	h, err := New(cfg, experiments.NewSigner([]byte(testSecret), time.Hour), WithRecorder(discardRecorder{}), WithShadow(sh))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Experiments[0].Allocation()
	a.Serve, a.Shadow = 0, true
	if err := h.SetAllocation(testExp, a); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestShadowOffer: in shadow, the base answers as usual and the request
// body and the answer the client got are offered after the fact; a
// private request and an experiment not in shadow offer nothing.
func TestShadowOffer(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(reply)
	}))
	t.Cleanup(up.Close)
	sh := &stubShadower{keep: true}
	h := shadowHandler(t, up.URL, sh)
	send := func(private bool) *httptest.ResponseRecorder {
		body := `{"model":"` + testAlias + `","messages":[{"role":"user","content":"hi"}]}`
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("X-User-ID", "user-1")
		if private {
			req.Header.Set("X-Abgate-Private", "1")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	w := send(false)
	if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), reply) || w.Header().Get(HeaderVariant) != "base" {
		t.Fatalf("client got %d %q variant %q", w.Code, w.Body, w.Header().Get(HeaderVariant))
	}
	send(true)
	if len(sh.got) != 1 {
		t.Fatalf("offered %d samples, want 1 (the private request is never replayed)", len(sh.got))
	}
	s := sh.got[0]
	if s.Experiment != testExp || s.Path != "/v1/chat/completions" || !bytes.Equal(s.Answer, reply) || !strings.Contains(string(s.Body), `"content":"hi"`) || s.Unit == (experiments.UnitKey{}) || s.Live {
		t.Fatalf("sample %+v", s)
	}
	a := testConfig(up.URL, up.URL).Experiments[0].Allocation()
	a.Serve = 0
	if err := h.SetAllocation(testExp, a); err != nil {
		t.Fatal(err)
	}
	send(false)
	if len(sh.got) != 1 {
		t.Fatal("offered a sample of an experiment not in shadow")
	}
}

// TestShadowOfferLive: during a ramp step (the allocation splits
// traffic), a request the candidate serves and one the base serves to an
// analysed user are both offered for the live judge, each with its
// variant and Live set (the base's answer gets the base arm's judge
// score, judge_served); the base's answer to an allowlisted user is not.
func TestShadowOfferLive(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(reply)
	}))
	t.Cleanup(up.Close)
	sh := &stubShadower{keep: true}
	h := shadowHandler(t, up.URL, sh)
	a := testConfig(up.URL, up.URL).Experiments[0].Allocation()
	a.Serve, a.Shadow = -1, false
	a.Allowlist = map[string]int{"user-cand": 1, "user-qa": 0}
	if err := h.SetAllocation(testExp, a); err != nil {
		t.Fatal(err)
	}
	hashedBase := ""
	for i := 0; hashedBase == ""; i++ {
		u := fmt.Sprintf("user-%d", i)
		if as := experiments.Assign(a, u); as.Variant == 0 && as.Analysed() {
			hashedBase = u
		}
	}
	// user-qa is allowlisted to the base: served, not analysed, not judged.
	for _, u := range []string{"user-cand", hashedBase, "user-qa"} {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{"model":"`+testAlias+`","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("X-User-ID", u)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", u, w.Code, w.Body)
		}
	}
	if len(sh.got) != 2 || sh.got[0].Variant != 1 || sh.got[1].Variant != 0 || !sh.got[0].Live || !sh.got[1].Live || !bytes.Equal(sh.got[0].Answer, reply) {
		t.Fatalf("offered %+v, want the candidate's request as variant 1, then the base's as variant 0, both live", sh.got)
	}
}

// BenchmarkServeHTTPShadow is BenchmarkServeHTTP's request with the
// experiment served to the base: "off" without the shadow stage, "on"
// in shadow with every request sampled, tapped and offered (the offer
// discarded, so only the request path's cost is measured).
func BenchmarkServeHTTPShadow(b *testing.B) {
	up := benchUpstream(b)
	body := benchBody(1 << 10)
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			h := shadowHandler(b, up.URL, &stubShadower{})
			if !on {
				a := testConfig(up.URL, up.URL).Experiments[0].Allocation()
				a.Serve = 0
				if err := h.SetAllocation(testExp, a); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-User-ID", "user-123456")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
