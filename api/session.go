package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// Browser sessions (issue 13). A PM's browser cannot send a bearer header,
// so /signin exchanges a viewer or admin token for a session cookie.
//
// The cookie is stateless: it is signed with a key derived from
// server.token_secret, so every replica verifies it without a shared
// session store. It names the token it was made from (name, role and a
// prefix of the token's hash), so removing or rotating that token in the
// config ends its sessions at the next reload. Signing out clears the
// cookie in the browser; a copy taken before that stays valid until it
// expires (auth.session_ttl), which is why the TTL is hours, not days.
//
// Requests authenticated by the cookie that change state (any method but
// GET, HEAD and OPTIONS) must also carry the session's CSRF token, in the
// X-CSRF-Token header or a csrf_token form field, and an Origin header,
// when the browser sends one, must name this host. SameSite=Strict already
// keeps the cookie off cross-site requests; the CSRF token is the second
// lock. Bearer tokens work as before and need no CSRF token.

const (
	sessionCookie = "abgate_session"
	csrfHeader    = "X-CSRF-Token"
	csrfField     = "csrf_token"
	// sessionVersion is the first byte of every session payload, so the
	// format can change without misreading old cookies.
	sessionVersion = 1
)

type sessions struct {
	key []byte
	ttl atomic.Int64 // time.Duration; auth.session_ttl, live on reload
	now func() time.Time
}

// session is what a cookie carries.
type session struct {
	role    Role
	name    string
	hash    [8]byte // prefix of the token's SHA-256
	expires int64   // unix seconds
	id      [12]byte
}

// EnableSessions lets browsers sign in at /signin (see RegisterSignIn):
// key signs the cookies (at least 32 bytes; serve derives it from
// server.token_secret), ttl is how long a session lasts.
func (t *Tokens) EnableSessions(key []byte, ttl time.Duration) {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("abgate session v1"))
	t.sess = &sessions{key: m.Sum(nil), now: time.Now}
	t.sess.ttl.Store(int64(ttl))
}

func (s *sessions) mac(label string, b []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(label))
	m.Write(b)
	return m.Sum(nil)
}

// issue makes the cookie value of a new session for e.
func (s *sessions) issue(e tokenEntry) string {
	p := make([]byte, 0, 64)
	p = append(p, sessionVersion)
	p = binary.BigEndian.AppendUint64(p, uint64(s.now().Add(time.Duration(s.ttl.Load())).Unix()))
	var id [12]byte
	_, _ = rand.Read(id[:])
	p = append(p, id[:]...)
	p = append(p, e.hash[:8]...)
	p = append(p, byte(len(e.role)))
	p = append(p, e.role...)
	p = append(p, e.name...)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(p) + "." + enc.EncodeToString(s.mac("cookie", p))
}

// parse verifies a cookie value: its signature, version and expiry.
func (s *sessions) parse(v string) (session, bool) {
	enc := base64.RawURLEncoding
	body, sig, ok := strings.Cut(v, ".")
	if !ok || len(v) > 512 {
		return session{}, false
	}
	p, err1 := enc.DecodeString(body)
	got, err2 := enc.DecodeString(sig)
	if err1 != nil || err2 != nil || !hmac.Equal(got, s.mac("cookie", p)) {
		return session{}, false
	}
	const fixed = 1 + 8 + 12 + 8 + 1
	if len(p) < fixed || p[0] != sessionVersion {
		return session{}, false
	}
	var ss session
	ss.expires = int64(binary.BigEndian.Uint64(p[1:9]))
	copy(ss.id[:], p[9:21])
	copy(ss.hash[:], p[21:29])
	rl := int(p[29])
	if len(p) < fixed+rl {
		return session{}, false
	}
	ss.role = Role(p[fixed : fixed+rl])
	ss.name = string(p[fixed+rl:])
	if s.now().Unix() >= ss.expires {
		return session{}, false
	}
	return ss, true
}

// csrf is the session's CSRF token.
func (s *sessions) csrf(ss session) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("csrf", ss.id[:])[:18])
}

// fromCookie returns the token entry of the request's session, if it has
// a valid one whose token is still configured with the same role.
func (t *Tokens) fromCookie(c *gin.Context) (tokenEntry, session, bool) {
	if t.sess == nil {
		return tokenEntry{}, session{}, false
	}
	ck, err := c.Request.Cookie(sessionCookie)
	if err != nil {
		return tokenEntry{}, session{}, false
	}
	ss, ok := t.sess.parse(ck.Value)
	if !ok {
		return tokenEntry{}, session{}, false
	}
	for _, e := range t.table().entries {
		if e.name == ss.name && e.role == ss.role && subtle.ConstantTimeCompare(e.hash[:8], ss.hash[:]) == 1 {
			return e, ss, true
		}
	}
	return tokenEntry{}, session{}, false
}

// checkCSRF reports whether a cookie-authenticated request may change
// state: safe methods always may; others need the session's CSRF token
// and, if the browser sent an Origin, one naming this host.
func (t *Tokens) checkCSRF(c *gin.Context, ss session) bool {
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	if !sameOrigin(c.Request) {
		return false
	}
	got := c.GetHeader(csrfHeader)
	if got == "" {
		got = c.PostForm(csrfField)
	}
	want := t.sess.csrf(ss)
	return len(got) == len(want) && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// sameOrigin: no Origin header (an older browser, or a same-origin GET),
// or one whose host is the request's.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// wantsPage: a browser navigating (it asks for HTML), who should be sent
// to the sign-in page rather than get a JSON 401.
func wantsPage(c *gin.Context) bool {
	return c.Request.Method == http.MethodGet && strings.Contains(c.GetHeader("Accept"), "text/html")
}

// safeNext keeps a post-sign-in redirect on this site: a path, never a
// scheme or another host ("//evil" or "/\evil" included).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/reports"
	}
	return next
}

func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// RegisterSignIn mounts the browser sign-in: GET and POST /signin, GET and
// POST /signout. Without EnableSessions it mounts nothing.
func (t *Tokens) RegisterSignIn(r gin.IRouter) {
	if t.sess == nil {
		return
	}
	r.GET("/signin", t.signInPage)
	r.POST("/signin", t.signIn)
	r.GET("/signout", t.signOutPage)
	r.POST("/signout", t.signOut)
}

func (t *Tokens) signInPage(c *gin.Context) {
	next := safeNext(c.Query("next"))
	if _, _, ok := t.fromCookie(c); ok {
		c.Redirect(http.StatusSeeOther, next)
		return
	}
	renderSessionPage(c, http.StatusOK, sessionPage{Title: "Sign in", Next: next})
}

func (t *Tokens) signIn(c *gin.Context) {
	next := safeNext(c.PostForm("next"))
	if !sameOrigin(c.Request) {
		renderSessionPage(c, http.StatusForbidden, sessionPage{Title: "Sign in", Next: next, Error: "This sign-in form was sent from another site."})
		return
	}
	e, ok := t.authenticate(strings.TrimSpace(c.PostForm("token")))
	if !ok {
		renderSessionPage(c, http.StatusUnauthorized, sessionPage{Title: "Sign in", Next: next, Error: "That token is not valid."})
		return
	}
	if e.role != RoleViewer && e.role != RoleAdmin {
		renderSessionPage(c, http.StatusForbidden, sessionPage{Title: "Sign in", Next: next,
			Error: "A " + string(e.role) + " token cannot sign in: use a viewer or admin token."})
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: sessionCookie, Value: t.sess.issue(e), Path: "/",
		MaxAge: int(time.Duration(t.sess.ttl.Load()) / time.Second), HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: secureRequest(c.Request),
	})
	c.Redirect(http.StatusSeeOther, next)
}

func (t *Tokens) signOutPage(c *gin.Context) {
	_, ss, ok := t.fromCookie(c)
	if !ok {
		c.Redirect(http.StatusSeeOther, "/signin")
		return
	}
	renderSessionPage(c, http.StatusOK, sessionPage{Title: "Sign out", SignOut: true, CSRF: t.sess.csrf(ss)})
}

func (t *Tokens) signOut(c *gin.Context) {
	if _, ss, ok := t.fromCookie(c); ok && !t.checkCSRF(c, ss) {
		abort(c, newError(http.StatusForbidden, "csrf_failed", "", "sign-out needs the session's CSRF token (csrf_token)"))
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secureRequest(c.Request),
	})
	c.Redirect(http.StatusSeeOther, "/signin")
}

type sessionPage struct {
	Title, Next, Error, CSRF string
	SignOut                  bool
}

// sessionTmpl is self-contained (no script, no external asset), so the
// page works under the reports' strict content security policy.
// Parsed on first use, like pageTemplates.
var sessionTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("session").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} – abgate</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem;color:#1b1f24}
label,input,button{display:block;width:100%;box-sizing:border-box}input{padding:.5rem;margin:.25rem 0 1rem;font:inherit}
button{padding:.6rem;font:inherit;background:#1f6feb;color:#fff;border:0;border-radius:4px;cursor:pointer}
.error{color:#b42318;margin-bottom:1rem}p.hint{color:#57606a;font-size:.9rem}</style></head>
<body><h1>{{.Title}}</h1>
{{if .Error}}<p class="error" id="error" role="alert">{{.Error}}</p>{{end}}
{{if .SignOut}}<form method="post" action="/signout"><input type="hidden" name="csrf_token" value="{{.CSRF}}">
<button type="submit" id="signout">Sign out</button></form>
{{else}}<form method="post" action="/signin"><input type="hidden" name="next" value="{{.Next}}">
<label for="token">API token (viewer or admin)</label>
<input type="password" id="token" name="token" autocomplete="current-password" required autofocus>
<button type="submit" id="signin">Sign in</button></form>
<p class="hint">Your token is exchanged for a session cookie on this site; it is not stored in the browser.</p>{{end}}
</body></html>`))
})

func renderSessionPage(c *gin.Context, status int, p sessionPage) {
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	c.Status(status)
	c.Header("Content-Type", "text/html; charset=utf-8")
	_ = sessionTmpl().Execute(c.Writer, p)
}
