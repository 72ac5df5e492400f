package main

import (
	"io"
	"strings"
	"unicode"
)

// Text that people stored (descriptions, reasons, variant and segment
// names) reaches a terminal through "experiments" and "report". Escape
// sequences in it could move the cursor, rewrite earlier lines, set the
// window title or hide text, so every command that prints stored text
// through safeText. JSON output needs no filter: encoding/json escapes
// control characters.

// safeText drops control characters but newline and tab: C0 (ESC
// included), DEL, C1, and the bidirectional overrides and isolates that
// can make a line read backwards (U+202A–U+202E, U+2066–U+2069).
func safeText(s string) string {
	if strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unsafeRune(r) {
			return -1
		}
		return r
	}, s)
}

func unsafeRune(r rune) bool {
	if r == '\n' || r == '\t' {
		return false
	}
	return unicode.IsControl(r) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// safeWriter buffers a command's output and writes it through safeText
// when the command is done (whole, so no rune is split between writes).
type safeWriter struct {
	w   io.Writer
	buf strings.Builder
}

func (s *safeWriter) Write(p []byte) (int, error) { return s.buf.Write(p) }

func (s *safeWriter) flush() error {
	_, err := io.WriteString(s.w, safeText(s.buf.String()))
	s.buf.Reset()
	return err
}
