package judge

import "testing"

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"A", "A"}, {" b ", "B"}, {"TIE", "TIE"}, {"tie.", "TIE"}, {`"A"`, "A"}, {"**B**", "B"},
		{"[[A]]", "A"}, {"Answer B", "B"}, {"Assistant A.", "A"}, {"Draw", "TIE"}, {"Verdict: B", "B"},
		{`{"verdict": "A"}`, "A"}, {`{"Verdict":"tie"}`, "TIE"}, {`{"winner": "B", "reason": "clearer"}`, "B"},
		{"```json\n{\"verdict\": \"B\"}\n```", "B"}, {"```\nA\n```", "A"},
		{"After comparing both, my final verdict is [[B]].", "B"}, {"Both fine: [[C]]", "TIE"},
		{"A\nBecause it is correct.", "A"},
		{"", ""}, {"I can't decide", ""}, {"[[A]] or [[B]]", ""}, {`{"verdict": 1}`, ""}, {`{"verdict": "maybe"}`, ""},
		{"{not json", ""}, {"AB", ""}, {"The answer A is better than B", ""},
	} {
		got, ok := Parse(tc.in)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("Parse(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
}

func FuzzParseVerdict(f *testing.F) {
	for _, s := range []string{"A", "TIE", `{"verdict":"B"}`, "```json\n{}\n```", "[[C]]", "", "\x00", "```"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := Parse(s)
		if ok != (v == "A" || v == "B" || v == "TIE") || (!ok && v != "") {
			t.Fatalf("Parse(%q) = %q, %v", s, v, ok)
		}
	})
}
