package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
)

func sessionTokens(t *testing.T) *Tokens {
	t.Helper()
	toks, err := NewTokens(experiments.Auth{Tokens: []experiments.AuthToken{
		{Name: "ann", Role: "admin", Token: adminTok},
		{Name: "pm", Role: "viewer", Token: viewerTok},
		{Name: "app", Role: "feedback", Token: feedbackTok},
	}})
	if err != nil {
		t.Fatal(err)
	}
	toks.EnableSessions([]byte("0123456789abcdef0123456789abcdef"), time.Hour)
	return toks
}

func sessionEngine(toks *Tokens) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	toks.RegisterSignIn(r)
	r.GET("/reports", toks.RequireRead(), func(c *gin.Context) { c.String(200, "report for "+Actor(c)) })
	r.POST("/api/v1/change", toks.RequireWrite(), func(c *gin.Context) { c.String(200, "changed by "+Actor(c)) })
	return r
}

func serveReq(r http.Handler, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func signIn(t *testing.T, r http.Handler, token string) (*http.Cookie, *httptest.ResponseRecorder) {
	t.Helper()
	form := url.Values{"token": {token}, "next": {"/reports"}}
	req := httptest.NewRequest(http.MethodPost, "/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := serveReq(r, req)
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			return c, w
		}
	}
	return nil, w
}

func TestSessionSignInReadSignOut(t *testing.T) {
	t.Parallel()
	toks := sessionTokens(t)
	r := sessionEngine(toks)

	// A browser without a session is sent to the sign-in page; a script
	// gets a JSON 401.
	req := httptest.NewRequest(http.MethodGet, "/reports?x=1", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if w := serveReq(r, req); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/signin?next=%2Freports%3Fx%3D1" {
		t.Fatalf("page without session: %d %q", w.Code, w.Header().Get("Location"))
	}
	if w := serveReq(r, httptest.NewRequest(http.MethodGet, "/reports", nil)); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `"missing_api_token"`) {
		t.Fatalf("API without session: %d %s", w.Code, w.Body)
	}

	ck, w := signIn(t, r, viewerTok)
	if ck == nil || w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/reports" {
		t.Fatalf("sign in: %d %v", w.Code, w.Header())
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.MaxAge != 3600 || ck.Secure {
		t.Errorf("cookie attributes: %+v", ck)
	}
	if strings.Contains(ck.Value, viewerTok) {
		t.Error("the cookie carries the token")
	}
	req = httptest.NewRequest(http.MethodGet, "/reports", nil)
	req.AddCookie(ck)
	if w := serveReq(r, req); w.Code != 200 || w.Body.String() != "report for api:pm" {
		t.Fatalf("read with session: %d %s", w.Code, w.Body)
	}
	// A viewer's session may not change anything.
	req = httptest.NewRequest(http.MethodPost, "/api/v1/change", nil)
	req.AddCookie(ck)
	req.Header.Set(csrfHeader, toks.sess.csrf(mustParse(t, toks, ck)))
	if w := serveReq(r, req); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `"forbidden"`) {
		t.Fatalf("viewer session writes: %d %s", w.Code, w.Body)
	}

	// Sign out: the page carries the CSRF token, the POST needs it.
	req = httptest.NewRequest(http.MethodGet, "/signout", nil)
	req.AddCookie(ck)
	page := serveReq(r, req)
	csrf := toks.sess.csrf(mustParse(t, toks, ck))
	if page.Code != 200 || !strings.Contains(page.Body.String(), csrf) {
		t.Fatalf("sign-out page: %d", page.Code)
	}
	req = httptest.NewRequest(http.MethodPost, "/signout", nil)
	req.AddCookie(ck)
	if w := serveReq(r, req); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `"csrf_failed"`) {
		t.Fatalf("sign out without CSRF: %d %s", w.Code, w.Body)
	}
	req = httptest.NewRequest(http.MethodPost, "/signout", strings.NewReader(url.Values{csrfField: {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(ck)
	w = serveReq(r, req)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("sign out: %d %s", w.Code, w.Body)
	}
	cleared := false
	for _, c := range w.Result().Cookies() {
		cleared = cleared || (c.Name == sessionCookie && c.MaxAge < 0 && c.Value == "")
	}
	if !cleared {
		t.Error("sign-out did not clear the cookie")
	}
}

func mustParse(t *testing.T, toks *Tokens, ck *http.Cookie) session {
	t.Helper()
	ss, ok := toks.sess.parse(ck.Value)
	if !ok {
		t.Fatal("own cookie does not parse")
	}
	return ss
}

func TestSessionCSRFAndOrigin(t *testing.T) {
	t.Parallel()
	toks := sessionTokens(t)
	r := sessionEngine(toks)
	ck, _ := signIn(t, r, adminTok)
	csrf := toks.sess.csrf(mustParse(t, toks, ck))
	for _, tc := range []struct {
		name, csrf, origin string
		want               int
	}{
		{"no token", "", "", http.StatusForbidden},
		{"wrong token", strings.Repeat("x", len(csrf)), "", http.StatusForbidden},
		{"cross-site origin", csrf, "https://evil.example", http.StatusForbidden},
		{"header token", csrf, "", http.StatusOK},
		{"same origin", csrf, "http://example.com", http.StatusOK},
	} {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/change", nil)
		req.AddCookie(ck)
		if tc.csrf != "" {
			req.Header.Set(csrfHeader, tc.csrf)
		}
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		if w := serveReq(r, req); w.Code != tc.want {
			t.Errorf("%s: %d, want %d (%s)", tc.name, w.Code, tc.want, w.Body)
		}
	}
	// A bearer token needs no CSRF token, and the scheme is case-insensitive.
	req := httptest.NewRequest(http.MethodPost, "/api/v1/change", nil)
	req.Header.Set("Authorization", "bearer "+adminTok)
	if w := serveReq(r, req); w.Code != 200 || w.Body.String() != "changed by api:ann" {
		t.Errorf("lowercase bearer: %d %s", w.Code, w.Body)
	}
}

func TestSessionRefusals(t *testing.T) {
	t.Parallel()
	toks := sessionTokens(t)
	r := sessionEngine(toks)

	if ck, w := signIn(t, r, feedbackTok); ck != nil || w.Code != http.StatusForbidden {
		t.Errorf("a feedback token signed in: %d", w.Code)
	}
	if ck, w := signIn(t, r, "not-a-token-at-all-00"); ck != nil || w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "not valid") {
		t.Errorf("a wrong token signed in: %d", w.Code)
	}

	read := func(ck *http.Cookie) int {
		req := httptest.NewRequest(http.MethodGet, "/reports", nil)
		req.AddCookie(ck)
		return serveReq(r, req).Code
	}
	ck, _ := signIn(t, r, viewerTok)
	// Tampering with any byte of the payload breaks the signature.
	bad := *ck
	bad.Value = "A" + ck.Value[1:]
	if bad.Value != ck.Value && read(&bad) != http.StatusUnauthorized {
		t.Error("a tampered cookie was accepted")
	}
	// A session made with another key (another deployment) is refused.
	other := sessionTokens(t)
	other.EnableSessions([]byte("another-key-another-key-another-key!"), time.Hour)
	ck2, _ := signIn(t, sessionEngine(other), viewerTok)
	if read(ck2) != http.StatusUnauthorized {
		t.Error("a cookie signed by another key was accepted")
	}
	// Expiry.
	toks.sess.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if read(ck) != http.StatusUnauthorized {
		t.Error("an expired session was accepted")
	}
	toks.sess.now = time.Now
	// Removing the token from the config ends its sessions.
	reloaded, err := NewTokens(experiments.Auth{Tokens: []experiments.AuthToken{{Name: "ann", Role: "admin", Token: adminTok}}})
	if err != nil {
		t.Fatal(err)
	}
	reloaded.EnableSessions([]byte("0123456789abcdef0123456789abcdef"), time.Hour)
	if code := read(ck); code != 200 {
		t.Fatalf("session before the reload: %d", code)
	}
	r = sessionEngine(reloaded)
	if read(ck) != http.StatusUnauthorized {
		t.Error("a session outlived its token")
	}
}

func TestSafeNext(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/reports/x?y=1":      "/reports/x?y=1",
		"":                    "/reports",
		"https://evil.com/":   "/reports",
		"//evil.com":          "/reports",
		"/\\evil.com":         "/reports",
		"/ok\r\nSet-Cookie:x": "/reports",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
