package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

// InputError is a document precheck cannot read: malformed JSON, too large, too deep, not an object, or open
// to more than one reading (see ReadDocument). It is the caller's fault (exit code 2, HTTP 400), unlike a
// policy error.
type InputError struct {
	Line, Column int    // where the problem is, when it has a place (1-based; 0 when not known)
	Path         string // the dotted path of the member at fault (cluster.tags[0].key); "" when none
	Msg          string
}

func (e *InputError) Error() string {
	var b strings.Builder
	b.WriteString("input: ")
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d, column %d: ", e.Line, e.Column)
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Document is one input document on its way to an evaluator: its JSON text and, once an evaluator asked
// for it, its parsed form. Evaluators read whichever suits them (the wasm host writes the text straight
// into the module's memory; the rego engine needs the parsed value). Only ReadDocument, ReadEnvelope and
// NewDocument make one: every evaluator may rely on the text having been read as they describe.
type Document struct {
	json  []byte
	read  bool
	once  sync.Once
	value ast.Value
	err   error
}

// ReadDocument reads data as an input document and returns it as a Document, or an *InputError naming
// what is wrong and where. Beyond the limits it refuses whatever two reasonable readers could read
// differently, since precheck decides on its reading and the cloud acts on its own:
//   - anything but exactly one JSON value in UTF-8, or a value that is not an object;
//   - a surrogate escape that is not a high-low pair, in a string or a member name;
//   - a number beyond the range of a 64-bit float;
//   - in any object, a member name given twice, exactly or up to letter case (strings.EqualFold, as
//     encoding/json matches names);
//   - a member precheck does not know (see Input) where precheck's types define the members;
//   - in request.body and its encrypt object, a member that differs from one the API defines (EncryptBody)
//     only by letter case. Members the API does not define at all are the policy's to judge.
//
// The bytes are not copied: the caller must not change them while the Document is in use.
func ReadDocument(data []byte, l Limits) (*Document, error) {
	if err := readText(data, l); err != nil {
		return nil, err
	}
	if _, err := readValue(data, 0, len(data), l.MaxDepth, 0, documentShape(), ""); err != nil {
		return nil, err
	}
	return &Document{json: data, read: true}, nil
}

// ReadEnvelope reads either an input document or OPA's envelope {"input": <document>} (exactly one member,
// named exactly "input"), as the HTTP decision API accepts both. The envelope itself must pass what holds
// for any object (one UTF-8 JSON value, no member twice, no unpaired surrogate, numbers in range); the
// document inside it is read as ReadDocument reads one, with paths (input.…) and positions in the envelope.
func ReadEnvelope(data []byte, l Limits) (*Document, error) {
	if err := readText(data, l); err != nil {
		return nil, err
	}
	env, err := readValue(data, 0, len(data), l.MaxDepth, 1, nil, "")
	if err != nil {
		return nil, err
	}
	if env.members != 1 || env.first != "input" {
		if _, err := readValue(data, 0, len(data), l.MaxDepth, 0, documentShape(), ""); err != nil {
			return nil, err
		}
		return &Document{json: data, read: true}, nil
	}
	start, end := env.firstStart, env.firstEnd
	if _, err := readValue(data, start, end, l.MaxDepth, 0, documentShape(), "input"); err != nil {
		return nil, err
	}
	return &Document{json: data[start:end], read: true}, nil
}

// NewDocument returns the Document for an Input built in Go, read as ReadDocument reads one: its body is
// what a client sent. Errors name the member at fault by its path alone, since the text is precheck's.
func NewDocument(in *Input, l Limits) (*Document, error) {
	data, err := json.Marshal(in)
	if err != nil {
		// Only Request.Body can fail: a RawMessage that is not JSON.
		return nil, &InputError{Path: "request.body", Msg: err.Error()}
	}
	if err := readText(data, l); err != nil {
		return nil, placeless(err)
	}
	if _, err := readValue(data, 0, len(data), l.MaxDepth, 0, documentShape(), ""); err != nil {
		return nil, placeless(err)
	}
	return &Document{json: data, read: true}, nil
}

// placeless drops a position in the text NewDocument marshalled, which the caller never saw.
func placeless(err error) error {
	if e, ok := err.(*InputError); ok {
		e.Line, e.Column = 0, 0
	}
	return err
}

// readText checks what holds for the text as a whole: its size, one JSON value, UTF-8.
func readText(data []byte, l Limits) error {
	if len(data) > l.MaxBytes {
		return &InputError{Msg: fmt.Sprintf("the document is %d bytes, over the limit of %d bytes", len(data), l.MaxBytes)}
	}
	if !json.Valid(data) {
		return syntaxError(data)
	}
	if !utf8.Valid(data) { // encoding/json lets invalid UTF-8 through; JSON (RFC 8259) and OPA's wasm parser do not
		line, col := position(data, int64(invalidUTF8At(data))+1)
		return &InputError{Line: line, Column: col, Msg: "not valid UTF-8"}
	}
	return nil
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
