package opahost

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Builtin arguments cross the wasm boundary as the text opa_value_dump
// writes and results go back as text for opa_value_parse. That text is JSON
// plus the two things JSON cannot say but Rego values can: set literals
// ({1, 2} and set()) and non-string object keys ({1: "a"}). The JSON-only
// pair (opa_json_dump/opa_json_parse) would turn a set argument into an
// array and make opa_json_parse reject a set result, so builtins would see
// wrong types.
//
// ast.ParseTerm and Term.String would also speak this syntax, but the
// former runs the whole Rego parser per argument and the latter quotes
// strings the Go way (\x00, \U0001f600), which the wasm parser rejects. So
// this file carries a small reader and writer for exactly the subset the
// wasm side produces and accepts.

var errValueSyntax = errors.New("malformed value text")

// parseValue reads one value written by opa_value_dump.
func parseValue(b []byte) (*ast.Term, error) {
	r := valueReader{b: b}
	t, err := r.term()
	if err != nil {
		return nil, fmt.Errorf("%w at offset %d: %w", errValueSyntax, r.i, err)
	}
	r.space()
	if r.i != len(r.b) {
		return nil, fmt.Errorf("%w: trailing bytes at offset %d", errValueSyntax, r.i)
	}
	return t, nil
}

type valueReader struct {
	b []byte
	i int
}

func (r *valueReader) space() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

func (r *valueReader) literal(s string) bool {
	if len(r.b)-r.i >= len(s) && string(r.b[r.i:r.i+len(s)]) == s {
		r.i += len(s)
		return true
	}
	return false
}

func (r *valueReader) term() (*ast.Term, error) {
	r.space()
	if r.i >= len(r.b) {
		return nil, errors.New("unexpected end")
	}
	switch c := r.b[r.i]; {
	case c == 'n' && r.literal("null"):
		return ast.NullTerm(), nil
	case c == 't' && r.literal("true"):
		return ast.InternedTerm(true), nil
	case c == 'f' && r.literal("false"):
		return ast.InternedTerm(false), nil
	case c == 's' && r.literal("set()"):
		return ast.NewTerm(ast.NewSet()), nil
	case c == '"':
		s, err := r.str()
		if err != nil {
			return nil, err
		}
		return ast.StringTerm(s), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return r.number()
	case c == '[':
		return r.array()
	case c == '{':
		return r.objectOrSet()
	default:
		return nil, fmt.Errorf("unexpected byte %q", c)
	}
}

func (r *valueReader) number() (*ast.Term, error) {
	start := r.i
	for r.i < len(r.b) {
		c := r.b[r.i]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			r.i++
			continue
		}
		break
	}
	text := string(r.b[start:r.i])
	if t := ast.InternedIntNumberTermFromString(text); t != nil {
		return t, nil
	}
	return ast.NumberTerm(json.Number(text)), nil
}

// str reads a JSON string. The wasm writer escapes only '"', '\\' and bytes
// below 0x20, so most strings take the copy-only path.
func (r *valueReader) str() (string, error) {
	r.i++ // opening quote
	start := r.i
	for r.i < len(r.b) {
		switch c := r.b[r.i]; c {
		case '"':
			s := string(r.b[start:r.i])
			r.i++
			return s, nil
		case '\\':
			return r.escapedStr(start)
		default:
			r.i++
		}
	}
	return "", errors.New("unterminated string")
}

func (r *valueReader) escapedStr(start int) (string, error) {
	out := append([]byte(nil), r.b[start:r.i]...)
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			return string(out), nil
		case c != '\\':
			out = append(out, c)
			r.i++
			continue
		}
		if r.i+1 >= len(r.b) {
			break
		}
		e := r.b[r.i+1]
		r.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			c1, ok := r.hex4()
			if !ok {
				return "", errors.New("bad \\u escape")
			}
			cp := rune(c1)
			if utf16.IsSurrogate(cp) && r.i+1 < len(r.b) && r.b[r.i] == '\\' && r.b[r.i+1] == 'u' {
				save := r.i
				r.i += 2
				if c2, ok := r.hex4(); ok {
					if d := utf16.DecodeRune(cp, rune(c2)); d != utf8.RuneError {
						cp = d
					} else {
						r.i = save
					}
				} else {
					r.i = save
				}
			}
			out = utf8.AppendRune(out, cp)
		default:
			return "", fmt.Errorf("bad escape %q", e)
		}
	}
	return "", errors.New("unterminated string")
}

func (r *valueReader) hex4() (uint16, bool) {
	if len(r.b)-r.i < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(r.b[r.i:r.i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	r.i += 4
	return uint16(v), true
}

func (r *valueReader) array() (*ast.Term, error) {
	r.i++ // [
	var elems []*ast.Term
	r.space()
	if r.i < len(r.b) && r.b[r.i] == ']' {
		r.i++
		return ast.ArrayTerm(), nil
	}
	for {
		t, err := r.term()
		if err != nil {
			return nil, err
		}
		elems = append(elems, t)
		r.space()
		if r.i >= len(r.b) {
			return nil, errors.New("unterminated array")
		}
		switch r.b[r.i] {
		case ',':
			r.i++
		case ']':
			r.i++
			return ast.ArrayTerm(elems...), nil
		default:
			return nil, fmt.Errorf("unexpected byte %q in array", r.b[r.i])
		}
	}
}

// objectOrSet reads {...}: an object if the first element is followed by a
// colon, a set otherwise; the empty braces are always an object because the
// writer spells the empty set set().
func (r *valueReader) objectOrSet() (*ast.Term, error) {
	r.i++ // {
	r.space()
	if r.i < len(r.b) && r.b[r.i] == '}' {
		r.i++
		return ast.ObjectTerm(), nil
	}
	first, err := r.term()
	if err != nil {
		return nil, err
	}
	r.space()
	if r.i < len(r.b) && r.b[r.i] == ':' {
		return r.objectRest(first)
	}
	elems := []*ast.Term{first}
	for {
		if r.i >= len(r.b) {
			return nil, errors.New("unterminated set")
		}
		switch r.b[r.i] {
		case ',':
			r.i++
		case '}':
			r.i++
			return ast.SetTerm(elems...), nil
		default:
			return nil, fmt.Errorf("unexpected byte %q in set", r.b[r.i])
		}
		t, err := r.term()
		if err != nil {
			return nil, err
		}
		elems = append(elems, t)
		r.space()
	}
}

func (r *valueReader) objectRest(key *ast.Term) (*ast.Term, error) {
	var pairs [][2]*ast.Term
	for {
		r.i++ // :
		val, err := r.term()
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, [2]*ast.Term{key, val})
		r.space()
		if r.i >= len(r.b) {
			return nil, errors.New("unterminated object")
		}
		switch r.b[r.i] {
		case '}':
			r.i++
			return ast.ObjectTerm(pairs...), nil
		case ',':
			r.i++
		default:
			return nil, fmt.Errorf("unexpected byte %q in object", r.b[r.i])
		}
		if key, err = r.term(); err != nil {
			return nil, err
		}
		r.space()
		if r.i >= len(r.b) || r.b[r.i] != ':' {
			return nil, errors.New("object key without value")
		}
	}
}

// appendValue appends v in the syntax opa_value_parse accepts.
func appendValue(b []byte, v ast.Value) ([]byte, error) {
	var err error
	switch v := v.(type) {
	case ast.Null:
		return append(b, "null"...), nil
	case ast.Boolean:
		return strconv.AppendBool(b, bool(v)), nil
	case ast.Number:
		if !validNumber(string(v)) {
			return b, fmt.Errorf("number %q has no JSON form", string(v))
		}
		return append(b, v...), nil
	case ast.String:
		return appendString(b, string(v)), nil
	case *ast.Array:
		b = append(b, '[')
		for i := range v.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendValue(b, v.Elem(i).Value); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case ast.Set:
		if v.Len() == 0 {
			return append(b, "set()"...), nil
		}
		b = append(b, '{')
		for i, t := range v.Slice() {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendValue(b, t.Value); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	case ast.Object:
		b = append(b, '{')
		for i, k := range v.Keys() {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendValue(b, k.Value); err != nil {
				return b, err
			}
			b = append(b, ':')
			if b, err = appendValue(b, v.Get(k).Value); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	default:
		return b, fmt.Errorf("%s is not a value (%T)", ast.ValueName(v), v)
	}
}

// validNumber reports whether s is a JSON number, the only number syntax the
// wasm lexer reads (OPA's big-number arithmetic can yield other spellings).
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// appendString quotes s as JSON. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does, because the wasm parser aborts on it.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
