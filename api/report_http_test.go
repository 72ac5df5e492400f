package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
)

func reportEngine(h *Reports) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	eng := gin.New()
	h.Register(eng)
	return eng
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w
}

func TestReportHandlers(t *testing.T) {
	t.Parallel()
	h, _ := fixtureServer(t)
	eng := reportEngine(h)

	tests := []struct {
		name, path string
		status     int
		ctype      string
		want       []string
		not        []string
	}{
		{"json", "/api/v1/experiments/support-bot-ft/report", 200, "application/json", []string{`"verdict":{"kind":"promote"`, `"hourly":[{"hour":"2026-11-20T00:00:00Z"`}, nil},
		{"json unknown", "/api/v1/experiments/nope/report", 404, "application/json", []string{`"code":"experiment_not_found"`, `"param":"id"`}, nil},
		{"page", "/reports/support-bot-ft", 200, "text/html", []string{`<meta http-equiv="refresh" content="30">`, `id="lift-chart"`, `id="traffic-chart"`, "raises the thumbs-up rate by", "Audit trail", "alice@example.com"}, []string{"<script", "http://", "https://"}},
		{"page of a draft", "/reports/summaries-v3", 200, "text/html", []string{"No data yet: the experiment has not started", "No hourly data yet."}, []string{"<svg"}},
		{"page unknown", "/reports/nope", 404, "text/html", []string{"no experiment has this id"}, nil},
		{"index", "/reports", 200, "text/html", []string{`href="/reports/support-bot-ft"`, `href="/reports/summaries-v3"`, "recommendation: promote", "No data yet"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := get(t, eng, tc.path)
			body := w.Body.String()
			if w.Code != tc.status || !strings.HasPrefix(w.Header().Get("Content-Type"), tc.ctype) {
				t.Fatalf("%s: %d %s\n%s", tc.path, w.Code, w.Header().Get("Content-Type"), body)
			}
			for _, s := range tc.want {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %q", s)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(body, s) {
					t.Errorf("body has %q", s)
				}
			}
			if tc.ctype == "text/html" && !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'none'") {
				t.Errorf("no CSP: %q", w.Header().Get("Content-Security-Policy"))
			}
		})
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	t.Parallel()
	h, _ := fixtureServer(t)
	w := get(t, reportEngine(h), "/api/v1/experiments/support-bot-ft/report")
	var got Report
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want, err := h.Report(context.Background(), "support-bot-ft")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	if string(a) != string(b) {
		t.Error("the JSON report does not round-trip")
	}
	if len(got.Hourly) != 72 || len(got.Transitions) != 3 || got.Transitions[1].Verdict != "advance" || got.Transitions[1].Decision != nil {
		t.Errorf("hourly %d, transitions %+v", len(got.Hourly), got.Transitions)
	}
}

// An ended experiment's page stops refreshing.
func TestReportPageStopsRefreshing(t *testing.T) {
	t.Parallel()
	h, _ := fixtureServer(t)
	src := h.src.(*fakeSource)
	st := src.status["support-bot-ft"]
	st.Status, st.Ended = "promoted", reportT0.Add(72*60*60*1e9)
	src.status["support-bot-ft"] = st
	body := get(t, reportEngine(h), "/reports/support-bot-ft").Body.String()
	if strings.Contains(body, `http-equiv="refresh"`) {
		t.Error("an ended experiment's page still refreshes")
	}
	if !strings.Contains(body, "promoted, period 1, since 2026-11-20 00:00 UTC, ended 2026-11-23 00:00 UTC") {
		t.Error("status line lacks the end")
	}
}

type failingStore struct{ experiments.Store }

func (failingStore) Summaries(context.Context, string, int) (experiments.Snapshot, error) {
	return experiments.Snapshot{}, errors.New("redis: connection refused")
}

func TestReportStoreError(t *testing.T) {
	t.Parallel()
	h, _ := fixtureServer(t)
	h.store = failingStore{}
	eng := reportEngine(h)
	// 503 with Retry-After, and nothing of the store's own error (its
	// address, its wording) reaches the client: the log has it.
	w := get(t, eng, "/api/v1/experiments/support-bot-ft/report")
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), `"store_unavailable"`) || strings.Contains(w.Body.String(), "connection refused") {
		t.Errorf("%d %v %s", w.Code, w.Header(), w.Body)
	}
	// The index still lists every experiment.
	w = get(t, eng, "/reports")
	if w.Code != 200 || strings.Count(w.Body.String(), "The report is unavailable") != 2 {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}

func TestFetchReport(t *testing.T) {
	t.Parallel()
	h, _ := fixtureServer(t)
	var auth string
	eng := reportEngine(h)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		eng.ServeHTTP(w, r)
	}))
	defer ts.Close()

	r, err := FetchReport(context.Background(), ts.URL+"/", "support-bot-ft", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if r.Verdict.Kind != VerdictPromote || auth != "Bearer s3cret" {
		t.Errorf("verdict %q auth %q", r.Verdict.Kind, auth)
	}
	var sb strings.Builder
	if err := RenderText(&sb, r); err != nil || !strings.Contains(sb.String(), "VERDICT") {
		t.Errorf("render fetched report: %v", err)
	}

	_, err = FetchReport(context.Background(), ts.URL, "nope", "")
	var re *ReportError
	if !errors.As(err, &re) || re.Status != 404 || re.Code != "experiment_not_found" {
		t.Errorf("unknown experiment: %v", err)
	}

	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "upstream down")
	}))
	defer plain.Close()
	if _, err = FetchReport(context.Background(), plain.URL, "x", ""); !errors.As(err, &re) || re.Status != 502 || re.Message != "upstream down" {
		t.Errorf("non-JSON error: %v", err)
	}
}
