package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/experiments/memstore"
	"github.com/abgate/abgate/rollout"
)

// openAPIDoc is the part of an OpenAPI 3 document the tests read.
type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Info       struct{ Title, Version string }       `json:"info"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		SecuritySchemes map[string]json.RawMessage `json:"securitySchemes"`
		Schemas         map[string]json.RawMessage `json:"schemas"`
		Responses       map[string]json.RawMessage `json:"responses"`
	} `json:"components"`
}

type openAPIOp struct {
	OperationID string                 `json:"operationId"`
	Tags        []string               `json:"tags"`
	Summary     string                 `json:"summary"`
	Security    *[]map[string][]string `json:"security"`
	Parameters  []struct {
		Name, In string
		Required bool
	} `json:"parameters"`
	RequestBody *struct {
		Content map[string]json.RawMessage `json:"content"`
	} `json:"requestBody"`
	Responses map[string]json.RawMessage `json:"responses"`
}

var httpMethods = []string{"get", "put", "post", "delete", "patch", "head", "options"}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return doc
}

// documentedRoutes returns "METHOD /path" for every operation, the proxy
// ones (tag "proxy") apart: the gateway package registers them, and
// cmd/abgate's TestOpenAPIDocumentsProxyRoutes checks them.
func documentedRoutes(t *testing.T, doc openAPIDoc) (api, proxy []string) {
	t.Helper()
	for path, item := range doc.Paths {
		for m, raw := range item {
			if !slices.Contains(httpMethods, m) {
				continue
			}
			var op openAPIOp
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", m, path, err)
			}
			r := strings.ToUpper(m) + " " + path
			if slices.Contains(op.Tags, "proxy") {
				proxy = append(proxy, r)
			} else {
				api = append(api, r)
			}
		}
	}
	sort.Strings(api)
	sort.Strings(proxy)
	return api, proxy
}

// ginParam matches gin's ":name" path parameters.
var ginParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// allAPIRoutes registers every route of package api on one engine, as
// cmd/abgate does, and returns them as "METHOD /path/{param}".
func allAPIRoutes(t *testing.T) []string {
	t.Helper()
	file, err := experiments.Parse([]byte(admFileYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	toks, err := NewTokens(experiments.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	lc := rollout.NewLifecycle(memstore.NewLifecycle(), file)
	r := gin.New()
	NewAdmin(rollout.NewCatalog(file, memstore.NewDefinitions(), lc.Update), lc).Register(r, toks)
	NewFeedback(nil, nil, nil).Register(r, toks.RequireFeedback())
	NewReports(nil, nil).Register(r, toks.RequireRead())
	NewFeedbackExport(nil, nil).Register(r, toks.RequireWrite())
	var out []string
	for _, ri := range r.Routes() {
		out = append(out, ri.Method+" "+ginParam.ReplaceAllString(ri.Path, "{$1}"))
	}
	sort.Strings(out)
	return out
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	documented, proxy := documentedRoutes(t, doc)
	registered := allAPIRoutes(t)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is registered but not in api/openapi.json", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(registered, r) {
			t.Errorf("api/openapi.json documents %s, which no api handler registers", r)
		}
	}
	if len(proxy) == 0 {
		t.Error("the proxy routes are not documented")
	}
}

// TestOpenAPIStructure checks what a client generator relies on: every
// $ref resolves, every path parameter is declared, operation ids are
// unique, every operation has a success response and, when it needs a
// token, its 401 and 403.
func TestOpenAPIStructure(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Info.Title == "" || doc.Info.Version == "" {
		t.Fatalf("header: openapi %q, info %+v", doc.OpenAPI, doc.Info)
	}
	if _, ok := doc.Components.SecuritySchemes["bearer"]; !ok {
		t.Fatal("no bearer security scheme")
	}

	// Every $ref points at an existing component.
	var generic any
	_ = json.Unmarshal(OpenAPI(), &generic)
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
				var ok2 bool
				if len(parts) == 2 {
					switch parts[0] {
					case "schemas":
						_, ok2 = doc.Components.Schemas[parts[1]]
					case "responses":
						_, ok2 = doc.Components.Responses[parts[1]]
					}
				}
				if !ok2 {
					t.Errorf("%s: $ref %q does not resolve", at, ref)
				}
			}
			for k, c := range x {
				walk(c, at+"/"+k)
			}
		case []any:
			for i, c := range x {
				walk(c, fmt.Sprintf("%s[%d]", at, i))
			}
		}
	}
	walk(generic, "#")

	ids := map[string]string{}
	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc.Paths {
		for m, raw := range item {
			if !slices.Contains(httpMethods, m) {
				t.Errorf("%s: unexpected key %q", path, m)
				continue
			}
			where := strings.ToUpper(m) + " " + path
			var op openAPIOp
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if op.OperationID == "" || op.Summary == "" || len(op.Tags) == 0 {
				t.Errorf("%s: needs operationId, summary and tags", where)
			}
			if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %q already used by %s", where, op.OperationID, prev)
			}
			ids[op.OperationID] = where
			for _, p := range pathParam.FindAllStringSubmatch(path, -1) {
				found := false
				for _, q := range op.Parameters {
					found = found || (q.Name == p[1] && q.In == "path" && q.Required)
				}
				if !found {
					t.Errorf("%s: path parameter %q is not declared (in: path, required)", where, p[1])
				}
			}
			for _, q := range op.Parameters {
				if q.In == "path" && !strings.Contains(path, "{"+q.Name+"}") {
					t.Errorf("%s: declares path parameter %q not in the path", where, q.Name)
				}
			}
			ok2xx := false
			for code, r := range op.Responses {
				ok2xx = ok2xx || strings.HasPrefix(code, "2")
				var resp struct {
					Ref         string `json:"$ref"`
					Description string `json:"description"`
				}
				_ = json.Unmarshal(r, &resp)
				if resp.Ref == "" && resp.Description == "" {
					t.Errorf("%s: response %s has no description", where, code)
				}
			}
			if !ok2xx {
				t.Errorf("%s: no success response", where)
			}
			if op.Security == nil {
				t.Errorf("%s: security not stated (use [] for none)", where)
				continue
			}
			needsToken := len(*op.Security) > 0
			for _, req := range *op.Security {
				for name := range req {
					if _, ok := doc.Components.SecuritySchemes[name]; !ok {
						t.Errorf("%s: unknown security scheme %q", where, name)
					}
				}
			}
			if needsToken {
				for _, code := range []string{"401", "403"} {
					if _, ok := op.Responses[code]; !ok {
						t.Errorf("%s: needs a token but documents no %s", where, code)
					}
				}
			}
			if m == "post" || m == "put" {
				if op.RequestBody != nil {
					if _, ok := op.RequestBody.Content["application/json"]; !ok {
						t.Errorf("%s: request body is not application/json", where)
					}
				}
			}
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	env := newAdminEnv(t)
	w := env.call(t, http.MethodGet, "/api/v1/openapi.json", viewerTok, "", nil)
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") || w.Body.Len() != len(OpenAPI()) {
		t.Fatalf("GET openapi.json = %d %q, %d bytes", w.Code, w.Header().Get("Content-Type"), w.Body.Len())
	}
}

// TestOpenAPIDefinitionMatchesConfig keeps the definition schemas in step
// with the config structs: every YAML field is a property and every
// property a field (the definition adds "routes").
func TestOpenAPIDefinitionMatchesConfig(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	for schema, typ := range map[string]reflect.Type{
		"Definition": reflect.TypeFor[experiments.Experiment](),
		"Variant":    reflect.TypeFor[experiments.Variant](),
		"Metric":     reflect.TypeFor[experiments.Metric](),
		"Rollout":    reflect.TypeFor[experiments.Rollout](),
		"RampStep":   reflect.TypeFor[experiments.RampStep](),
		"Guardrail":  reflect.TypeFor[experiments.Guardrail](),
		"Segment":    reflect.TypeFor[experiments.Segment](),
	} {
		var s struct {
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(doc.Components.Schemas[schema], &s); err != nil {
			t.Fatalf("%s: %v", schema, err)
		}
		fields := map[string]bool{}
		if schema == "Definition" {
			fields["routes"] = true
		}
		for i := range typ.NumField() {
			if f := typ.Field(i); f.IsExported() {
				name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				if name != "-" {
					fields[name] = true
				}
			}
		}
		for f := range fields {
			if _, ok := s.Properties[f]; !ok {
				t.Errorf("schema %s lacks property %q of %s (edit /api/openapi.json)", schema, f, typ)
			}
		}
		for p := range s.Properties {
			if !fields[p] {
				t.Errorf("schema %s has property %q that %s does not have", schema, p, typ)
			}
		}
	}
}
