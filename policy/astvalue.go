package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// astValue builds OPA's value of a JSON text that ReadDocument (or ReadEnvelope, NewDocument) has read:
// straight from the text, rather than through encoding/json's interface{} and ast.InterfaceToValue, which
// cost the rego engine more than the rest of a simple decision. The text is known to be one valid UTF-8
// JSON value with no member twice, so the reader only tells tokens apart; numbers keep their text (as
// util.UnmarshalJSON's json.Number does), and a string with escapes is unquoted by encoding/json, the
// reference reading.
func astValue(data []byte) (ast.Value, error) {
	b := astBuilder{data: data}
	v, err := b.value()
	if err != nil {
		return nil, err
	}
	b.space()
	if b.i != len(b.data) {
		return nil, errors.New("text after the JSON value")
	}
	return v, nil
}

type astBuilder struct {
	data []byte
	i    int
}

var errBadJSON = errors.New("malformed JSON")

func (b *astBuilder) space() {
	for b.i < len(b.data) {
		switch b.data[b.i] {
		case ' ', '\t', '\n', '\r':
			b.i++
		default:
			return
		}
	}
}

func (b *astBuilder) value() (ast.Value, error) {
	b.space()
	if b.i >= len(b.data) {
		return nil, errBadJSON
	}
	switch c := b.data[b.i]; c {
	case '{':
		b.i++
		var terms [][2]*ast.Term
		for {
			b.space()
			if b.i < len(b.data) && b.data[b.i] == '}' {
				b.i++
				return ast.NewObject(terms...), nil
			}
			if len(terms) > 0 {
				if b.i >= len(b.data) || b.data[b.i] != ',' {
					return nil, errBadJSON
				}
				b.i++
				b.space()
			}
			k, err := b.key()
			if err != nil {
				return nil, err
			}
			b.space()
			if b.i >= len(b.data) || b.data[b.i] != ':' {
				return nil, errBadJSON
			}
			b.i++
			v, err := b.value()
			if err != nil {
				return nil, err
			}
			terms = append(terms, [2]*ast.Term{k, ast.NewTerm(v)})
		}
	case '[':
		b.i++
		var terms []*ast.Term
		for {
			b.space()
			if b.i < len(b.data) && b.data[b.i] == ']' {
				b.i++
				return ast.NewArray(terms...), nil
			}
			if len(terms) > 0 {
				if b.i >= len(b.data) || b.data[b.i] != ',' {
					return nil, errBadJSON
				}
				b.i++
			}
			v, err := b.value()
			if err != nil {
				return nil, err
			}
			terms = append(terms, ast.NewTerm(v))
		}
	case '"':
		s, err := b.str()
		if err != nil {
			return nil, err
		}
		return ast.String(s), nil
	case 't':
		return b.literal("true", ast.Boolean(true))
	case 'f':
		return b.literal("false", ast.Boolean(false))
	case 'n':
		return b.literal("null", ast.Null{})
	default:
		start := b.i
		for b.i < len(b.data) && !isDelimiter(b.data[b.i]) {
			b.i++
		}
		n := json.Number(b.data[start:b.i])
		if _, err := n.Float64(); err != nil {
			return nil, errBadJSON
		}
		return ast.Number(n), nil
	}
}

// memberTerms are the terms of the member names precheck's documents have (the Input types' and the API
// body's), made once: OPA never changes a term of the input, so every document can share them, and the
// names then cost no allocation.
var memberTerms = sync.OnceValue(func() map[string]*ast.Term {
	out := map[string]*ast.Term{}
	var walk func(s *shape)
	walk = func(s *shape) {
		if s == nil {
			return
		}
		for name, m := range s.members {
			out[name] = ast.StringTerm(name)
			walk(m)
		}
		walk(s.elem)
	}
	walk(documentShape())
	return out
})

// key reads a member name as a term: a shared one for the names documents have.
func (b *astBuilder) key() (*ast.Term, error) {
	if b.i < len(b.data) && b.data[b.i] == '"' {
		if end := bytes.IndexByte(b.data[b.i+1:], '"'); end >= 0 {
			if t, ok := memberTerms()[string(b.data[b.i+1:b.i+1+end])]; ok && bytes.IndexByte(b.data[b.i+1:b.i+1+end], '\\') < 0 {
				b.i += end + 2
				return t, nil
			}
		}
	}
	s, err := b.str()
	if err != nil {
		return nil, err
	}
	return ast.StringTerm(s), nil
}

func (b *astBuilder) literal(word string, v ast.Value) (ast.Value, error) {
	if len(b.data)-b.i < len(word) || string(b.data[b.i:b.i+len(word)]) != word {
		return nil, errBadJSON
	}
	b.i += len(word)
	return v, nil
}

func (b *astBuilder) str() (string, error) {
	if b.i >= len(b.data) || b.data[b.i] != '"' {
		return "", errBadJSON
	}
	start := b.i
	escaped := false
	for j := b.i + 1; j < len(b.data); j++ {
		switch b.data[j] {
		case '"':
			b.i = j + 1
			if !escaped {
				return string(b.data[start+1 : j]), nil
			}
			var s string
			if err := json.Unmarshal(b.data[start:j+1], &s); err != nil {
				return "", err
			}
			return s, nil
		case '\\':
			escaped = true
			j++
		}
	}
	return "", errBadJSON
}
