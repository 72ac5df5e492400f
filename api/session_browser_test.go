package api

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"
)

// TestSignInInBrowser: a PM opens a report in headless Chromium, is sent to
// the sign-in page, signs in with a viewer token, reads the report, signs
// out, and is refused (sent back to sign in) afterwards.
func TestSignInInBrowser(t *testing.T) {
	bin := chromiumPath(t)
	gin.SetMode(gin.ReleaseMode)
	h, _ := fixtureServer(t)
	toks := sessionTokens(t)
	eng := gin.New()
	toks.RegisterSignIn(eng)
	h.Register(eng, toks.RequireRead())
	ts := httptest.NewServer(eng)
	defer ts.Close()

	bctx, pl := startBrowser(t, bin)
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	location := func() string {
		t.Helper()
		u, err := chromedp.Run(bctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(u, ts.URL)
	}

	// No session: the report sends the browser to sign in.
	if err := chromedp.Do(bctx, chromedp.Navigate(ts.URL+"/reports/support-bot-ft")); err != nil {
		t.Fatal(err)
	}
	if got := location(); got != "/signin?next=%2Freports%2Fsupport-bot-ft" {
		t.Fatalf("without a session the report went to %q", got)
	}
	// A wrong token: the form says so.
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS("#token"), "not-the-right-token-00"),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#error"))); err != nil {
		t.Fatal(err)
	}
	if got := text("#error"); !strings.Contains(got, "not valid") {
		t.Errorf("error = %q", got)
	}
	pl.mu.Lock()
	pl.errors = nil // the browser logs the expected 401 of the wrong token
	pl.mu.Unlock()
	// The viewer token: back to the report it asked for.
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS("#token"), viewerTok),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#verdict"))); err != nil {
		t.Fatal(err)
	}
	if got := location(); got != "/reports/support-bot-ft" {
		t.Errorf("after sign-in at %q", got)
	}
	if got := text("#verdict .sentence"); !strings.Contains(got, "recommendation: promote") {
		t.Errorf("verdict = %q", got)
	}
	// The cookie is HttpOnly: the page's scripts cannot read it.
	cookies, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.cookie`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cookies, sessionCookie) {
		t.Errorf("document.cookie shows the session: %q", cookies)
	}
	// Sign out, then the report is refused again.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(ts.URL+"/signout"),
		chromedp.Click(chromedp.CSS("#signout")),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.Navigate(ts.URL+"/reports"),
		chromedp.WaitVisible(chromedp.CSS("#token"))); err != nil {
		t.Fatal(err)
	}
	if got := location(); !strings.HasPrefix(got, "/signin") {
		t.Errorf("after sign-out /reports went to %q", got)
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, e := range pl.errors {
		t.Errorf("page error: %s", e)
	}
}
