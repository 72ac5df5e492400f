package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.Write([]byte(`{"status":"ok"}`))
		case "/readyz":
			// A replica that is shutting down.
			http.Error(w, `{"status":"shutting down"}`, http.StatusServiceUnavailable)
		case "/moved":
			http.Redirect(w, r, "/healthz", http.StatusFound)
		case "/slow":
			time.Sleep(500 * time.Millisecond)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close) // not defer: the subtests run in parallel, after this returns

	// A port nobody listens on: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/healthz"
	ln.Close()

	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // in stdout (exit 0) or stderr
	}{
		{"healthy", []string{"--url", srv.URL + "/healthz"}, 0, "200 OK"},
		{"not ready", []string{"--url", srv.URL + "/readyz"}, 1, "503"},
		{"not found", []string{"--url", srv.URL + "/nope"}, 1, "404"},
		{"redirect is not health", []string{"--url", srv.URL + "/moved"}, 1, "302"},
		{"timeout", []string{"--url", srv.URL + "/slow", "--timeout", "100ms"}, 1, "deadline exceeded"},
		{"refused", []string{"--url", closed}, 1, "refused"},
		{"bad url", []string{"--url", "127.0.0.1:8081/healthz"}, 2, "absolute http"},
		{"bad timeout", []string{"--url", srv.URL + "/healthz", "--timeout", "0s"}, 2, "--timeout"},
		{"extra argument", []string{"now"}, 2, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"healthcheck"}, tc.args...), &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, tc.code, out.String(), errb.String())
			}
			got := errb.String()
			if code == 0 {
				got = out.String()
			}
			if !strings.Contains(got, tc.out) {
				t.Fatalf("output %q does not contain %q", got, tc.out)
			}
		})
	}
}

// The default URL is the admin listener's /healthz on loopback, the
// address the image's HEALTHCHECK relies on.
func TestHealthcheckDefaultURL(t *testing.T) {
	t.Parallel()
	var errb bytes.Buffer
	run(context.Background(), []string{"healthcheck", "-h"}, &bytes.Buffer{}, &errb)
	if !strings.Contains(errb.String(), "http://127.0.0.1:8081/healthz") {
		t.Fatalf("usage does not show the default URL:\n%s", errb.String())
	}
}
