package gateway

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
)

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func withPrivacy(header, field string) func(*experiments.Config) {
	return func(c *experiments.Config) {
		for i := range c.Upstreams {
			c.Upstreams[i].Privacy = experiments.UpstreamPrivacy{UnitHeader: header, UnitField: field}
		}
	}
}

// TestUnitPrivacy sends a unit id in the header and the body under each
// policy and checks what the upstream saw; everything else of the body
// must be the client's bytes.
func TestUnitPrivacy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		header, field string // policies; "" is the default
		wantHeader    string // "" absent, "hash", or the value
		wantField     string // "" absent, "hash", or the value
	}{
		{name: "defaults", wantHeader: "", wantField: "hash"},
		{name: "forward", header: "forward", field: "forward", wantHeader: "alice@example.com", wantField: "alice@example.com"},
		{name: "hash", header: "hash", field: "hash", wantHeader: "hash", wantField: "hash"},
		{name: "drop", header: "drop", field: "drop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, nil, func(c *experiments.Config) {
				c.Experiments[0].Variants[1].Weight = 0
				if tc.header != "" || tc.field != "" {
					withPrivacy(tc.header, tc.field)(c)
				}
			})
			body := `{"model":"` + testAlias + `","user":"alice@example.com","messages":[]}`
			res, _ := post(t, nil, e.front.URL+"/v1/chat/completions", body, map[string]string{"X-User-ID": "alice@example.com"})
			mustEqual(t, "status", res.StatusCode, http.StatusOK)
			seen := e.base.next(t)
			<-e.rec.ch
			if strings.Contains(string(seen.Body), "alice") != (tc.wantField == "alice@example.com") {
				t.Errorf("upstream body %s", seen.Body)
			}
			var got struct {
				User *string `json:"user"`
			}
			if err := json.Unmarshal(seen.Body, &got); err != nil {
				t.Fatalf("upstream body is not JSON: %s", seen.Body)
			}
			check := func(what, got string, present bool, want string) {
				t.Helper()
				switch want {
				case "":
					if present {
						t.Errorf("%s %q reached the upstream", what, got)
					}
				case "hash":
					if !hexID.MatchString(got) {
						t.Errorf("%s = %q, want a 32-digit hash", what, got)
					}
				default:
					mustEqual(t, what, got, want)
				}
			}
			_, hasHeader := seen.Header["X-User-Id"]
			check("header", seen.Header.Get("X-User-ID"), hasHeader, tc.wantHeader)
			u := ""
			if got.User != nil {
				u = *got.User
			}
			check("body user", u, got.User != nil, tc.wantField)
			if tc.wantField == "hash" && tc.wantHeader == "hash" {
				mustEqual(t, "header and body hash the same id alike", seen.Header.Get("X-User-ID"), u)
			}
		})
	}
}

// TestUnitHashStable: one upstream always sees the same hash for an id,
// two upstreams see unrelated ones, and the id's variant is unchanged
// (assignment uses the raw id).
func TestUnitHashStable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, withPrivacy("hash", "hash"))
	hashAt := func(up *fakeUpstream, user string) string {
		res, _ := post(t, nil, e.front.URL+"/v1/chat/completions", chatBody(testAlias, user), nil)
		mustEqual(t, "status", res.StatusCode, http.StatusOK)
		<-e.rec.ch
		var b struct{ User string }
		json.Unmarshal(up.next(t).Body, &b)
		return b.User
	}
	u0, u1 := userFor(t, e.cfg, 0), userFor(t, e.cfg, 1)
	a, b := hashAt(e.base, u0), hashAt(e.base, u0)
	mustEqual(t, "same id, same upstream", a, b)
	if c := hashAt(e.base, u0+"x"); c == a {
		t.Error("two ids hash alike")
	}
	// The same unit id at the other upstream: userFor(1) lands there; hash
	// it at the base by hand to compare.
	atCand := hashAt(e.cand, u1)
	s := e.h.snap.Load()
	atBase := string(s.upstreams["openai"].unitMAC.appendHashString(nil, u1))
	if atCand == atBase || !hexID.MatchString(atCand) {
		t.Errorf("upstreams share a hash: %q %q", atCand, atBase)
	}
	// A second gateway with the same secret hashes alike (replicas).
	h2, err := New(e.cfg, experiments.NewSigner([]byte(testSecret), 0))
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "replica hash", string(h2.snap.Load().upstreams["openai"].unitMAC.appendHashString(nil, u0)), a)
}

// TestUnitFieldDropPositions: dropping the unit member leaves valid JSON
// wherever it sits, repeated or escaped, and keeps every other byte.
func TestUnitFieldDropPositions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, func(c *experiments.Config) {
		c.Experiments[0].Variants[1].Weight = 0
		withPrivacy("drop", "drop")(c)
	})
	m := `"model":"` + testAlias + `"`
	bm := `"model":"` + baseModel + `"`
	for _, tc := range []struct{ in, want string }{
		{`{"user":"a",` + m + `}`, `{` + bm + `}`},
		{`{ "user" : "a" , ` + m + ` }`, `{  ` + bm + ` }`}, // the spaces around the member stay
		{`{` + m + `,"user":"a"}`, `{` + bm + `}`},
		{`{` + m + `,"user":"a","n":1}`, `{` + bm + `,"n":1}`},
		{`{"user":"a","user":"b",` + m + `,"user":"c"}`, `{` + bm + `}`},
		{`{"us\u0065r":"a",` + m + `}`, `{` + bm + `}`},
		{`{` + m + `,"user":{"id":1}}`, `{` + bm + `}`},
	} {
		res, _ := post(t, nil, e.front.URL+"/v1/chat/completions", tc.in, nil)
		mustEqual(t, "status", res.StatusCode, http.StatusOK)
		<-e.rec.ch
		got := string(e.base.next(t).Body)
		mustEqual(t, "body for "+tc.in, got, tc.want)
	}
	// More copies than the gateway rewrites: refused, never leaked.
	res, b := post(t, nil, e.front.URL+"/v1/chat/completions", `{`+m+strings.Repeat(`,"user":"a"`, 5)+`}`, nil)
	mustEqual(t, "status", res.StatusCode, http.StatusBadRequest)
	decodeError(t, b)
}
