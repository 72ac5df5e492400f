package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestScanBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		body  string
		model string
		unit  string
		err   error
	}{
		{name: "simple", body: `{"model":"a","user":"u"}`, model: "a", unit: "u"},
		{name: "spaces", body: " \n{ \"user\" : \"u\" ,\t\"model\" :\"a\" } \r\n", model: "a", unit: "u"},
		{name: "nested model ignored", body: `{"messages":[{"model":"x","user":"y"}],"meta":{"model":"z"},"model":"a"}`, model: "a"},
		{name: "escaped quotes in prompt", body: `{"messages":[{"content":"he said \"model\": \"x\" \\"}],"model":"a"}`, model: "a"},
		{name: "escaped key", body: `{"mod\u0065l":"a","\u0075ser":"u"}`, model: "a", unit: "u"},
		{name: "escaped value", body: `{"model":"a\/b\u00e9\n","user":"\ud83d\ude00"}`, model: "a/bé\n", unit: "😀"},
		{name: "lone surrogate", body: `{"model":"\ud800x"}`, model: "\ufffdx"},
		{name: "invalid utf8 value", body: "{\"model\":\"a\xffb\"}", model: "a\ufffdb"},
		{name: "user not a string", body: `{"model":"a","user":123}`, model: "a"},
		{name: "last user wins", body: `{"model":"a","user":"1","user":"2"}`, model: "a", unit: "2"},
		{name: "numbers and literals", body: `{"t":-1.5e+3,"n":null,"b":[true,false,0,{}],"e":[],"model":"a"}`, model: "a"},
		{name: "empty model", body: `{"model":""}`, model: ""},
		{name: "missing", body: `{"messages":[]}`, err: errNoModel},
		{name: "other case only", body: `{"Model":"a"}`, err: errNoModel},
		{name: "duplicate", body: `{"model":"a","model":"b"}`, err: errDupModel},
		{name: "duplicate other case", body: `{"model":"a","MODEL":"b"}`, err: errDupModel},
		{name: "not string", body: `{"model":null}`, err: errModelNotString},
		{name: "empty", body: ``, err: errMalformed},
		{name: "array", body: `[{"model":"a"}]`, err: errMalformed},
		{name: "truncated", body: `{"model":"a","messages":[{"content":"x"}`, err: errMalformed},
		{name: "unterminated string", body: `{"model":"a","x":"abc\"}`, err: errMalformed},
		{name: "trailing garbage", body: `{"model":"a"}x`, err: errMalformed},
		{name: "trailing comma", body: `{"model":"a",}`, err: errMalformed},
		{name: "mismatched brackets", body: `{"model":"a","x":[1}`, err: errMalformed},
		{name: "bad literal", body: `{"model":"a","x":nul}`, err: errMalformed},
		{name: "bad number", body: `{"model":"a","x":01}`, err: errMalformed},
		{name: "missing colon", body: `{"model" "a"}`, err: errMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := scanBody([]byte(tc.body), "user")
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			mustEqual(t, "model", string(f.model), tc.model)
			mustEqual(t, "unit", string(f.unit), tc.unit)
			raw := tc.body[f.modelValue.start:f.modelValue.end]
			var v string
			if err := json.Unmarshal([]byte(raw), &v); err != nil || v != tc.model {
				t.Errorf("model span %q decodes to %q (%v)", raw, v, err)
			}
		})
	}
}

func TestScanBodyDeep(t *testing.T) {
	t.Parallel()
	ok := `{"x":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `,"model":"a"}`
	if _, err := scanBody([]byte(ok), "user"); err != nil {
		t.Errorf("depth 9999: %v", err)
	}
	tooDeep := `{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `,"model":"a"}`
	if _, err := scanBody([]byte(tooDeep), "user"); err == nil {
		t.Error("depth 10001 accepted")
	}
	if json.Valid([]byte(tooDeep)) || !json.Valid([]byte(ok)) {
		t.Error("encoding/json's depth limit changed")
	}
}

func TestParseUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		body       string
		prompt     int
		completion int
		cached     int
		ok         bool
	}{
		{"chat", `{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":3}}}`, 10, 5, 3, true},
		{"chat, details first", `{"usage":{"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":1024},"prompt_tokens":2000,"completion_tokens":5}}`, 2000, 5, 1024, true},
		{"responses", `{"response":{"usage":{"input_tokens":7,"output_tokens":9,"output_tokens_details":{"reasoning_tokens":2}}}}`, 7, 9, 0, true},
		{"responses, cached", `{"response":{"usage":{"input_tokens":700,"input_tokens_details":{"cached_tokens":512},"output_tokens":9}}}`, 700, 9, 512, true},
		{"completion details are not cached", `{"usage":{"prompt_tokens":8,"completion_tokens_details":{"cached_tokens":5}}}`, 8, 0, 0, true},
		{"null details", `{"usage":{"prompt_tokens":8,"prompt_tokens_details":null}}`, 8, 0, 0, true},
		{"bad cached", `{"usage":{"prompt_tokens":8,"prompt_tokens_details":{"cached_tokens":-3}}}`, 8, 0, 0, true},
		{"null", `{"usage":null}`, 0, 0, 0, false},
		{"last wins", `{"a":{"usage":{"prompt_tokens":1}},"usage":{"prompt_tokens":2,"completion_tokens":3}}`, 2, 3, 0, true},
		{"none", `{"choices":[{"message":{"content":"the \"usage\": {\"prompt_tokens\":9}"}}]}`, 0, 0, 0, false},
		{"truncated head", `ns":4},"usage":{"prompt_tokens":4,"completion_tokens":1}}`, 4, 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok := parseUsage([]byte(tc.body))
			mustEqual(t, "ok", ok, tc.ok)
			mustEqual(t, "prompt", u.prompt, tc.prompt)
			mustEqual(t, "completion", u.completion, tc.completion)
			mustEqual(t, "cached", u.cached, tc.cached)
		})
	}
}

func TestMeterSSE(t *testing.T) {
	t.Parallel()
	stream := "event: x\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\r\n\r\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n" +
		"data: [DONE]\n\n"
	// Every split of the stream into two reads gives the same result.
	for i := 0; i <= len(stream); i++ {
		var m bodyMeter
		m.stream = true
		m.sse([]byte(stream[:i]))
		m.sse([]byte(stream[i:]))
		if !m.completed || m.prompt != 3 || m.completion != 4 {
			t.Fatalf("split at %d: completed=%v usage=%d/%d", i, m.completed, m.prompt, m.completion)
		}
		m.Close()
	}
	var m bodyMeter
	m.stream = true
	m.sse([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n"))
	if m.completed {
		t.Error("null finish_reason counted as the end")
	}
	m.sse([]byte("data: {\"choices\":[{\"delta\":{},\"finish_reason\" : \"length\"}]}\n"))
	if !m.completed {
		t.Error("finish_reason length not counted as the end")
	}
	m.Close()
}

func TestMeterTeeTail(t *testing.T) {
	t.Parallel()
	body := `{"choices":[{"message":{"content":"` + strings.Repeat("y", 200<<10) + `"}}],"usage":{"prompt_tokens":11,"completion_tokens":22}}`
	var m bodyMeter
	m.tee = true
	for b := []byte(body); len(b) > 0; {
		n := min(len(b), 4000)
		m.keep(b[:n])
		b = b[n:]
	}
	if len(m.buf) > teeCap {
		t.Errorf("kept %d bytes", len(m.buf))
	}
	m.Close()
	mustEqual(t, "prompt", m.prompt, 11)
	mustEqual(t, "completion", m.completion, 22)
}

// FuzzScanBody: the scanner never panics, and on every valid JSON object
// it finds the same top-level "model" and "user" strings as
// encoding/json.
func FuzzScanBody(f *testing.F) {
	for _, s := range []string{
		`{"model":"a","user":"u"}`,
		`{"messages":[{"role":"user","content":"hi \"x\""}],"model":"gpt-4o","stream":true,"user":"42"}`,
		`{"mod\u0065l":"a\ud83d\ude00","user":null}`,
		`{"model":"a","model":"b"}`,
		`{"x":[1,2,{"y":[]}],"model":"a\\"}`,
		`{"model":"\ud800"}`,
		"{\"model\":\"a\xff\"}",
		`{"model":1e5,"user":"x"}`,
		`[1]`, `{`, `{"model":"a"`, `""`,
		`{"model":"a","language":"de","language":7}`,
		`{"language":"fr\u00e9","model":"a","tier":"pro"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// The segment fields ride along; "user" is both the unit field
		// and an extra field, which must not disturb either.
		got, err := scanBodyFields(b, "user", []string{"language", "user"})
		if err == nil {
			if got.modelValue.start < 0 || got.modelValue.end > len(b) || got.modelValue.start >= got.modelValue.end {
				t.Fatalf("model span %+v out of %d bytes", got.modelValue, len(b))
			}
		}
		if !json.Valid(b) {
			return
		}
		var m map[string]json.RawMessage
		if !bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("{")) || json.Unmarshal(b, &m) != nil {
			if err == nil {
				t.Fatalf("scanner accepted a valid non-object %q", b)
			}
			return
		}
		if errors.Is(err, errDupModel) {
			return // deliberately stricter than encoding/json
		}
		if errors.Is(err, errMalformed) {
			t.Fatalf("valid object %q rejected as malformed", b)
		}
		var wantModel string
		raw, has := m["model"]
		isString := has && bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`"`))
		if isString {
			if e := json.Unmarshal(raw, &wantModel); e != nil {
				t.Fatal(e)
			}
		}
		switch {
		case !has:
			if !errors.Is(err, errNoModel) {
				t.Fatalf("%q: err %v, want no model", b, err)
			}
		case !isString:
			if !errors.Is(err, errModelNotString) {
				t.Fatalf("%q: err %v, want model not a string", b, err)
			}
		default:
			if err != nil {
				t.Fatalf("%q: %v", b, err)
			}
			if string(got.model) != wantModel {
				t.Fatalf("%q: model %q, encoding/json %q", b, got.model, wantModel)
			}
			var wantUser string
			if raw, ok := m["user"]; ok && bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`"`)) {
				_ = json.Unmarshal(raw, &wantUser)
			}
			if string(got.unit) != wantUser || string(got.extra[1]) != wantUser {
				t.Fatalf("%q: user %q (extra %q), encoding/json %q", b, got.unit, got.extra[1], wantUser)
			}
			var wantLang string
			if raw, ok := m["language"]; ok && bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`"`)) {
				_ = json.Unmarshal(raw, &wantLang)
			}
			if string(got.extra[0]) != wantLang {
				t.Fatalf("%q: language %q, encoding/json %q", b, got.extra[0], wantLang)
			}
			// Splicing the span keeps the body valid JSON.
			out := append(append(append([]byte(nil), b[:got.modelValue.start]...), `"x"`...), b[got.modelValue.end:]...)
			if !json.Valid(out) {
				t.Fatalf("%q: splice gives invalid %q", b, out)
			}
		}
	})
}

func benchBody(promptBytes int) []byte {
	return []byte(`{"model":"support-bot","messages":[{"role":"system","content":"You are a helpful assistant. \"Quote\" \\ back."},{"role":"user","content":"` +
		strings.Repeat("lorem ipsum dolor sit amet \\\"q\\\" ", promptBytes/34) + `"}],"temperature":0.7,"max_tokens":512,"stream":true,"user":"user-123456"}`)
}

func BenchmarkScanBody(b *testing.B) {
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"small", benchBody(200)},
		{"200KB", benchBody(200 << 10)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := scanBody(bc.body, "user"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/encoding-json", func(b *testing.B) {
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				var v struct {
					Model string `json:"model"`
					User  string `json:"user"`
				}
				if err := json.Unmarshal(bc.body, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
