package oaierr

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		e       Error
		preset  map[string]string // headers the caller set first
		body    string
		ctype   string
		headers map[string]string
	}{
		{
			name:   "param null",
			status: http.StatusNotFound,
			e:      New(InvalidRequest, "unknown_url", "", "unknown endpoint /x"),
			body:   `{"error":{"message":"unknown endpoint /x","type":"invalid_request_error","param":null,"code":"unknown_url"}}`,
			ctype:  "application/json",
		},
		{
			name:   "param named",
			status: http.StatusBadRequest,
			e:      New(InvalidRequest, "model_not_found", "model", "The model `x` does not exist"),
			body:   "{\"error\":{\"message\":\"The model `x` does not exist\",\"type\":\"invalid_request_error\",\"param\":\"model\",\"code\":\"model_not_found\"}}",
			ctype:  "application/json",
		},
		{
			name:    "caller's headers kept",
			status:  http.StatusServiceUnavailable,
			e:       New(Server, "overloaded", "", "retry"),
			preset:  map[string]string{"Retry-After": "1", "Content-Type": "application/json; charset=utf-8"},
			body:    `{"error":{"message":"retry","type":"server_error","param":null,"code":"overloaded"}}`,
			ctype:   "application/json; charset=utf-8",
			headers: map[string]string{"Retry-After": "1"},
		},
		{
			name:   "escaped as encoding/json does",
			status: http.StatusBadGateway,
			e:      New(Upstream, "upstream_unavailable", "", `"<a&b>"`),
			body:   `{"error":{"message":"\"\u003ca\u0026b\u003e\"","type":"upstream_error","param":null,"code":"upstream_unavailable"}}`,
			ctype:  "application/json",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			for k, v := range tc.preset {
				w.Header().Set(k, v)
			}
			Write(w, tc.status, tc.e)
			if w.Code != tc.status {
				t.Errorf("status %d, want %d", w.Code, tc.status)
			}
			if got := w.Body.String(); got != tc.body {
				t.Errorf("body\n got %s\nwant %s", got, tc.body)
			}
			if got := w.Header().Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if got, want := w.Header().Get("Content-Length"), len(tc.body); got != strconv.Itoa(want) {
				t.Errorf("Content-Length %q, want %d", got, want)
			}
			for k, v := range tc.headers {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestTypeFor(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]string{
		400: InvalidRequest, 404: InvalidRequest, 409: InvalidRequest, 413: InvalidRequest,
		401: Authentication, 403: Authentication,
		429: RateLimit, 500: Server, 502: Server, 503: Server,
	} {
		if got := TypeFor(status); got != want {
			t.Errorf("TypeFor(%d) = %q, want %q", status, got, want)
		}
	}
}
