package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
)

// maxExportRecords bounds one export response; page with since.
const maxExportRecords = 100_000

// FeedbackExport serves the feedback log of an experiment for retraining:
//
//	GET /api/v1/experiments/:id/feedback.jsonl[?since=RFC3339][&metric=correction,rating][&limit=N]
//
// One JSON object per line (ExportRecord), oldest first. Ratings,
// corrections and every other feedback signal are exported with the
// request id of the response they are about, its variant and the time;
// free text (comment, correction_text) only for experiments that opt in
// with feedback_text, and only until its retention ends.
type FeedbackExport struct {
	log    experiments.FeedbackLog
	lookup ExperimentLookup
}

// NewFeedbackExport returns the export handler over a store's feedback
// log (memstore and redisstore implement experiments.FeedbackLog).
func NewFeedbackExport(log experiments.FeedbackLog, lookup ExperimentLookup) *FeedbackExport {
	return &FeedbackExport{log: log, lookup: lookup}
}

// Register mounts the route behind the given middleware: the admin
// role's check (the export can hold users' own words; cmd/abgate and the
// OpenAPI document say admin).
func (f *FeedbackExport) Register(r gin.IRouter, mw ...gin.HandlerFunc) {
	r.GET("/api/v1/experiments/:id/feedback.jsonl", append(append([]gin.HandlerFunc(nil), mw...), f.export)...)
}

// ExportRecord is one line of the export.
type ExportRecord struct {
	Experiment     string    `json:"experiment"`
	RequestID      string    `json:"request_id"`
	EventID        string    `json:"event_id,omitempty"`
	Variant        string    `json:"variant"`
	VariantIndex   int       `json:"variant_index"`
	Metric         string    `json:"metric"`
	Value          float64   `json:"value"`
	At             time.Time `json:"at"`
	Comment        string    `json:"comment,omitempty"`
	CorrectionText string    `json:"correction_text,omitempty"`
}

func (f *FeedbackExport) export(c *gin.Context) {
	id := c.Param("id")
	exp := f.lookup(id)
	if exp == nil {
		abort(c, newError(http.StatusNotFound, "experiment_not_found", "id", fmt.Sprintf("no experiment %q", id)))
		return
	}
	var since time.Time
	if s := c.Query("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			abort(c, newError(http.StatusBadRequest, "invalid_value", "since", "since must be an RFC 3339 time, e.g. 2026-11-20T00:00:00Z"))
			return
		}
		since = t
	}
	limit := maxExportRecords
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxExportRecords {
			abort(c, newError(http.StatusBadRequest, "invalid_value", "limit", fmt.Sprintf("limit must be 1..%d", maxExportRecords)))
			return
		}
		limit = n
	}
	var metrics map[string]bool
	if s := c.Query("metric"); s != "" {
		metrics = map[string]bool{}
		for _, m := range strings.Split(s, ",") {
			metrics[strings.TrimSpace(m)] = true
		}
	}
	recs, err := f.log.FeedbackRecords(c.Request.Context(), exp.ID, since, 0)
	if err != nil {
		abort(c, newError(http.StatusServiceUnavailable, "store_unavailable", "", "the feedback log can't be read right now; retry"))
		return
	}
	c.Header("Content-Type", "application/x-ndjson; charset=utf-8")
	c.Status(http.StatusOK)
	w := bufio.NewWriter(c.Writer)
	enc := json.NewEncoder(w)
	n := 0
	for _, r := range recs {
		if metrics != nil && !metrics[r.Metric] {
			continue
		}
		if n == limit {
			break
		}
		name := ""
		if r.Variant >= 0 && r.Variant < len(exp.Variants) {
			name = exp.Variants[r.Variant].Name
		}
		line := ExportRecord{
			Experiment: exp.ID, RequestID: r.RequestID, EventID: r.EventID, Variant: name, VariantIndex: r.Variant,
			Metric: r.Metric, Value: r.Value, At: r.At.UTC(), Comment: r.Comment, CorrectionText: r.CorrectionText,
		}
		if !exp.FeedbackText {
			// Opt-in withdrawn: stored text is no longer handed out.
			line.Comment, line.CorrectionText = "", ""
		}
		if err := enc.Encode(line); err != nil {
			return // the client went away
		}
		n++
	}
	_ = w.Flush()
}
