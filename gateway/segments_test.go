package gateway

import (
	"testing"
	"time"

	"github.com/abgate/abgate/experiments"
)

func withSegments(c *experiments.Config) {
	c.Experiments[0].Segments = []experiments.Segment{
		{Name: "region", Header: "X-Abgate-Segment-Region", Values: []string{"eu", "us", "apac"}},
		{Name: "language", BodyField: "language", Values: []string{"en", "de", "fr"}},
		{Name: "tier", Header: "X-Customer-Tier", Values: []string{"free", "pro"}},
	}
}

// TestSegmentsInOutcomeAndToken: the segment values of a request reach
// its Outcome and its token, unknown or missing values are "other", and
// the segment header never reaches the upstream.
func TestSegmentsInOutcomeAndToken(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil, nil, withSegments)
	for _, tc := range []struct {
		name   string
		body   string
		hdr    map[string]string
		want   [3]uint8
		header bool
	}{
		{"all set", `{"model":"` + testAlias + `","language":"de","messages":[]}`,
			map[string]string{"X-Abgate-Segment-Region": "apac", "X-Customer-Tier": "pro"}, [3]uint8{3, 2, 2}, true},
		{"unknown and missing", `{"model":"` + testAlias + `","language":"xx","messages":[]}`,
			map[string]string{"X-Abgate-Segment-Region": "mars"}, [3]uint8{0, 0, 0}, false},
		{"non-string field", `{"model":"` + testAlias + `","language":7,"messages":[]}`,
			map[string]string{"X-Customer-Tier": "free"}, [3]uint8{0, 0, 1}, false},
	} {
		hdr := map[string]string{"X-User-ID": "seg-user"}
		for k, v := range tc.hdr {
			hdr[k] = v
		}
		resp, body := post(t, nil, env.front.URL+"/v1/chat/completions", tc.body, hdr)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", tc.name, resp.StatusCode, body)
		}
		o := env.rec.next(t)
		want := experiments.SegmentValues{N: 3, V: [4]uint8{tc.want[0], tc.want[1], tc.want[2]}}
		if o.Segments != want {
			t.Errorf("%s: outcome segments %+v, want %+v", tc.name, o.Segments, want)
		}
		tok, err := env.signer.Verify(resp.Header.Get(HeaderToken), time.Now())
		if err != nil {
			t.Fatalf("%s: token: %v", tc.name, err)
		}
		if tok.Segments != want {
			t.Errorf("%s: token segments %+v, want %+v", tc.name, tok.Segments, want)
		}
		up := env.base
		if o.Variant == 1 {
			up = env.cand
		}
		seen := up.next(t)
		if v := seen.Header.Get("X-Abgate-Segment-Region"); v != "" {
			t.Errorf("%s: segment header reached the upstream: %q", tc.name, v)
		}
	}
}

// TestSegmentPathAllocations: picking segment values (headers and body
// fields) allocates nothing.
func TestSegmentPathAllocations(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1", "http://127.0.0.1:2")
	withSegments(cfg)
	h, err := New(cfg, experiments.NewSigner([]byte(testSecret), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"model":"` + testAlias + `","language":"fr","messages":[{"role":"user","content":"hi"}],"user":"u1"}`)
	hdr := map[string][]string{"X-Abgate-Segment-Region": {"us"}, "X-Customer-Tier": {"free"}}
	var sv experiments.SegmentValues
	allocs := testing.AllocsPerRun(100, func() {
		s := h.snap.Load()
		f, err := scanBodyFields(body, s.unitField, s.segFields)
		if err != nil {
			t.Fatal(err)
		}
		e := s.routes[string(f.model)]
		sv = e.segments(hdr, &f)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request on the segment path", allocs)
	}
	if want := (experiments.SegmentValues{N: 3, V: [4]uint8{2, 3, 1}}); sv != want {
		t.Errorf("segments %+v, want %+v", sv, want)
	}
}
