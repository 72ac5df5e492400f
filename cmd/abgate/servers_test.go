package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/internal/oaierr"
)

// TestRecovery: a handler panic is a logged 500 in OpenAI's error shape;
// http.ErrAbortHandler goes on up to net/http, which drops the
// connection quietly.
func TestRecovery(t *testing.T) {
	t.Parallel()
	a := &app{log: slog.New(slog.DiscardHandler)}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(a.recovery())
	e.GET("/boom", func(*gin.Context) { panic("boom") })
	e.GET("/abort", func(*gin.Context) { panic(http.ErrAbortHandler) })

	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/boom", nil))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", w.Code)
	}
	var b oaierr.Body
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	if b.Error.Code != "internal_error" || b.Error.Type != oaierr.Server || b.Error.Message != "internal error" || b.Error.Param != nil {
		t.Errorf("error %+v", b.Error)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}

	func() {
		defer func() {
			if r := recover(); r != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler re-panicked", r)
			}
		}()
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/abort", nil))
	}()
}
