// Package api serves abgate's HTTP API besides the proxy: feedback from
// applications (/v1/feedback), the admin API (/api/v1: experiments,
// lifecycle commands, definitions, plans, exports) and the reports PMs
// read (/reports). It presents what the services decide and hands
// commands to them; it does not proxy model traffic (gateway does).
package api

import (
	"github.com/gin-gonic/gin"
)

// errorBody is OpenAI's error shape, so clients that already parse
// OpenAI errors read ours without new code.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// apiError is a client-facing failure: an HTTP status and the error body.
type apiError struct {
	Status int
	Detail errorDetail
}

func (e *apiError) Error() string { return e.Detail.Message }

func newError(status int, code, param, msg string) *apiError {
	typ := "invalid_request_error"
	switch {
	case status == 401 || status == 403:
		typ = "authentication_error"
	case status >= 500:
		typ = "server_error"
	}
	d := errorDetail{Message: msg, Type: typ, Code: code}
	if param != "" {
		d.Param = &param
	}
	return &apiError{Status: status, Detail: d}
}

func abort(c *gin.Context, e *apiError) {
	c.AbortWithStatusJSON(e.Status, errorBody{Error: e.Detail})
}
