package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/drift"
	"github.com/abgate/abgate/experiments"
)

// Reports serves experiment reports (JSON, HTML) and the planning
// endpoint:
//
//	GET /api/v1/experiments/:id/report  the Report as JSON
//	GET /api/v1/plan                    sample size and duration (see PlanRequest)
//	GET /reports                        index of experiments with their verdicts
//	GET /reports/:id                    the report page
type Reports struct {
	src   ReportSource
	store experiments.Store
	now   func() time.Time
	base  string
	// lookback bounds the hourly series when the period's start is
	// unknown.
	lookback  time.Duration
	drift     *drift.Monitor
	integrity IntegritySource
	shadow    func(experiment string) (ShadowSpend, bool)
}

// ReportsOption configures Reports.
type ReportsOption func(*Reports)

// WithReportsClock replaces time.Now, for tests.
func WithReportsClock(now func() time.Time) ReportsOption {
	return func(h *Reports) { h.now = now }
}

// WithReportsDrift adds the drift section to full reports, from m's
// evaluation at the time of the report.
func WithReportsDrift(m *drift.Monitor) ReportsOption {
	return func(h *Reports) { h.drift = m }
}

// NewReports returns the report handlers. Statistics come from store, the
// experiments and their live state from src.
func NewReports(src ReportSource, store experiments.Store, opts ...ReportsOption) *Reports {
	h := &Reports{src: src, store: store, now: time.Now, lookback: time.Duration(experiments.DefaultRetention)}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Register mounts the routes behind the given middleware (the read-token
// check, in serve).
func (h *Reports) Register(r gin.IRouter, mw ...gin.HandlerFunc) {
	with := func(f gin.HandlerFunc) []gin.HandlerFunc {
		return append(append([]gin.HandlerFunc(nil), mw...), f)
	}
	r.GET("/api/v1/experiments/:id/report", with(h.reportJSON)...)
	r.GET("/api/v1/plan", with(h.plan)...)
	r.GET("/reports", with(h.index)...)
	r.GET("/reports/:id", with(h.page)...)
	h.registerGates(r, mw)
}

// Report builds the report of one experiment now. An unknown experiment
// gives an error wrapping experiments.ErrNotFound.
func (h *Reports) Report(ctx context.Context, id string) (Report, error) {
	exp, ok := h.src.Experiment(id)
	if !ok || exp == nil {
		return Report{}, fmt.Errorf("experiment %q: %w", id, experiments.ErrNotFound)
	}
	return h.build(ctx, exp, true)
}

func (h *Reports) build(ctx context.Context, exp *experiments.Experiment, full bool) (Report, error) {
	now := h.now()
	st, err := h.src.Status(ctx, exp.ID)
	if err != nil {
		return Report{}, fmt.Errorf("status of %q: %w", exp.ID, err)
	}
	period := st.Period
	if period == 0 {
		period = exp.PhaseOrOne()
		st.Period = period
	}
	snap, err := h.store.Summaries(ctx, exp.ID, period)
	if err != nil {
		return Report{}, fmt.Errorf("statistics of %q: %w", exp.ID, err)
	}
	var (
		trans []ReportTransition
		hours []experiments.HourSummaries
	)
	if full {
		if trans, err = h.src.Transitions(ctx, exp.ID); err != nil {
			return Report{}, fmt.Errorf("transitions of %q: %w", exp.ID, err)
		}
		from := st.Started
		if from.IsZero() {
			from = now.Add(-h.lookback)
		}
		if hours, err = h.store.Hourly(ctx, exp.ID, period, from, now.Add(time.Hour)); err != nil {
			return Report{}, fmt.Errorf("hourly statistics of %q: %w", exp.ID, err)
		}
	}
	r := BuildReport(exp, st, trans, snap, hours, now)
	if full && h.drift != nil {
		// Drift is advisory: a failed read leaves the section out rather
		// than failing the report.
		if res, err := h.drift.Evaluate(ctx, exp.ID, now); err == nil {
			psi, alpha := h.drift.Thresholds()
			r.AddDrift(exp, res, psi, alpha)
		}
	}
	h.addIntegrity(&r, full)
	h.addShadowSpend(&r, exp, full)
	return r, nil
}

// reportError maps a report failure to an API error.
func reportError(err error) *apiError {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return newError(http.StatusServiceUnavailable, "timeout", "", "the report took too long; try again")
	case errors.Is(err, experiments.ErrNotFound):
		return newError(http.StatusNotFound, "experiment_not_found", "id", "no experiment has this id")
	}
	// Anything else is the store failing (Redis down, a timeout inside
	// it): say so without its address or error text, which the log keeps
	// (c.Error), and ask the client to come back.
	return newError(http.StatusServiceUnavailable, "store_unavailable", "", "the statistics store is unavailable; try again shortly")
}

// reportFailed records err for the log and returns its answer; a 503
// carries Retry-After.
func reportFailed(c *gin.Context, err error) *apiError {
	_ = c.Error(err)
	e := reportError(err)
	if e.Status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "5")
	}
	return e
}

func (h *Reports) reportJSON(c *gin.Context) {
	r, err := h.Report(c.Request.Context(), c.Param("id"))
	if err != nil {
		abort(c, reportFailed(c, err))
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, r)
}

// pageHeaders forbid every external resource: the pages need none, and a
// gateway often runs without internet.
func pageHeaders(c *gin.Context) {
	c.Header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Referrer-Policy", "no-referrer")
	c.Header("Cache-Control", "no-store")
}

func (h *Reports) page(c *gin.Context) {
	pageHeaders(c)
	r, err := h.Report(c.Request.Context(), c.Param("id"))
	if err != nil {
		e := reportFailed(c, err)
		c.Data(e.Status, "text/html; charset=utf-8", []byte(errorPage(e.Detail.Message, h.base)))
		return
	}
	var b strings.Builder
	if err := renderPage(&b, r, h.base); err != nil {
		_ = c.Error(err)
		c.Data(http.StatusInternalServerError, "text/html; charset=utf-8", []byte(errorPage("could not render the report", h.base)))
		return
	}
	c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(b.String()))
}

func (h *Reports) index(c *gin.Context) {
	pageHeaders(c)
	d := indexData{Generated: fmtTime(h.now())}
	for _, exp := range h.src.Experiments() {
		row := indexRow{ID: exp.ID, Description: exp.Description, URL: h.base + "/reports/" + url.PathEscape(exp.ID)}
		r, err := h.build(c.Request.Context(), exp, false)
		if err != nil {
			_ = c.Error(err)
			row.Status, row.Verdict = "unknown", "The report is unavailable: "+err.Error()
		} else {
			row.Status, row.Verdict = strings.ReplaceAll(r.Status, "_", " "), r.Verdict.Sentence
		}
		d.Rows = append(d.Rows, row)
	}
	var b strings.Builder
	if err := renderIndex(&b, d); err != nil {
		_ = c.Error(err)
		c.Data(http.StatusInternalServerError, "text/html; charset=utf-8", []byte(errorPage("could not render the index", h.base)))
		return
	}
	c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(b.String()))
}

func errorPage(msg, base string) string {
	return `<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Report unavailable</title></head><body><main><h1>Report unavailable</h1><p>` +
		html.EscapeString(msg) + `</p><p><a href="` + html.EscapeString(base) + `/reports">All experiments</a></p></main></body></html>`
}

// ReportError is a failed FetchReport: the server's status and error.
type ReportError struct {
	Status  int
	Code    string
	Message string
}

func (e *ReportError) Error() string {
	return fmt.Sprintf("report: %s (HTTP %d, %s)", e.Message, e.Status, e.Code)
}

// FetchReport gets an experiment's report from an abgate server, for the
// CLI. token, if set, is sent as a bearer token.
func FetchReport(ctx context.Context, serverURL, id, token string) (Report, error) {
	var r Report
	u := strings.TrimSuffix(serverURL, "/") + "/api/v1/experiments/" + url.PathEscape(id) + "/report"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return r, fmt.Errorf("report: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, fmt.Errorf("report: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return r, fmt.Errorf("report: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &ReportError{Status: resp.StatusCode, Code: "http_error", Message: strings.TrimSpace(string(body))}
		var eb errorBody
		if json.Unmarshal(body, &eb) == nil && eb.Error.Message != "" {
			e.Code, e.Message = eb.Error.Code, eb.Error.Message
		}
		if len(e.Message) > 200 {
			e.Message = e.Message[:200]
		}
		return r, e
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("report: decode response: %w", err)
	}
	return r, nil
}
