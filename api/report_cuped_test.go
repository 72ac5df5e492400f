package api

import (
	"bytes"
	"encoding/json"
	"html"
	"strings"
	"testing"
)

// TestReportCUPED: a candidate row whose lift Decide adjusted with CUPED
// carries the variance removed and the extra users, and every renderer
// says it under the metric's table; rows without it say nothing.
func TestReportCUPED(t *testing.T) {
	t.Parallel()
	r := fixtureReport(t)
	if len(r.Metrics) == 0 || len(r.Metrics[0].Rows) < 2 {
		t.Fatalf("fixture has no candidate row: %+v", r.Metrics)
	}
	for name, render := range map[string]func(*bytes.Buffer, Report) error{
		"text": func(b *bytes.Buffer, r Report) error { return RenderText(b, r) },
		"md":   func(b *bytes.Buffer, r Report) error { return RenderMarkdown(b, r) },
		"html": func(b *bytes.Buffer, r Report) error { return renderPage(b, r, "") },
	} {
		var b bytes.Buffer
		if err := render(&b, r); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), "CUPED") {
			t.Errorf("%s: a CUPED note without an adjustment", name)
		}
	}
	row := &r.Metrics[0].Rows[1]
	row.VarianceRemoved, row.ExtraUsers = fptr(0.317), fptr(0.464)
	want := "CUPED (" + row.Name + "): the users' pre-exposure history removed 31.7% of the lift's variance, as much as 46.4% more users would"
	for name, render := range map[string]func(*bytes.Buffer, Report) error{
		"text": func(b *bytes.Buffer, r Report) error { return RenderText(b, r) },
		"md":   func(b *bytes.Buffer, r Report) error { return RenderMarkdown(b, r) },
		"html": func(b *bytes.Buffer, r Report) error { return renderPage(b, r, "") },
		"json": func(b *bytes.Buffer, r Report) error { return json.NewEncoder(b).Encode(r) },
	} {
		var b bytes.Buffer
		if err := render(&b, r); err != nil {
			t.Fatal(err)
		}
		out := html.UnescapeString(strings.NewReplacer(`\_`, "_", `\*`, "*").Replace(b.String()))
		w := want
		if name == "json" {
			w = `"variance_removed":0.317,"extra_users":0.464`
		}
		if !strings.Contains(out, w) {
			t.Errorf("%s: no %q", name, w)
		}
	}
}
