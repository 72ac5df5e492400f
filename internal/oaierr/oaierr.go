// Package oaierr writes errors in the shape OpenAI's API answers with,
// {"error":{"message":…,"type":…,"param":…,"code":…}}, so SDKs and
// clients that already parse OpenAI errors read abgate's without new
// code. It is the one writer of that shape: the gateway, the API and
// cmd's panic recovery all answer through Write, and bodies that embed
// the error object next to other fields (the admin API's validation
// errors, the feedback batch) embed Error.
//
// It imports only net/http and encoding/json, so any package may use it.
package oaierr

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Types of error. The first three are OpenAI's; Upstream is abgate's own,
// for a model upstream that failed or timed out.
const (
	InvalidRequest = "invalid_request_error"
	Authentication = "authentication_error"
	Server         = "server_error"
	Upstream       = "upstream_error"
	// RateLimit is OpenAI's type for a 429 ("requests": too many of them),
	// which SDKs map to their RateLimitError and retry with backoff.
	RateLimit = "requests"
)

// Error is the error object. Param names the request field at fault;
// nil is sent as null, as OpenAI does.
type Error struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// Body is a whole error response body.
type Body struct {
	Error Error `json:"error"`
}

// New returns an error object; an empty param is null.
func New(typ, code, param, msg string) Error {
	e := Error{Message: msg, Type: typ, Code: code}
	if param != "" {
		e.Param = &param
	}
	return e
}

// TypeFor is the type OpenAI gives an error answered with status:
// authentication_error for 401 and 403, server_error for 5xx,
// invalid_request_error otherwise.
func TypeFor(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Authentication
	case status == http.StatusTooManyRequests:
		return RateLimit
	case status >= 500:
		return Server
	}
	return InvalidRequest
}

// Write answers with status and {"error": e}. Headers the caller set on
// w before are sent too (Allow, Retry-After, the gateway's ids); so is a
// Content-Type it set, else the type is application/json.
func Write(w http.ResponseWriter, status int, e Error) {
	b, _ := json.Marshal(Body{Error: e}) // cannot fail: strings only
	h := w.Header()
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
