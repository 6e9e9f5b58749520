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
	json []byte
	read bool
	// The request's identifiers, when they are strings, as the reading found them.
	projectID, clusterID, masterKeyID string
	once                              sync.Once
	value                             ast.Value
	err                               error
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
	r, err := readValue(data, 0, len(data), l.MaxDepth, 0, documentShape(), "")
	if err != nil {
		return nil, err
	}
	return r.document(data), nil
}

// CheckObject checks the JSON object data[start:end] as ReadDocument checks a free value of a document:
// in any of its objects no member name given twice, exactly or up to letter case, no unpaired surrogate
// escape, no number beyond a 64-bit float, no nesting deeper than maxDepth. It is for other files precheck
// takes facts from (an inventory), which encoding/json would read as the last of two members. data must
// be valid UTF-8 JSON as a whole; positions in the *InputError are in data, and its paths start with
// prefix.
func CheckObject(data []byte, start, end, maxDepth int, prefix string) error {
	_, err := readValue(data, start, end, maxDepth, 0, nil, prefix)
	return err
}

func (r *reader) document(data []byte) *Document {
	return &Document{json: data, read: true, projectID: r.projectID, clusterID: r.clusterID, masterKeyID: r.masterKeyID}
}

// ReadEnvelope reads either an input document or OPA's envelope {"input": <document>} (exactly one member,
// named exactly "input"), as the HTTP decision API accepts both. The envelope itself must pass what holds
// for any object (one UTF-8 JSON value, no member twice, no unpaired surrogate, numbers in range); the
// document inside it is read as ReadDocument reads one, with paths (input.…) and positions in the envelope.
func ReadEnvelope(data []byte, l Limits) (*Document, error) {
	if err := readText(data, l); err != nil {
		return nil, err
	}
	env, ok := topLevel(data)
	if ok && env.input && !(env.members == 1 && env.first == "input") {
		// Something like an envelope that is not one: the envelope's own reading reports what is wrong
		// with it (a second "input", "INPUT", ...) before the document's would.
		full, err := readValue(data, 0, len(data), l.MaxDepth, 1, nil, "")
		if err != nil {
			return nil, err
		}
		env = envelope{members: full.members, first: full.first, firstStart: full.firstStart, firstEnd: full.firstEnd}
	}
	if !ok || env.members != 1 || env.first != "input" {
		r, err := readValue(data, 0, len(data), l.MaxDepth, 0, documentShape(), "")
		if err != nil {
			return nil, err
		}
		return r.document(data), nil
	}
	start, end := env.firstStart, env.firstEnd
	r, err := readValue(data, start, end, l.MaxDepth, 0, documentShape(), "input")
	if err != nil {
		return nil, err
	}
	return r.document(data[start:end]), nil
}

// envelope is what ReadEnvelope needs of the top-level object: how many members, the first one's name and
// where its value lies.
type envelope struct {
	members              int
	first                string
	firstStart, firstEnd int
	input                bool // a member is named "input" up to letter case
}

// topLevel reads the top-level object of data (valid JSON) without looking into its members' values:
// whichever reading follows (of the document, or of the envelope's one member) checks all of them, so
// ReadEnvelope need not read the text twice. ok is false when data is not an object.
func topLevel(data []byte) (env envelope, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return env, false
	}
	i = skipSpace(data, i+1)
	for i < len(data) && data[i] == '"' {
		end, _ := stringEnd(data, i)
		name := memberName(data[i:end])
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // the colon
		start := i
		i = skipValue(data, i)
		env.members++
		env.input = env.input || strings.EqualFold(name, "input")
		if env.members == 1 {
			env.first, env.firstStart, env.firstEnd = name, start, i
		}
		i = skipSpace(data, i)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return env, true
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	return i
}

// skipValue returns the offset just past the JSON value that starts at data[i].
func skipValue(data []byte, i int) int {
	depth := 0
	for i < len(data) {
		switch c := data[i]; c {
		case '"':
			i, _ = stringEnd(data, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		default:
			if depth == 0 && !isDelimiter(c) {
				for i < len(data) && !isDelimiter(data[i]) {
					i++
				}
				return i
			}
		}
		i++
	}
	return i
}

// NewDocument returns the Document for an Input built in Go, read as ReadDocument reads one: its body is
// what a client sent. Errors name the member at fault by its path alone, since the text is precheck's.
func NewDocument(in *Input, l Limits) (*Document, error) {
	data, err := json.Marshal(in)
	if err != nil {
		// Only Request.Body can fail: a RawMessage that is not JSON.
		return nil, &InputError{Path: "request.body", Msg: err.Error()}
	}
	// json.Marshal writes one valid JSON value or fails, so of readText's checks only the size and UTF-8
	// (which a RawMessage body may break) are left to make.
	if err := checkSize(data, l); err != nil {
		return nil, err
	}
	if err := checkUTF8(data); err != nil {
		return nil, placeless(err)
	}
	r, err := readValue(data, 0, len(data), l.MaxDepth, 0, documentShape(), "")
	if err != nil {
		return nil, placeless(err)
	}
	return r.document(data), nil
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
	if err := checkSize(data, l); err != nil {
		return err
	}
	if !json.Valid(data) {
		return syntaxError(data)
	}
	return checkUTF8(data)
}

func checkSize(data []byte, l Limits) error {
	if len(data) > l.MaxBytes {
		return &InputError{Msg: fmt.Sprintf("the document is %d bytes, over the limit of %d bytes", len(data), l.MaxBytes)}
	}
	return nil
}

func checkUTF8(data []byte) error {
	if !utf8.Valid(data) { // encoding/json lets invalid UTF-8 through; JSON (RFC 8259) and OPA's wasm parser do not
		line, col := position(data, int64(invalidUTF8At(data))+1)
		return &InputError{Line: line, Column: col, Msg: "not valid UTF-8"}
	}
	return nil
}

// JSON returns the document's text.
func (d *Document) JSON() []byte { return d.json }

// RequestIDs returns request.project_id and request.cluster_id as the document gives them, "" for one
// that is missing or not a string: what a decision log names the call by, without reading the document
// again.
func (d *Document) RequestIDs() (projectID, clusterID string) { return d.projectID, d.clusterID }

// MasterKeyID returns request.body.encrypt.master_key_id as the document gives it, "" when it is missing
// or not a string: the KMS key whose facts a call needs, without reading the body again.
func (d *Document) MasterKeyID() string { return d.masterKeyID }

// Value returns the document parsed for OPA, parsing it on first use.
func (d *Document) Value() (ast.Value, error) {
	d.once.Do(func() {
		v, err := astValue(d.json)
		if err != nil {
			d.err = &InputError{Msg: err.Error()}
			return
		}
		d.value = v
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
