package api

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"
)

// chromiumPath finds the browser, or skips the test; with
// ABGATE_REQUIRE_BROWSER=1 (CI installs chromium) a missing browser fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("ABGATE_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("ABGATE_REQUIRE_BROWSER") == "1" {
		t.Fatal("chromium is not installed and ABGATE_REQUIRE_BROWSER=1 (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed: skipping the browser test (set ABGATE_REQUIRE_BROWSER=1 to make this a failure)")
	return ""
}

// artifactDir is where test artifacts go: $ABGATE_ARTIFACTS, or the
// repository's artifacts/ (gitignored).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ABGATE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pageLog collects what the page did: console errors, exceptions, browser
// log errors, and the URL of every request.
type pageLog struct {
	mu       sync.Mutex
	errors   []string
	requests []string
}

func (l *pageLog) listen(ev any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value))
			}
			l.errors = append(l.errors, "console."+string(ev.Type)+": "+strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		l.errors = append(l.errors, "exception: "+ev.ExceptionDetails.Text)
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
			l.errors = append(l.errors, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
		}
	case *network.EventRequestWillBeSent:
		l.requests = append(l.requests, ev.Request.URL)
	}
}

// startBrowser starts a headless Chromium with a fresh profile and no
// background networking, listening to what its page does. It stops when
// the test ends.
func startBrowser(t *testing.T, bin string) (context.Context, *pageLog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()), // a fresh profile
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1280, 1000),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)

	pl := &pageLog{}
	if err := chromedp.Listen(bctx, pl.listen); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx, pl
}

func TestReportPageInBrowser(t *testing.T) {
	bin := chromiumPath(t)
	gin.SetMode(gin.ReleaseMode)
	h, _ := fixtureServer(t)
	eng := gin.New()
	h.Register(eng)
	ts := httptest.NewServer(eng) // listens on 127.0.0.1
	defer ts.Close()

	bctx, pl := startBrowser(t, bin)
	dir := artifactDir(t)
	shoot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
	eval := func(js string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return s
	}

	// The report page.
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1280, 1000), chromedp.Navigate(ts.URL+"/reports/support-bot-ft")); err != nil {
		t.Fatalf("load the report: %v", err)
	}
	if got := eval(`document.querySelector("#verdict .sentence").textContent`); !strings.Contains(got, `Candidate "fine-tuned" raises the thumbs-up rate by`) || !strings.Contains(got, "recommendation: promote") {
		t.Errorf("verdict = %q", got)
	}
	for _, q := range []struct{ js, want string }{
		{`String(document.querySelectorAll("svg#lift-chart polyline").length)`, "1"},
		{`String(document.querySelectorAll("svg#lift-chart polygon").length)`, "1"},
		{`String(document.querySelectorAll("svg#traffic-chart polyline").length)`, "2"},
		{`String(document.querySelector("svg#lift-chart").getBoundingClientRect().width > 600)`, "true"},
		{`String(document.querySelectorAll("table").length >= 6)`, "true"},
		{`document.querySelector('meta[http-equiv="refresh"]').content`, "30"},
		{`document.title`, "support-bot-ft – experiment report"},
		// Issue 15: money, the glossary, and every glossary link lands on
		// an entry.
		{`String(document.querySelector("#money li").textContent.startsWith('Switching everyone to "fine-tuned"'))`, "true"},
		{`String(document.querySelectorAll("dl.glossary dt").length >= 10)`, "true"},
		{`String([...document.querySelectorAll('a[href^="#g-"]')].length >= 6)`, "true"},
		{`String([...document.querySelectorAll('a[href^="#g-"]')].every(a => document.getElementById(a.getAttribute("href").slice(1)) !== null))`, "true"},
		{`String(!document.body.textContent.includes("e-0"))`, "true"},
	} {
		if got := eval(q.js); got != q.want {
			t.Errorf("%s = %q, want %q", q.js, got, q.want)
		}
	}
	shoot("report.png")

	// Narrow screens: nothing wider than the viewport but the scrolling
	// tables.
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(390, 844), chromedp.Reload()); err != nil {
		t.Fatalf("reload narrow: %v", err)
	}
	if got := eval(`String(document.documentElement.scrollWidth <= 390)`); got != "true" {
		t.Errorf("the page scrolls sideways on a 390px screen")
	}
	shoot("report-mobile.png")

	// The index.
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(ts.URL+"/reports")); err != nil {
		t.Fatalf("load the index: %v", err)
	}
	if got := eval(`document.querySelector("tbody").textContent`); !strings.Contains(got, "support-bot-ft") || !strings.Contains(got, "No data yet") {
		t.Errorf("index = %q", got)
	}
	shoot("reports-index.png")

	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, e := range pl.errors {
		t.Errorf("page error: %s", e)
	}
	if len(pl.requests) == 0 {
		t.Error("saw no request: the network listener is not working")
	}
	for _, r := range pl.requests {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "data" && u.Hostname() != "127.0.0.1") {
			t.Errorf("request to another host: %s", r)
		}
	}
}
