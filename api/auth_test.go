package api

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
)

const (
	adminTok    = "admin-token-0123456789"
	viewerTok   = "viewer-token-0123456789"
	feedbackTok = "feedback-token-0123456789"
)

func authRouter(t *testing.T, a experiments.Auth) *gin.Engine {
	t.Helper()
	toks, err := NewTokens(a)
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	ok := func(c *gin.Context) { c.String(200, Actor(c)) }
	r.GET("/read", toks.RequireRead(), ok)
	r.POST("/write", toks.RequireWrite(), ok)
	r.POST("/feedback", toks.RequireFeedback(), ok)
	return r
}

func TestAuthRoles(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte(viewerTok))
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens")
	os.WriteFile(file, []byte("# role name token\nfeedback app-backend "+feedbackTok+"\n\n"), 0o600)
	r := authRouter(t, experiments.Auth{
		Tokens: []experiments.AuthToken{
			{Name: "ops", Role: "admin", Token: adminTok},
			{Name: "pm", Role: "viewer", SHA256: hex.EncodeToString(sum[:])},
		},
		TokensFile: file,
	})
	tests := []struct {
		method, path, token string
		status              int
		body                string
	}{
		{"GET", "/read", "", 401, "missing_api_token"},
		{"GET", "/read", "wrong-token-0123456789", 401, "invalid_api_token"},
		{"GET", "/read", viewerTok, 200, "api:pm"},
		{"GET", "/read", adminTok, 200, "api:ops"},
		{"GET", "/read", feedbackTok, 403, "forbidden"},
		{"POST", "/write", viewerTok, 403, "may not change experiments"},
		{"POST", "/write", feedbackTok, 403, "forbidden"},
		{"POST", "/write", adminTok, 200, "api:ops"},
		{"POST", "/feedback", feedbackTok, 200, "api:app-backend"},
		{"POST", "/feedback", adminTok, 200, "api:ops"},
		{"POST", "/feedback", viewerTok, 403, "may not send feedback"},
		{"POST", "/feedback", "", 401, "missing_api_token"},
	}
	for _, tc := range tests {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("%s %s with %q: %d %s, want %d containing %q", tc.method, tc.path, tc.token, w.Code, w.Body, tc.status, tc.body)
		}
		if tc.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without WWW-Authenticate", tc.method, tc.path)
		}
		if strings.Contains(w.Body.String(), tc.token) && tc.token != "" {
			t.Errorf("response echoes the token: %s", w.Body)
		}
	}
}

func TestAuthOpen(t *testing.T) {
	t.Parallel()
	r := authRouter(t, experiments.Auth{OpenReads: true, OpenFeedback: true,
		Tokens: []experiments.AuthToken{{Name: "ops", Role: "admin", Token: adminTok}}})
	for _, tc := range []struct {
		method, path, token string
		status              int
	}{
		{"GET", "/read", "", 200},
		{"POST", "/feedback", "", 200},
		{"POST", "/write", "", 401},
		{"POST", "/write", adminTok, 200},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, w.Code, tc.status)
		}
	}
}

func TestTokensConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("admin only-two-fields\n"), 0o600)
	for _, tc := range []struct {
		name string
		auth experiments.Auth
		want string
	}{
		{"bad role", experiments.Auth{Tokens: []experiments.AuthToken{{Name: "x", Role: "root", Token: adminTok}}}, "auth.tokens[0]: role"},
		{"short token", experiments.Auth{Tokens: []experiments.AuthToken{{Name: "x", Role: "admin", Token: "short"}}}, "at least 16"},
		{"both", experiments.Auth{Tokens: []experiments.AuthToken{{Name: "x", Role: "admin", Token: adminTok, SHA256: "ab"}}}, "not both"},
		{"bad hash", experiments.Auth{Tokens: []experiments.AuthToken{{Name: "x", Role: "admin", SHA256: "xyz"}}}, "64 hex"},
		{"no name", experiments.Auth{Tokens: []experiments.AuthToken{{Role: "admin", Token: adminTok}}}, "name: required"},
		{"file fields", experiments.Auth{TokensFile: bad}, ":1: want"},
		{"file missing", experiments.Auth{TokensFile: filepath.Join(dir, "nope")}, "auth.tokens_file"},
	} {
		_, err := NewTokens(tc.auth)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), adminTok) {
			t.Errorf("%s: error leaks the token", tc.name)
		}
	}
}

func TestAuthNoTokensRefuses(t *testing.T) {
	t.Parallel()
	r := authRouter(t, experiments.Auth{})
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/read", nil))
	if w.Code != 401 {
		t.Fatalf("status %d", w.Code)
	}
}
