package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/internal/fakemodel"
)

// TestMetricsEndpoint: serve exposes /metrics on the admin listener,
// counting proxied requests by experiment and variant, open by default and
// behind a viewer token with auth.protect_metrics.
func TestMetricsEndpoint(t *testing.T) {
	up := httptest.NewServer(&fakemodel.Model{Chunks: 2})
	defer up.Close()
	for _, protect := range []bool{false, true} {
		cfg := serveConfig(t, up.URL, func(c *experiments.Config) {
			c.Auth = experiments.Auth{ProtectMetrics: protect, Tokens: []experiments.AuthToken{
				{Name: "pm", Role: "viewer", Token: experiments.Secret("viewer-token-0123456789")}}}
		})
		_, urls, stop := startServe(t, cfg)
		url := urls[0]
		waitReady(t, url)
		for _, user := range []string{"u1", "u2", "u3"} {
			resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"a","user":"`+user+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		get := func(token string) (int, string) {
			req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		code, body := get("")
		if protect {
			if code != http.StatusUnauthorized {
				t.Errorf("protected /metrics without a token: %d", code)
			}
			code, body = get("viewer-token-0123456789")
		}
		if code != 200 || !strings.Contains(body, `abgate_requests_total{abgate_experiment="e"`) ||
			!strings.Contains(body, "gen_ai_client_operation_duration_seconds_bucket") ||
			!strings.Contains(body, "abgate_controller_leader") {
			t.Errorf("protect=%v: /metrics %d:\n%s", protect, code, body)
		}
		if strings.Contains(body, `"u1"`) || strings.Contains(body, "=\"u1\"") {
			t.Error("a user id reached a metric label")
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUnroutedInOpenAIShape: serve's own engines answer unknown paths and
// wrong methods with OpenAI-shaped JSON on both listeners.
func TestUnroutedInOpenAIShape(t *testing.T) {
	cfg := serveConfig(t, "http://127.0.0.1:9", func(c *experiments.Config) { c.Server.AdminListen = "localhost:0" })
	_, urls, stop := startServe(t, cfg)
	defer stop()
	for i, url := range urls {
		waitReady(t, url)
		cases := []struct{ method, path, code string }{
			{http.MethodGet, "/v1/nope", `"code":"unknown_url"`},
			{http.MethodDelete, "/healthz", `"code":"method_not_allowed"`},
		}
		if i == 0 { // the proxy listener, with the admin side elsewhere
			cases = append(cases, struct{ method, path, code string }{http.MethodPost, "/v1/feedback", `"code":"wrong_listener"`},
				struct{ method, path, code string }{http.MethodGet, "/api/v1/experiments", `"code":"wrong_listener"`},
				struct{ method, path, code string }{http.MethodGet, "/reports/e", `"code":"wrong_listener"`})
		}
		for _, tc := range cases {
			req, _ := http.NewRequest(tc.method, url+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !strings.Contains(string(b), tc.code) {
				t.Errorf("listener %d %s %s: %d %s %s", i, tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
		}
	}
}
