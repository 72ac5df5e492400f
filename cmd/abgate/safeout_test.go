package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSafeText(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain text":                                    "plain text",
		"two\nlines\tand a tab":                         "two\nlines\tand a tab",
		"\x1b]0;pwned\x07title":                         "]0;pwnedtitle",
		"red \x1b[31malert\x1b[0m":                      "red [31malert[0m",
		"bell\x07 del\x7f c1\u009b2J":                   "bell del c12J",
		"bidi \u202egnp.exe\u202c isolate\u2066x\u2069": "bidi gnp.exe isolatex",
		"ünïcödé, 日本語, emoji 🙂":                         "ünïcödé, 日本語, emoji 🙂",
	} {
		if got := safeText(in); got != want {
			t.Errorf("safeText(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCLIStripsControlsAndHidesSecrets: a description full of escape
// sequences reaches the terminal without them, -h never prints the
// token's value, and a 404 from the wrong listener says where to look.
func TestCLIStripsControlsAndHidesSecrets(t *testing.T) {
	url := adminServer(t)
	def := filepath.Join(t.TempDir(), "exp.yaml")
	if err := os.WriteFile(def, []byte("id: esc-exp\ndescription: \"clear\\e[2J\\e]0;owned\\aback\"\nvariants:\n  - {name: base, upstream: up, model: m0}\n  - {name: tuned, upstream: up, model: m1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := runExp(t, "create", "-f", def, "--server", url, "--token", cliAdminTok); err != nil {
		t.Fatalf("create: %v %s", err, errOut)
	}
	for _, args := range [][]string{{"list"}, {"get", "esc-exp"}} {
		out, errOut, err := runExp(t, append(args, "--server", url, "--token", cliViewerTok)...)
		if err != nil {
			t.Fatalf("%v: %v %s", args, err, errOut)
		}
		if strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, "clear[2J]0;ownedback") {
			t.Errorf("%v printed control characters or lost the text: %q", args, out)
		}
	}

	t.Setenv("ABGATE_TOKEN", "super-secret-token-value-42")
	for _, run := range []func() (string, string, error){
		func() (string, string, error) { return runExp(t, "-h") },
		func() (string, string, error) { return runExp(t, "list", "-h") },
		func() (string, string, error) {
			var out, errb strings.Builder
			err := runReport(t.Context(), []string{"-h"}, &out, &errb)
			return out.String(), errb.String(), err
		},
	} {
		out, errOut, _ := run()
		if strings.Contains(out+errOut, "super-secret-token-value-42") {
			t.Errorf("help printed the token: %s%s", out, errOut)
		}
	}
	// The token from the environment is still used.
	t.Setenv("ABGATE_TOKEN", cliViewerTok)
	if _, errOut, err := runExp(t, "list", "--server", url); err != nil {
		t.Errorf("list with $ABGATE_TOKEN: %v %s", err, errOut)
	}
	// The proxy's listener instead of the admin API's: a hint, not a bare 404.
	_, _, err := runExp(t, "list", "--server", url+"/not-the-admin")
	if err == nil || !strings.Contains(err.Error(), "admin_listen") {
		t.Errorf("404 without a hint: %v", err)
	}
}
