package opahost

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// valueSamples are Rego values in Rego syntax, covering what builtins
// exchange with the module: sets, non-string keys, escapes, unicode, big
// and fractional numbers.
var valueSamples = []string{
	`null`, `true`, `false`, `0`, `-1`, `2.5`, `-3e2`, `1e+06`,
	`123456789012345678901234567890`, `0.000001`,
	`""`, `"plain"`, `"q\"b\\s/"`, `"\n\r\t\b\f"`, `"\u0001\u001f"`, `"ü é 😀 \u2028"`,
	`[]`, `[1, "a", [null]]`,
	`{}`, `{"a": 1, "b": {"c": [true]}}`, `{1: "one", 2.5: "x", null: 0, true: false}`,
	`{[1, 2]: "array key", {"k": "v"}: "object key", {1, 2}: "set key"}`,
	`set()`, `{1}`, `{1, "two", [3], {"four": 4}, set()}`,
	`{"nested": {1, {2, {3}}}}`,
}

func TestValueTextRoundTrip(t *testing.T) {
	t.Parallel()
	for _, src := range valueSamples {
		want := ast.MustParseTerm(src)
		text, err := appendValue(nil, want.Value)
		if err != nil {
			t.Errorf("appendValue(%s): %v", src, err)
			continue
		}
		got, err := parseValue(text)
		if err != nil {
			t.Errorf("parseValue(%s): %v", text, err)
			continue
		}
		if ast.Compare(got, want) != 0 {
			t.Errorf("round trip of %s gave %s (text %s)", src, got, text)
		}
	}
}

// TestValueTextThroughModule sends every sample through the module's own
// parser and printer (opa_value_parse, opa_value_dump), the path builtin
// results and arguments take.
func TestValueTextThroughModule(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	ctx := context.Background()
	p := mustLoad(t, compileWasm(t, map[string]string{"e.rego": "package e\na := 1\n"}, nil, "e/a"), nil, Config{})
	in, err := p.acquire(ctx, p.fast)
	if err != nil {
		t.Fatal(err)
	}
	defer p.release(ctx, in)
	for _, src := range valueSamples {
		want := ast.MustParseTerm(src)
		text, err := appendValue(nil, want.Value)
		if err != nil {
			t.Fatal(err)
		}
		buf, err := in.call(ctx, in.fnMalloc, uint32(len(text)))
		if err != nil {
			t.Fatal(err)
		}
		in.mem.Write(buf, text)
		addr, err := in.call(ctx, in.fnValueParse, buf, uint32(len(text)))
		if err != nil || addr == 0 {
			t.Errorf("module cannot parse %s: %v", text, err)
			continue
		}
		str, err := in.call(ctx, in.fnValueDump, addr)
		if err != nil {
			t.Fatal(err)
		}
		dump, _ := readCString(in.mem, str)
		got, err := parseValue(dump)
		if err != nil {
			t.Errorf("parseValue(%s) of the module's dump: %v", dump, err)
			continue
		}
		if ast.Compare(got, want) != 0 {
			t.Errorf("%s came back as %s (module dump %s)", src, got, dump)
		}
	}
}

func TestAppendStringInvalidUTF8(t *testing.T) {
	t.Parallel()
	got := string(appendString(nil, "a\xffb\xc3"))
	if want := `"a\ufffdb\ufffd"`; got != want {
		t.Errorf("appendString = %s, want %s", got, want)
	}
}

func TestAppendValueRejects(t *testing.T) {
	t.Parallel()
	for _, v := range []ast.Value{ast.Number("Inf"), ast.Number("0x10"), ast.Var("x"), ast.MustParseRef("data.x")} {
		if b, err := appendValue(nil, v); err == nil {
			t.Errorf("appendValue(%v) = %s, want an error", v, b)
		}
	}
}

func TestParseValueRejects(t *testing.T) {
	t.Parallel()
	for _, s := range []string{``, `{`, `[1,`, `{"a" 1}`, `{1, 2`, `"abc`, `tru`, `1 2`, `"\q"`, `{"a": 1, 2}`} {
		if v, err := parseValue([]byte(s)); err == nil {
			t.Errorf("parseValue(%q) = %v, want an error", s, v)
		} else if !strings.Contains(err.Error(), "malformed value text") {
			t.Errorf("parseValue(%q) error %v", s, err)
		}
	}
}

// FuzzParseValue: whatever text arrives, the reader never panics, and what it reads it writes back as text
// that reads the same.
func FuzzParseValue(f *testing.F) {
	for _, seed := range []string{`null`, `{1, 2}`, `set()`, `{"a": [1, {"b": set()}]}`, `{1: "a"}`, `"\u00e9\n"`,
		`-3e2`, `[1,`, `{"a" 1}`, "\"\xff\"", `1e99999`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		if !utf8.Valid(text) {
			return // the module writes UTF-8; appendString replaces what is not (TestAppendStringInvalidUTF8)
		}
		v, err := parseValue(text)
		if err != nil {
			return
		}
		out, err := appendValue(nil, v.Value)
		if err != nil {
			return // values the module cannot take back (e.g. invalid UTF-8) are refused, not mangled
		}
		again, err := parseValue(out)
		if err != nil {
			t.Fatalf("%q read as %v, written as %q, which does not read: %v", text, v, out, err)
		}
		if v.Value.Compare(again.Value) != 0 {
			t.Fatalf("%q read as %v, written as %q, read back as %v", text, v, out, again)
		}
	})
}
