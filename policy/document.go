package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// Limits bound what an input document may be. A document over them is refused before any policy runs.
type Limits struct {
	MaxBytes int // the document's size in bytes
	MaxDepth int // how deeply objects and arrays may nest
}

// DefaultLimits are generous for the real document (a few hundred bytes, four levels deep) and small
// enough that no client can make an evaluation expensive.
var DefaultLimits = Limits{MaxBytes: 1 << 20, MaxDepth: 32}

// InputError is a document precheck cannot read: malformed JSON, too large, too deep, not an object. It is
// the caller's fault (exit code 2, HTTP 400), unlike a policy error.
type InputError struct {
	Line, Column int // where the problem is, when it has a place (1-based; 0 when not known)
	Msg          string
}

func (e *InputError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("input: line %d, column %d: %s", e.Line, e.Column, e.Msg)
	}
	return "input: " + e.Msg
}

// Document is one input document on its way to an evaluator: its JSON text and, once an evaluator asked
// for it, its parsed form. Evaluators read whichever suits them (the wasm host writes the text straight
// into the module's memory; the rego engine needs the parsed value).
type Document struct {
	json  []byte
	once  sync.Once
	value ast.Value
	err   error
}

// ReadDocument checks data against the limits and returns it as a Document. The bytes are not copied: the
// caller must not change them while the Document is in use.
func ReadDocument(data []byte, l Limits) (*Document, error) {
	if len(data) > l.MaxBytes {
		return nil, &InputError{Msg: fmt.Sprintf("the document is %d bytes, over the limit of %d bytes", len(data), l.MaxBytes)}
	}
	if !json.Valid(data) {
		return nil, syntaxError(data)
	}
	if !utf8.Valid(data) { // encoding/json lets invalid UTF-8 through; JSON (RFC 8259) and OPA's wasm parser do not
		line, col := position(data, int64(invalidUTF8At(data))+1)
		return nil, &InputError{Line: line, Column: col, Msg: "not valid UTF-8"}
	}
	if err := checkShape(data, l.MaxDepth); err != nil {
		return nil, err
	}
	return &Document{json: data}, nil
}

// NewDocument returns the Document for an Input built in Go.
func NewDocument(in *Input) (*Document, error) {
	data, err := json.Marshal(in)
	if err != nil {
		// Only Request.Body can fail: a RawMessage that is not JSON.
		return nil, &InputError{Msg: fmt.Sprintf("request.body: %v", err)}
	}
	return &Document{json: data}, nil
}

// JSON returns the document's text.
func (d *Document) JSON() []byte { return d.json }

// Value returns the document parsed for OPA, parsing it on first use.
func (d *Document) Value() (ast.Value, error) {
	d.once.Do(func() {
		var x any
		if err := util.UnmarshalJSON(d.json, &x); err != nil {
			d.err = &InputError{Msg: err.Error()}
			return
		}
		d.value, d.err = ast.InterfaceToValue(x)
	})
	return d.value, d.err
}

func invalidUTF8At(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(data)
}

// syntaxError locates the first syntax error in data (which json.Valid rejected) by line and column.
func syntaxError(data []byte) error {
	var x any
	err := json.Unmarshal(data, &x)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := position(data, se.Offset)
		return &InputError{Line: line, Column: col, Msg: "malformed JSON: " + se.Error()}
	}
	if err == nil { // json.Valid and json.Unmarshal disagree; never seen, but say something true
		err = errors.New("malformed JSON")
	}
	return &InputError{Msg: err.Error()}
}

// position turns a byte offset into a 1-based line and column (in bytes).
func position(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	if col == 0 {
		col = 1
	}
	return line, col
}

// checkShape refuses a document that is not an object or that nests deeper than maxDepth. data is valid
// JSON, so the scan only has to track strings (where brackets are text) and depth.
func checkShape(data []byte, maxDepth int) error {
	first := bytes.TrimLeft(data, " \t\r\n")
	if len(first) == 0 || first[0] != '{' {
		return &InputError{Msg: "the document must be a JSON object"}
	}
	depth, inString, escaped := 0, false, false
	for i, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > maxDepth {
				line, col := position(data, int64(i)+1)
				return &InputError{Line: line, Column: col, Msg: fmt.Sprintf("nested deeper than the limit of %d levels", maxDepth)}
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}
