package e2e

import (
	"bytes"
	"context"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments/storetest"
	"github.com/abgate/abgate/internal/fakemodel"
)

// TestReadmeQuickStart runs the README's production quick start as
// written, in bash, from the repository's root, with what a test must
// change and nothing more:
//
//   - step 1's redis-server line is replaced by the test's own
//     redis-server, on a free port, with AOF as the README asks;
//   - the base model and the fine-tune are two simulated models, and
//     FT_URL points at the second (BASE_URL, which the config reads with a
//     default, at the first);
//   - abgate listens on a free port instead of 8080, and headers.txt goes
//     to a temporary directory.
//
// Then a PM signs in with the viewer token and reads the report, as step 7
// says. Every process the script starts is ended when it exits.
func TestReadmeQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the README's commands")
	}
	for _, tool := range []string{"bash", "curl", "openssl", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the quick start needs %s: %v", tool, err)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- quickstart:begin -->\n```sh\n(.*?)```\n<!-- quickstart:end -->").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no quickstart:begin/end block")
	}
	script := string(m[1])

	redis := storetest.StartRedis(t, "--appendonly", "yes")
	base := httptest.NewServer(&fakemodel.Model{Name: "gpt-4o-mini", Quality: 0.5})
	defer base.Close()
	ft := httptest.NewServer(&fakemodel.Model{Name: "support-ft", Quality: 0.6})
	defer ft.Close()
	port := freePort(t)
	tmp := t.TempDir()

	redisLine := regexp.MustCompile(`(?m)^mkdir -p ~/abgate-redis && redis-server .*$`)
	if !redisLine.MatchString(script) {
		t.Fatal("the quick start no longer starts redis-server as the test expects: update the test with the README")
	}
	script = redisLine.ReplaceAllString(script, "# (the test's redis-server stands in)")
	for old, new := range map[string]string{
		"export FT_URL=http://127.0.0.1:8000": "export FT_URL=" + ft.URL,
		"localhost:8080":                      "localhost:" + strconv.Itoa(port),
		"headers.txt":                         filepath.Join(tmp, "headers.txt"),
	} {
		if !strings.Contains(script, old) {
			t.Fatalf("the quick start no longer contains %q: update the test with the README", old)
		}
		script = strings.ReplaceAll(script, old, new)
	}
	url := "http://localhost:" + strconv.Itoa(port)
	full := "set -euo pipefail\n" +
		"trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" +
		"export REDIS_ADDR=" + redis.Addr + " ABGATE_LISTEN=127.0.0.1:" + strconv.Itoa(port) + " BASE_URL=" + base.URL + "\n" +
		script +
		"\n# Step 7: the PM signs in with the viewer token and reads the report.\n" +
		"curl -sf -c " + filepath.Join(tmp, "cookies") + " -o /dev/null --data-urlencode \"token=$ABGATE_VIEWER_TOKEN\" -d next=/reports/support-ft " + url + "/signin\n" +
		"curl -sf -b " + filepath.Join(tmp, "cookies") + " " + url + "/reports/support-ft | grep -o '<title>[^<]*</title>'\n"

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", full)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "HOME="+tmp)
	cmd.WaitDelay = 10 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("the quick start failed: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	s := out.String()
	headers, _ := os.ReadFile(filepath.Join(tmp, "headers.txt"))
	for _, check := range []struct{ what, in, want string }{
		{"validate", s, "examples/quickstart.yaml: ok"},
		{"the model's answer", s, `"choices"`},
		{"the variant header", string(headers), "X-Abgate-Variant: "},
		{"the feedback answer", s, `"accepted":1`},
		{"experiments list", s, "support-ft"},
		{"experiments list status", s, "running"},
		{"the report, after sign-in", s, "<title>support-ft"},
	} {
		if !strings.Contains(check.in, check.want) {
			t.Errorf("%s: no %q in\n%s\nstderr:\n%s", check.what, check.want, check.in, errb.String())
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
