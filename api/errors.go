// Package api serves abgate's HTTP API besides the proxy: feedback from
// applications (/v1/feedback), the admin API (/api/v1: experiments,
// lifecycle commands, definitions, plans, exports) and the reports PMs
// read (/reports). It presents what the services decide and hands
// commands to them; it does not proxy model traffic (gateway does).
package api

import (
	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/internal/oaierr"
)

// errorBody is an OpenAI-style error body, as the API answers and as
// its clients (FetchReport) read it; errorDetail is its error object,
// which some answers carry next to other fields (validation errors, the
// feedback batch). Both are oaierr's: the shape has one home.
type (
	errorBody   = oaierr.Body
	errorDetail = oaierr.Error
)

// apiError is a client-facing failure: an HTTP status and the error body.
type apiError struct {
	Status int
	Detail errorDetail
}

func (e *apiError) Error() string { return e.Detail.Message }

func newError(status int, code, param, msg string) *apiError {
	return &apiError{Status: status, Detail: oaierr.New(oaierr.TypeFor(status), code, param, msg)}
}

// jsonContentType is what gin's c.JSON sends, so the API's errors carry
// the same Content-Type as its answers.
const jsonContentType = "application/json; charset=utf-8"

func abort(c *gin.Context, e *apiError) {
	c.Abort()
	c.Header("Content-Type", jsonContentType)
	oaierr.Write(c.Writer, e.Status, e.Detail)
}
