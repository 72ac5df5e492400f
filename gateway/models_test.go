package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
)

func get(t *testing.T, method, url string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

func TestModels(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, func(c *experiments.Config) {
		c.Routes = append(c.Routes, experiments.Route{Alias: "acme/support:v2", Experiment: testExp})
	})
	res, b := get(t, http.MethodGet, e.front.URL+"/v1/models")
	mustEqual(t, "status", res.StatusCode, http.StatusOK)
	mustEqual(t, "content type", res.Header.Get("Content-Type"), "application/json")
	var list struct {
		Object string
		Data   []struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Created int64  `json:"created"`
			OwnedBy string `json:"owned_by"`
		}
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "object", list.Object, "list")
	mustEqual(t, "models", len(list.Data), 2)
	mustEqual(t, "first", list.Data[0].ID, "acme/support:v2")
	mustEqual(t, "second", list.Data[1].ID, testAlias)
	for _, m := range list.Data {
		mustEqual(t, "object", m.Object, "model")
		mustEqual(t, "owned_by", m.OwnedBy, "abgate")
		if m.Created <= 0 {
			t.Errorf("created %d", m.Created)
		}
	}
	if strings.Contains(string(b), baseModel) || strings.Contains(string(b), candModel) {
		t.Error("the list names the real models behind an alias")
	}

	for _, id := range []string{testAlias, "acme/support:v2"} {
		res, b = get(t, http.MethodGet, e.front.URL+"/v1/models/"+id)
		mustEqual(t, "status "+id, res.StatusCode, http.StatusOK)
		var m struct{ ID, Object string }
		json.Unmarshal(b, &m)
		mustEqual(t, "id", m.ID, id)
		mustEqual(t, "object", m.Object, "model")
	}
	res, b = get(t, http.MethodGet, e.front.URL+"/v1/models/gpt-5-nope")
	mustEqual(t, "status", res.StatusCode, http.StatusNotFound)
	mustEqual(t, "unknown model body", string(b),
		`{"error":{"message":"The model `+"`gpt-5-nope`"+` does not exist or is not routed by this gateway.","type":"invalid_request_error","param":"model","code":"model_not_found"}}`)
}

// TestUnroutedErrors: every path and method the gateway does not serve
// answers in OpenAI's error shape.
func TestUnroutedErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, nil)
	res, b := get(t, http.MethodPost, e.front.URL+"/v1/foo")
	mustEqual(t, "status", res.StatusCode, http.StatusNotFound)
	mustEqual(t, "content type", res.Header.Get("Content-Type"), "application/json")
	mustEqual(t, "body", string(b),
		`{"error":{"message":"Unknown request URL: POST /v1/foo. Please check the URL for typos.","type":"invalid_request_error","param":null,"code":"unknown_url"}}`)
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodGet, "/v1/chat/completions", "POST"},
		{http.MethodDelete, "/v1/embeddings", "POST"},
		{http.MethodPost, "/v1/models", "GET"},
	} {
		res, b := get(t, tc.method, e.front.URL+tc.path)
		mustEqual(t, "status "+tc.method+" "+tc.path, res.StatusCode, http.StatusMethodNotAllowed)
		mustEqual(t, "Allow", res.Header.Get("Allow"), tc.allow)
		mustEqual(t, "content type", res.Header.Get("Content-Type"), "application/json")
		eb := decodeError(t, b)
		mustEqual(t, "code", eb.Error.Code, "method_not_allowed")
		if eb.Error.Param != nil {
			t.Errorf("param %q, want null", *eb.Error.Param)
		}
	}
}
