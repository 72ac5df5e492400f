package experiments_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/abgate/abgate/experiments"
	"github.com/abgate/abgate/stats"
)

// TestMetricRegistryConsistent: every built-in metric is fully declared,
// and what the other packages rely on holds: the feedback API has
// bounds to validate against, every metric that can be judged has a
// direction, and the policy takes its directions and estimators from
// the registry.
func TestMetricRegistryConsistent(t *testing.T) {
	t.Parallel()
	units := []string{experiments.UnitNone, experiments.UnitRate, experiments.UnitMS, experiments.UnitSeconds,
		experiments.UnitTokens, experiments.UnitCost, experiments.UnitScore}
	seen := map[string]bool{}
	feedback := false
	for _, m := range experiments.BuiltinMetrics() {
		if m.Name == "" || seen[m.Name] {
			t.Errorf("%q: empty or duplicate name", m.Name)
		}
		seen[m.Name] = true
		if got, ok := experiments.LookupMetric(nil, m.Name); !ok || got != m {
			t.Errorf("%s: LookupMetric = %+v, %v", m.Name, got, ok)
		}
		switch m.Source {
		case experiments.SourceRequest:
			if feedback {
				t.Errorf("%s: request metric after a feedback metric; BuiltinMetrics lists request metrics first", m.Name)
			}
		case experiments.SourceDerived:
			if !feedback {
				t.Errorf("%s: derived metric before the feedback metrics", m.Name)
			}
		case experiments.SourceJudge:
			if !feedback || math.IsInf(m.Min, 0) || math.IsInf(m.Max, 0) {
				t.Errorf("%s: judge metrics come last, with finite bounds", m.Name)
			}
		case experiments.SourceFeedback:
			feedback = true
			// The feedback API refuses values outside these.
			if math.IsInf(m.Min, 0) || math.IsInf(m.Max, 0) {
				t.Errorf("%s: a feedback metric needs finite bounds, got [%g, %g]", m.Name, m.Min, m.Max)
			}
		default:
			t.Errorf("%s: source %q", m.Name, m.Source)
		}
		switch m.Kind {
		case experiments.MetricBinary:
			if m.Min != 0 || m.Max != 1 || m.Unit != experiments.UnitRate {
				t.Errorf("%s: binary metrics are 0..1 rates, got [%g, %g] %q", m.Name, m.Min, m.Max, m.Unit)
			}
		case experiments.MetricCount, experiments.MetricContinuous:
		default:
			t.Errorf("%s: kind %q", m.Name, m.Kind)
		}
		if m.UpDown && m.Kind != experiments.MetricBinary {
			t.Errorf("%s: up/down only makes sense for a binary metric", m.Name)
		}
		if !(m.Min <= m.Max) || math.IsNaN(m.Min) {
			t.Errorf("%s: bounds [%g, %g]", m.Name, m.Min, m.Max)
		}
		if m.Estimator != stats.Ratio && m.Estimator != stats.Mean {
			t.Errorf("%s: estimator %q", m.Name, m.Estimator)
		}
		if !slices.Contains(units, m.Unit) || m.Label == "" || m.Noun == "" {
			t.Errorf("%s: unit %q, label %q, noun %q", m.Name, m.Unit, m.Label, m.Noun)
		}
		switch m.Better {
		case experiments.HigherIsBetter, experiments.LowerIsBetter:
		case experiments.NoDirection:
			// Shown, never judged: validation refuses it as primary
			// and as guardrail.
			checkRefusedAsJudged(t, m.Name)
			continue
		default:
			t.Errorf("%s: direction %q", m.Name, m.Better)
		}
		// The policy judges it the registry's way.
		e := &experiments.Experiment{Primary: m.Name, Rollout: &experiments.Rollout{Guardrails: []experiments.Guardrail{{Metric: m.Name}}}}
		p := e.Policy(-1)
		want := stats.HigherIsBetter
		if m.Better == experiments.LowerIsBetter {
			want = stats.LowerIsBetter
		}
		if p.Primary.Better != want || p.Guardrails[0].Better != want || p.Primary.Kind != m.Estimator || !p.Primary.Relative {
			t.Errorf("%s: policy primary %+v, guardrail %+v; registry %s %s", m.Name, p.Primary, p.Guardrails[0].Metric, m.Better, m.Estimator)
		}
	}
	if !feedback {
		t.Error("no feedback metric")
	}
	for _, name := range append([]string{experiments.DefaultPrimaryMetric}, guardrailNames(experiments.DefaultGuardrails)...) {
		if m, ok := experiments.LookupMetric(nil, name); !ok || m.Better == experiments.NoDirection {
			t.Errorf("default primary or guardrail %q: %+v, %v; it needs a direction", name, m, ok)
		}
	}
}

func guardrailNames(gs []experiments.Guardrail) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.Metric)
	}
	return out
}

// checkRefusedAsJudged: a config with metric name as the primary, or as
// a guardrail, does not validate.
func checkRefusedAsJudged(t *testing.T, name string) {
	t.Helper()
	for _, field := range []string{"primary", "rollout.guardrails[0].metric"} {
		yaml := `
upstreams: [{name: up, url: "http://127.0.0.1:9"}]
experiments:
  - id: e
    primary: PRIMARY
    variants:
      - {name: base, upstream: up, model: m0}
      - {name: cand, upstream: up, model: m1}
    rollout: {guardrails: [{metric: GUARD, margin: 0.1}]}
`
		primary, guard := experiments.MetricThumbs, experiments.MetricError
		if field == "primary" {
			primary = name
		} else {
			guard = name
		}
		yaml = strings.NewReplacer("PRIMARY", primary, "GUARD", guard).Replace(yaml)
		_, err := experiments.Parse([]byte(yaml), nil)
		var ve experiments.ValidationError
		if !asValidation(err, &ve) || !slices.ContainsFunc(ve, func(fe experiments.FieldError) bool {
			return fe.Field == "experiments[0]."+field && strings.Contains(fe.Reason, "no better direction")
		}) {
			t.Errorf("%s as %s: %v; want it refused for having no direction", name, field, err)
		}
	}
}

func asValidation(err error, ve *experiments.ValidationError) bool {
	v, ok := err.(experiments.ValidationError)
	*ve = v
	return ok
}

// TestLookupMetric: built-ins, an experiment's declared metrics (kind
// bounds narrowed by min and max, direction from higher_is_better) and
// segment metric names, which read as the metric they segment.
func TestLookupMetric(t *testing.T) {
	t.Parallel()
	no, lo, hi := false, 2.0, 9.0
	e := &experiments.Experiment{Metrics: []experiments.Metric{
		{Name: "resolved", Kind: experiments.MetricBinary},
		{Name: "turns", Kind: experiments.MetricCount, Max: &hi, HigherIsBetter: &no},
		{Name: "score", Kind: experiments.MetricContinuous, Min: &lo, Max: &hi},
	}}
	for _, tc := range []struct {
		name, want string
		ok         bool
		check      func(experiments.MetricInfo) bool
	}{
		{name: experiments.MetricLatencyMS, want: experiments.MetricLatencyMS, ok: true,
			check: func(m experiments.MetricInfo) bool {
				return m.Better == experiments.LowerIsBetter && m.Unit == experiments.UnitMS
			}},
		{name: "resolved", want: "resolved", ok: true, check: func(m experiments.MetricInfo) bool {
			return m.Source == experiments.SourceFeedback && m.Min == 0 && m.Max == 1 && m.Unit == experiments.UnitRate &&
				m.Label == "resolved rate" && m.Better == experiments.HigherIsBetter && m.Estimator == stats.Ratio
		}},
		{name: "turns", want: "turns", ok: true,
			check: func(m experiments.MetricInfo) bool {
				return m.Min == 0 && m.Max == 9 && m.Better == experiments.LowerIsBetter
			}},
		{name: "score", want: "score", ok: true,
			check: func(m experiments.MetricInfo) bool { return m.Min == 2 && m.Max == 9 && m.Unit == experiments.UnitNone }},
		{name: experiments.SegmentMetric(experiments.MetricThumbs, 1, 3), want: experiments.MetricThumbs, ok: true},
		{name: experiments.SegmentMetric("turns", 0, 0), want: "turns", ok: true},
		{name: experiments.SegmentMetric(experiments.SegmentMetric(experiments.MetricThumbs, 0, 1), 0, 1)},
		{name: "unknown"},
		{name: ""},
	} {
		m, ok := experiments.LookupMetric(e, tc.name)
		if ok != tc.ok || m.Name != tc.want || (tc.check != nil && !tc.check(m)) {
			t.Errorf("LookupMetric(%q) = %+v, %v", tc.name, m, ok)
		}
	}
	if _, ok := experiments.LookupMetric(nil, "resolved"); ok {
		t.Error("LookupMetric(nil, custom) found it")
	}
}

// wireFormat lists the files that spell metric names as another
// protocol's field names, not as abgate's metrics.
var wireFormat = map[string]string{
	"gateway/scan.go":     "reads the upstream's OpenAI usage fields (prompt_tokens, completion_tokens)",
	"internal/fakemodel/": "speaks the OpenAI wire format",
	"internal/oaierr/":    "OpenAI's error types (\"requests\" is its 429 type, not the metric)",
	"cmd/abgate/demo.go":  "a synthetic client of the feedback API, sending signals by name",
}

// TestMetricFactsOnlyInRegistry: no production file outside
// experiments/metrics.go spells a built-in metric's name as a string
// literal (refer to the experiments.Metric* constants), keeps a map keyed
// by metrics (a direction, label or bounds table), or lists several metric
// constants in one switch case (the same table in disguise). Struct tags,
// log keys (slog's "error") and JSON bodies (gin.H, map[string]any) are
// not metric names and are skipped.
func TestMetricFactsOnlyInRegistry(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	for _, m := range experiments.BuiltinMetrics() {
		names[m.Name] = true
	}
	// The constants naming built-in metrics, read from the registry file.
	consts := map[string]bool{}
	fset := token.NewFileSet()
	reg, err := parser.ParseFile(fset, "metrics.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(reg, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for i, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING && names[unquote(lit)] && strings.HasPrefix(vs.Names[i].Name, "Metric") {
					consts[vs.Names[i].Name] = true
				}
			}
		}
		return true
	})
	if len(consts) != len(names) {
		t.Fatalf("metrics.go declares constants for %d of %d built-in metrics", len(consts), len(names))
	}
	isConst := func(e ast.Expr) bool {
		switch x := e.(type) {
		case *ast.Ident:
			return consts[x.Name]
		case *ast.SelectorExpr:
			id, ok := x.X.(*ast.Ident)
			return ok && id.Name == "experiments" && consts[x.Sel.Name]
		}
		return false
	}

	root := ".."
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(path, root+string(filepath.Separator)))
		if d.IsDir() {
			switch {
			case strings.HasPrefix(d.Name(), ".") && path != root, d.Name() == "testdata", rel == "bench", rel == "e2e":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") || rel == "experiments/metrics.go" {
			return nil
		}
		for prefix := range wireFormat {
			if strings.HasPrefix(rel, prefix) {
				return nil
			}
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files++
		for _, msg := range metricCopies(f, names, isConst) {
			t.Errorf("%s:%d: %s", rel, fset.Position(msg.pos).Line, msg.text)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("scanned only %d files; is the module root %q?", files, root)
	}
}

type finding struct {
	pos  token.Pos
	text string
}

func metricCopies(f *ast.File, names map[string]bool, isConst func(ast.Expr) bool) []finding {
	skip := map[*ast.BasicLit]bool{}
	var out []finding
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.Field:
			if x.Tag != nil {
				skip[x.Tag] = true
			}
		case *ast.CallExpr:
			if logCall(x) {
				for _, a := range x.Args {
					if lit, ok := a.(*ast.BasicLit); ok {
						skip[lit] = true
					}
				}
			}
		case *ast.CompositeLit:
			if _, isMap := x.Type.(*ast.MapType); isMap || jsonBody(x.Type) {
				keyed := 0
				for _, el := range x.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					if lit, ok := kv.Key.(*ast.BasicLit); ok && jsonBody(x.Type) {
						skip[lit] = true
					}
					if isConst(kv.Key) {
						keyed++
					}
				}
				if keyed > 1 {
					out = append(out, finding{x.Pos(), "a map keyed by metric: declare the fact in experiments/metrics.go (MetricInfo) and read it with LookupMetric"})
				}
			}
		case *ast.CaseClause:
			k := 0
			for _, e := range x.List {
				if isConst(e) {
					k++
				}
			}
			if k > 1 {
				out = append(out, finding{x.Pos(), "a switch case listing metrics is a table by metric: read the fact from LookupMetric"})
			}
		case *ast.BasicLit:
			if x.Kind == token.STRING && !skip[x] && names[unquote(x)] {
				out = append(out, finding{x.Pos(), "string literal " + x.Value + " names a built-in metric: use the experiments.Metric* constant"})
			}
		}
		return true
	})
	return out
}

// logCall: a structured-logging call (slog and friends), whose string
// arguments are keys like "error".
func logCall(c *ast.CallExpr) bool {
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	if id, ok := sel.X.(*ast.Ident); ok && id.Name == "slog" {
		return true
	}
	switch sel.Sel.Name {
	case "Debug", "Info", "Warn", "Error", "DebugContext", "InfoContext", "WarnContext", "ErrorContext", "Log", "LogAttrs", "With":
		return true
	}
	return false
}

// jsonBody: gin.H or map[string]any, the shapes of ad-hoc JSON bodies.
func jsonBody(t ast.Expr) bool {
	switch x := t.(type) {
	case *ast.SelectorExpr:
		id, ok := x.X.(*ast.Ident)
		return ok && id.Name == "gin" && x.Sel.Name == "H"
	case *ast.MapType:
		switch v := x.Value.(type) {
		case *ast.Ident:
			return v.Name == "any"
		case *ast.InterfaceType:
			return v.Methods == nil || len(v.Methods.List) == 0
		}
	}
	return false
}

func unquote(lit *ast.BasicLit) string {
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		return ""
	}
	return s
}

// TestMetricCopiesDetector: the scan above finds each kind of copy, and
// lets through what is not one.
func TestMetricCopiesDetector(t *testing.T) {
	t.Parallel()
	names := map[string]bool{experiments.MetricError: true, experiments.MetricThumbs: true, experiments.MetricCost: true}
	consts := map[string]bool{"MetricError": true, "MetricThumbs": true, "MetricCost": true}
	isConst := func(e ast.Expr) bool {
		sel, ok := e.(*ast.SelectorExpr)
		return ok && consts[sel.Sel.Name]
	}
	for _, tc := range []struct {
		src  string
		want int
	}{
		{`var better = map[string]string{experiments.MetricError: "lower", experiments.MetricThumbs: "higher"}`, 1},
		{`func f(m string) bool { switch m { case experiments.MetricError, experiments.MetricCost: return true }; return false }`, 1},
		{`func f(m string) bool { return m == "thumbs" }`, 1},
		{`const primary = "cost"`, 1},
		{`var seen = map[string]bool{experiments.MetricError: true}`, 0},
		{`func f(m string) bool { return m == experiments.MetricThumbs }`, 0},
		{"type T struct { E string `json:\"error\"` }", 0},
		{`func f(err error) { slog.Warn("failed", "error", err); log.Error("x", "error", err) }`, 0},
		{`func f(err error) any { return gin.H{"error": err.Error()} }`, 0},
		{`func f() any { return map[string]any{"thumbs": 1} }`, 0},
	} {
		f, err := parser.ParseFile(token.NewFileSet(), "x.go", "package x\n"+tc.src, 0)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		if got := metricCopies(f, names, isConst); len(got) != tc.want {
			t.Errorf("%s: %d findings %v, want %d", tc.src, len(got), got, tc.want)
		}
	}
}
