package redact_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/precheck/precheck/plugin/redact"
)

func TestLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 16, "plain"},
		{"two\nlines\r\n", 16, "two lines  "},
		{"\x1b[31mred\x1b[0m", 16, " [31mred [0m"},
		{"a\u2028b\u202ec\u2066d\u0085e", 32, "a b c d e"},
		{"bad \xff byte", 16, "bad \uFFFD byte"},
		{"0123456789", 8, "01234567… (2 more bytes)"},
		{"012345678", 8, "01234567… (1 more byte)"},
		{"1234567é", 8, "1234567… (2 more bytes)"}, // the cut would split é: it goes whole
	} {
		if got := redact.Line(c.in, c.max); got != c.want {
			t.Errorf("Line(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
	// What the mapping makes longer (an invalid byte is three bytes of U+FFFD) is bounded all the same.
	if got := redact.Line(strings.Repeat("\xffA", 300), 512); len(got) > 512+len("… (9999 more bytes)") || !utf8.ValidString(got) {
		t.Errorf("300 invalid bytes became %d bytes", len(got))
	}
	if got := redact.Line("PRE\u200bCHECK\ufeff", 64); got != "PRE CHECK " {
		t.Errorf("invisible characters: %q", got)
	}
	page := "<html>\n" + strings.Repeat("A", 4<<20) + "\n</html>"
	got := redact.Line(page, 512)
	if len(got) > 512+40 || strings.ContainsAny(got, "\n\r") || !utf8.ValidString(got) {
		t.Errorf("a 4 MiB page became %d bytes: %.80q", len(got), got)
	}
}

func ExampleLine() {
	// A proxy's error page, as a facts API's error message.
	fmt.Println(redact.Line("<html>\n<body>\x1b[31mBad Gateway</body>\n</html>\n", 32))
	// Output: <html> <body> [31mBad Gateway</b… (13 more bytes)
}
