package experiments_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

const segmentsYAML = `
    segments:
      - {name: region, header: X-Abgate-Segment-Region, values: [eu, us, apac]}
      - {name: language, body_field: language, values: [en, de, fr]}
      - {name: tier, header: X-Customer-Tier, values: [free, pro]}
routes:`

func TestSegmentsConfig(t *testing.T) {
	t.Parallel()
	c := mustParse(t, strings.Replace(minimalYAML, "routes:", segmentsYAML, 1), noEnv)
	segs := c.Experiments[0].Segments
	if len(segs) != 3 || segs[1].BodyField != "language" || segs[2].Values[1] != "pro" {
		t.Fatalf("segments %+v", segs)
	}
	if got := c.SegmentBodyFields(); len(got) != 1 || got[0] != "language" {
		t.Errorf("body fields %v", got)
	}
	if i := segs[0].IndexString("apac"); i != 3 {
		t.Errorf("index of apac = %d, want 3", i)
	}
	if i := segs[0].Index([]byte("mars")); i != experiments.SegmentOther {
		t.Errorf("index of an undeclared value = %d, want other", i)
	}
	if segs[0].ValueName(0) != "other" || segs[0].ValueName(2) != "us" {
		t.Errorf("value names %q %q", segs[0].ValueName(0), segs[0].ValueName(2))
	}
}

func TestSegmentsValidation(t *testing.T) {
	t.Parallel()
	bad := `
    segments:
      - {name: region, header: "bad header", values: [eu]}
      - {name: region, body_field: model, values: []}
      - {name: x, header: X, values: [a, a, other]}
      - {name: y, values: [a]}
routes:`
	_, err := experiments.Parse([]byte(strings.Replace(minimalYAML, "routes:", bad, 1)), noEnv)
	var ve experiments.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want ValidationError", err)
	}
	want := []string{
		"experiments[0].segments[0].header",
		"experiments[0].segments[1].name", // duplicate
		"experiments[0].segments[1].body_field",
		"experiments[0].segments[1].values",
		"experiments[0].segments[2].values[1]", // duplicate
		"experiments[0].segments[2].values[2]", // "other"
		"experiments[0].segments[3]",           // no source
	}
	got := map[string]bool{}
	for _, fe := range ve {
		got[fe.Field] = true
	}
	for _, f := range want {
		if !got[f] {
			t.Errorf("no error for %s; got %v", f, ve)
		}
	}

	five := strings.Replace(minimalYAML, "routes:", `
    segments:
      - {name: a, header: A, values: [x]}
      - {name: b, header: B, values: [x]}
      - {name: c, header: C, values: [x]}
      - {name: d, header: D, values: [x]}
      - {name: e, header: E, values: [x]}
routes:`, 1)
	_, err = experiments.Parse([]byte(five), noEnv)
	if !errors.As(err, &ve) || len(ve) != 1 || ve[0].Field != "experiments[0].segments" {
		t.Errorf("five dimensions: got %v", err)
	}
}

func TestTokenSegments(t *testing.T) {
	t.Parallel()
	s := experiments.NewSigner([]byte("0123456789abcdef0123456789abcdef"), time.Hour)
	now := time.Unix(1_800_000_000, 0)
	tok := experiments.Token{Experiment: "exp", Phase: 2, Variant: 1, Analysed: true, RequestID: "r1",
		Segments: experiments.SegmentValues{N: 3, V: [4]uint8{3, 0, 2}}}
	got, err := s.Verify(s.Issue(tok, now), now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Segments != tok.Segments || got.RequestID != "r1" || got.Variant != 1 {
		t.Errorf("round trip: %+v", got)
	}
	// Without segments the token is still version 1, as before.
	tok.Segments = experiments.SegmentValues{}
	v1 := s.Issue(tok, now)
	got, err = s.Verify(v1, now)
	if err != nil || got.Segments.N != 0 {
		t.Errorf("v1 token: %+v, %v", got, err)
	}
	if v1[0] != 'A' { // base64 of the version byte 0x01: "AQ…"
		t.Errorf("token without segments is not version 1: %q", v1[:2])
	}
}
