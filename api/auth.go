package api

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
)

// Role is what a token may do.
type Role string

const (
	// RoleAdmin changes experiments and may do everything else.
	RoleAdmin Role = "admin"
	// RoleViewer reads experiments, transitions and reports.
	RoleViewer Role = "viewer"
	// RoleFeedback may only send feedback.
	RoleFeedback Role = "feedback"
)

func (r Role) valid() bool { return r == RoleAdmin || r == RoleViewer || r == RoleFeedback }

// actorKey is the gin context key holding the authenticated token's name,
// which transitions record as "api:<name>".
const actorKey = "abgate.actor"

// Actor returns who made the request, for the audit trail.
func Actor(c *gin.Context) string {
	if name := c.GetString(actorKey); name != "" {
		return "api:" + name
	}
	return "api:anonymous"
}

type tokenEntry struct {
	name string
	role Role
	hash [sha256.Size]byte
}

// Tokens authenticates bearer tokens. Only SHA-256 hashes are kept, so a
// heap dump or a log of this value reveals no token. Update swaps the
// whole table at once (a config reload), so a request sees the old table
// or the new one, never a mix.
type Tokens struct {
	tab  atomic.Pointer[tokenTable]
	sess *sessions // nil: no browser sign-in (see EnableSessions)
}

// tokenTable is one config's auth section, ready to check against.
type tokenTable struct {
	entries      []tokenEntry
	openReads    bool
	openFeedback bool
}

// NewTokens builds the token table from the config: inline tokens, then
// the tokens file. A config with no tokens at all gives a table that
// refuses every request, except reads or feedback that are opened
// explicitly.
func NewTokens(a experiments.Auth) (*Tokens, error) {
	t := &Tokens{}
	if err := t.Update(a); err != nil {
		return nil, err
	}
	return t, nil
}

// Update replaces the tokens and the open_reads / open_feedback switches
// with a's (a config reload), or changes nothing and says why. Sessions
// made from a token that is gone end with it (see EnableSessions).
func (t *Tokens) Update(a experiments.Auth) error {
	tab, err := newTokenTable(a)
	if err != nil {
		return err
	}
	t.tab.Store(tab)
	if t.sess != nil && a.SessionTTL > 0 {
		t.sess.ttl.Store(int64(a.SessionTTL))
	}
	return nil
}

func (t *Tokens) table() *tokenTable { return t.tab.Load() }

func newTokenTable(a experiments.Auth) (*tokenTable, error) {
	t := &tokenTable{openReads: a.OpenReads, openFeedback: a.OpenFeedback}
	for i, tok := range a.Tokens {
		field := fmt.Sprintf("auth.tokens[%d]", i)
		if err := t.add(tok.Name, Role(tok.Role), tok.Token.Reveal(), tok.SHA256); err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
	}
	if a.TokensFile != "" {
		if err := t.loadFile(a.TokensFile); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *tokenTable) add(name string, role Role, token, sha string) error {
	if name == "" {
		return fmt.Errorf("name: required")
	}
	if !role.valid() {
		return fmt.Errorf("role: must be admin, viewer or feedback, got %q", role)
	}
	e := tokenEntry{name: name, role: role}
	switch {
	case token != "" && sha != "":
		return fmt.Errorf("give either token or sha256, not both")
	case token != "":
		if len(token) < 16 {
			return fmt.Errorf("token: must be at least 16 characters")
		}
		e.hash = sha256.Sum256([]byte(token))
	case sha != "":
		b, err := hex.DecodeString(strings.TrimPrefix(sha, "sha256:"))
		if err != nil || len(b) != sha256.Size {
			return fmt.Errorf("sha256: must be 64 hex digits")
		}
		copy(e.hash[:], b)
	default:
		return fmt.Errorf("token or sha256: required")
	}
	t.entries = append(t.entries, e)
	return nil
}

func (t *tokenTable) loadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("auth.tokens_file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 3 {
			// The line may hold a token: never quote it back.
			return fmt.Errorf("auth.tokens_file %s:%d: want \"<role> <name> <token or sha256:hex>\", got %d fields", path, line, len(fields))
		}
		var token, sha string
		if strings.HasPrefix(fields[2], "sha256:") {
			sha = fields[2]
		} else {
			token = fields[2]
		}
		if err := t.add(fields[1], Role(fields[0]), token, sha); err != nil {
			return fmt.Errorf("auth.tokens_file %s:%d: %w", path, line, err)
		}
	}
	return sc.Err()
}

// Empty reports whether no token is configured.
func (t *Tokens) Empty() bool { return len(t.table().entries) == 0 }

// authenticate finds the token's entry. Every entry is compared, in
// constant time, so the time taken says nothing about which one matched.
func (t *Tokens) authenticate(bearer string) (tokenEntry, bool) {
	h := sha256.Sum256([]byte(bearer))
	var found tokenEntry
	ok := 0
	for _, e := range t.table().entries {
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) == 1 {
			found, ok = e, 1
		}
	}
	return found, ok == 1
}

// access is what a route needs.
type access int

const (
	accessRead     access = iota // viewer or admin (open with OpenReads)
	accessWrite                  // admin
	accessFeedback               // feedback or admin (open with OpenFeedback)
)

// require returns middleware that lets a request through only with a
// token allowed the access: 401 without a valid token, 403 with a token
// of the wrong role.
func (t *Tokens) require(a access) gin.HandlerFunc {
	return func(c *gin.Context) {
		if tab := t.table(); (a == accessRead && tab.openReads) || (a == accessFeedback && tab.openFeedback) {
			if e, ok := t.bearer(c); ok {
				c.Set(actorKey, e.name)
			}
			c.Next()
			return
		}
		auth := c.GetHeader("Authorization")
		if auth == "" {
			if e, ss, ok := t.fromCookie(c); ok {
				if !t.checkCSRF(c, ss) {
					abort(c, newError(http.StatusForbidden, "csrf_failed", "",
						"a request signed in by session cookie that changes state needs the session's CSRF token (X-CSRF-Token)"))
					return
				}
				t.admit(c, e, a)
				return
			}
			if t.sess != nil && wantsPage(c) {
				c.Redirect(http.StatusSeeOther, "/signin?next="+url.QueryEscape(c.Request.URL.RequestURI()))
				c.Abort()
				return
			}
			c.Header("WWW-Authenticate", `Bearer realm="abgate"`)
			abort(c, newError(http.StatusUnauthorized, "missing_api_token", "",
				"this endpoint needs an API token: send \"Authorization: Bearer <token>\""))
			return
		}
		e, ok := t.bearer(c)
		if !ok {
			c.Header("WWW-Authenticate", `Bearer realm="abgate", error="invalid_token"`)
			abort(c, newError(http.StatusUnauthorized, "invalid_api_token", "", "the API token is not valid"))
			return
		}
		t.admit(c, e, a)
	}
}

// admit lets an authenticated request through if its role allows a.
func (t *Tokens) admit(c *gin.Context, e tokenEntry, a access) {
	if !allowed(e.role, a) {
		abort(c, newError(http.StatusForbidden, "forbidden", "",
			fmt.Sprintf("a %s token may not %s", e.role, a.verb())))
		return
	}
	c.Set(actorKey, e.name)
	c.Next()
}

func (t *Tokens) bearer(c *gin.Context) (tokenEntry, bool) {
	// The scheme is case-insensitive (RFC 9110 section 11.1): "bearer" too.
	scheme, token, ok := strings.Cut(c.GetHeader("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return tokenEntry{}, false
	}
	return t.authenticate(token)
}

func allowed(r Role, a access) bool {
	switch a {
	case accessRead:
		return r == RoleAdmin || r == RoleViewer
	case accessWrite:
		return r == RoleAdmin
	case accessFeedback:
		return r == RoleAdmin || r == RoleFeedback
	}
	return false
}

func (a access) verb() string {
	switch a {
	case accessRead:
		return "read experiments or reports"
	case accessWrite:
		return "change experiments"
	}
	return "send feedback"
}

// RequireRead, RequireWrite and RequireFeedback are the middleware for
// the three kinds of route.
func (t *Tokens) RequireRead() gin.HandlerFunc     { return t.require(accessRead) }
func (t *Tokens) RequireWrite() gin.HandlerFunc    { return t.require(accessWrite) }
func (t *Tokens) RequireFeedback() gin.HandlerFunc { return t.require(accessFeedback) }
