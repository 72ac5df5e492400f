package judge

import (
	"encoding/json"
	"strings"
)

// Parse reads a judge's answer and returns "A", "B" or "TIE". It takes, in
// order:
//
//   - a JSON object (possibly in a ``` code fence) with a "verdict",
//     "winner", "preference", "answer", "choice" or "result" field;
//   - the whole answer as one token: A, B, TIE (also DRAW, EQUAL, BOTH,
//     NEITHER, C as MT-Bench's tie), with surrounding quotes, brackets,
//     asterisks or a final period, or prefixed with ANSWER, RESPONSE,
//     ASSISTANT or OUTPUT;
//   - MT-Bench's [[A]], [[B]] or [[C]] anywhere, if exactly one kind
//     appears;
//   - the first line as one token.
//
// Anything else, or an answer naming both, is unparseable: ok is false.
// It never panics.
func Parse(raw string) (verdict string, ok bool) {
	s := strings.TrimSpace(raw)
	if strings.HasPrefix(s, "```") {
		s = strings.TrimPrefix(s, "```")
		s = strings.TrimPrefix(s, "json")
		s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "```"))
	}
	if strings.HasPrefix(s, "{") {
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) == nil {
			lower := make(map[string]any, len(m))
			for k, v := range m {
				lower[strings.ToLower(k)] = v
			}
			for _, k := range []string{"verdict", "winner", "preference", "answer", "choice", "result", "better"} {
				if str, isStr := lower[k].(string); isStr {
					return token(str)
				}
			}
		}
		return "", false
	}
	if v, ok := token(s); ok {
		return v, true
	}
	var found string
	for _, m := range []struct{ pat, v string }{{"[[A]]", "A"}, {"[[B]]", "B"}, {"[[C]]", "TIE"}} {
		if strings.Contains(s, m.pat) {
			if found != "" {
				return "", false
			}
			found = m.v
		}
	}
	if found != "" {
		return found, true
	}
	if line, _, cut := strings.Cut(s, "\n"); cut {
		return token(line)
	}
	return "", false
}

// token reads one verdict token.
func token(s string) (string, bool) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.Trim(t, " \t\"'`*[](){}<>.:!")
	for _, p := range []string{"ANSWER ", "RESPONSE ", "ASSISTANT ", "OUTPUT ", "VERDICT: ", "VERDICT ", "WINNER: ", "WINNER "} {
		t = strings.TrimPrefix(t, p)
	}
	t = strings.Trim(t, " \t\"'`*[](){}<>.:!")
	switch t {
	case "A":
		return "A", true
	case "B":
		return "B", true
	case "TIE", "DRAW", "EQUAL", "BOTH", "NEITHER", "C", "SAME":
		return "TIE", true
	}
	return "", false
}
